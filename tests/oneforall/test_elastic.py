"""The elastic supernet: parity with the original on set A, plain-ViT state-dict keys, sub-network validation,
skipped blocks, no weight copies when switching."""
import numpy as np
import paddle
import pytest

from allinone.modeling.vision_transformer import VisionTransformer
from oneforall.elastic import SubnetError
from oneforall.search_space import Architecture, SearchSpace

from oneforall_tools import assert_close_relative, build_elastic, reference_path


@pytest.fixture(scope="module")
def a_input():
    return paddle.to_tensor(np.load(reference_path("A_input.npy")))


@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention", "plain_attention"])
def test_set_a_outputs_and_block_tokens_match_the_original(elastic_a, a_input, reference_config, fused):
    blocks = np.load(reference_path("A_block_outputs.npz"))
    for block in elastic_a.blocks:
        block.attn.fused = fused
    for entry in reversed(reference_config["A"]["configs"]):  # order must not matter
        name = entry["name"]
        elastic_a.set_subnet(entry["config"])
        tokens = elastic_a.embed_tokens(a_input)
        for index in range(elastic_a.subnet.depth):
            tokens = elastic_a.blocks[index](tokens)
            assert_close_relative(tokens.numpy(), blocks[f"{name}.block{index}"])
        output = elastic_a(a_input)[:, 0].numpy()
        assert_close_relative(output, np.load(reference_path(f"A_out_{name}.npy"))[:, :, 0, 0])


def test_state_dict_keys_are_the_plain_vits_and_load_strictly_both_ways(elastic_a, reference_config):
    file_keys = list(paddle.load(reference_path("A_supernet.pdparams")))
    assert sorted(elastic_a.state_dict()) == sorted(file_keys)
    kwargs = reference_config["A"]["kwargs"]
    plain = VisionTransformer(img_size=kwargs["img_size"], patch_size=16, stride_size=16, embed_dim=64, depth=3,
                              num_heads=4, mlp_ratio=4.0, qkv_bias=True, qk_scale=None)
    missing, unexpected = plain.set_state_dict(elastic_a.state_dict())
    assert not missing and not unexpected
    back = build_elastic(reference_config)
    missing, unexpected = back.set_state_dict(plain.state_dict())
    assert not missing and not unexpected


def test_starts_at_the_largest_subnet(reference_config, a_input):
    model = build_elastic(reference_config).eval()
    assert model.subnet == model.largest_subnet()
    assert model(a_input).shape == [3, 5, 64]


@pytest.mark.parametrize("config, message", [
    ({"layer_num": 3, "num_heads": [4, 4], "mlp_ratio": [4.0] * 3, "embed_dim": [64] * 3},
     "'num_heads' has 2 entries, fewer than layer_num = 3"),
    ({"layer_num": 3, "num_heads": [4, 5, 4], "mlp_ratio": [4.0] * 3, "embed_dim": [64] * 3},
     r"layer 1: num_heads = 5, expected an int in 1..4"),
    ({"layer_num": 3, "num_heads": [4, 4, 0], "mlp_ratio": [4.0] * 3, "embed_dim": [64] * 3},
     r"layer 2: num_heads = 0"),
    ({"layer_num": 2, "num_heads": [4, 4], "mlp_ratio": [4.0, 4.5], "embed_dim": [64] * 2},
     r"layer 1: mlp_ratio = 4.5 gives an FFN hidden width of int\(64 x 4.5\) = 288, expected 1..256"),
    ({"layer_num": 2, "num_heads": [4, 4], "mlp_ratio": [4.0, 4.0], "embed_dim": [64, 48]},
     r"layer 1: embed_dim = 48, but the embedding width is fixed at 64"),
    ({"layer_num": 4, "num_heads": [4] * 4, "mlp_ratio": [4.0] * 4, "embed_dim": [64] * 4},
     "depth 4 exceeds the supernet's 3 blocks"),
])
def test_a_bad_subnet_names_layer_and_field_and_changes_nothing(elastic_a, a_input, config, message):
    elastic_a.set_subnet({"layer_num": 2, "num_heads": [3, 2], "mlp_ratio": [3.0, 2.5], "embed_dim": [64, 64]})
    before_arch, before_out = elastic_a.subnet, elastic_a(a_input).numpy()
    with pytest.raises(SubnetError, match=message):
        elastic_a.set_subnet(config)
    assert elastic_a.subnet == before_arch
    np.testing.assert_array_equal(elastic_a(a_input).numpy(), before_out)


def test_an_unparsable_arch_code_is_an_error(elastic_a):
    with pytest.raises(ValueError, match="position 0"):
        elastic_a.set_subnet("x" * 37)


def test_switching_copies_no_weights(elastic_a):
    weights = {name: param for name, param in elastic_a.named_parameters()}
    pointers = {name: param.data_ptr() for name, param in weights.items()}
    elastic_a.set_subnet({"layer_num": 2, "num_heads": [1, 2], "mlp_ratio": [1.0, 2.0], "embed_dim": [64, 64]})
    assert {name: param.data_ptr() for name, param in elastic_a.named_parameters()} == pointers


def test_skipped_blocks_identity_in_eval_and_zero_gradient_in_training(reference_config, a_input):
    elastic_a = build_elastic(reference_config, drop_path_rate=0.0)  # training numbers = eval numbers
    elastic_a.set_state_dict(paddle.load(reference_path("A_supernet.pdparams")))
    elastic_a.set_subnet({"layer_num": 1, "num_heads": [4], "mlp_ratio": [4.0], "embed_dim": [64]})
    eval_out = elastic_a.eval()(a_input).numpy()
    elastic_a.train()
    train_out = elastic_a(a_input)
    np.testing.assert_array_equal(train_out.numpy(), eval_out)
    train_out.sum().backward()
    for name, param in elastic_a.named_parameters():
        if name.startswith(("blocks.1.", "blocks.2.")):
            assert param.grad is not None, name  # kept in the graph (data-parallel needs every gradient)
            assert float(param.grad.abs().max()) == 0.0, name
    assert float(elastic_a.blocks[0].attn.qkv.weight.grad.abs().max()) > 0


def test_sampling_follows_the_search_space(reference_config):
    space = SearchSpace(depth=(2, 3), num_heads=(2, 3, 4), mlp_ratio=(2.5, 3.0, 4.0), embed_dim=(64,))
    model = build_elastic(reference_config, choices=space.to_choices())
    arch = model.sample_subnet(5)
    assert arch == space.sample(5) and model.subnet == arch
    assert model.search_space.largest() == Architecture(3, (4,) * 3, (4.0,) * 3, (64,) * 3, space=space)


def test_the_originals_ignored_qk_scale_maps_to_none(reference_config):
    from oneforall.original import original_backbone_kwargs
    with pytest.warns(UserWarning, match="ignore"):
        kwargs = original_backbone_kwargs({**reference_config["A"]["kwargs"], "qk_scale": 0.05})
    assert kwargs["qk_scale"] is None
    assert original_backbone_kwargs({"qk_scale": 0.05}, supernet=False) == {"qk_scale": 0.05}


def test_qk_scale_is_applied_like_the_plain_vit(reference_config, a_input):
    model = build_elastic(reference_config, qk_scale=0.1)
    model.set_state_dict(paddle.load(reference_path("A_supernet.pdparams")))
    model.eval()
    assert model.blocks[0].attn.scale == 0.1
    default = np.load(reference_path("A_out_largest.npy"))[:, :, 0, 0]
    assert np.abs(model(a_input)[:, 0].numpy() - default).max() > 1e-3
