"""The event store of a training run: the step puts scalars (losses, timings), hooks put more (evaluation metrics,
images), and writers (log lines, VisualDL) read what they need. No hook owns another's output, so the order in which
writers close does not matter.
"""
from collections import defaultdict, deque

HISTORY_LENGTH = 10000  # values kept per scalar; enough for any logging window, bounded for 100k-iteration runs


class EventStorage:
    """Scalars as `(iteration, value)` histories, the newest value of each, and images put since the last read.
    `iter` is the iteration the values belong to (the trainer sets it before each step)."""

    def __init__(self, start_iter=0, history_length=HISTORY_LENGTH):
        self.iter = start_iter
        self._histories = defaultdict(lambda: deque(maxlen=history_length))
        self._images = []

    def put_scalar(self, name, value):
        self._histories[name].append((self.iter, float(value)))

    def put_scalars(self, **values):
        for name, value in values.items():
            self.put_scalar(name, value)

    def put_image(self, name, image):
        """`image`: an HWC uint8 array; writers take it with `pop_images`."""
        self._images.append((name, image, self.iter))

    def pop_images(self):
        images, self._images = self._images, []
        return images

    def history(self, name):
        """[(iteration, value), ...] of `name`, oldest first (at most `history_length`)."""
        return list(self._histories[name]) if name in self._histories else []

    def names(self):
        return list(self._histories)

    def latest(self, name):
        """(iteration, value) of the newest `name`, or None."""
        values = self._histories.get(name)
        return values[-1] if values else None

    def window(self, name, size):
        """The values of `name` put in the last `size` iterations (up to and including `self.iter`)."""
        return [value for it, value in self._histories.get(name, ()) if it > self.iter - size]
