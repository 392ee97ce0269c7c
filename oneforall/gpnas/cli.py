"""`python -m oneforall.gpnas cv|fit-predict`: cross-validated Kendall tau, and a competition submission."""
import argparse
import sys

from allinone.utils.env import configure_threads

from .data import TASKS, RankingSet, read_ranking_json, write_ranking_json
from .encodings import ENCODINGS
from .evaluation import cross_validated_kendall_tau, fit_predict_ranks
from .predictors import PREDICTORS


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m oneforall.gpnas", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cv = commands.add_parser("cv", help="k-fold cross-validated Kendall tau per task on a training JSON")
    fit_predict = commands.add_parser("fit-predict", help="fit on the training JSON, write ranks for the test JSON")
    for command in (cv, fit_predict):
        command.add_argument("--train", required=True, help="training JSON (competition schema, ranked)")
        command.add_argument("--predictor", default="ours", choices=sorted(PREDICTORS))
        command.add_argument("--encoding", default=None,
                             help=f"override the predictor's encoding: one of {sorted(ENCODINGS)}, or several "
                                  "joined by '+'")
        command.add_argument("--threads", type=int, default=None, help="CPU threads (default: OMP_NUM_THREADS "
                                                                        "or all cores)")
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--seed", type=int, default=0, help="seed of the fold shuffle")
    fit_predict.add_argument("--test", required=True, help="test JSON (competition schema, ranks ignored)")
    fit_predict.add_argument("--out", required=True, help="submission JSON to write (the test JSON with ranks)")
    return parser


def run_cv(args):
    taus = cross_validated_kendall_tau(read_ranking_json(args.train), args.predictor, args.encoding, args.folds,
                                       args.seed)
    print(f"Kendall tau, {args.folds}-fold cv, predictor {args.predictor}"
          + (f", encoding {args.encoding}" if args.encoding else ""))
    for task in TASKS:
        print(f"  {task:<12} {taus[task]:.4f}")
    print(f"  {'mean':<12} {sum(taus.values()) / len(taus):.4f}")


def run_fit_predict(args):
    train, test = read_ranking_json(args.train), read_ranking_json(args.test)
    ranks = fit_predict_ranks(train, test.codes, args.predictor, args.encoding)
    write_ranking_json(args.out, RankingSet(test.ids, test.codes, ranks))
    print(f"wrote {args.out}: ranks 0..{len(test) - 1} for {len(test)} architectures x {len(TASKS)} tasks")


def main(argv=None):
    args = build_parser().parse_args(argv)
    from threadpoolctl import threadpool_limits

    # numpy is already loaded by the package import, so the BLAS pool is resized at run time as well
    with threadpool_limits(limits=configure_threads(args.threads)):
        try:
            (run_cv if args.command == "cv" else run_fit_predict)(args)
        except (ValueError, OSError) as err:  # SchemaError and ArchCodeError are ValueErrors
            print(f"error: {err}", file=sys.stderr)
            return 2
    return 0
