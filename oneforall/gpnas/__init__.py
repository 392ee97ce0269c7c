"""GP-NAS accuracy predictors for UFO subnets (the CCF BDCI 2022 / CVPR 2022 NAS track 2 task), numpy-only.

    from oneforall.gpnas import read_ranking_json, cross_validated_kendall_tau, fit_predict_ranks
    train = read_ranking_json("CCF_UFO_train.json", ranked=True)
    print(cross_validated_kendall_tau(train, predictor="ours"))    # {task: tau}
Command line: `python -m oneforall.gpnas {cv,fit-predict,score} ...` (see docs/gpnas.md).
"""
from .arch import Architecture, ArchCodeError, format_arch_code, parse_arch_code
from .baseline import PaddleSlimGPNAS, paddleslim_gpnas_class
from .data import TASKS, RankingSet, SchemaError, read_ranking_json, scores_to_ranks, write_ranking_json
from .encodings import ENCODINGS, check_absent_layers, encode
from .evaluation import (cross_validated_kendall_tau, fit_predict_ranks, fit_predictor, kendall_tau,
                         score_submission)
from .predictors import PREDICTORS, build_predictor
from .selection import CrossValidatedPredictor

__all__ = ["Architecture", "ArchCodeError", "format_arch_code", "parse_arch_code", "PaddleSlimGPNAS",
           "paddleslim_gpnas_class", "TASKS", "RankingSet", "SchemaError", "read_ranking_json", "scores_to_ranks",
           "write_ranking_json", "ENCODINGS", "check_absent_layers", "encode", "cross_validated_kendall_tau",
           "fit_predict_ranks", "fit_predictor", "kendall_tau", "score_submission", "PREDICTORS",
           "build_predictor", "CrossValidatedPredictor"]
