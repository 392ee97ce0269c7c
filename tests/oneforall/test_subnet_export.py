"""Sub-network export: the sliced tensors equal the original's (set A digests), the extracted plain ViT computes the
supernet's sub-network bit for bit, and the CLI output is evaluated by evaluation_script.py."""
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest
import yaml
from oneforall_tools import assert_close_relative, reference_path

from allinone import build_model, load_checkpoint
from allinone.config import load_config
from allinone.utils.cli import USER_ERROR
from allinone.registry import BACKBONES
from oneforall import extract
from oneforall.search_space import SearchSpace
from oneforall.subnet_export import subnet_backbone_config, subnet_state_dict

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_CONFIG = os.path.join(REPO, "configs", "oneforall", "tiny_elastic_eval.yaml")


def a_config(reference_config, name):
    return next(entry["config"] for entry in reference_config["A"]["configs"] if entry["name"] == name)


def plain_vit(config, state):
    model = BACKBONES.build(config)
    missing, unexpected = model.set_state_dict(state)
    assert not missing and not unexpected
    return model.eval()


def test_sliced_tensors_match_the_original_digests(elastic_a, reference_config):
    state = subnet_state_dict(elastic_a, a_config(reference_config, "mixed"))
    for key, digest in reference_config["A_sliced_tensors"]["tensors"].items():
        values = state[key].numpy().astype(np.float64)
        assert list(values.shape) == digest["shape"], key
        np.testing.assert_allclose(values.sum(), digest["sum"], rtol=1e-9, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(values.ravel()[:4], digest["first4"], rtol=0, atol=0, err_msg=key)
        np.testing.assert_allclose(values.ravel()[-4:], digest["last4"], rtol=0, atol=0, err_msg=key)


@pytest.mark.parametrize("fused", [True, False], ids=["fused_attention", "plain_attention"])
def test_extracted_plain_vit_equals_the_supernet_bitwise(elastic_a, reference_config, fused):
    x = paddle.to_tensor(np.load(reference_path("A_input.npy")))
    space = SearchSpace(depth=(1, 2, 3), num_heads=(1, 2, 3, 4), mlp_ratio=(0.5, 2.5, 3.0, 4.0), embed_dim=(64,))
    for block in elastic_a.blocks:
        block.attn.fused = fused
    for subnet in [a_config(reference_config, "mixed"), space.sample(3), space.sample(4)]:
        elastic_a.set_subnet(subnet)
        expected = elastic_a(x).numpy()
        model = plain_vit(subnet_backbone_config(elastic_a), subnet_state_dict(elastic_a))
        assert model.depth == elastic_a.subnet.depth
        np.testing.assert_array_equal(model(x).numpy(), expected)
    elastic_a.set_subnet(a_config(reference_config, "mixed"))
    assert_close_relative(elastic_a(x)[:, 0].numpy(), np.load(reference_path("A_out_mixed.npy"))[:, :, 0, 0])


def test_export_leaves_the_current_subnet_alone(elastic_a, reference_config):
    elastic_a.set_subnet(a_config(reference_config, "shallow"))
    subnet_state_dict(elastic_a, a_config(reference_config, "mixed"))
    assert elastic_a.subnet.depth == 2 and elastic_a.subnet.mlp_ratios == (3.0, 3.0)


@pytest.fixture(scope="module")
def supernet_checkpoint(tmp_path_factory):
    """A checkpoint of the tiny supernet config: set A's backbone weights with random heads."""
    paddle.seed(0)
    model = build_model(load_config(TINY_CONFIG))
    missing, unexpected = model.backbone.set_state_dict(paddle.load(reference_path("A_supernet.pdparams")))
    assert not missing and not unexpected
    path = str(tmp_path_factory.mktemp("supernet") / "supernet.pdparams")
    paddle.save(model.state_dict(), path)
    return path


def test_cli_writes_weights_and_config_that_evaluation_script_runs(supernet_checkpoint, reference_config, tmp_path,
                                                                    mini_root):
    arch_file = tmp_path / "mixed.yaml"
    arch_file.write_text(yaml.safe_dump(a_config(reference_config, "mixed")))
    output = tmp_path / "sub" / "mixed.pdparams"
    assert extract.main(["--config", TINY_CONFIG, "--model_path", supernet_checkpoint, "--arch", str(arch_file),
                         "--output", str(output)]) == 0
    config_path = tmp_path / "sub" / "mixed.yaml"
    extracted = build_model(load_config(str(config_path)))
    report = load_checkpoint(extracted, str(output), strict=True)
    assert report.ok
    assert extracted.backbone.num_heads == (4, 2, 3) and extracted.backbone.mlp_ratio == (4.0, 2.5, 3.0)
    x = paddle.to_tensor(np.load(reference_path("A_input.npy")))
    supernet = build_model(load_config(TINY_CONFIG))
    load_checkpoint(supernet, supernet_checkpoint, strict=True)
    supernet.eval().backbone.set_subnet(a_config(reference_config, "mixed"))
    np.testing.assert_array_equal(extracted.eval().backbone(x).numpy(), supernet.backbone(x).numpy())

    env = dict(os.environ, FASTREID_DATASETS=str(mini_root), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "evaluation_script.py", "--config", str(config_path), "--model_path",
                           str(output), "--device", "cpu", "--test_datasets", "LFW"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LFW" in done.stdout + done.stderr


@pytest.mark.parametrize("arch, message", [("x" * 37, "position 0"),
                                           ("j" + "111" * 10 + "000" * 2, "exceeds the supernet's 3 blocks")])
def test_cli_rejects_a_bad_arch_with_one_line(supernet_checkpoint, tmp_path, capsys, arch, message):
    output = tmp_path / "never.pdparams"
    assert extract.main(["--config", TINY_CONFIG, "--model_path", supernet_checkpoint, "--arch", arch,
                         "--output", str(output)]) == USER_ERROR
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_evaluation_script_runs_a_supernet_config_directly(supernet_checkpoint, mini_root):
    """The config names the backbone `oneforall.elastic.ElasticVisionTransformer`: the registry imports the module,
    so evaluation_script.py (which knows nothing of oneforall) evaluates the supernet at its largest sub-network."""
    env = dict(os.environ, FASTREID_DATASETS=str(mini_root), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "evaluation_script.py", "--config", TINY_CONFIG, "--model_path",
                           supernet_checkpoint, "--device", "cpu", "--test_datasets", "LFW"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_dotted_backbone_name_of_a_missing_module_is_named():
    with pytest.raises(KeyError, match="cannot import module 'oneforall.nothing'"):
        BACKBONES.get("oneforall.nothing.Supernet")
