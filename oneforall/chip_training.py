"""Training the chip supernet (the elastic, non-MoE ViT) in allinone's engine: step classes that set sub-networks.

* `SubnetStep`: one sub-network per update, drawn step-seeded (`SubnetSampler`: draw k of a run is
  `SearchSpace.sample` of a seed computed from (seed, k), a private `random.Random`), so every rank draws the same
  one without talking, and a resumed run draws what the uninterrupted run would have drawn (the sampler's count is
  the step state that checkpoints store).
* `SubnetSandwichStep`: the sandwich rule on `SandwichStep`: the largest, the smallest and `num_random` random
  sub-networks each run the *whole* batch, gradients accumulated (each pass weighted 1 / passes), one update;
  optionally in-place distillation: the largest's class predictions (detached) teach the other sub-networks.
* `named_subnet_evaluation`: evaluation of the largest and the smallest sub-networks, keys prefixed by the name;
  both steps hand it to the training command as their `wrap_evaluation` hook.

Usage and choices: docs/nas.md.
"""
import logging
from collections import OrderedDict

import paddle
import paddle.nn.functional as F

from allinone.engine.steps import SandwichStep, SimpleStep
from allinone.registry import STEPS

from . import elastic  # noqa: F401  (registers ElasticVisionTransformer)
from .subnet_codes import subnet_code, subnet_from_code

logger = logging.getLogger("oneforall.chip_training")

# the chip-supernet backbones (their training and evaluation need this module's steps and named evaluation)
SUPERNET_BACKBONES = ("ElasticVisionTransformer",)
# draws of one seed before the next seed's stream would start (seed s, draw k -> s * SEED_STRIDE + k)
SEED_STRIDE = 1_000_003


def uses_supernet(cfg):
    """True when the config's backbone is a chip supernet (its training and evaluation need this module); the name
    may be dotted (`oneforall.elastic.ElasticVisionTransformer`)."""
    return str(cfg.get_path("Model.backbone.name")).rpartition(".")[2] in SUPERNET_BACKBONES


def supernet_of(trainer_or_model):
    """The elastic backbone of a Trainer (its unwrapped model) or of a model; an error names what was found."""
    model = getattr(trainer_or_model, "module", trainer_or_model)
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "set_subnet") or not hasattr(backbone, "search_space"):
        raise TypeError(f"sub-network training needs Model.backbone to be a supernet with set_subnet "
                        f"(one of {SUPERNET_BACKBONES}); the model's backbone is {type(backbone).__name__}")
    return backbone


class SubnetSampler:
    """Draws sub-networks of a search space, each from its own seed: draw k uses `space.sample(seed *
    SEED_STRIDE + k)` (seed 0: the original's per-step draws, step k). Its whole state is the draw count."""

    def __init__(self, seed=0):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"sampler seed must be a non-negative integer, got {seed!r}")
        self.seed, self.draws = seed, 0

    def draw(self, space):
        arch = space.sample(self.seed * SEED_STRIDE + self.draws)
        self.draws += 1
        return arch

    def state_dict(self):
        return {"seed": self.seed, "draws": self.draws}

    def set_state_dict(self, state):
        if int(state["seed"]) != self.seed:
            raise ValueError(f"the checkpoint's sub-network sampler has seed {state['seed']}, this run's step has "
                             f"seed {self.seed} (Train.step.seed)")
        self.draws = int(state["draws"])


def subnet_name(arch):
    """A short printable name: the competition code when the architecture has one, else its fields."""
    try:
        return subnet_code(arch)
    except ValueError:
        return f"depth={arch.depth} heads={list(arch.num_heads)} mlp={list(arch.mlp_ratios)}"


class NamedSubnetEvaluation:
    """The evaluation hook of the supernet steps: a model they train is evaluated as its largest and its smallest
    sub-network, each result named (`named_subnet_evaluation`); the training command asks the step for it."""

    @classmethod
    def wrap_evaluation(cls, evaluate):
        return named_subnet_evaluation(evaluate)


@STEPS.register()
class SubnetStep(NamedSubnetEvaluation, SimpleStep):
    """One step-seeded random sub-network per update (the original's chip-supernet training), then SimpleStep."""

    def __init__(self, seed=0):
        self.sampler = SubnetSampler(seed)
        self.current = None

    def run_step(self, trainer):
        backbone = supernet_of(trainer)
        self.current = backbone.set_subnet(self.sampler.draw(backbone.search_space))
        super().run_step(trainer)

    def state_dict(self):
        return {"sampler": self.sampler.state_dict()}

    def set_state_dict(self, state):
        self.sampler.set_state_dict(state["sampler"])


class InplaceDistillation:
    """A criterion wrapper: in the teacher's pass it keeps the head's class predictions (`pred_logits`, detached);
    in a student's pass it adds `(task, 'loss_distill')` = weight x T^2 x KL(teacher || student) at temperature T,
    per task with class predictions, to the criterion's own losses."""

    def __init__(self, criterion, weight=1.0, temperature=1.0):
        if weight <= 0 or temperature <= 0:
            raise ValueError(f"distillation weight and temperature must be > 0, got {weight}, {temperature}")
        self.criterion, self.weight, self.temperature = criterion, float(weight), float(temperature)
        self.role, self.teacher = "teacher", {}

    def __call__(self, outputs, batch):
        losses = dict(self.criterion(outputs, batch))
        logits = {task: out["pred_logits"] for task, out in outputs.items()
                  if isinstance(out, dict) and "pred_logits" in out}
        if self.role == "teacher":
            self.teacher = {task: value.detach() for task, value in logits.items()}
            return losses
        for task, student in logits.items():
            if task not in self.teacher:
                raise KeyError(f"task {task}: no teacher predictions (the largest sub-network's pass runs first)")
            t = self.temperature
            target = F.softmax(self.teacher[task].astype("float32") / t, axis=-1)
            log_student = F.log_softmax(student.astype("float32") / t, axis=-1)
            kl = (target * (paddle.log(target.clip(min=1e-12)) - log_student)).sum(axis=-1).mean()
            losses[(task, "loss_distill")] = self.weight * t * t * kl
        return losses


@STEPS.register()
class SubnetSandwichStep(NamedSubnetEvaluation, SandwichStep):
    """The sandwich rule: every update runs the largest, the smallest and `num_random` step-seeded random
    sub-networks, each on the whole batch, and accumulates their gradients (each weighted 1 / passes) into one
    update. `distill: {weight, temperature}` (or true for 1, 1): in-place distillation from the largest."""

    def __init__(self, num_random=2, seed=0, distill=None):
        if isinstance(num_random, bool) or not isinstance(num_random, int) or num_random < 0:
            raise ValueError(f"SubnetSandwichStep num_random must be an integer >= 0, got {num_random!r}")
        super().__init__(num_passes=2 + num_random)
        self.sampler = SubnetSampler(seed)
        if distill is True:
            distill = {}
        if distill not in (None, False) and not isinstance(distill, dict):
            raise ValueError(f"SubnetSandwichStep distill must be null, true or {{weight, temperature}}, "
                             f"got {distill!r}")
        self.distill = None if distill in (None, False) else dict(distill)
        self.current = None

    def sub_batches(self, batch):
        return [batch] * self.num_passes  # the same images for every sub-network

    def subnet_for_pass(self, backbone, index):
        space = backbone.search_space
        if index == 0:
            return space.largest()
        if index == 1:
            return space.smallest()
        return self.sampler.draw(space)

    def before_pass(self, trainer, index):
        backbone = supernet_of(trainer)
        self.current = backbone.set_subnet(self.subnet_for_pass(backbone, index))
        if self.distill is not None:
            if not isinstance(trainer.criterion, InplaceDistillation):
                trainer.criterion = InplaceDistillation(trainer.criterion, **self.distill)
            trainer.criterion.role = "teacher" if index == 0 else "student"

    def state_dict(self):
        return {"passes_run": self.passes_run, "sampler": self.sampler.state_dict()}

    def set_state_dict(self, state):
        super().set_state_dict(state)
        self.sampler.set_state_dict(state["sampler"])


def resolve_named_subnet(backbone, name):
    """'largest' / 'smallest' of the backbone's search space, or an architecture code."""
    space = backbone.search_space
    if name == "largest":
        return space.largest()
    if name == "smallest":
        return space.smallest()
    return subnet_from_code(name, backbone)


def named_subnet_evaluation(evaluate, names=("largest", "smallest")):
    """`evaluate(model) -> {key: value}` run once per named sub-network; keys become '<name>.<key>' (e.g.
    'smallest.task3.market1501.mAP'), so a number never stands for an unnamed sub-network. The model's current
    sub-network is restored afterwards."""
    def run(model):
        backbone = supernet_of(model)
        previous = backbone.subnet
        results = OrderedDict()
        try:
            for name in names:
                arch = backbone.set_subnet(resolve_named_subnet(backbone, name))
                print(f"sub-network '{name}': {subnet_name(arch)}", flush=True)
                for key, value in evaluate(model).items():
                    results[f"{name}.{key}"] = value
        finally:
            backbone.set_subnet(previous)
        return results

    pictures = getattr(evaluate, "pictures", None)
    if pictures is not None:
        run.pictures = pictures  # the evaluation pictures of the last named sub-network
    return run


__all__ = ["InplaceDistillation", "NamedSubnetEvaluation", "SubnetSampler", "SubnetSandwichStep", "SubnetStep",
           "named_subnet_evaluation", "supernet_of", "uses_supernet"]
