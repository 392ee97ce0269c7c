"""Training checkpoints: everything needed to continue a run bit-for-bit, written so a crash never leaves a torn file.

A checkpoint is one `paddle.save`d dict: `model` (the state dict `evaluation_script.py` loads), `optimizer`,
`lr_scheduler`, `iteration` (the number of finished steps = the next step to run), `data` (every rank's train
loader state) and `rng` (every rank's python, numpy and paddle generator states), the last two as lists indexed by
rank and pickled into uint8 arrays, because `paddle.load` cannot read arbitrary python objects back. Files are
written to a temporary name and `os.replace`d; `last_checkpoint` (a text file naming the newest file) is replaced
the same way.

A step that holds only a part of the model per process (oneforall's sharded task-MoE experts) saves a folder
instead (`Checkpointer.save_parts`, the layout of allinone.modeling.sharded_checkpoint): every rank writes its parts,
then rank 0 writes the manifest and the pointer, so `latest()` and a resume see only complete checkpoints.
"""
import glob
import json
import logging
import os
import pickle
import random
import re
import shutil

import numpy as np
import paddle

from ..data.transforms import GLOBAL_RNGS_LOCK
from ..modeling.checkpoint import CheckpointError
from ..modeling.sharded_checkpoint import (FORMAT, MAIN_PART, MANIFEST, IncompleteCheckpointError, check_complete,
                                           describe_part, missing_files, part_file, read_manifest, read_parts)

logger = logging.getLogger("allinone.engine")
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


PERIODIC = re.compile(r"model_\d{7}(\.pdparams)?")  # a periodic checkpoint: a file, or a sharded checkpoint's folder


class Checkpointer:
    """Saves and finds checkpoints in `output_dir`, keeping the newest `max_to_keep` periodic ones. With `clean`
    (the writing rank), partial files left by an earlier run that died while saving are removed at start-up (in
    the folders of sharded checkpoints too)."""

    def __init__(self, output_dir, max_to_keep=1, clean=False):
        self.output_dir = output_dir
        self.max_to_keep = max_to_keep
        if clean:
            remove_stale_temporaries(output_dir)
            for folder in self._folders():
                remove_stale_temporaries(folder)
        # iteration order: a checkpoint saved as a folder and one saved as a file never share an iteration
        self._periodic = sorted((path for path in glob.glob(os.path.join(output_dir, "model_" + "[0-9]" * 7 + "*"))
                                 if PERIODIC.fullmatch(os.path.basename(path))),
                                key=lambda path: os.path.basename(path)[:13])

    def _folders(self):
        if not os.path.isdir(self.output_dir):
            return []
        return [os.path.join(self.output_dir, name) for name in os.listdir(self.output_dir)
                if os.path.isdir(os.path.join(self.output_dir, name)) and name.startswith("model_")]

    def save(self, name, state):
        """Write `state` as `output_dir/name.pdparams` and point `last_checkpoint` at it. Periodic checkpoints
        (`model_0001999`) beyond the newest `max_to_keep` are deleted (0 keeps all). Returns the path."""
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, f"{name}.pdparams")
        atomic_save(state, path)
        self._finish(name, path)
        return path

    def save_parts(self, name, parts):
        """A collective call (every rank, same order): write this rank's `parts` ({part name: dict}; rank 0's must
        include the main part, `replicated`, with every entry besides the parts' "model"/"optimizer" ones) into the
        folder `output_dir/name`, then, once every rank has written, rank 0 writes the manifest and points
        `last_checkpoint` at the folder. Returns the folder's path."""
        import paddle.distributed as dist

        rank, world = dist.get_rank(), dist.get_world_size()
        folder = os.path.join(self.output_dir, name)
        if rank == 0:  # an earlier save under this name (a run resumed before it) is not complete until rewritten
            os.makedirs(folder, exist_ok=True)
            _remove_quietly(os.path.join(folder, MANIFEST))
        _all_gather(None, world)  # nobody writes before the old manifest is gone
        written = {}
        for part, state in parts.items():
            atomic_save(state, os.path.join(folder, part_file(part)))
            written[part] = describe_part(part, state, rank)
        everyone = _all_gather(written, world)  # also: every rank has finished writing
        if rank != 0:
            return folder
        manifest = {"format": FORMAT, "world_size": world, "parts": {}}
        for rank_parts in everyone:
            for part, entry in rank_parts.items():
                if part in manifest["parts"]:
                    raise RuntimeError(f"checkpoint part '{part}' written by ranks {manifest['parts'][part]['rank']} "
                                       f"and {entry['rank']}: each part must have one writer")
                manifest["parts"][part] = entry
        if MAIN_PART not in manifest["parts"]:
            raise RuntimeError(f"no rank wrote the '{MAIN_PART}' part of checkpoint {folder}")
        manifest["parts"] = dict(sorted(manifest["parts"].items(), key=lambda item: item[0] != MAIN_PART))
        _atomic_write_text(json.dumps(manifest, indent=1), os.path.join(folder, MANIFEST))
        self._finish(name, folder)
        return folder

    def _finish(self, name, path):
        """Point `last_checkpoint` at `path` (a file or a folder) and drop the oldest periodic checkpoints."""
        _atomic_write_text(os.path.basename(path), os.path.join(self.output_dir, POINTER))
        if re.fullmatch(r"model_\d{7}", name) and path not in self._periodic:
            self._periodic.append(path)
        while self.max_to_keep and len(self._periodic) > self.max_to_keep:
            old = self._periodic.pop(0)
            if os.path.isdir(old):
                shutil.rmtree(old, ignore_errors=True)
            elif os.path.exists(old):
                os.remove(old)

    def latest(self):
        """The checkpoint `last_checkpoint` names (a file or a complete sharded folder), or None when the folder has
        none; an error if it names a missing file. When it names a sharded folder that is not complete (a part file
        lost), the newest complete periodic checkpoint instead, with a warning naming the missing file."""
        pointer = os.path.join(self.output_dir, POINTER)
        if not os.path.isfile(pointer):
            return None
        with open(pointer, encoding="utf-8") as f:
            name = f.read().strip()
        path = os.path.join(self.output_dir, name)
        if os.path.isdir(path):
            missing = missing_files(path)
            if not missing:
                return path
            others = {old: [] if os.path.isfile(old) else missing_files(old) for old in reversed(self._periodic)
                      if old != path and os.path.exists(old)}
            complete = [old for old, lost in others.items() if not lost]
            if not complete:
                raise IncompleteCheckpointError(
                    f"{pointer} names {path}, which is incomplete (missing {missing}), and no other checkpoint in "
                    f"{self.output_dir} is complete" +
                    "".join(f"; {old} misses {lost}" for old, lost in others.items()))
            logger.warning("%s names %s, which is incomplete (missing %s); using %s", pointer, path, missing,
                           complete[0])
            return complete[0]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{pointer} names '{name}', which does not exist in {self.output_dir}")
        return path


def _all_gather(obj, world):
    """[obj of every rank] (a collective call; [obj] alone)."""
    if world == 1:
        return [obj]
    import paddle.distributed as dist

    gathered = []
    dist.all_gather_object(gathered, obj)
    return gathered


def checkpoint_parts(path):
    """The part names of the sharded checkpoint folder `path` (ResumeError naming a missing file if incomplete)."""
    try:
        check_complete(path)
        return list(read_manifest(path)["parts"])
    except CheckpointError as err:
        raise ResumeError(f"--resume {err}") from None


def load_training_state(path, parts=None):
    """Read a checkpoint written by `Checkpointer.save` (a file) or `save_parts` (a folder: the files of `parts`,
    default all; see allinone.modeling.sharded_checkpoint.read_parts); a ResumeError names the file and what is
    wrong with it."""
    try:
        if os.path.isdir(path):
            checkpoint_parts(path)
            state = read_parts(path, parts)
        else:
            state = paddle.load(path)
    except ResumeError:
        raise
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
