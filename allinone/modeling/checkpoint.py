"""Load weights into a model from the official `paddle.save`d state dict (`allinone_vitlarge.pdmodel`) or from one
of our training checkpoints (`{"model": state_dict, ...}`), reporting every key that does not fit.

The original loaded non-strictly and silently kept random weights for missing or mis-shaped keys; here any
mismatch is an error unless the caller asks for a partial load, and the report names every key.
"""
import logging
import math
import os
from dataclasses import dataclass, field

import paddle

from .vision_transformer import resample_pos_embed

logger = logging.getLogger("allinone.checkpoint")

# Parameters that only exist for training (classification layers); an eval model skips them with a note.
TRAINING_ONLY_MARKER = ".classifier."


class CheckpointError(ValueError):
    """The checkpoint file cannot be read, or its keys/shapes do not fit the model; the message names them."""


@dataclass
class KeyReport:
    """What load_checkpoint did with each key, in the model's state-dict order."""

    path: str
    loaded: list = field(default_factory=list)
    missing: list = field(default_factory=list)              # in the model, not in the file
    unexpected: list = field(default_factory=list)           # in the file, not in the model
    shape_mismatched: list = field(default_factory=list)     # (key, model shape, file shape)
    skipped_training_only: list = field(default_factory=list)  # classifier keys an eval model has no use for
    resampled: list = field(default_factory=list)            # (key, file grid, model grid): pos_embed resized

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def problems(self):
        """One line per kind of mismatch, naming the keys."""
        lines = []
        if self.missing:
            lines.append(f"{len(self.missing)} key(s) of the model missing from the file: {self.missing}")
        if self.unexpected:
            lines.append(f"{len(self.unexpected)} key(s) in the file unknown to the model: {self.unexpected}")
        if self.shape_mismatched:
            lines.append(f"{len(self.shape_mismatched)} key(s) with a different shape: " + ", ".join(
                f"{key} (model {model_shape}, file {file_shape})"
                for key, model_shape, file_shape in self.shape_mismatched))
        return lines

    def __str__(self):
        summary = f"{self.path}: loaded {len(self.loaded)} key(s)"
        if self.skipped_training_only:
            summary += f", skipped {len(self.skipped_training_only)} training-only key(s)"
        for key, old_grid, new_grid in self.resampled:
            summary += f", resampled {key} from a {old_grid[0]}x{old_grid[1]} to a {new_grid[0]}x{new_grid[1]} grid"
        return "; ".join([summary, *self.problems()])


def read_state_dict(path):
    """The flat {key: tensor} dict stored at `path` (a state dict, or the "model" entry of a training checkpoint, or
    the merged "model" entries of a sharded checkpoint folder: allinone.modeling.sharded_checkpoint)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if os.path.isdir(path):
        from .sharded_checkpoint import is_sharded, read_parts

        if is_sharded(path):  # a checkpoint written in parts by several processes: all parts' model entries
            return read_parts(path, entries=("model",))["model"]
        raise CheckpointError(f"checkpoint path {path} is a directory without a manifest.json; expected a file saved "
                              f"with paddle.save or a sharded checkpoint folder")
    try:
        content = paddle.load(path)
    except Exception as err:  # paddle.load raises assorted types for non-checkpoint files
        raise CheckpointError(f"{path} is not a Paddle checkpoint ({type(err).__name__}: {err}); expected a state "
                              f"dict saved with paddle.save (.pdmodel/.pdparams) or a training checkpoint") from None
    if isinstance(content, dict) and isinstance(content.get("model"), dict):
        content = content["model"]
    if not isinstance(content, dict) or not content:
        raise CheckpointError(f"{path} holds a {type(content).__name__}, not a state dict")
    not_tensors = [key for key, value in content.items() if not hasattr(value, "shape")]
    if not_tensors:
        raise CheckpointError(f"{path} is neither a state dict nor a training checkpoint with a 'model' entry: "
                              f"entries {not_tensors[:10]} are not tensors")
    return content


def compare_keys(model_state, file_state, path=""):
    """A KeyReport of `file_state` against `model_state` (both {key: tensor}); nothing is loaded."""
    report = KeyReport(path)
    for key, value in model_state.items():
        if key not in file_state:
            report.missing.append(key)
        elif list(file_state[key].shape) != list(value.shape):
            report.shape_mismatched.append((key, list(value.shape), list(file_state[key].shape)))
        else:
            report.loaded.append(key)
    for key in file_state:
        if key not in model_state:
            target = report.skipped_training_only if TRAINING_ONLY_MARKER in key else report.unexpected
            target.append(key)
    return report


def load_checkpoint(model, path, strict=True, state=None):
    """Load `path` into `model` and return the KeyReport. strict: any missing, unexpected or mis-shaped key raises
    CheckpointError (nothing is loaded); otherwise the matching keys are loaded and the rest is logged. `state`:
    the {key: tensor} dict already read from `path` (a part of it, say)."""
    file_state = read_state_dict(path) if state is None else state
    model_state = model.state_dict()
    file_state, resampled = resample_position_embeddings(model, model_state, file_state)
    report = compare_keys(model_state, file_state, path)
    report.resampled = resampled
    if strict and not report.ok:
        raise CheckpointError(f"checkpoint {path} does not fit the model (pass strict=False / --allow_partial to "
                              f"load the matching keys anyway):\n  " + "\n  ".join(report.problems()))
    for key in report.loaded:
        _assign(model_state[key], file_state[key])
    for line in report.problems():
        logger.warning("partial load of %s: %s", path, line)
    if report.skipped_training_only:
        logger.info("%s: skipped %d training-only key(s) the model does not use (%s ...)", path,
                    len(report.skipped_training_only), report.skipped_training_only[0])
    logger.info("loaded %d/%d model key(s) from %s", len(report.loaded), len(model_state), path)
    return report


def resample_position_embeddings(model, model_state, file_state):
    """A copy of `file_state` whose `pos_embed` entries of another patch grid are resampled to the model's grid
    (bilinear, cls position kept: resample_pos_embed), and the list of (key, file grid, model grid) it changed.

    The model's grid is the `grid_size` of the layer owning the key; the file's grid is taken as square (the
    original's pretrained loader assumes the same). Entries that do not fit this (another width, a non-square
    token count) are left alone and show up as shape mismatches."""
    layers = dict(model.named_sublayers(include_self=True))
    adapted, resampled = dict(file_state), []
    for key, value in model_state.items():
        owner_name, _, name = key.rpartition(".")
        stored = file_state.get(key)
        if name != "pos_embed" or stored is None or list(stored.shape) == list(value.shape):
            continue
        new_grid = getattr(layers.get(owner_name), "grid_size", None)
        side = math.isqrt(stored.shape[1] - 1) if len(stored.shape) == 3 and stored.shape[1] > 1 else 0
        if new_grid is None or side * side != stored.shape[1] - 1 or stored.shape[2] != value.shape[2]:
            continue
        adapted[key] = resample_pos_embed(stored, (side, side), tuple(new_grid))
        resampled.append((key, (side, side), tuple(new_grid)))
        logger.info("%s: resampled from a %dx%d to a %dx%d patch grid", key, side, side, *new_grid)
    return adapted, resampled


def _assign(target, value):
    """Copy `value` into the model tensor `target` in place, in the model's dtype (a float16 file loads too)."""
    value = value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value)
    target.set_value(value if value.dtype == target.dtype else value.astype(target.dtype))


__all__ = ["CheckpointError", "KeyReport", "compare_keys", "load_checkpoint", "read_state_dict"]
