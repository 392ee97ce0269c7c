"""Helpers of the engine tests: run the real tools in their own processes, read checkpoints."""
import os
import subprocess
import sys

import numpy as np
import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable


def user_error_code():
    """The exit code of a user error (allinone.utils.cli; 1 before the CLIs agreed on 2)."""
    from allinone.utils import cli

    return getattr(cli, "USER_ERROR", 1)


def tool_env(mini_root, threads=1):
    env = dict(os.environ, FASTREID_DATASETS=mini_root, OMP_NUM_THREADS=str(threads), PYTHON=PYTHON,
               PYTHONPATH=ROOT)
    for var in [name for name in env if name.startswith("PADDLE_")]:
        del env[var]  # a test run inside a launched job must not join it
    return env


def launch_script(script, args, env, cwd, log_dir, nproc=2, timeout=300):
    """`script` with `args` under Paddle's launcher as `nproc` CPU processes (logs in `log_dir`); fails the test
    with the launcher's output and the workers' logs when the launch fails. Returns the CompletedProcess."""
    result = subprocess.run([PYTHON, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
                             "--log_dir", str(log_dir), str(script), *map(str, args)],
                            cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)
    logs = "".join(open(os.path.join(log_dir, name), errors="replace").read() for name in sorted(os.listdir(log_dir))
                   if os.path.isfile(os.path.join(log_dir, name))) if os.path.isdir(log_dir) else ""
    assert result.returncode == 0, (result.stdout + result.stderr + logs)[-4000:]
    return result


def run_train(config, output_dir, mini_root, *args, timeout=300):
    """tools/train.py in its own process; returns the CompletedProcess (stdout and stderr captured)."""
    cmd = [PYTHON, os.path.join(ROOT, "tools", "train.py"), "-c", config, "-o", f"Global.output_dir={output_dir}",
           *args]
    return subprocess.run(cmd, cwd=ROOT, env=tool_env(mini_root), capture_output=True, text=True, timeout=timeout)


def optimizer_parameter_keys(module, optimizer):
    """The structured names (`backbone.blocks.0...`) of the parameters of `module` the optimizer holds state for,
    read from its public state_dict, whose accumulators are named '<parameter name>_<accumulator>_<i>'."""
    names = {param.name: key for key, param in module.named_parameters()}
    state = [key for key, value in optimizer.state_dict().items() if isinstance(value, paddle.Tensor)]
    return sorted({key for name, key in names.items() if any(entry.startswith(name + "_") for entry in state)})


def model_state(path):
    """{key: numpy array} of the model part of a training checkpoint."""
    return {key: np.asarray(value) for key, value in paddle.load(str(path), return_numpy=True)["model"].items()}


def random_batch(tasks, seed=0, rows=8, size=32):
    """{task: {"images": [rows, 3, size, size] in [-1, 1], "targets": pairs of ids 0, 0, 1, 1, ...}} from `seed`."""
    rng = np.random.RandomState(seed)
    return {task: {"images": paddle.to_tensor(rng.uniform(-1, 1, [rows, 3, size, size]).astype("float32")),
                   "targets": paddle.to_tensor(np.repeat(np.arange(rows // 2), 2))} for task in tasks}


class BatchList:
    """A loader over fixed batches, in a cycle, with the state_dict a checkpoint stores."""

    def __init__(self, batches):
        self.batches, self.position = batches, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = self.batches[self.position % len(self.batches)]
        self.position += 1
        return batch

    def state_dict(self):
        return {"position": self.position}

    def set_state_dict(self, state):
        self.position = state["position"]
