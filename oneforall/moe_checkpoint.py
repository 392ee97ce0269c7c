"""Checkpoint layouts of the task-MoE supernet and their conversions into ours.

* Ours (`TaskMoEVisionTransformer.state_dict()`): everything per task keyed by task name:
  `patch_embeds.<task>.proj.*`, `cls_tokens.<task>`, `pos_embeds.<task>`, `blocks.<b>.mlp.common_expert.fc{1,2}.*`,
  `blocks.<b>.mlp.specific_experts.<task>.fc{1,2}.*`, `blocks.<b>.mlp.gates.<task>` [1, 2]; the rest as the plain ViT.
* The original's per-rank training checkpoints: each rank holds every task's embeddings (cls/pos indexed by task
  position), the shared weights and only its own task's expert and gates (`mlp.moe_mlp.specific_experts.0.*`,
  `mlp.moe_mlp.expert_weight`); the first rank of task k saves into `<output_dir>/task<k>/`.
  `convert_original_ranks` merges one file per task into ours.
* A plain ViT (ours or the original's, e.g. the MAE ViT-H): `moe_state_from_plain_vit` copies its FFN into the
  common and every specific expert, its patch embedding / cls token to every task and its position embedding,
  resampled to the model's grid, to every task; gates start at zero.
* The release layout (MoE attention, FFN and norms, [T, 2] policies) is read by the task extractor
  (`oneforall.task_extract`), which is what it was made for.

Every conversion returns a state dict; `load_moe_state` loads it strictly into a model and reports like
`allinone.load_checkpoint`.
"""
import math
import os
import re

import numpy as np
import paddle

from allinone.modeling.checkpoint import CheckpointError, compare_keys, read_state_dict
from allinone.modeling.vision_transformer import resample_pos_embed

ORIGINAL_EXPERT = re.compile(r"^(blocks\.\d+\.mlp)\.moe_mlp\.(common_expert|specific_experts\.0|expert_weight)(.*)$")
ORIGINAL_TOKEN = re.compile(r"^(cls_tokens|pos_embeds)\.(\d+)$")
BACKBONE_PREFIX = "backbone."


def _is_original_rank_layout(state):
    return any(ORIGINAL_EXPERT.match(key) for key in state)


def convert_original_ranks(rank_states, tasks):
    """Ours from the original's per-rank states: `rank_states` = {task: state dict of that task's (first) rank},
    `tasks` = the training task order (task_names; the cls/pos index). Keys with a `backbone.` prefix keep it;
    `heads.*` keys pass through (from the first task's file; heads are replicated on every rank)."""
    missing = [task for task in tasks if task not in rank_states]
    if missing:
        raise CheckpointError(f"no per-rank checkpoint for task(s) {missing}; got {sorted(rank_states)}")
    converted = {}
    for position, task in enumerate(tasks):
        state = rank_states[task]
        if not _is_original_rank_layout({k[len(BACKBONE_PREFIX):] if k.startswith(BACKBONE_PREFIX) else k: v
                                         for k, v in state.items()}):
            raise CheckpointError(f"task '{task}': not an original per-rank task-MoE checkpoint: no key "
                                  f"'blocks.<b>.mlp.moe_mlp.specific_experts.0.*' or '...moe_mlp.expert_weight'")
        for key, value in state.items():
            prefix = BACKBONE_PREFIX if key.startswith(BACKBONE_PREFIX) else ""
            name = key[len(prefix):]
            expert = ORIGINAL_EXPERT.match(name)
            token = ORIGINAL_TOKEN.match(name)
            if expert:
                block, kind, rest = expert.groups()
                if kind == "specific_experts.0":
                    converted[f"{prefix}{block}.specific_experts.{task}{rest}"] = value
                elif kind == "expert_weight":
                    converted[f"{prefix}{block}.gates.{task}"] = value
                elif position == 0:
                    converted[f"{prefix}{block}.common_expert{rest}"] = value
            elif token:
                index = int(token.group(2))
                if index >= len(tasks):
                    raise CheckpointError(f"task '{task}': key {key} indexes task {index}, but only {len(tasks)} "
                                          f"task names were given ({list(tasks)})")
                if position == 0:
                    converted[f"{prefix}{token.group(1)}.{tasks[index]}"] = value
            elif position == 0:
                converted[key] = value
    return converted


def read_original_rank_dir(output_dir, tasks, filename="model_final.pdmodel"):
    """{task: state dict} from the original's MoE output folder: task k's first rank saved into `task<k>/`."""
    states = {}
    for index, task in enumerate(tasks):
        path = os.path.join(output_dir, f"task{index}", filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"per-rank checkpoint of task '{task}' (index {index}) not found: {path}")
        states[task] = read_state_dict(path)
    return states


def moe_state_from_plain_vit(plain_state, model, source_grid=None):
    """A full state dict for `model` (a TaskMoEVisionTransformer) from a plain ViT state dict (keys without the
    `backbone.` prefix; 'head'/'dist' keys dropped, a 2-D linear patch weight reshaped to the conv, as the original's
    pretrained loader): FFN -> common and every specific expert, patch embedding / cls token -> every task, position
    embedding -> every task, resampled bilinearly to the model's grid (cls position kept; `source_grid` (gh, gw)
    when the checkpoint's grid is not square); gates zero."""
    plain_state = {key: value for key, value in plain_state.items() if "head" not in key and "dist" not in key}
    out = {}
    for key, value in plain_state.items():
        if key == "patch_embed.proj.weight" and len(value.shape) == 2:  # a linear patch embedding [D, C*p*p]
            conv = model.patch_embeds[model.tasks[0]].proj.weight
            value = paddle.reshape(value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value), conv.shape)
        if key.startswith("patch_embed."):
            for task in model.tasks:
                out[f"patch_embeds.{task}.{key[len('patch_embed.'):]}"] = value
        elif key in ("cls_token", "pos_embed"):
            if key == "pos_embed":
                value = _resampled(value, model.grid_size, source_grid)
            for task in model.tasks:
                out[f"{key}s.{task}"] = value
        elif re.match(r"^blocks\.\d+\.mlp\.", key):
            block, rest = key.split(".mlp.", 1)
            out[f"{block}.mlp.common_expert.{rest}"] = value
            for task in model.tasks:
                out[f"{block}.mlp.specific_experts.{task}.{rest}"] = value
        else:
            out[key] = value
    for block_index in range(len(model.blocks)):
        for task in model.tasks:
            out.setdefault(f"blocks.{block_index}.mlp.gates.{task}", paddle.zeros([1, 2]))
    return out


def _resampled(pos_embed, grid, source_grid=None):
    tokens = pos_embed.shape[1] - 1
    if source_grid is not None:
        if source_grid[0] * source_grid[1] != tokens:
            raise CheckpointError(f"pos_embed has {tokens} patch positions, not the {source_grid} grid given")
        return pos_embed if tuple(source_grid) == tuple(grid) else resample_pos_embed(pos_embed, source_grid, grid)
    if tokens == grid[0] * grid[1]:
        return pos_embed
    side = int(round(math.sqrt(tokens)))
    if side * side != tokens:
        raise CheckpointError(f"pos_embed has {tokens} patch positions, not a square grid; cannot infer its grid "
                              f"to resample it to {grid}")
    return resample_pos_embed(pos_embed, (side, side), tuple(grid))


def to_moe_state(state, model, tasks_of_ranks=None):
    """Ours from any supported layout (detected from the keys): ours, the original per-rank layout (a dict
    {task: state}), or a plain ViT. Raises CheckpointError naming the expected keys for anything else."""
    if tasks_of_ranks is not None:
        return convert_original_ranks(state, tasks_of_ranks)
    if any(key.endswith((".attn.policy", ".mlp.policy")) for key in state):
        raise CheckpointError("this is the release layout (MoE attention/FFN/norm copies with [T, 2] policies): it "
                              "does not load into the task-MoE model; extract a task from it with "
                              "`python -m oneforall.extract --paddle_model_path CKPT --task_name NAME`")
    if any(".mlp.specific_experts." in key and ".moe_mlp." not in key for key in state) and \
            any(key.startswith("cls_tokens.") for key in state):
        return dict(state)
    if _is_original_rank_layout(state):
        raise CheckpointError("this is one rank of an original per-rank task-MoE checkpoint (it holds one task's "
                              "expert): convert all tasks' files with convert_original_ranks / "
                              "`python -m oneforall.convert_moe`")
    if "pos_embed" in state and "patch_embed.proj.weight" in state and any(".mlp.fc1." in k for k in state):
        return moe_state_from_plain_vit(state, model)
    raise CheckpointError("unknown checkpoint layout: expected ours (cls_tokens.<task>, "
                          "blocks.<b>.mlp.specific_experts.<task>.fc1.weight, blocks.<b>.mlp.gates.<task>), an "
                          "original per-rank one (blocks.<b>.mlp.moe_mlp.specific_experts.0.*) or a plain ViT "
                          f"(patch_embed.proj.weight, pos_embed, blocks.<b>.mlp.fc1.weight); got keys "
                          f"{sorted(state)[:8]}...")


def backbone_part(state):
    """The backbone's keys without their `backbone.` prefix when `state` is a whole model's (backbone + heads)."""
    if any(key.startswith(BACKBONE_PREFIX) for key in state):
        return {key[len(BACKBONE_PREFIX):]: value for key, value in state.items() if key.startswith(BACKBONE_PREFIX)}
    return state


def load_task_moe_checkpoint(model, path, tasks_dir=None, source_grid=None):
    """Load a checkpoint file of any supported layout into a TaskMoEVisionTransformer, strictly; returns the
    KeyReport. `tasks_dir`: instead of `path`, the original's output folder of per-rank checkpoints (`task<k>/`
    with `path` as the file name in each)."""
    if tasks_dir is not None:
        state = convert_original_ranks(read_original_rank_dir(tasks_dir, model.tasks, path), model.tasks)
        return load_moe_state(model, backbone_part(state), tasks_dir)
    state = backbone_part(read_state_dict(path))
    if source_grid is not None and "pos_embed" in state:
        state = moe_state_from_plain_vit(state, model, source_grid)
    return load_moe_state(model, to_moe_state(state, model), path)


def load_moe_state(model, state, path="<state>"):
    """Strict load of a state dict of our layout into `model`; a mismatch raises CheckpointError naming the keys
    (nothing is loaded). A model holding only some tasks' experts (`held_tasks`) takes only those from the full
    state. Returns the KeyReport."""
    from .expert_shards import expert_task, held_part

    model_state = model.state_dict()
    if tuple(getattr(model, "held_tasks", ())) != tuple(getattr(model, "tasks", ())):
        state = held_part(state, expert_task, model.held_tasks)
    report = compare_keys(model_state, state, path)
    if not report.ok:
        raise CheckpointError(f"{path} does not fit the task-MoE model:\n  " + "\n  ".join(report.problems()))
    for key in report.loaded:
        value = state[key]
        value = value if isinstance(value, paddle.Tensor) else paddle.to_tensor(np.asarray(value))
        model_state[key].set_value(value.astype(model_state[key].dtype))
    return report


__all__ = ["backbone_part", "convert_original_ranks", "load_moe_state", "load_task_moe_checkpoint",
           "moe_state_from_plain_vit", "read_original_rank_dir",
           "to_moe_state"]
