"""The traffic recipe's update rule (`PerTaskStep`) and the gradient / weight exchanges it needs. Kept apart from
train.py so the command can set the CPU threads before anything imports paddle."""
import paddle
import paddle.distributed as dist

from allinone.engine.steps import SimpleStep, count_images
from allinone.registry import STEPS


@STEPS.register()
class PerTaskStep(SimpleStep):
    """One batch of every task; per task a forward and a backward (gradients accumulate, so memory holds one task's
    graph at a time), then the gradients are averaged over ranks once and the optimizer steps once."""

    def run_step(self, trainer):
        batch = trainer.next_batch()
        averaged = {}
        for task, task_batch in batch.items():
            losses = trainer.forward_losses({task: task_batch})
            averaged.update(trainer.check_losses(losses))
            trainer.backward(losses)
        average_gradients(trainer.module, trainer.world_size)
        trainer.update()
        trainer.record_losses(averaged, count_images(batch))


def average_gradients(model, world_size):
    """All-reduce every gradient and divide by the number of ranks (every rank has the same set of gradients: the
    losses keep every used parameter in the graph, see DINOLoss)."""
    if world_size <= 1:
        return
    with paddle.no_grad():
        for param in model.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad)
                param.grad.scale_(1.0 / world_size)


def broadcast_parameters(model):
    """Every rank starts from rank 0's weights (ranks seed their generators differently)."""
    if dist.get_world_size() > 1:
        with paddle.no_grad():
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)
