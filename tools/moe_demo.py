"""Train the tiny task-MoE model on a miniature tree and show that it learned and which layers went task-specific.

    python tools/moe_demo.py [--workdir moe_demo_output] [--max_iter 600]

1. writes the miniature tree with the OneForAll recipe's training sets (tools/make_mini_datasets.py --oneforall
   --scale 6 --hard) to WORKDIR/datasets;
2. builds configs/oneforall/tiny_taskmoe_train.yaml's trainer (5 tasks: faces, persons, vehicles, ImageNet with
   Mixup/CutMix, CIFAR-10; allinone's engine with TaskMoEStep) and evaluates the untrained model (eval gates);
3. trains it (a few CPU minutes; checkpoints and VisualDL logs with the gate heat maps in WORKDIR/train);
4. evaluates again, prints both tables side by side and the gates per task and block (P(specific expert); the
   heat map is also written to WORKDIR/gates.png).
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

from allinone.utils.env import configure_threads  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "oneforall", "tiny_taskmoe_train.yaml")
HEADLINE = ("Accuracy", "Rank-1", "mAP", "Acc@1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="moe_demo_output")
    parser.add_argument("--max_iter", type=int, default=600)
    args = parser.parse_args(argv)
    configure_threads(1)
    import paddle
    from PIL import Image

    import allinone.data  # noqa: F401
    import allinone.evaluation  # noqa: F401
    import oneforall.moe_training  # noqa: F401
    from allinone.config import load_config
    from allinone.engine.build import build_trainer
    from allinone.evaluation.suite import EvaluationSuite
    from allinone.utils.env import seed_everything
    from allinone.utils.logger import setup_logger
    from mini_datasets import make_mini_datasets, make_oneforall_datasets
    from oneforall.moe_training import gate_heatmap, gate_table

    tree = os.path.join(args.workdir, "datasets")
    start = time.time()
    print(f"1. miniature tree -> {tree}", flush=True)
    make_mini_datasets(tree, scale=6, hard=True)
    make_oneforall_datasets(tree, scale=6, hard=True)
    os.environ["FASTREID_DATASETS"] = tree
    output_dir = os.path.join(args.workdir, "train")
    cfg = load_config(CONFIG, [f"Global.output_dir={output_dir}", f"Train.max_iter={args.max_iter}"])
    setup_logger(output_dir)
    seed_everything(cfg.Global.seed, 0)
    trainer = build_trainer(cfg)
    suite = EvaluationSuite(cfg, print_table=False)
    print("2. evaluating the untrained model", flush=True)
    trainer.module.eval()
    before = suite(trainer.module)
    print(f"3. training {args.max_iter} iterations (log: {output_dir}/log_rank0.txt)", flush=True)
    trainer.train()
    trainer.module.eval()
    print("4. evaluating the trained model", flush=True)
    after = suite(trainer.module)
    print(f"\n{'task.dataset.metric':<32} {'untrained':>9} {'trained':>9}")
    headline = [key for key in before if key.split(".")[-1] in HEADLINE]
    for key in headline:
        print(f"{key:<32} {before[key]:>9.2f} {after[key]:>9.2f}")
    mean_before = sum(before[k] for k in headline) / len(headline)
    mean_after = sum(after[k] for k in headline) / len(headline)
    print(f"{'mean of these':<32} {mean_before:>9.2f} {mean_after:>9.2f}")
    backbone = trainer.module.backbone
    table = gate_table(backbone)
    picks = backbone.gate_picks()
    print("\ngates: P(specific expert) per task (rows) and block (columns); eval picks in brackets")
    print(f"{'task':<8}" + "".join(f"{'block ' + str(b):>18}" for b in range(table.shape[1])))
    for t, task in enumerate(backbone.tasks):
        print(f"{task:<8}" + "".join(f"{table[t, b]:>8.3f} ({picks[b][task]:>8})" for b in range(table.shape[1])))
    Image.fromarray(gate_heatmap(table, backbone.tasks)).save(os.path.join(args.workdir, "gates.png"))
    with open(os.path.join(args.workdir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"untrained": before, "trained": after, "gates": table.tolist(), "tasks": list(backbone.tasks)}, f,
                  indent=1)
    print(f"\nheat map {args.workdir}/gates.png, metrics {args.workdir}/metrics.json, VisualDL: visualdl --logdir "
          f"{output_dir}/vdl ({time.time() - start:.0f} s)")
    del paddle
    return 0


if __name__ == "__main__":
    sys.exit(main())
