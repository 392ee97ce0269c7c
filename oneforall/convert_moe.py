"""Convert the original's per-rank task-MoE training checkpoints into one checkpoint of ours.

    python -m oneforall.convert_moe --tasks_dir OUTPUT_DIR --tasks face,person,veri \
        [--filename model_final.pdmodel] --output moe.pdparams

The original's ranks each saved their own state (`OUTPUT_DIR/task<k>/<filename>`, k = the task's position in the
training task order), holding every task's embeddings, the shared weights and only task k's FFN expert and gates.
The output holds all tasks' experts and gates keyed by task name (oneforall.moe_checkpoint), `backbone.` / `heads.`
prefixes kept.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks_dir", required=True, help="the original run's output folder (task<k>/ inside)")
    parser.add_argument("--tasks", required=True, help="comma-separated training task order (task_names)")
    parser.add_argument("--filename", default="model_final.pdmodel", help="checkpoint file name in each task<k>/")
    parser.add_argument("--output", required=True, help="file to write (paddle.save of the state dict)")
    return parser.parse_args(argv)


def run(args):
    import paddle

    from oneforall.moe_checkpoint import convert_original_ranks, read_original_rank_dir
    tasks = [task for task in args.tasks.split(",") if task]
    state = convert_original_ranks(read_original_rank_dir(args.tasks_dir, tasks, args.filename), tasks)
    paddle.save(state, args.output)
    print(f"wrote {len(state)} tensors of {len(tasks)} tasks to {args.output}")


def main(argv=None):
    """Exit codes as every entry point (docs/cli.md): 0 done, 2 bad input (one `error:` line), 1 a bug."""
    from allinone.utils.cli import quiet_third_party, run_cli
    quiet_third_party()
    return run_cli(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
