"""Extract an ordinary model from a OneForAll supernet checkpoint: a sub-network, or one task of a task-MoE model.

    # a sub-network of the elastic supernet (architecture code, or a YAML sub-config)
    python -m oneforall.extract --model_path SUPERNET --arch CODE --output OUT [--config SUPERNET_CONFIG]
    # one task of a task-MoE checkpoint (ours with its --config: a file, or the folder of a sharded run, of which
    # only the replicated part and the task's part are read; or the release layout)
    python -m oneforall.extract --paddle_model_path CKPT --task_name NAME [--output OUT] [--config MOE_CONFIG]

Each writes the weights (`paddle.save`, `backbone.` + plain ViT keys and the task heads) and, when the model's
config is known, the config of the extracted model next to them (`--output_config`, default OUT with `.yaml`), so
that `evaluation_script.py --config THAT --model_path OUT` evaluates it. `--paddel_model_path` (the UFO README's
spelling) is accepted too.
"""
import argparse
import copy
import logging
import os
import sys

import yaml

from allinone.config import ConfigError

DEFAULT_SUPERNET_CONFIG = "configs/oneforall/vitbase_chip_supernet.yaml"
logger = logging.getLogger("oneforall.extract")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_path", help="elastic supernet checkpoint (sub-network extraction, with --arch)")
    source.add_argument("--paddle_model_path", "--paddel_model_path", dest="paddle_model_path",
                        help="task-MoE checkpoint (task extraction, with --task_name)")
    parser.add_argument("--arch", help="sub-network: a 37-character architecture code or a YAML sub-config file")
    parser.add_argument("--task_name", help="task to extract from a task-MoE checkpoint")
    parser.add_argument("--config", default=None,
                        help=f"config of the supernet / task-MoE model (sub-network default: "
                             f"{DEFAULT_SUPERNET_CONFIG}; required for our task-MoE layout)")
    parser.add_argument("--task_names", default=None,
                        help="comma-separated task order of a release-layout checkpoint's policy rows (default: the "
                             "original extractor's 26 names)")
    parser.add_argument("--output", default=None,
                        help="weights file to write (task default: CKPT.to<task>, as the original)")
    parser.add_argument("--output_config", default=None, help="config file to write (default: OUT with .yaml)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a value of --config (repeatable)")
    args = parser.parse_args(argv)
    if args.model_path and not args.arch:
        parser.error("--model_path (sub-network extraction) needs --arch")
    if args.paddle_model_path and not args.task_name:
        parser.error("--paddle_model_path (task extraction) needs --task_name")
    if args.model_path and not args.output:
        parser.error("--model_path (sub-network extraction) needs --output")
    return args


def read_arch(value):
    """An Architecture from a code or a YAML file holding the original's sub-config dict."""
    from oneforall.elastic import SubnetError
    from oneforall.search_space import Architecture
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        try:
            return Architecture.from_config(config, space=None)
        except ValueError as err:
            raise SubnetError(f"{value}: {err}") from None
    return Architecture.from_code(value)


def build_from_config(config_path, overrides, checkpoint, task=None):
    """(config, model) with the checkpoint loaded strictly. `task` with a sharded checkpoint folder: the model holds
    only that task's specific experts and gates, and only the replicated part and that task's part are read."""
    import oneforall.elastic  # noqa: F401  (register the supernet backbones)
    import oneforall.task_moe  # noqa: F401
    import oneforall.heads  # noqa: F401  (ClassificationHead)
    from allinone import build_model, load_checkpoint
    from allinone.config import load_config
    from allinone.modeling.sharded_checkpoint import MAIN_PART, is_sharded, read_parts
    from oneforall.expert_shards import task_part
    cfg = load_config(config_path, overrides)
    state = None
    if task is not None and is_sharded(checkpoint):
        state = read_parts(checkpoint, [MAIN_PART, task_part(task)], entries=("model",))["model"]
        held = copy.deepcopy(cfg)  # the config written next to the output stays the whole model's
        held.Model.backbone.held_tasks = [task]
        model = build_model(held)
    else:
        model = build_model(cfg)
    load_checkpoint(model, checkpoint, strict=True, state=state)
    return cfg, model.eval()


def extract_subnet(args):
    from oneforall.elastic import ElasticVisionTransformer
    from oneforall.subnet_export import subnet_backbone_config, subnet_state_dict
    arch = read_arch(args.arch)
    cfg, model = build_from_config(args.config or DEFAULT_SUPERNET_CONFIG, args.override, args.model_path)
    if not isinstance(model.backbone, ElasticVisionTransformer):
        raise ConfigError(f"{args.config}: Model.backbone is {type(model.backbone).__name__}, not an elastic "
                          f"supernet")
    model.backbone.check_subnet(model.backbone.as_architecture(arch))
    state = {f"backbone.{key}": value for key, value in subnet_state_dict(model.backbone, arch).items()}
    state.update({key: value for key, value in model.state_dict().items() if not key.startswith("backbone.")})
    plain = cfg.to_dict()
    plain["Model"]["backbone"] = subnet_backbone_config(model.backbone, arch)
    return state, plain, f"sub-network {arch.to_code() if arch.space is not None else arch}"


def extract_task(args):
    from allinone.modeling.checkpoint import read_state_dict
    from oneforall.task_extract import (RELEASE_TASKS, TaskExtractionError, is_release_layout, task_state_from_moe,
                                        task_state_from_release)
    from oneforall.task_moe import TaskMoEVisionTransformer
    from allinone.modeling.sharded_checkpoint import is_sharded
    from oneforall.expert_shards import task_part
    task = args.task_name
    sharded = is_sharded(args.paddle_model_path)  # ours, written in parts: read only the task's
    state = {} if sharded else read_state_dict(args.paddle_model_path)
    if sharded and not args.config:
        raise TaskExtractionError(f"{args.paddle_model_path} is a sharded task-MoE checkpoint folder; extracting a "
                                  f"task from it needs the model's --config")
    if sharded:
        from allinone.modeling.sharded_checkpoint import read_manifest
        parts = read_manifest(args.paddle_model_path)["parts"]
        if task_part(task) not in parts:
            raise TaskExtractionError(f"{args.paddle_model_path} has no part '{task_part(task)}' (task '{task}'); "
                                      f"its parts are {sorted(parts)}")
    if is_release_layout(state):
        names = args.task_names.split(",") if args.task_names else RELEASE_TASKS
        out, picks = task_state_from_release(state, task, names)
        plain = None
        if args.config:
            from allinone.config import load_config
            plain = _task_config(load_config(args.config, args.override).to_dict(), task,
                                 _release_backbone_config(out, load_config(args.config, args.override)))
        return out, plain, f"task '{task}' (release layout; picks {picks})"
    if not args.config:
        raise TaskExtractionError(f"{args.paddle_model_path} is not a release-layout checkpoint; extracting a task "
                                  f"from our layout needs the model's --config")
    cfg, model = build_from_config(args.config, args.override, args.paddle_model_path, task if sharded else None)
    if not isinstance(model.backbone, TaskMoEVisionTransformer):
        raise ConfigError(f"{args.config}: Model.backbone is {type(model.backbone).__name__}, not a task-MoE model")
    backbone_state, backbone_config, picks = task_state_from_moe(model.backbone, task)
    head = model.task_to_head.get(task, task)
    out = {f"backbone.{key}": value for key, value in backbone_state.items()}
    out.update({key: value for key, value in model.state_dict().items() if key.startswith(f"heads.{head}.")})
    return out, _task_config(cfg.to_dict(), task, backbone_config, head), f"task '{task}' (picks {picks})"


def _release_backbone_config(state, cfg):
    """The plain ViT config of a release-layout extraction: the MoE config's fixed parts, widths from the
    checkpoint's shapes."""
    from allinone.modeling.vision_transformer import PRESETS
    backbone = dict(cfg.to_dict()["Model"]["backbone"])
    resolved = {**PRESETS.get(backbone.get("preset"), {}), **backbone}
    embed = int(state["backbone.norm.weight"].shape[0])
    configured = resolved["num_heads"]
    head_dim = resolved.get("head_dim") or embed // (max(configured) if isinstance(configured, list) else configured)
    depth = len({key.split(".")[2] for key in state if key.startswith("backbone.blocks.")})
    heads = [int(state[f"backbone.blocks.{b}.attn.proj.weight"].shape[0]) // head_dim for b in range(depth)]
    ratios = [int(state[f"backbone.blocks.{b}.mlp.fc1.weight"].shape[1]) / embed for b in range(depth)]
    return {"name": "VisionTransformer", "preset": None, "img_size": backbone["img_size"],
            "patch_size": backbone["patch_size"], "stride_size": backbone.get("stride_size", backbone["patch_size"]),
            "embed_dim": embed, "head_dim": head_dim, "depth": depth, "num_heads": heads, "mlp_ratio": ratios,
            "qkv_bias": "backbone.blocks.0.attn.qkv.bias" in state, "qk_scale": resolved.get("qk_scale")}


def _task_config(config, task, backbone_config, head=None):
    """The MoE config turned into the extracted task's: plain backbone, only the task's head and test sets."""
    model = config["Model"]
    head = head or model.get("task_to_head", {}).get(task, task)
    model["backbone"] = backbone_config
    model["heads"] = {head: model["heads"][head]} if head in model.get("heads", {}) else {}
    model.pop("task_to_head", None)
    evaluation = config.get("Eval")
    if evaluation:
        for key in ("datasets", "optional_datasets"):
            if key in evaluation:
                evaluation[key] = [entry for entry in evaluation[key] if entry.get("head") == head]
    return config


def run(args):
    from allinone.utils.cli import writable_file
    output = args.output or f"{args.paddle_model_path}.to{args.task_name}"
    writable_file(output)  # before the work
    if args.model_path:
        state, config, what = extract_subnet(args)
    else:
        state, config, what = extract_task(args)
    import paddle
    paddle.save(state, output)
    print(f"wrote {what}: {len(state)} tensors to {output}")
    if config is not None:
        config_path = args.output_config or os.path.splitext(output)[0] + ".yaml"
        with open(config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        print(f"wrote its config to {config_path}: python evaluation_script.py --config {config_path} "
              f"--model_path {output}")
    return output


def main(argv=None):
    """Exit codes as every entry point (docs/cli.md): 0 done, 2 bad input (one `error:` line), 1 a bug."""
    from allinone.utils.cli import USER_ERROR, quiet_third_party, run_cli
    quiet_third_party()
    args = parse_args(argv)
    from oneforall.arch_code import ArchCodeError
    from oneforall.elastic import SubnetError
    from oneforall.task_extract import TaskExtractionError
    try:
        return run_cli(run, args)
    except (ArchCodeError, SubnetError, TaskExtractionError) as err:  # the project's user errors, ours
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
