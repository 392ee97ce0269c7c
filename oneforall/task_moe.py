"""The task-MoE supernet (the original's `VisionTransformerTaskMoE`): one elastic ViT shared by many tasks, with
per-task embeddings and, in every block, a choice between a shared FFN and the task's own FFN.

Per task: patch embedding, cls token, position embedding, an FFN expert ("specific") and per block a gate.
Shared: the attention, the LayerNorms, the final norm and the "common" FFN expert. All tasks' experts live in one
model; the rows of a fused batch are grouped by task (`segments`, in row order) and each group goes through its own
task's embedding, gate and expert.

Gate (per task and block, logits [1, 2] = [common, specific], zero at start): the released code's hard
Gumbel-softmax (`oneforall.gate`) by default; `gate="soft"` mixes the two experts by softmax(logits / tau) instead
(the UFO README's weighted path). The common expert is frozen by default (as the released recipe: its learning rate
is 0); `train_common_expert=True` trains it (a deviation from the released code, the README's description).

Learning rates through the parameters' ParamAttr multipliers, as the original: every Linear/conv bias x2, each task's
embeddings and specific expert x its `task_lr_scales` entry (biases 2 x scale), gates x1.

Sharded storage (`held_tasks`): with expert parallelism a process holds the specific experts and gates of only the
tasks it owns (oneforall.expert_parallel); the others are built under `paddle.LazyGuard` (no memory, no random draw)
and dropped, so every process consumes the same automatic parameter names (optimizer states are keyed by them) and
the same random stream. Each specific expert is initialised from its own seed (`expert_seed`, block, task), so an
expert has the same initial values whichever processes hold it (docs/oneforall.md, "Sharded experts").
"""
import contextlib
import itertools

import numpy as np

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Constant, TruncatedNormal

from allinone.modeling.vision_transformer import PatchEmbedOverlap, init_linear_and_norm
from allinone.registry import BACKBONES

from . import gate as gates
from .elastic import ElasticMlp, ElasticVisionTransformer, SubnetError
from .search_space import Architecture, ExpertRatios

BIAS_LR_FACTOR = 2.0
GATE_MODES = ("hard", "soft")


def set_lr_scale(layer, scale):
    """Learning-rate multipliers of `layer`'s parameters: weights `scale`, biases BIAS_LR_FACTOR x `scale`."""
    for name, param in layer.named_parameters():
        param.optimize_attr["learning_rate"] = scale * (BIAS_LR_FACTOR if name.endswith("bias") else 1.0)


@contextlib.contextmanager
def forked_rng(seed):
    """Draw from paddle's generators seeded with `seed` inside the block, leaving the global streams as they were."""
    cuda = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    saved_cpu = paddle.get_rng_state("cpu")
    saved_cuda = paddle.get_cuda_rng_state() if cuda else None
    paddle.seed(int(seed))
    try:
        yield
    finally:
        paddle.set_rng_state(saved_cpu, "cpu")
        if cuda:
            paddle.set_cuda_rng_state(saved_cuda)


def seed_of(seed, *index):
    """A seed for one expert from the model's expert seed and its (block, task) position."""
    return int(np.random.SeedSequence([int(seed), *index]).generate_state(1)[0] & 0x7FFFFFFF)


def draw_seed():
    """A seed drawn from paddle's global stream (when the caller gave none)."""
    return int(paddle.randint(0, 2 ** 31 - 1, [1]).item())


def split_segments(x, segments):
    """[(task, rows of x), ...] in row order; zero-row segments are left out."""
    parts, start = [], 0
    for task, rows in segments:
        if rows:
            parts.append((task, x if rows == x.shape[0] else x[start:start + rows]))
        start += rows
    return parts


class TaskMoEMlp(nn.Layer):
    """The FFN of a task-MoE block: `common_expert`, `specific_experts[task]` (ElasticMlp each) and
    `gates[task]` ([1, 2] logits). Input rows are grouped by task through `segments`.

    `held_tasks` (default all): the tasks whose expert and gate this process holds (see the module doc); `seed`:
    the expert seed of this block (default drawn from paddle's stream). `expert_runner` (a key of
    `gate.EXPERT_RUNNERS`): how a hard-gated training forward runs the two experts; 'picked' (default) gives the
    released formula's values and gradients with one expert backward per row, 'both' is that formula itself (both
    experts with autograd on every row, for comparison)."""

    expert_runner = "picked"

    def __init__(self, dim, hidden_dim, drop=0.0, tasks=(), tau=5.0, gate="hard", train_common_expert=False,
                 held_tasks=None, seed=None):
        super().__init__()
        if not tasks:
            raise ValueError("TaskMoEMlp needs at least one task name")
        if gate not in GATE_MODES:
            raise ValueError(f"gate must be one of {GATE_MODES}, got '{gate}'")
        self.tasks, self.tau, self.gate_mode = tuple(tasks), float(tau), gate
        self.held_tasks = held(self.tasks, held_tasks)
        seed = draw_seed() if seed is None else int(seed)
        self.common_expert = ElasticMlp(dim, hidden_dim, drop)
        experts, gate_logits = {}, {}
        self.unheld_parameter_names = {}  # {name: task}: what another rank's optimizer state is keyed by
        for index, task in enumerate(self.tasks):
            if task in self.held_tasks:
                with forked_rng(seed_of(seed, index)):
                    experts[task] = ElasticMlp(dim, hidden_dim, drop)
                    init_linear_and_norm(experts[task])
                gate_logits[task] = self.create_parameter([1, 2], default_initializer=Constant(0.0))
            else:  # consumes the parameter names, allocates nothing
                with paddle.LazyGuard():
                    lazy = ElasticMlp(dim, hidden_dim, drop).parameters()
                    lazy.append(self.create_parameter([1, 2], default_initializer=Constant(0.0)))
                self.unheld_parameter_names.update({param.name: task for param in lazy})
        self.specific_experts = nn.LayerDict(experts)
        self.gates = nn.ParameterDict(gate_logits)
        self.expert_parallel = None  # an ExpertParallel router when the experts are spread over processes
        self.train_common_expert = bool(train_common_expert)
        for param in self.common_expert.parameters():  # frozen: no gradient, learning rate 0 (as the original)
            param.stop_gradient = not self.train_common_expert

    def forward(self, x, segments=None):
        if segments is None:
            if len(self.tasks) != 1:
                raise ValueError(f"a task-MoE FFN with tasks {list(self.tasks)} needs `segments` to know each "
                                 f"row's task")
            segments = ((self.tasks[0], x.shape[0]),)
        if self.expert_parallel is not None:
            return self.expert_parallel.run(self, x)
        outputs = [self.task_forward(task, part) for task, part in split_segments(x, segments)]
        return outputs[0] if len(outputs) == 1 else paddle.concat(outputs, axis=0)

    def task_forward(self, task, x):
        """The FFN output of rows `x` [n, ...] of `task`."""
        if task not in self.specific_experts:
            raise KeyError(f"unknown task '{task}'; this model's tasks are {list(self.tasks)}")
        logits, specific = self.gates[task], self.specific_experts[task]
        if self.gate_mode == "soft":
            weights = F.softmax(logits / self.tau, axis=-1)
            return self.common_expert(x) * weights[0, 0] + specific(x) * weights[0, 1]
        if not self.training:  # one-hot gate: the output is exactly the picked expert's
            return specific(x) if gates.eval_pick(logits, self.tau) == gates.SPECIFIC else self.common_expert(x)
        choice = gates.hard_choice(logits.tile([x.shape[0], 1]), self.tau, training=True)  # n, 2 (noise per row)
        return gates.EXPERT_RUNNERS[self.expert_runner](x, choice, (self.common_expert, specific))

    def picks(self):
        """{task: 'common' | 'specific'}: what an eval forward uses in this block."""
        return {task: ("specific" if gates.eval_pick(self.gates[task], self.tau) == gates.SPECIFIC else "common")
                for task in self.held_tasks}


def held(tasks, held_tasks):
    """`held_tasks` in task order (None: all `tasks`); an unknown name is an error."""
    if held_tasks is None:
        return tuple(tasks)
    unknown = sorted(set(held_tasks) - set(tasks))
    if unknown:
        raise ValueError(f"held_tasks names unknown task(s) {unknown}; tasks are {list(tasks)}")
    return tuple(task for task in tasks if task in set(held_tasks))


@BACKBONES.register()
class TaskMoEVisionTransformer(ElasticVisionTransformer):
    """The task-MoE elastic supernet. Constructor: the elastic ViT's arguments plus `tasks` (names, in order: the
    order of the specific ratios of a sub-network), `task_lr_scales` ({task: multiplier}, default 1), `tau` (gate
    temperature, 5), `gate` ('hard' | 'soft'), `train_common_expert` (False: frozen as the released code).

    A sub-network sets, per block, heads and the widths of the common and of every task's specific expert
    (`Architecture.expert_ratios`; `mlp_ratios` is ignored, as in the original).

    `held_tasks` (default all): the tasks whose specific experts and gates this process holds (set by
    oneforall.moe_training.TaskMoEStep under expert parallelism); `expert_seed`: the seed the specific experts are
    initialised from (default drawn from paddle's stream).
    """

    def __init__(self, tasks, preset=None, head_dim=None, choices=None, task_lr_scales=None, tau=5.0, gate="hard",
                 train_common_expert=False, held_tasks=None, expert_seed=None, **kwargs):
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be a non-empty list of distinct names, got {list(tasks)}")
        self.tasks, self.held_tasks = tasks, held(tasks, held_tasks)
        seed, blocks = draw_seed() if expert_seed is None else int(expert_seed), itertools.count()
        kwargs["mlp_layer"] = lambda *args: TaskMoEMlp(
            *args, tasks=tasks, tau=tau, gate=gate, train_common_expert=train_common_expert,
            held_tasks=self.held_tasks, seed=seed_of(seed, next(blocks)))
        super().__init__(preset=preset, head_dim=head_dim, choices=choices, **kwargs)
        # per-task embeddings replace the single ones of the plain ViT
        patch = self.patch_embed
        del self.patch_embed, self.cls_token, self.pos_embed
        num_tokens = patch.num_patches + 1
        self.patch_embeds = nn.LayerDict({
            task: PatchEmbedOverlap(patch.img_size, patch.patch_size, patch.stride_size, patch.in_chans,
                                    self.embed_dim) for task in tasks})
        trunc_normal = TruncatedNormal(std=0.02)
        self.cls_tokens = nn.ParameterDict({task: self.create_parameter([1, 1, self.embed_dim]) for task in tasks})
        self.pos_embeds = nn.ParameterDict({task: self.create_parameter([1, num_tokens, self.embed_dim])
                                            for task in tasks})
        for task in tasks:
            trunc_normal(self.cls_tokens[task])
            trunc_normal(self.pos_embeds[task])
        self.task_lr_scales = self._learning_rates(task_lr_scales or {})
        self.expert_parallel = None

    def layers_initialised_elsewhere(self):
        """The specific experts: initialised from their own seeds when built (the global stream then does not depend
        on which experts a process holds)."""
        return [block.mlp.specific_experts for block in self.blocks]

    def _learning_rates(self, scales):
        unknown = sorted(set(scales) - set(self.tasks))
        if unknown:
            raise ValueError(f"task_lr_scales names unknown task(s) {unknown}; tasks are {list(self.tasks)}")
        scales = {task: float(scales.get(task, 1.0)) for task in self.tasks}
        for block in self.blocks:
            set_lr_scale(block.attn, 1.0)
            for task in self.held_tasks:
                set_lr_scale(block.mlp.specific_experts[task], scales[task])
            set_lr_scale(block.mlp.common_expert, 1.0 if block.mlp.train_common_expert else 0.0)
        for task in self.tasks:
            set_lr_scale(self.patch_embeds[task], scales[task])
            self.cls_tokens[task].optimize_attr["learning_rate"] = scales[task]
            self.pos_embeds[task].optimize_attr["learning_rate"] = scales[task]
        return scales

    @property
    def grid_size(self):
        return self.patch_embeds[self.tasks[0]].grid_size

    @property
    def num_tasks(self):
        return len(self.tasks)

    def embed_tokens(self, x, segments=None):
        """Each task's rows through that task's patch embedding, cls token and position embedding."""
        segments = self.resolve_segments(segments, x.shape[0])
        outputs = []
        for task, images in split_segments(x, segments):
            tokens = self.patch_embeds[task](images)
            cls_tokens = self.cls_tokens[task].expand([tokens.shape[0], -1, -1])
            outputs.append(paddle.concat([cls_tokens, tokens], axis=1) + self.pos_embeds[task])
        x = outputs[0] if len(outputs) == 1 else paddle.concat(outputs, axis=0)
        return self.pos_drop(x)

    def resolve_segments(self, segments, batch_size):
        if segments is None:
            if len(self.tasks) != 1:
                raise ValueError(f"the task-MoE model has tasks {list(self.tasks)}: pass segments "
                                 f"((task, rows), ...) to say which rows belong to which task")
            return ((self.tasks[0], batch_size),)
        unknown = [task for task, _ in segments if task not in self.cls_tokens]
        if unknown:
            raise KeyError(f"unknown task(s) {unknown} in segments; this model's tasks are {list(self.tasks)}")
        return segments

    def forward_features(self, x, segments=None):
        segments = self.resolve_segments(segments, x.shape[0])
        if self.expert_parallel is not None:
            self.expert_parallel.plan(segments)  # every batch: the row layout of every rank
        return super().forward_features(x, segments)

    def enable_expert_parallel(self, ranks_per_task=None, group=None, transport=None):
        """Spread the task experts over the processes of `group` (default: all): {task: number of ranks}
        (default 1 each); transport 'alltoall' | 'allgather' (default: by the backend); see
        oneforall.expert_parallel. Every process must run the model on its own batch. A model built with
        `held_tasks` must hold exactly the tasks this rank owns; one holding every expert keeps them all."""
        from .expert_parallel import ExpertParallel, TaskRankMap
        import paddle.distributed as dist
        world = dist.get_world_size(group) if group is not None else dist.get_world_size()
        self.expert_parallel = ExpertParallel(TaskRankMap(self.tasks, world, ranks_per_task), group, transport)
        owned = self.expert_parallel.rank_map.tasks_of(self.expert_parallel.rank)
        if self.held_tasks != self.tasks and self.held_tasks != owned:
            raise ValueError(f"rank {self.expert_parallel.rank} holds the experts of {list(self.held_tasks)} but "
                             f"owns {list(owned)} under ranks_per_task {ranks_per_task}: build the model with "
                             f"held_tasks={list(owned)}")
        for block in self.blocks:
            block.mlp.expert_parallel = self.expert_parallel
        return self.expert_parallel.rank_map

    # -- sub-networks --------------------------------------------------------------------------------------
    def largest_subnet(self):
        return Architecture(self.depth, self.num_heads, self.mlp_ratio, (self.embed_dim,) * self.depth,
                            tuple(ExpertRatios(r, (r,) * len(self.tasks)) for r in self.mlp_ratio), space=None)

    def check_subnet(self, arch):
        if arch.expert_ratios is None:
            raise SubnetError("a task-MoE sub-network needs expert_ratios (per layer the common and every task's "
                              "specific FFN ratio; the original's softpolicy_mlp_ratio)")
        if arch.num_tasks != len(self.tasks):
            raise SubnetError(f"expert_ratios name {arch.num_tasks} specific ratios per layer, but the model has "
                              f"{len(self.tasks)} tasks {list(self.tasks)}")
        super().check_subnet(arch)

    def _check_ffn(self, arch, layer, block):
        experts = arch.expert_ratios[layer]  # mlp_ratios are not used by the task-MoE blocks (as the original)
        self._check_hidden(layer, "expert_ratios.common", experts.common, block.mlp.common_expert.max_hidden)
        for task, ratio in zip(self.tasks, experts.specific):
            if task in self.held_tasks:
                self._check_hidden(layer, f"expert_ratios.specific[{task}]", ratio,
                                   block.mlp.specific_experts[task].max_hidden)

    def _configure_block(self, block, arch, layer):
        block.attn.set_heads(arch.num_heads[layer])
        experts = arch.expert_ratios[layer]
        block.mlp.common_expert.set_hidden(int(self.embed_dim * experts.common))
        for task, ratio in zip(self.tasks, experts.specific):
            if task in self.held_tasks:
                block.mlp.specific_experts[task].set_hidden(int(self.embed_dim * ratio))

    def sample_subnet(self, step):
        return self.set_subnet(self.search_space.sample(step, num_tasks=len(self.tasks)))

    def gate_picks(self):
        """[{task: 'common' | 'specific'} per block]: the experts an eval forward uses."""
        return [block.mlp.picks() for block in self.blocks]


__all__ = ["TaskMoEMlp", "TaskMoEVisionTransformer", "forked_rng", "seed_of", "set_lr_scale", "split_segments"]
