"""The 37-character architecture code of the CCF BDCI 2022 competition: a view of an `Architecture` of the
competition search space (`oneforall.search_space.COMPETITION_SPACE`).

Char 0 is the depth letter; then one group of three digits per layer (num_heads, mlp_ratio, embed_dim) for 12
layers, with '000' for the layers past the depth. Digit '1' is the largest choice ('1' = 12 heads, 4.0 ratio,
768 width), '3' the smallest (docs/oneforall.md, "Search space").
"""
from .search_space import COMPETITION_SPACE, Architecture

MAX_DEPTH = COMPETITION_SPACE.max_depth
CODE_LENGTH = 1 + 3 * MAX_DEPTH
DEPTH_BY_LETTER = {"j": 10, "k": 11, "l": 12}
HEADS_BY_DIGIT = {"1": 12, "2": 11, "3": 10}
MLP_RATIO_BY_DIGIT = {"1": 4.0, "2": 3.5, "3": 3.0}
EMBED_DIM_BY_DIGIT = {"1": 768}
FIELDS = (("num_heads", HEADS_BY_DIGIT), ("mlp_ratio", MLP_RATIO_BY_DIGIT), ("embed_dim", EMBED_DIM_BY_DIGIT))
ABSENT_LAYER = "000"


class ArchCodeError(ValueError):
    """A malformed architecture code; the message names the position and what was expected there."""


def parse_arch_code(code):
    """Parse a 37-character code; every malformed character raises `ArchCodeError` naming its position."""
    if not isinstance(code, str) or len(code) != CODE_LENGTH:
        raise ArchCodeError(f"architecture code {code!r}: expected a string of {CODE_LENGTH} characters, "
                            f"got length {len(code) if isinstance(code, str) else type(code).__name__}")
    if code[0] not in DEPTH_BY_LETTER:
        raise ArchCodeError(f"architecture code {code!r}: position 0 is {code[0]!r}, expected a depth letter "
                            f"{'/'.join(DEPTH_BY_LETTER)} (= {'/'.join(map(str, DEPTH_BY_LETTER.values()))})")
    depth = DEPTH_BY_LETTER[code[0]]
    values = {name: [] for name, _ in FIELDS}
    for layer in range(MAX_DEPTH):
        start = 1 + 3 * layer
        group = code[start:start + 3]
        if layer >= depth:
            if group != ABSENT_LAYER:
                offset = next(i for i, ch in enumerate(group) if ch != "0")
                raise ArchCodeError(f"architecture code {code!r}: position {start + offset} is {group[offset]!r}, "
                                    f"expected '0' (layer {layer} is past the depth {depth})")
            continue
        for offset, (name, table) in enumerate(FIELDS):
            ch = group[offset]
            if ch not in table:
                raise ArchCodeError(f"architecture code {code!r}: position {start + offset} is {ch!r}, expected "
                                    f"a {name} digit {'/'.join(table)} (layer {layer} of depth {depth})")
            values[name].append(table[ch])
    return Architecture(depth, tuple(values["num_heads"]), tuple(values["mlp_ratio"]), tuple(values["embed_dim"]))


def format_arch_code(arch):
    """The 37-character code of an `Architecture` (inverse of `parse_arch_code`); MoE expert ratios have no place
    in the code and are left out. A value outside the competition space raises `ArchCodeError` naming it."""
    letter = _symbol(DEPTH_BY_LETTER, arch.depth, "depth")
    groups = [_symbol(HEADS_BY_DIGIT, h, f"num_heads[{layer}]") + _symbol(MLP_RATIO_BY_DIGIT, m, f"mlp_ratios[{layer}]")
              + _symbol(EMBED_DIM_BY_DIGIT, e, f"embed_dims[{layer}]")
              for layer, (h, m, e) in enumerate(zip(arch.num_heads, arch.mlp_ratios, arch.embed_dims))]
    return letter + "".join(groups) + ABSENT_LAYER * (MAX_DEPTH - arch.depth)


def _symbol(table, value, where):
    for symbol, v in table.items():
        if v == value:
            return symbol
    raise ArchCodeError(f"{where} = {value} has no symbol in the competition code; expected one of "
                        f"{sorted(table.values())}")


__all__ = ["ArchCodeError", "CODE_LENGTH", "MAX_DEPTH", "parse_arch_code", "format_arch_code"]
