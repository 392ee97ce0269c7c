"""Parameter counts of a configured backbone without allocating it (built under `paddle.LazyGuard`, which creates
parameter shapes but no storage), so the 10.7B-parameter ViT-H task-MoE model can be counted on any machine.

    python -m oneforall.param_count --config configs/oneforall/vithuge_task_moe.yaml
"""
import argparse
import sys
from collections import OrderedDict

import numpy as np

# name pattern -> group, first match wins
GROUPS = (("common FFN experts", ".mlp.common_expert."), ("task-specific FFN experts", ".mlp.specific_experts."),
          ("gates", ".mlp.gates."), ("per-task embeddings", ("patch_embeds.", "cls_tokens.", "pos_embeds.")))


def lazy_backbone(backbone_cfg):
    """The backbone of a `Model.backbone` config, built without parameter storage."""
    import paddle

    import oneforall.elastic  # noqa: F401  (register the supernets)
    import oneforall.task_moe  # noqa: F401
    from allinone.registry import BACKBONES
    with paddle.LazyGuard():
        return BACKBONES.build(dict(backbone_cfg))


def count_parameters(model):
    """OrderedDict group -> number of parameters, plus 'total' (heads are not part of a backbone)."""
    counts = OrderedDict((name, 0) for name, _ in GROUPS)
    counts["shared (attention, norms, plain FFN/embeddings)"] = 0
    for name, param in model.named_parameters():
        size = int(np.prod(param.shape))
        group = next((group for group, pattern in GROUPS if _matches(name, pattern)),
                     "shared (attention, norms, plain FFN/embeddings)")
        counts[group] += size
    counts["total"] = sum(counts.values())
    return counts


def _matches(name, pattern):
    patterns = pattern if isinstance(pattern, tuple) else (pattern,)
    return any(p in name if p.startswith(".") else name.startswith(p) for p in patterns)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="config with a Model.backbone section")
    args = parser.parse_args(argv)
    from allinone.config import load_config
    model = lazy_backbone(load_config(args.config).Model.backbone)
    counts = count_parameters(model)
    print(f"{type(model).__name__} of {args.config} (heads excluded, nothing allocated):")
    for group, count in counts.items():
        if count or group == "total":
            print(f"  {group:<48s} {count:>16,d}  ({count / 1e9:.3f}B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
