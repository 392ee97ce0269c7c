"""What one training iteration does, chosen by `Train.step: {name: ..., ...}` (registry STEPS).

A step calls the Trainer's building blocks (see trainer.py); it may hold state (a sub-network sampler, say), which
`state_dict()` / `set_state_dict()` put into checkpoints. New update rules subclass these.

A step also decides how the model is built (`build_model`) and what a checkpoint holds of the model and optimizer
(`model_state` / `optimizer_state`, read back by `load_model_state` / `load_optimizer_state`): SimpleStep's are the
plain ones; oneforall's TaskMoEStep builds each process with only its own tasks' experts and has each rank write
and read only its parts of a checkpoint folder (`checkpoint_parts` / `parts_to_read`). A step also says how the
model it trains is evaluated (`wrap_evaluation`).
"""
import contextlib

import paddle

from ..registry import STEPS


@STEPS.register()
class SimpleStep:
    """The published recipe: one batch of every task, one fused forward, the summed losses, one backward, one update."""

    def run_step(self, trainer):
        batch = trainer.next_batch()
        losses = trainer.forward_losses(batch)
        averaged = trainer.check_losses(losses)
        trainer.backward(losses)
        trainer.update()
        trainer.record_losses(averaged, count_images(batch))

    def state_dict(self):
        return {}

    def set_state_dict(self, state):
        pass

    @classmethod
    def wrap_evaluation(cls, evaluate):
        """How a model this step trains is evaluated, from `evaluate(model) -> {key: value}`: as it is here; a
        supernet's step evaluates named sub-networks (oneforall.chip_training). Used by the training command."""
        return evaluate

    def build_model(self, cfg):
        """The model of `cfg.Model` (called by the engine before the optimizer sees its parameters)."""
        from ..modeling import build_model

        return build_model(cfg)

    def model_state(self, trainer):
        """The model part of a checkpoint (a collective call: every rank calls it; rank 0's result is saved)."""
        return trainer.module.state_dict()

    def optimizer_state(self, trainer):
        """The optimizer part of a checkpoint (collective, as `model_state`)."""
        return trainer.optimizer.state_dict()

    def checkpoint_parts(self, trainer, state):
        """{part name: dict} this rank writes of the checkpoint `state` (Checkpointer.save_parts), or None: rank 0
        writes `state` as one file (this step's)."""
        return None

    def parts_to_read(self, trainer, parts):
        """The parts of a sharded checkpoint (names `parts`) this rank reads at a resume: all."""
        return list(parts)

    def load_model_state(self, trainer, state):
        trainer.module.set_state_dict(state)

    def load_optimizer_state(self, trainer, state):
        trainer.optimizer.set_state_dict(state)


@STEPS.register()
class SandwichStep(SimpleStep):
    """Several forward/backward passes accumulated before one update: the batch is cut into `num_passes` sub-batches
    (every task's rows split in order), each pass's losses weighted 1 / num_passes, so the update equals SimpleStep's
    on the whole batch for per-sample-mean losses. `before_pass(trainer, index)` is the place for a subclass to
    change the network between passes (the sandwich rule's largest / smallest / random sub-networks). With
    DataParallel the gradients are averaged over ranks once, in the last pass."""

    def __init__(self, num_passes=2):
        if int(num_passes) != num_passes or num_passes < 1:
            raise ValueError(f"SandwichStep num_passes must be a positive integer, got {num_passes!r}")
        self.num_passes = int(num_passes)
        self.passes_run = 0

    def before_pass(self, trainer, index):
        """Called before pass `index` (0-based) of an update."""

    def sub_batches(self, batch):
        return split_batch(batch, self.num_passes)

    def run_step(self, trainer):
        batch = trainer.next_batch()
        parts = self.sub_batches(batch)
        totals = accumulate_passes(trainer, parts, self.before_pass)
        self.passes_run += len(parts)
        trainer.update()
        trainer.record_losses(totals, count_images(batch))

    def state_dict(self):
        return {"passes_run": self.passes_run}

    def set_state_dict(self, state):
        self.passes_run = int(state["passes_run"])


def accumulate_passes(trainer, parts, before_pass=None):
    """A forward and a backward per sub-batch of `parts`, each pass's losses weighted 1 / len(parts), so the gradients
    accumulate into those of their mean; with DataParallel only the last pass all-reduces. `before_pass(trainer,
    index)` runs before each pass. Returns the passes' mean of the rank-averaged losses {(task, name): value}."""
    totals = {}
    for index, part in enumerate(parts):
        if before_pass is not None:
            before_pass(trainer, index)
        last = index == len(parts) - 1
        sync = contextlib.nullcontext() if last or not isinstance(trainer.model, paddle.DataParallel) \
            else trainer.model.no_sync()
        with sync:
            losses = trainer.forward_losses(part)
            averaged = trainer.check_losses(losses)
            trainer.backward(losses, weight=1.0 / len(parts))
        for key, value in averaged.items():
            totals[key] = totals.get(key, 0.0) + value / len(parts)
    return totals


def count_images(batch):
    return sum(task_batch["images"].shape[0] for task_batch in batch.values())


def split_batch(batch, parts):
    """`{task: task_batch}` -> `parts` such dicts, each task's rows cut into consecutive, near-equal slices (every
    value indexed by row: tensors, arrays, lists). A task with fewer rows than `parts` is an error."""
    pieces = [dict() for _ in range(parts)]
    for task, task_batch in batch.items():
        rows = task_batch["images"].shape[0]
        if rows < parts:
            raise ValueError(f"task {task}: a batch of {rows} rows cannot be split into {parts} passes")
        bounds = [rows * k // parts for k in range(parts + 1)]
        for k in range(parts):
            pieces[k][task] = {key: _rows(value, bounds[k], bounds[k + 1], task, key, rows)
                               for key, value in task_batch.items()}
    return pieces


def _rows(value, start, stop, task, key, rows):
    if len(value) != rows:
        raise ValueError(f"task {task}: batch field '{key}' has {len(value)} rows, 'images' has {rows}")
    return value[start:stop]
