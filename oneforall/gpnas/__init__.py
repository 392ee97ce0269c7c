"""GP-NAS accuracy predictors for UFO subnets (the CCF BDCI 2022 / CVPR 2022 NAS track 2 task), numpy-only.

    from oneforall.gpnas import read_ranking_json, cross_validated_kendall_tau, fit_predict_ranks
    train = read_ranking_json("CCF_UFO_train.json")
    print(cross_validated_kendall_tau(train, predictor="ours"))    # {task: tau}
Command line: `python -m oneforall.gpnas {cv,fit-predict} ...` (see docs/gpnas.md).
"""
from .arch import Architecture, ArchCodeError, format_arch_code, parse_arch_code
from .baseline import PaddleSlimGPNAS, paddleslim_gpnas_class
from .data import TASKS, RankingSet, SchemaError, read_ranking_json, scores_to_ranks, write_ranking_json
from .encodings import ENCODINGS, encode
from .evaluation import cross_validated_kendall_tau, fit_predict_ranks, kendall_tau
from .predictors import PREDICTORS, build_predictor

__all__ = ["Architecture", "ArchCodeError", "format_arch_code", "parse_arch_code", "PaddleSlimGPNAS",
           "paddleslim_gpnas_class", "TASKS", "RankingSet", "SchemaError", "read_ranking_json", "scores_to_ranks",
           "write_ranking_json", "ENCODINGS", "encode", "cross_validated_kendall_tau", "fit_predict_ranks",
           "kendall_tau", "PREDICTORS", "build_predictor"]
