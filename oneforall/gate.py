"""The task-MoE gate: per (task, block) two logits [common, specific], turned into a hard one-hot choice.

Training: hard Gumbel-softmax with a straight-through gradient (the forward value is exactly one-hot; the
gradient is the softmax's), fresh Gumbel noise for every row. Eval: no noise, the argmax of softmax(logits / tau)
computed in float32, a tie going to the specific expert (index 1). Ties are decided on the rounded softmax, as the
original's MoE evaluation does; two logits one ulp apart can therefore pick specific (docs/oneforall.md, "Gate").
"""
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


def eval_pick(logits, tau):
    """The expert an eval forward uses for gate `logits` ([1, 2] or [2]): COMMON or SPECIFIC."""
    soft = F.softmax(paddle.reshape(logits, [-1])[:2].astype("float32") / tau, axis=-1).numpy()
    return SPECIFIC if soft[SPECIFIC] >= soft[COMMON] else COMMON


def release_pick(policy_row):
    """The extractor's rule on a raw policy row [common, specific] of a release checkpoint: common only when
    strictly larger (ties -> specific), compared on the raw values, not on a rounded softmax."""
    return COMMON if float(policy_row[COMMON]) > float(policy_row[SPECIFIC]) else SPECIFIC


__all__ = ["COMMON", "SPECIFIC", "eval_pick", "gumbel_noise", "hard_choice", "release_pick"]
