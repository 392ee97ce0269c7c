"""The original OneForAll backbones' constructor arguments mapped onto ours, so a model described by the original's
arguments (a config, the parity data) is built without guessing.

`vision_transformer_super.VisionTransformer` -> `ElasticVisionTransformer`;
`vision_transformer_super_hardpolicy_moe.VisionTransformerTaskMoE` -> `TaskMoEVisionTransformer`.
"""
import warnings

# Original arguments with the same meaning here (same name, or renamed).
RENAMED = {"predefined_head_dim": "head_dim", "task_names": "tasks", "taskname2learningscale": "task_lr_scales"}
SAME = ("img_size", "patch_size", "stride_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio",
        "qkv_bias", "qk_scale", "drop_rate", "attn_drop_rate", "drop_path_rate")
# Arguments that change nothing in a forward of ours (memory / bookkeeping / always on in the original).
NO_EFFECT = {"use_checkpointing": "use_recompute", "change_qkv": None, "n_tasks": None, "globalrank2taskid": None,
             "norm_layer": None, "hybrid_backbone": None, "sie_xishu": None}
FULL_SEP_LIST = {"patch_embed", "pos_embed", "cls_token"}


def original_backbone_kwargs(kwargs, supernet=True):
    """Our constructor keyword arguments for the original's `kwargs`; an argument we cannot honour raises
    ValueError naming it. `supernet`: the kwargs are of one of the original supernets, which ignore `qk_scale`
    (always head_dim ** -0.5), so it maps to None here; the original plain ViT (`supernet=False`) applies it."""
    ours = {}
    for key, value in kwargs.items():
        if key == "qk_scale" and supernet:
            if value is not None:
                warnings.warn(f"qk_scale={value}: the original supernets ignore it (head_dim ** -0.5); mapped to None")
            ours[key] = None
        elif key in SAME:
            ours[key] = value
        elif key in RENAMED:
            ours[RENAMED[key]] = value
        elif key in NO_EFFECT:
            if NO_EFFECT[key] and value:
                ours[NO_EFFECT[key]] = bool(value)
        elif key == "share_last":
            if not value:
                raise ValueError("share_last=False (drop the last block and the final norm) is not supported")
        elif key == "camera":
            if value:
                raise ValueError(f"camera={value} (side-information embedding) is not supported (broken in the "
                                 f"original)")
        elif key == "sep_list":
            if set(value) != FULL_SEP_LIST:
                raise ValueError(f"sep_list={value}: only per-task patch_embed, pos_embed and cls_token together are "
                                 f"supported (the original indexes them per task whatever the list says)")
        else:
            raise ValueError(f"unknown original backbone argument '{key}'")
    if "n_tasks" in kwargs and "task_names" in kwargs and kwargs["n_tasks"] != len(kwargs["task_names"]):
        warnings.warn(f"n_tasks={kwargs['n_tasks']} differs from the {len(kwargs['task_names'])} task_names; "
                      f"the task names decide")
    return ours


__all__ = ["original_backbone_kwargs"]
