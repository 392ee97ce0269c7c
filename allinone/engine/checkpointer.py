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

POINTER = "last_checkpoint"


PERIODIC_NAME = "model_{:07d}"


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
    paddle.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(text, path):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Checkpointer:
    """Saves and finds checkpoints in `output_dir`, keeping the newest `max_to_keep` periodic ones."""

    def __init__(self, output_dir, max_to_keep=1):
        self.output_dir = output_dir
        self.max_to_keep = max_to_keep
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
    """Read a checkpoint written by `Checkpointer.save`; an error names the file and the missing parts."""
    state = paddle.load(path)
    missing = [key for key in ("model", "optimizer", "lr_scheduler", "iteration", "data", "rng")
               if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path} is not a training checkpoint (missing {missing}); a weights-only file cannot be "
                         f"resumed from")
    state["data"], state["rng"] = unpack(state["data"]), unpack(state["rng"])
    return state
