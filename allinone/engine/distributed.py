"""Data-parallel set-up over `paddle.distributed.launch` (NCCL on GPUs, gloo on CPU processes)."""
import paddle
import paddle.distributed as dist

from ..utils.env import get_world_size


def init_distributed():
    """Join the process group when launched with more than one process; returns (rank, world_size)."""
    if get_world_size() > 1 and not dist.is_initialized():
        dist.init_parallel_env()
    return dist.get_rank(), dist.get_world_size()


def data_parallel(model, find_unused_parameters=False):
    """Wrap in paddle.DataParallel (gradients averaged over ranks in backward) when there is more than one rank.
    `find_unused_parameters` is needed when a step leaves some parameters without gradient (homogeneous batches)."""
    if dist.get_world_size() == 1:
        return model
    return paddle.DataParallel(model, find_unused_parameters=find_unused_parameters)

