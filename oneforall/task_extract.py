"""One task of a task-MoE checkpoint as a plain ViT (+ that task's head): what the official evaluation runs.

Two source layouts:
* ours (`TaskMoEVisionTransformer`): per block the expert the task's gate picks in eval (softmax(logits / tau) in
  float32, ties -> specific: the same rule as the model's eval forward, so the extracted model equals the MoE
  output for that task), sliced to the current sub-network's widths;
* the release layout (`backbone.blocks.<b>.{attn,mlp}.{common_expert,specific_experts.<task>,common_norm,
  specific_norms.<task>,policy}`, `backbone.norm.{common_expert,specific_experts.<task>,policy}`): per block and
  per policy the task's row decides, common only when strictly larger on the raw values (ties -> specific), as the
  original extractor. Block count from the checkpoint; a model without qkv bias works.
"""
import re

from . import gate as gates
from .subnet_export import backbone_build_config

# The original extractor's fixed task order (index = policy row).
RELEASE_TASKS = ("face", "person", "veri", "sop", "task1", "task2", "task3", "task4", "task5", "task6", "task7",
                 "task8", "task9", "task0", "task10", "task11", "task16", "task17", "task18", "task19", "task20",
                 "task22", "task23", "task24", "dmlab", "retinopathy")
RELEASE_MARKER = re.compile(r"^backbone\.blocks\.\d+\.(attn|mlp)\.policy$")


class TaskExtractionError(KeyError):
    """The task or the checkpoint cannot give a plain model; the message names the task / key."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


# -- ours ----------------------------------------------------------------------------------------------------
def task_state_from_moe(model, task):
    """(plain ViT state dict, backbone config, picks per block) of `task` in `model` (a TaskMoEVisionTransformer)
    at its current sub-network. Tensors are copies."""
    if task not in model.tasks:
        raise TaskExtractionError(f"unknown task '{task}'; the model's tasks are {list(model.tasks)}")
    arch = model.subnet
    state = {f"patch_embed.{key}": value.clone() for key, value in model.patch_embeds[task].state_dict().items()}
    state["cls_token"] = model.cls_tokens[task].clone()
    state["pos_embed"] = model.pos_embeds[task].clone()
    picks, ratios = [], []
    for index in range(arch.depth):
        block, prefix = model.blocks[index], f"blocks.{index}."
        for name in ("norm1", "norm2"):
            for field, value in getattr(block, name).state_dict().items():
                state[f"{prefix}{name}.{field}"] = value.clone()
        for name in ("qkv", "proj"):
            _put_linear(state, f"{prefix}attn.{name}", getattr(block.attn, name))
        use_specific = gates.eval_pick(block.mlp.gates[task], block.mlp.tau) == gates.SPECIFIC
        expert = block.mlp.specific_experts[task] if use_specific else block.mlp.common_expert
        experts = arch.expert_ratios[index]
        ratios.append(float(experts.specific[model.tasks.index(task)] if use_specific else experts.common))
        picks.append("specific" if use_specific else "common")
        for name in ("fc1", "fc2"):
            _put_linear(state, f"{prefix}mlp.{name}", getattr(expert, name))
    for field, value in model.norm.state_dict().items():
        state[f"norm.{field}"] = value.clone()
    config = backbone_build_config(model, model.patch_embeds[task])
    config.update(depth=arch.depth, num_heads=[int(h) for h in arch.num_heads], mlp_ratio=ratios)
    return state, config, picks


def _put_linear(state, prefix, linear):
    state[f"{prefix}.weight"] = linear.active_weight().clone()
    bias = linear.active_bias()
    if bias is not None:
        state[f"{prefix}.bias"] = bias.clone()


# -- the release layout --------------------------------------------------------------------------------------
def is_release_layout(state):
    return any(RELEASE_MARKER.match(key) for key in state)


def task_state_from_release(state, task, task_names=RELEASE_TASKS):
    """(`backbone.` + plain ViT keys and the task's `heads.<task>.*` keys, picks {policy key: 'common'|'specific'})
    from a release-layout state dict, following the original extractor's rules."""
    if not is_release_layout(state):
        raise TaskExtractionError("not a release-layout task-MoE checkpoint: expected keys "
                                  "'backbone.blocks.<b>.attn.policy' / '...mlp.policy' with common_expert / "
                                  f"specific_experts.<task> copies; got keys {sorted(state)[:8]}...")
    task_names = list(task_names)
    if task not in task_names:
        raise TaskExtractionError(f"unknown task '{task}'; the checkpoint's task order is {task_names}")
    row = task_names.index(task)
    if f"backbone.patch_embeds.{task}.proj.weight" not in state:
        present = sorted({k.split(".")[2] for k in state if k.startswith("backbone.patch_embeds.")})
        raise TaskExtractionError(f"the checkpoint has no 'backbone.patch_embeds.{task}.proj.weight'; its tasks "
                                  f"are {present}")
    out = {"backbone.patch_embed.proj.weight": state[f"backbone.patch_embeds.{task}.proj.weight"],
           "backbone.cls_token": _need(state, f"backbone.cls_tokens.{row}"),
           "backbone.pos_embed": _need(state, f"backbone.pos_embeds.{row}")}
    _copy_if_present(state, f"backbone.patch_embeds.{task}.proj.bias", out, "backbone.patch_embed.proj.bias")
    picks = {}
    blocks = sorted({int(m.group(1)) for m in (re.match(r"^backbone\.blocks\.(\d+)\.", k) for k in state) if m})
    for b in blocks:
        base = f"backbone.blocks.{b}"
        for part, linears, norm in (("attn", ("qkv", "proj"), "norm1"), ("mlp", ("fc1", "fc2"), "norm2")):
            policy_key = f"{base}.{part}.policy"
            pick = gates.release_pick(_policy_row(state, policy_key, row))
            picks[policy_key] = "common" if pick == gates.COMMON else "specific"
            common = pick == gates.COMMON
            expert = f"{base}.{part}." + ("common_expert" if common else f"specific_experts.{task}")
            norm_src = f"{base}.{part}." + ("common_norm" if common else f"specific_norms.{task}")
            for linear in linears:
                out[f"{base}.{part}.{linear}.weight"] = _need(state, f"{expert}.{linear}.weight")
                _copy_if_present(state, f"{expert}.{linear}.bias", out, f"{base}.{part}.{linear}.bias")
            for field in ("weight", "bias"):
                out[f"{base}.{norm}.{field}"] = _need(state, f"{norm_src}.{field}")
    pick = gates.release_pick(_policy_row(state, "backbone.norm.policy", row))
    picks["backbone.norm.policy"] = "common" if pick == gates.COMMON else "specific"
    source = "backbone.norm.common_expert" if pick == gates.COMMON else f"backbone.norm.specific_experts.{task}"
    for field in ("weight", "bias"):
        out[f"backbone.norm.{field}"] = _need(state, f"{source}.{field}")
    for key, value in state.items():
        parts = key.split(".")
        if "head" in key and len(parts) > 1 and parts[1] == task:
            out[key] = value
    return out, picks


def _need(state, key):
    if key not in state:
        raise TaskExtractionError(f"release-layout checkpoint lacks '{key}'")
    return state[key]


def _copy_if_present(state, source, out, target):
    if source in state:
        out[target] = state[source]


def _policy_row(state, key, row):
    policy = _need(state, key)
    values = policy.numpy() if hasattr(policy, "numpy") else policy
    if len(values.shape) != 2 or values.shape[1] != 2 or row >= values.shape[0]:
        raise TaskExtractionError(f"'{key}' has shape {list(values.shape)}; expected [tasks, 2] with a row {row}")
    return values[row]


__all__ = ["RELEASE_TASKS", "TaskExtractionError", "is_release_layout", "task_state_from_moe",
           "task_state_from_release"]
