"""What a run with experts sharded over processes refuses, from the config it was built from: a global-norm gradient
clip (each rank would clip by the norm of a different part of the experts). 2 CPU processes under Paddle's launcher."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
from engine_tools import PYTHON, tool_env  # noqa: E402
from test_moe_training import TINY  # noqa: E402


def launch_train(config, out, root, *overrides):
    """tools/train.py on 2 launched processes; (return code, the workers' logs)."""
    overrides = [f"Global.output_dir={out / 'run'}", "Train.max_iter=1", "Train.eval_period=0", *overrides]
    result = subprocess.run([PYTHON, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
                             str(out / "launch_log"), os.path.join(ROOT, "tools", "train.py"), "-c", config,
                             *[arg for override in overrides for arg in ("-o", override)]],
                            cwd=ROOT, env=tool_env(root), capture_output=True, text=True, timeout=300)
    logs = "".join((out / "launch_log" / name).read_text() for name in sorted(os.listdir(out / "launch_log"))
                   if name.startswith("workerlog"))
    return result.returncode, logs


def test_a_global_norm_clip_with_sharded_experts_is_refused_naming_the_key(oneforall_root, tmp_path):
    from allinone.config import load_config

    cfg = load_config(TINY)
    cfg.Optimizer.grad_clip_norm, cfg.Optimizer["grad_clip_global_norm"] = None, 1.0
    cfg.dump(str(tmp_path / "global_clip.yaml"))
    code, logs = launch_train(str(tmp_path / "global_clip.yaml"), tmp_path, oneforall_root)
    assert code != 0, logs[-3000:]
    assert "error: Optimizer.grad_clip_global_norm needs every parameter on every process" in logs, logs[-3000:]
    assert not (tmp_path / "run" / "model_final.pdparams").exists()
