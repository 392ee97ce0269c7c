"""Dynamic loss scaling for float16 training.

Paddle's GradScaler switches itself off on CPU places, so its behaviour could never be tested on the machines the
tests run on; this scaler is plain tensor arithmetic and does the same thing everywhere: multiply the loss by
`scale` before backward, divide the gradients by it before the update, skip the update and halve the scale when a
gradient is not finite, double it after `growth_interval` finite steps in a row. Its state (scale and the finite-step
count) goes into checkpoints, so a resumed run continues with the scale it had reached.
"""
import paddle


class LossScaler:
    def __init__(self, init_scale=2.0 ** 15, growth_factor=2.0, backoff_factor=0.5, growth_interval=1000,
                 min_scale=1.0):
        self.scale_value = float(init_scale)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval, self.min_scale = int(growth_interval), float(min_scale)
        self.good_steps = 0
        self.skipped_steps = 0

    def scale(self, loss):
        return loss * self.scale_value

    def step(self, optimizer, parameters):
        """Unscale the gradients of `parameters` and step `optimizer` unless one is inf/NaN; update the scale.
        Returns True when the optimizer stepped. With DataParallel the gradients are already averaged over ranks, so
        every rank decides alike."""
        grads = [param.grad for param in parameters if param.grad is not None]
        inverse = 1.0 / self.scale_value
        finite = True
        with paddle.no_grad():
            for grad in grads:
                grad.scale_(inverse)
            if grads:
                finite = bool(paddle.stack([paddle.isfinite(grad).all() for grad in grads]).all())
        if finite:
            optimizer.step()
        self._update(finite)
        return finite

    def _update(self, finite):
        if finite:
            self.good_steps += 1
            if self.good_steps >= self.growth_interval:
                self.scale_value *= self.growth_factor
                self.good_steps = 0
        else:
            self.skipped_steps += 1
            self.scale_value = max(self.scale_value * self.backoff_factor, self.min_scale)
            self.good_steps = 0

    def state_dict(self):
        return {"scale": self.scale_value, "good_steps": self.good_steps, "skipped_steps": self.skipped_steps}

    def set_state_dict(self, state):
        self.scale_value = float(state["scale"])
        self.good_steps, self.skipped_steps = int(state["good_steps"]), int(state["skipped_steps"])
