"""One search space for the supernets, the sampler and GP-NAS: choices, extremes, the original's step-seeded draws,
the original's sub-config dicts and the 37-character code as views of one `Architecture`."""
import random

import pytest

from oneforall.arch_code import ArchCodeError, format_arch_code, parse_arch_code
from oneforall.gpnas import Architecture as GPNASArchitecture
from oneforall.search_space import COMPETITION_SPACE, Architecture, ExpertRatios, SearchSpace

# The original's sample_configs on the default choices (Python 3.11), lists padded to 12 layers.
TEST_VECTORS = {
    0: (11, [12, 10, 11, 10, 10, 12, 11, 12, 12, 12, 10, 10],
        [3.5, 3.0, 3.5, 4.0, 3.5, 3.5, 3.5, 3.5, 3.5, 4.0, 3.0, 3.0]),
    1: (10, [10, 11, 10, 11, 11, 12, 10, 12, 11, 11, 11, 11],
        [4.0, 3.0, 3.5, 3.0, 3.5, 3.5, 3.5, 4.0, 3.5, 3.0, 3.0, 3.0]),
    2: (10, [12, 10, 12, 12, 10, 11, 12, 11, 12, 12, 12, 12],
        [3.0, 3.0, 3.5, 3.0, 4.0, 4.0, 3.5, 3.5, 4.0, 3.0, 3.0, 3.0]),
}


def test_gpnas_uses_the_same_architecture_class():
    assert GPNASArchitecture is Architecture


def test_default_choices_and_extremes():
    space = SearchSpace()
    assert space.to_choices() == {"num_heads": [10, 11, 12], "mlp_ratio": [3.0, 3.5, 4.0], "embed_dim": [768],
                                  "depth": [10, 11, 12], "img_size": [224]}
    assert space.largest().to_code() == "l" + "111" * 12
    assert space.smallest().to_code() == "j" + "331" * 10 + "000" * 2
    moe = space.largest(num_tasks=3)
    assert moe.expert_ratios == (ExpertRatios(4.0, (4.0, 4.0, 4.0)),) * 12


@pytest.mark.parametrize("seed", sorted(TEST_VECTORS))
def test_step_seeded_sampling_reproduces_the_original_draws(seed):
    depth, heads, ratios = TEST_VECTORS[seed]
    arch = COMPETITION_SPACE.sample(seed)
    config = arch.to_config(pad_to=12)
    assert config["layer_num"] == depth
    assert config["num_heads"] == heads and config["mlp_ratio"] == ratios
    assert config["embed_dim"] == [768] * 12
    assert parse_arch_code(arch.to_code()) == arch


def test_sampling_leaves_the_global_random_state_alone():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    COMPETITION_SPACE.sample(7)
    assert random.random() == expected


def test_moe_sampling_draws_expert_ratios_after_heads():
    arch = COMPETITION_SPACE.sample(0, num_tasks=2)
    depth, heads, ratios = TEST_VECTORS[0]
    assert arch.depth == depth and list(arch.num_heads) == heads[:depth] and list(arch.mlp_ratios) == ratios[:depth]
    assert arch.expert_ratios[0] == ExpertRatios(3.5, (3.0, 4.0))
    assert arch.expert_ratios[1] == ExpertRatios(3.0, (4.0, 3.5))
    padded = arch.to_config(pad_to=12)["softpolicy_mlp_ratio"]
    assert len(padded) == 12 and padded[-1] == padded[depth - 1]


def test_original_config_round_trip_cuts_the_padding():
    arch = COMPETITION_SPACE.sample(1, num_tasks=3)
    assert Architecture.from_config(arch.to_config(pad_to=12), space=COMPETITION_SPACE) == arch


def test_a_custom_space_checks_its_own_choices():
    tiny = SearchSpace(depth=(2, 3), num_heads=(2, 3, 4), mlp_ratio=(2.5, 3.0, 4.0), embed_dim=(64,))
    arch = Architecture(3, (4, 2, 3), (4.0, 2.5, 3.0), (64,) * 3, space=tiny)
    assert arch.embed_dim == 64
    with pytest.raises(ValueError, match=r"num_heads\[1\] = 5 \(layer 1\)"):
        Architecture(2, (4, 5), (4.0, 4.0), (64, 64), space=tiny)
    with pytest.raises(ValueError, match=r"expert_ratios\[0\].specific\[1\] = 1.0"):
        Architecture(2, (4, 4), (4.0, 4.0), (64, 64), (ExpertRatios(3.0, (3.0, 1.0)),) * 2, space=tiny)


@pytest.mark.parametrize("config, message", [
    ({"layer_num": 3, "num_heads": [4, 4], "mlp_ratio": [4.0] * 3, "embed_dim": [64] * 3},
     "'num_heads' has 2 entries, fewer than layer_num = 3"),
    ({"layer_num": 0, "num_heads": [], "mlp_ratio": [], "embed_dim": []}, "layer_num must be a positive int"),
    ({"num_heads": [4], "mlp_ratio": [4.0], "embed_dim": [64]}, r"lacks \['layer_num'\]"),
])
def test_bad_original_config_names_the_field(config, message):
    with pytest.raises(ValueError, match=message):
        Architecture.from_config(config)


def test_code_of_an_architecture_outside_the_competition_space_names_the_field():
    arch = Architecture(10, (12,) * 9 + (4,), (4.0,) * 10, (768,) * 10, space=None)
    with pytest.raises(ArchCodeError, match=r"num_heads\[9\] = 4"):
        format_arch_code(arch)
