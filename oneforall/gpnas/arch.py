"""The competition's 37-character architecture code and `Architecture`, for the predictors.

Both are defined once, in `oneforall.search_space` (the sub-network object shared with the supernets) and
`oneforall.arch_code` (the code as a view of it); this module re-exports them under their GP-NAS names.
"""
from ..arch_code import (ABSENT_LAYER, CODE_LENGTH, DEPTH_BY_LETTER, EMBED_DIM_BY_DIGIT, FIELDS, HEADS_BY_DIGIT,
                         MAX_DEPTH, MLP_RATIO_BY_DIGIT, ArchCodeError, format_arch_code, parse_arch_code)
from ..search_space import Architecture

__all__ = ["ABSENT_LAYER", "Architecture", "ArchCodeError", "CODE_LENGTH", "DEPTH_BY_LETTER", "EMBED_DIM_BY_DIGIT",
           "FIELDS", "HEADS_BY_DIGIT", "MAX_DEPTH", "MLP_RATIO_BY_DIGIT", "format_arch_code", "parse_arch_code"]
