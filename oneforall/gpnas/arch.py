"""The competition's 37-character architecture code of a ViT-Base subnet, parsed into an `Architecture` and back.

Char 0 is the depth letter; then one group of three digits per layer (num_heads, mlp_ratio, embed_dim) for 12
layers, with '000' for the layers past the depth. Digit meanings are the spec's (oneforall.md sec. 7.1).
"""
from dataclasses import dataclass
from typing import Tuple

MAX_DEPTH = 12
CODE_LENGTH = 1 + 3 * MAX_DEPTH
DEPTH_BY_LETTER = {"j": 10, "k": 11, "l": 12}
HEADS_BY_DIGIT = {"1": 12, "2": 11, "3": 10}
MLP_RATIO_BY_DIGIT = {"1": 4.0, "2": 3.5, "3": 3.0}
EMBED_DIM_BY_DIGIT = {"1": 768}
FIELDS = (("num_heads", HEADS_BY_DIGIT), ("mlp_ratio", MLP_RATIO_BY_DIGIT), ("embed_dim", EMBED_DIM_BY_DIGIT))
ABSENT_LAYER = "000"


class ArchCodeError(ValueError):
    """A malformed architecture code; the message names the position and what was expected there."""


@dataclass(frozen=True)
class Architecture:
    """A subnet of the search space: its depth and, for each of its layers, heads, MLP ratio and embedding width."""

    depth: int
    num_heads: Tuple[int, ...]
    mlp_ratios: Tuple[float, ...]
    embed_dims: Tuple[int, ...]

    def __post_init__(self):
        if self.depth not in DEPTH_BY_LETTER.values():
            raise ValueError(f"depth must be one of {sorted(DEPTH_BY_LETTER.values())}, got {self.depth}")
        for name, values, allowed in (("num_heads", self.num_heads, HEADS_BY_DIGIT),
                                      ("mlp_ratios", self.mlp_ratios, MLP_RATIO_BY_DIGIT),
                                      ("embed_dims", self.embed_dims, EMBED_DIM_BY_DIGIT)):
            if len(values) != self.depth:
                raise ValueError(f"{name} has {len(values)} entries, expected one per layer ({self.depth})")
            for layer, value in enumerate(values):
                if value not in allowed.values():
                    raise ValueError(f"{name}[{layer}] = {value}, expected one of {sorted(allowed.values())}")

    @classmethod
    def from_code(cls, code):
        return parse_arch_code(code)

    def to_code(self):
        return format_arch_code(self)


def _digit_of(table, value):
    return next(digit for digit, v in table.items() if v == value)


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
    """The 37-character code of an `Architecture` (inverse of `parse_arch_code`)."""
    letter = _digit_of(DEPTH_BY_LETTER, arch.depth)
    groups = [_digit_of(HEADS_BY_DIGIT, h) + _digit_of(MLP_RATIO_BY_DIGIT, m) + _digit_of(EMBED_DIM_BY_DIGIT, e)
              for h, m, e in zip(arch.num_heads, arch.mlp_ratios, arch.embed_dims)]
    return letter + "".join(groups) + ABSENT_LAYER * (MAX_DEPTH - arch.depth)
