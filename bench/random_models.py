"""Models with random weights for the speed benchmarks (speed and export agreement do not depend on the weights).
No side effects at import: each benchmark sets its threads before it builds a model."""


def random_eval_model(preset=None, size=224):
    """The released evaluation model's structure with a `preset` backbone ('base', 'large', ...) at `size` x `size`,
    or the tiny parity model when `preset` is None; random weights, BN statistics drawn away from 0/1 so the neck is
    not the identity; in eval mode."""
    import numpy as np
    import paddle

    from allinone.config import load_config
    from allinone.modeling import build_model

    if preset is None:
        cfg = load_config("allinone/tiny_eval")
    else:
        cfg = load_config("allinone/vitlarge_eval", [f"Model.backbone.img_size=[{size},{size}]"])
        cfg.Model.backbone.preset = preset
        for key in ("embed_dim", "depth", "num_heads", "mlp_ratio"):
            cfg.Model.backbone.pop(key, None)
        for head in cfg.Model.heads.values():
            head.pop("in_dim", None)
    paddle.seed(0)
    model = build_model(cfg)
    rng = np.random.RandomState(0)
    for name, tensor in model.state_dict().items():
        if name.endswith(("_mean", "_variance")):
            tensor.set_value(rng.uniform(0.5, 1.5, tensor.shape).astype("float32"))
    model.eval()
    return model
