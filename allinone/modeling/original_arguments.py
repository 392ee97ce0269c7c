"""Constructor arguments of the original's backbone and heads, accepted so its configs build here.

Each one either changes nothing in this code (accepted with a warning that says why), maps onto our own argument
(`use_checkpointing` -> `use_recompute`), or, for a value that would change the model in a way this code does not
build, is an error naming the argument. docs/model.md lists them.
"""
import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

logger = logging.getLogger("allinone.modeling")


@dataclass(frozen=True)
class OriginalArgument:
    why_ignored: str                                 # what the original did with it; shown in the warning
    supported: Callable[[Any], bool] = lambda value: True   # values that change nothing here
    expected: str = ""                               # the supported values, for the error
    maps_to: Optional[str] = None                    # our argument that takes its value instead of a warning


BACKBONE_ARGUMENTS = {
    "sie_xishu": OriginalArgument("it scales the camera (SIE) embedding, which exists only with camera > 0"),
    "camera": OriginalArgument("0 means no camera (SIE) embedding, which the original never used",
                               supported=lambda value: value == 0,
                               expected="0 (camera embeddings are not implemented; the original's were broken)"),
    "share_last": OriginalArgument("True (its default) builds every block and the final norm, as this ViT does",
                                   supported=lambda value: value is True,
                                   expected="true (false built depth - 1 blocks without the final norm)"),
    "hybrid_backbone": OriginalArgument("None (its default) means the patch convolution, as here",
                                        supported=lambda value: value is None,
                                        expected="null (CNN-feature patch embeddings are not implemented)"),
    "use_checkpointing": OriginalArgument("", maps_to="use_recompute"),
}

HEAD_ARGUMENTS = {
    "norm_type": OriginalArgument("the original's neck is always BatchNorm",
                                  supported=lambda value: value == "BN", expected="'BN'"),
    "pool_type": OriginalArgument("the original always average-pooled a 1x1 map; the head pools the cls token"),
    "embedding_dim": OriginalArgument("0 (its default) means no 1x1 convolution before the neck, as here",
                                      supported=lambda value: value == 0,
                                      expected="0 (an embedding convolution before the neck is not implemented)"),
}


def absorb_original_arguments(owner, kwargs, table):
    """Remove the arguments of `table` from `kwargs` (in place): warn for ignored ones, raise ValueError naming the
    argument for an unsupported value; returns {our argument: value} for mapped ones."""
    mapped = {}
    for name in [name for name in kwargs if name in table]:
        value, argument = kwargs.pop(name), table[name]
        if not argument.supported(value):
            raise ValueError(f"{owner}: the original's argument {name}={value!r} is not supported here; expected "
                             f"{argument.expected}")
        if argument.maps_to:
            mapped[argument.maps_to] = value
            logger.info("%s: the original's %s=%r is our %s", owner, name, value, argument.maps_to)
        else:
            logger.warning("%s: ignoring the original's argument %s=%r (%s)", owner, name, value,
                           argument.why_ignored)
    return mapped
