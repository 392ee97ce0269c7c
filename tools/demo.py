"""`make demo`: the main job on an embedded default (grows with the project; see README)."""
import sys

from allinone.config import load_config


def main():
    cfg = load_config("configs/allinone/vitlarge_eval.yaml")
    print("Evaluation table of configs/allinone/vitlarge_eval.yaml:")
    for entry in cfg.Eval.datasets:
        print(f"  {entry.name:<15} head {entry.head}  {entry.evaluator:<26} published {dict(entry.published)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
