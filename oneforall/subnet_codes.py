"""The competition's 37-character code for a sub-network of any supernet with the competition's depth, head and MLP
ratio choices, whatever its (fixed) embedding width: the code's embedding digit '1' (768 in the competition)
stands for the supernet's width. The tiny chip supernets of the demo and the tests are named by the same codes as
the ViT-B one, so `oneforall.gpnas` reads their measurements unchanged."""
from .arch_code import parse_arch_code
from .search_space import COMPETITION_SPACE, Architecture


def subnet_code(arch):
    """The code of `arch` (its embedding width, the supernet's, written as the competition's digit '1')."""
    width = COMPETITION_SPACE.embed_dim[0]
    return Architecture(arch.depth, arch.num_heads, arch.mlp_ratios, (width,) * arch.depth, space=None).to_code()


def subnet_from_code(code, supernet):
    """The sub-network of `supernet` (an ElasticVisionTransformer) that `code` names, checked against the
    supernet's search space (a ValueError names the field otherwise)."""
    arch = parse_arch_code(code)
    return Architecture(arch.depth, arch.num_heads, arch.mlp_ratios, (supernet.embed_dim,) * arch.depth,
                        space=supernet.search_space)


__all__ = ["subnet_code", "subnet_from_code"]
