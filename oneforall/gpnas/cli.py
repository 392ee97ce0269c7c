"""`python -m oneforall.gpnas cv|fit-predict|score`: cross-validated Kendall tau, a competition submission, and
the Kendall tau of a submission against the true ranks."""
import argparse
import json
import os
import sys

from allinone.utils.cli import USER_ERROR, at_least, quiet_third_party, writable_file
from allinone.utils.env import configure_threads

from .data import TASKS, RankingSet, read_ranking_json, scores_to_ranks, write_ranking_json
from .encodings import ENCODINGS
from .evaluation import cross_validated_kendall_tau, fit_predictor, score_submission
from .predictors import PREDICTORS
from .search import add_search_command, run_search


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m oneforall.gpnas", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cv = commands.add_parser("cv", help="k-fold cross-validated Kendall tau per task on a training JSON")
    fit_predict = commands.add_parser("fit-predict", help="fit on the training JSON, write ranks for the test JSON")
    score = commands.add_parser("score", help="Kendall tau per task of a submission against the true ranks")
    for command in (cv, fit_predict):
        command.add_argument("--train", required=True, help="training JSON (competition schema, ranked)")
        command.add_argument("--predictor", default="ours", choices=sorted(PREDICTORS))
        command.add_argument("--encoding", default=None,
                             help=f"override a per-task predictor's encoding: one of {sorted(ENCODINGS)}, or "
                                  "several joined by '+' ('ours' chooses its own)")
        command.add_argument("--seed", type=int, default=0, help="seed of the fold shuffles")
        command.add_argument("--threads", type=at_least(1), default=None,
                             help="CPU threads (default: OMP_NUM_THREADS or all cores)")
    cv.add_argument("--folds", type=at_least(2), default=5)
    fit_predict.add_argument("--test", required=True, help="test JSON (competition schema, ranks ignored)")
    fit_predict.add_argument("--out", required=True, help="submission JSON to write (the test JSON with ranks); "
                                                          "'ours' also writes OUT's stem + '.report.json'")
    score.add_argument("--pred", required=True, help="submission JSON")
    score.add_argument("--truth", required=True, help="the test JSON with the true ranks")
    score.set_defaults(threads=None)
    add_search_command(commands)  # search: architectures under a latency budget from measured sub-networks
    return parser


def print_taus(title, taus):
    print(title)
    for task in TASKS:
        print(f"  {task:<12} {taus[task]:.4f}")
    print(f"  {'mean':<12} {sum(taus.values()) / len(taus):.4f}")


def run_cv(args):
    taus = cross_validated_kendall_tau(read_ranking_json(args.train, ranked=True), args.predictor, args.encoding,
                                       args.folds, args.seed)
    print_taus(f"Kendall tau, {args.folds}-fold cv, predictor {args.predictor}"
               + (f", encoding {args.encoding}" if args.encoding else ""), taus)


def report_path(out):
    return os.path.splitext(out)[0] + ".report.json"


def run_fit_predict(args):
    writable_file(args.out, "--out")  # before the fit, not after it
    train, test = read_ranking_json(args.train, ranked=True), read_ranking_json(args.test)
    model = fit_predictor(train, args.predictor, args.encoding, args.seed)
    if hasattr(model, "report"):
        report = dict(model.report(), train=args.train, test=args.test, submission=args.out)
        print("chosen per task by cross-validation on the training set:")
        for choice in model.choices_:
            print("  " + choice.summary())
    ranks = scores_to_ranks(model.predict(test.codes))
    write_ranking_json(args.out, RankingSet(test.ids, test.codes, ranks))
    print(f"wrote {args.out}: ranks 0..{len(test) - 1} for {len(test)} architectures x {len(TASKS)} tasks")
    if hasattr(model, "report"):
        with open(report_path(args.out), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {report_path(args.out)}: the model chosen for each task and its cross-validated tau")


def run_score(args):
    taus = score_submission(read_ranking_json(args.pred), read_ranking_json(args.truth, ranked=True))
    print_taus(f"Kendall tau of {args.pred} against {args.truth}", taus)


COMMANDS = {"cv": run_cv, "fit-predict": run_fit_predict, "score": run_score, "search": run_search}


def main(argv=None):
    quiet_third_party()
    args = build_parser().parse_args(argv)
    from threadpoolctl import threadpool_limits

    # numpy is already loaded by the package import, so the BLAS pool is resized at run time as well
    with threadpool_limits(limits=configure_threads(args.threads)):
        try:
            COMMANDS[args.command](args)
        except (ValueError, OSError) as err:  # SchemaError and ArchCodeError are ValueErrors
            print(f"error: {err}", file=sys.stderr)
            return USER_ERROR
    return 0
