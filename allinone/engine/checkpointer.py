"""Training checkpoints: everything needed to continue a run bit-for-bit, written so a crash never leaves a torn file.

A checkpoint is one `paddle.save`d dict: `model` (the state dict `evaluation_script.py` loads), `optimizer`,
`lr_scheduler`, `iteration` (the number of finished steps = the next step to run), `data` (every rank's train
loader state) and `rng` (every rank's python, numpy and paddle generator states), the last two as lists indexed by
rank and pickled into uint8 arrays, because `paddle.load` cannot read arbitrary python objects back. Files are
written to a temporary name and `os.replace`d; `last_checkpoint` (a text file naming the newest file) is replaced
the same way.
"""
import glob
import os
import pickle
import random
import re

import numpy as np
import paddle

from ..data.transforms import GLOBAL_RNGS_LOCK
from ..modeling.checkpoint import CheckpointError

POINTER = "last_checkpoint"


PERIODIC_NAME = "model_{:07d}"
TRAINING_KEYS = ("model", "optimizer", "lr_scheduler", "iteration", "data", "rng")
TEMPORARY = re.compile(r".+\.tmp(\d+)$")  # what atomic_save / _atomic_write_text write before the rename


class ResumeError(CheckpointError):
    """A checkpoint cannot be resumed from (not a training checkpoint, unreadable, another process count)."""


def pack(obj):
    """Any picklable object -> a uint8 array that survives paddle.save / paddle.load."""
    return np.frombuffer(pickle.dumps(obj), dtype=np.uint8).copy()


def unpack(array):
    """Inverse of `pack` (paddle.load may hand the array back as a Tensor)."""
    return pickle.loads(np.asarray(array.numpy() if hasattr(array, "numpy") else array).tobytes())


def capture_rng_state():
    """The global generators' states, taken under the data loader's lock: a loader thread may be running a
    transform with them temporarily seeded (allinone.data.transforms.seeded_global_rngs)."""
    with GLOBAL_RNGS_LOCK:
        return {"python": random.getstate(), "numpy": np.random.get_state(), "paddle": paddle.get_rng_state()}


def restore_rng_state(state):
    with GLOBAL_RNGS_LOCK:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        paddle.set_rng_state(state["paddle"])


def atomic_save(obj, path):
    """paddle.save to `path` via a temporary file in the same folder, so readers see the old file or the new one."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        paddle.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)  # a partial file (a full disk, an interrupt) must not stay behind
        raise


def _atomic_write_text(text, path):
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder):
    """Delete `*.tmp<PID>` files that a killed writer left in `folder` (skipping those of a live process other than
    this one); returns the removed paths."""
    removed = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        match = TEMPORARY.fullmatch(name)
        if match and (int(match.group(1)) == os.getpid() or not _process_alive(int(match.group(1)))):
            _remove_quietly(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed


class Checkpointer:
    """Saves and finds checkpoints in `output_dir`, keeping the newest `max_to_keep` periodic ones. With `clean`
    (the writing rank), partial files left by an earlier run that died while saving are removed at start-up."""

    def __init__(self, output_dir, max_to_keep=1, clean=False):
        self.output_dir = output_dir
        self.max_to_keep = max_to_keep
        if clean:
            remove_stale_temporaries(output_dir)
        self._periodic = sorted(glob.glob(os.path.join(output_dir, "model_" + "[0-9]" * 7 + ".pdparams")))

    def save(self, name, state):
        """Write `state` as `output_dir/name.pdparams` and point `last_checkpoint` at it. Periodic checkpoints
        (`model_0001999`) beyond the newest `max_to_keep` are deleted (0 keeps all). Returns the path."""
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"{name}.pdparams")
        atomic_save(state, path)
        _atomic_write_text(os.path.basename(path), os.path.join(self.output_dir, POINTER))
        if re.fullmatch(r"model_\d{7}", name) and path not in self._periodic:
            self._periodic.append(path)
        while self.max_to_keep and len(self._periodic) > self.max_to_keep:
            old = self._periodic.pop(0)
            if os.path.exists(old):
                os.remove(old)
        return path

    def latest(self):
        """The file `last_checkpoint` names, or None when the folder has none; an error if it names a missing file."""
        pointer = os.path.join(self.output_dir, POINTER)
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding="utf-8") as f:
            name = f.read().strip()
        path = os.path.join(self.output_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{pointer} names '{name}', which does not exist in {self.output_dir}")
        return path


def load_training_state(path):
    """Read a checkpoint written by `Checkpointer.save`; a ResumeError names the file and what is wrong with it."""
    try:
        state = paddle.load(path)
    except Exception as err:  # noqa: BLE001  (paddle raises many kinds on a torn or foreign file)
        raise ResumeError(f"--resume {path}: cannot read it as a paddle checkpoint ({type(err).__name__}: {err}); "
                          f"is it truncated? Resume from another checkpoint of the run") from None
    missing = [key for key in TRAINING_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise ResumeError(f"--resume {path}: not a training checkpoint (missing {missing}); a weights-only file cannot "
                          f"be resumed from: start a new run with Train.init_checkpoint={path} instead")
    try:
        for key in ("data", "rng", "step", "scaler"):
            if key in state:
                state[key] = unpack(state[key])
    except Exception as err:  # noqa: BLE001
        raise ResumeError(f"--resume {path}: its '{key}' part is damaged ({type(err).__name__}: {err})") from None
    return state
