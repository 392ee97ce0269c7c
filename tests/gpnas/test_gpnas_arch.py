"""The 37-character architecture code: digit meanings, exact round trip, and errors that name the position."""
import pytest

from oneforall.gpnas import Architecture, ArchCodeError, format_arch_code, parse_arch_code

SPEC_EXAMPLE = "j111231321311311221231121111231000000"
TRAIN_ARCH1 = "l231131331121121331111211121331321321"


def test_spec_example_parses_to_its_documented_architecture():
    arch = parse_arch_code(SPEC_EXAMPLE)
    assert arch.depth == 10
    assert arch.num_heads == (12, 11, 10, 10, 10, 11, 11, 12, 12, 11)
    assert arch.mlp_ratios == (4.0, 3.0, 3.5, 4.0, 4.0, 3.5, 3.0, 3.5, 4.0, 3.0)
    assert arch.embed_dims == (768,) * 10


def test_depth_letters_mean_10_11_12():
    assert parse_arch_code("k" + "111" * 11 + "000").depth == 11
    assert parse_arch_code("l" + "111" * 12).depth == 12


@pytest.mark.parametrize("code", [SPEC_EXAMPLE, TRAIN_ARCH1, "k" + "331" * 11 + "000"])
def test_code_round_trips_exactly(code):
    assert format_arch_code(parse_arch_code(code)) == code
    assert Architecture.from_code(code).to_code() == code


def test_architecture_round_trips_through_its_code():
    arch = Architecture(11, (10, 12) * 5 + (11,), (3.0, 3.5, 4.0) * 3 + (4.0, 4.0), (768,) * 11)
    assert parse_arch_code(format_arch_code(arch)) == arch


@pytest.mark.parametrize("code, position, expected", [
    (SPEC_EXAMPLE[:-1], "length 36", "37 characters"),
    ("x" + SPEC_EXAMPLE[1:], "position 0", "depth letter"),
    (SPEC_EXAMPLE[:4] + "4" + SPEC_EXAMPLE[5:], "position 4", "num_heads digit"),
    (SPEC_EXAMPLE[:5] + "0" + SPEC_EXAMPLE[6:], "position 5", "mlp_ratio digit"),
    (SPEC_EXAMPLE[:6] + "2" + SPEC_EXAMPLE[7:], "position 6", "embed_dim digit"),
    (SPEC_EXAMPLE[:32] + "1" + SPEC_EXAMPLE[33:], "position 32", "past the depth 10"),
    ("l" + "111" * 11 + "000", "position 34", "num_heads digit"),
])
def test_malformed_code_names_the_position(code, position, expected):
    with pytest.raises(ArchCodeError, match=position) as err:
        parse_arch_code(code)
    assert expected in str(err.value)


def test_architecture_rejects_values_outside_the_search_space():
    with pytest.raises(ValueError, match=r"num_heads\[1\] = 9"):
        Architecture(10, (12, 9) + (12,) * 8, (4.0,) * 10, (768,) * 10)
    with pytest.raises(ValueError, match="one per layer"):
        Architecture(10, (12,) * 11, (4.0,) * 10, (768,) * 10)
