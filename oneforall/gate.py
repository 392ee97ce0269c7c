"""The task-MoE gate: per (task, block) two logits [common, specific], turned into a hard one-hot choice.

Training: hard Gumbel-softmax with a straight-through gradient (the forward value is exactly one-hot; the
gradient is the softmax's), fresh Gumbel noise for every row. Eval: no noise, the argmax of softmax(logits / tau)
computed in float32, a tie going to the specific expert (index 1). Ties are decided on the rounded softmax, as the
original's MoE evaluation does; two logits one ulp apart can therefore pick specific (docs/oneforall.md, "Gate").

How a training forward runs the two experts under the one-hot `choice` (`EXPERT_RUNNERS`): the released code's
formula choice[:, 0] * common(x) + choice[:, 1] * specific(x) on every row ("both"), or the same value and the same
gradients with each row's unpicked expert run without autograd ("picked", the default; see `run_picked_experts`).
"""
import numpy as np
import paddle
import paddle.nn.functional as F

COMMON, SPECIFIC = 0, 1
NOISE_CLIP = (1e-5, 0.9999)  # the original's bounds on the uniform draw of the Gumbel noise


def gumbel_noise(shape):
    """-log(-log u), u ~ U(0, 1) clipped to NOISE_CLIP (the original's bounds)."""
    uniform = paddle.clip(paddle.rand(shape), *NOISE_CLIP)
    return -paddle.log(-paddle.log(uniform))


def hard_choice(logits, tau, training):
    """Logits [N, 2] -> a straight-through one-hot [N, 2]; see the module docstring for the two modes."""
    if training:
        logits = logits + gumbel_noise(logits.shape)
    soft = F.softmax(logits / tau, axis=-1)
    picks_specific = (soft[:, SPECIFIC] >= soft[:, COMMON]).astype(soft.dtype)  # ties -> specific
    hard = paddle.stack([1.0 - picks_specific, picks_specific], axis=-1)
    return hard - soft.detach() + soft


def run_both_experts(x, choice, experts):
    """The released formula: choice[:, 0] * experts[0](x) + choice[:, 1] * experts[1](x), both with autograd on
    every row of x [n, ...]; choice [n, 2]."""
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    return (experts[COMMON](x) * choice[:, COMMON].reshape(shape)
            + experts[SPECIFIC](x) * choice[:, SPECIFIC].reshape(shape))


def run_picked_experts(x, choice, experts):
    """`run_both_experts`' value and gradients (of x, of both experts' parameters and of `choice`) at less cost.

    With a one-hot forward value, row i's output is exactly its picked expert's, and the unpicked expert u gets
    choice[i, u] = 0 times its Jacobian: no gradient, neither to its parameters nor to x. The gate still needs
    dL/dchoice[i, u] = <dL/dout_i, u(x_i)>, so u runs forward on row i, but without autograd (a constant). Rows
    are grouped by pick: per group the picked expert with autograd, the other one under no_grad, then the rows are
    put back in order. Cost: two FFN forwards, one FFN backward (instead of two) per row.
    """
    if x.shape[0] == 0:
        return run_both_experts(x, choice, experts)
    picks = (choice[:, SPECIFIC].detach() > 0.5).numpy()  # the one-hot forward value
    shape = [-1] + [1] * (x.ndim - 1)
    outputs, groups = [], []
    for picked in (COMMON, SPECIFIC):
        rows = np.flatnonzero(picks == (picked == SPECIFIC))
        if rows.size == 0:
            continue
        if rows.size == x.shape[0]:
            part, weights = x, choice
        else:
            index = paddle.to_tensor(rows)
            part, weights = paddle.gather(x, index), paddle.gather(choice, index)
        with paddle.no_grad():
            unpicked = experts[1 - picked](part)
        outputs.append(experts[picked](part) * weights[:, picked].reshape(shape)
                       + unpicked * weights[:, 1 - picked].reshape(shape))
        groups.append(rows)
    if len(outputs) == 1:
        return outputs[0]
    order = np.argsort(np.concatenate(groups))  # row i of x is row order[i] of the concatenation
    return paddle.gather(paddle.concat(outputs), paddle.to_tensor(order))


EXPERT_RUNNERS = {"picked": run_picked_experts, "both": run_both_experts}


def eval_pick(logits, tau):
    """The expert an eval forward uses for gate `logits` ([1, 2] or [2]): COMMON or SPECIFIC."""
    soft = F.softmax(paddle.reshape(logits, [-1])[:2].astype("float32") / tau, axis=-1).numpy()
    return SPECIFIC if soft[SPECIFIC] >= soft[COMMON] else COMMON


def release_pick(policy_row):
    """The extractor's rule on a raw policy row [common, specific] of a release checkpoint: common only when
    strictly larger (ties -> specific), compared on the raw values, not on a rounded softmax."""
    return COMMON if float(policy_row[COMMON]) > float(policy_row[SPECIFIC]) else SPECIFIC


__all__ = ["COMMON", "EXPERT_RUNNERS", "SPECIFIC", "eval_pick", "run_both_experts", "run_picked_experts",
           "gumbel_noise", "hard_choice", "release_pick"]
