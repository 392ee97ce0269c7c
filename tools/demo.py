"""`make demo`: train a small AllInOne model on a miniature data tree and show that it learned.

    python tools/demo.py [--workdir demo_output] [--max_iter N]

1. writes the demo's miniature data tree (tools/make_mini_datasets.py --scale 6 --hard: 30 test identities per ReID
   set, 240 pairs per face set, identities that colour alone does not match) to WORKDIR/datasets;
2. evaluates the untrained model (evaluation_script.py, the 12-test-set table) on it;
3. trains configs/allinone/tiny_demo.yaml (tools/train.py: heterogeneous 4-task batches, a few CPU minutes);
4. evaluates the trained checkpoint the same way, prints both side by side and checks what the demo shows on any
   machine: every headline metric (face accuracy, ReID Rank-1 and mAP, SOP Recall@1) beats the untrained model's.
   Exit code 0 when it does, 1 when not (the table says which).
Logs and metrics (JSON) stay in WORKDIR.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]  # the checkout's allinone, and mini_datasets next to this file

from allinone.utils.cli import quiet_third_party  # noqa: E402

quiet_third_party()

from allinone.utils.env import configure_threads  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "allinone", "tiny_demo.yaml")
DEMO_TREE = {"scale": 6, "hard": True}  # make_mini_datasets options: a tree that colour alone does not solve
HEADLINE_METRICS = ("Accuracy", "Rank-1", "mAP", "Recall@1")  # the published table's columns


def run_logged(cmd, log_path, env, echo=None):
    """Run `cmd`, output to `log_path`; lines containing `echo` are also printed. Raise with the log tail on failure."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        for line in process.stdout:
            log.write(line)
            if echo and echo in line:
                print("   ", progress_summary(line), flush=True)
        process.wait()
    if process.returncode:
        with open(log_path, encoding="utf-8") as log:
            tail = "".join(log.readlines()[-20:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed (exit {process.returncode}); end of {log_path}:\n{tail}")


def progress_summary(line):
    """A training log line shortened to what a reader follows (iteration, total loss, lr, speed, ETA); the per-task
    losses stay in train.log."""
    text = line.rstrip()
    if "iter " not in text:
        return text
    text = text[text.index("iter "):]
    fields = dict(re.findall(r"(total_loss|lr|images/s|eta): (\S+)", text))
    iteration = text.split()[1]
    return "iter " + iteration + "".join(f"  {key}: {fields[key]}" for key in ("total_loss", "lr", "images/s", "eta")
                                         if key in fields)


def save_untrained_model(path, seed=0):
    """The tiny_demo model as initialised (no training), saved as a state dict."""
    import paddle

    from allinone.config import load_config
    from allinone.modeling import build_model
    from allinone.utils.env import seed_everything

    seed_everything(seed)
    paddle.save({"model": build_model(load_config(CONFIG)).state_dict()}, path)


def evaluate(checkpoint, output_json, log_path, env):
    run_logged([sys.executable, os.path.join(ROOT, "evaluation_script.py"), "--config", CONFIG, "--device", "cpu",
                "--model_path", checkpoint, "--output", output_json], log_path, env)
    with open(output_json, encoding="utf-8") as f:
        return json.load(f)


def headline_keys(metrics):
    """The 'head.dataset.metric' keys of the published table's columns, in the evaluation's order."""
    return [key for key in metrics if key.rsplit(".", 1)[-1] in HEADLINE_METRICS]


def not_improved(before, after):
    """Headline metrics where the trained model is not strictly better than the untrained one (empty: it learned)."""
    keys = headline_keys(after)
    if not keys or set(keys) - set(before):
        raise ValueError(f"the two evaluations do not report the same headline metrics: {sorted(before)} vs "
                         f"{sorted(after)}")
    return [key for key in keys if not after[key] > before[key]]


def comparison_table(before, after):
    """Rows 'key  untrained  trained  change' for the headline metrics of every test set, and their means."""
    keys = headline_keys(after)
    rows = [f"{'metric':<34} {'untrained':>9} {'trained':>8} {'change':>7}"]
    rows += [f"{key:<34} {before[key]:>9.2f} {after[key]:>8.2f} {after[key] - before[key]:>+7.2f}" for key in keys]
    mean_before = sum(before[key] for key in keys) / len(keys)
    mean_after = sum(after[key] for key in keys) / len(keys)
    rows.append(f"{'mean':<34} {mean_before:>9.2f} {mean_after:>8.2f} {mean_after - mean_before:>+7.2f}")
    return "\n".join(rows), mean_before, mean_after


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=os.path.join(ROOT, "demo_output"))
    parser.add_argument("--max_iter", type=int, default=None, help="training iterations (default: the config's)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a training config override (repeatable), e.g. -o Optimizer.lr.base_lr=0.05")
    args = parser.parse_args(argv)
    configure_threads()
    workdir = os.path.abspath(args.workdir)
    data_root, train_dir = os.path.join(workdir, "datasets"), os.path.join(workdir, "train")
    env = dict(os.environ, FASTREID_DATASETS=data_root, PYTHONPATH=ROOT)
    start = time.time()

    print(f"1/4 miniature data tree -> {data_root}", flush=True)
    from mini_datasets import make_mini_datasets

    shutil.rmtree(data_root, ignore_errors=True)
    make_mini_datasets(data_root, **DEMO_TREE)

    print("2/4 evaluating the untrained model", flush=True)
    untrained = os.path.join(workdir, "untrained.pdparams")
    save_untrained_model(untrained)
    before = evaluate(untrained, os.path.join(workdir, "metrics_untrained.json"),
                      os.path.join(workdir, "eval_untrained.log"), env)

    print(f"3/4 training {os.path.relpath(CONFIG, ROOT)} -> {train_dir}", flush=True)
    shutil.rmtree(train_dir, ignore_errors=True)
    overrides = ["-o", f"Global.output_dir={train_dir}"]
    if args.max_iter:
        overrides += ["-o", f"Train.max_iter={args.max_iter}"]
    for override in args.override:
        overrides += ["-o", override]
    run_logged([sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", CONFIG, *overrides],
               os.path.join(workdir, "train.log"), env, echo="iter ")

    print("4/4 evaluating the trained model", flush=True)
    after = evaluate(os.path.join(train_dir, "model_final.pdparams"), os.path.join(workdir, "metrics_trained.json"),
                     os.path.join(workdir, "eval_trained.log"), env)

    table, mean_before, mean_after = comparison_table(before, after)
    print(f"\nMetrics on the miniature test sets (%), untrained vs trained ({time.time() - start:.0f} s in all):")
    print(table)
    worse, total = not_improved(before, after), len(headline_keys(after))
    if worse:
        print(f"\nNOT LEARNED: {len(worse)} of {total} headline metrics did not improve on the untrained model: "
              f"{worse}. Outputs in {workdir}")
        return 1
    print(f"\nLearned: all {total} headline metrics improved on the untrained model (mean {mean_before:.2f} -> "
          f"{mean_after:.2f}; chance level: 50 for faces, a few % for retrieval). Outputs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
