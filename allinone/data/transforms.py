"""Image transforms: the evaluation transform (bit-exact with the original) and the per-task training augmentation.

Both take the RGB PIL image from `read_image` and return a float32 CHW array. Paddle's `paddle.vision.transforms`
does the work; Paddle has no AutoAugment, so the ImageNet policy is a table here on top of PIL operations. The random
steps draw from Python's and NumPy's global generators (as Paddle's do); `seeded_global_rngs` makes them a function
of a per-sample seed.
"""
import contextlib
import os
import random
import threading

import numpy as np
import paddle
import paddle.vision.transforms as T
from PIL import Image, ImageEnhance, ImageOps

TRAIN_DEFAULTS = {"size": (256, 128), "flip_prob": 0.5, "padding": 10, "autoaug_prob": 0.0, "erasing_prob": 0.0,
                  "erasing_mode": "pixel", "mean": (0.485 * 255, 0.456 * 255, 0.406 * 255),
                  "std": (0.229 * 255, 0.224 * 255, 0.225 * 255)}


def build_test_transform(size=(384, 384), mean=(127.5,) * 3, std=(127.5,) * 3):
    """PIL bicubic resize to `size` (H, W; aspect ratio not kept, no crop), then (x - mean) / std, CHW float32."""
    return TestTransform(_pair(size), mean, std)


class TestTransform:
    """The evaluation transform as two steps, so that a loader can run `to_uint8` (PIL bicubic resize -> uint8 CHW)
    in its workers, ship 4x fewer bytes than float32, and `normalize` whole batches where they arrive (on the
    device, for a GPU loader). Calling it runs both on one image; the result is the same to the bit."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, size, mean, std):
        self.to_uint8 = T.Compose([T.Resize(size, interpolation="bicubic"), ToCHW()])
        self.normalize_float32 = T.Normalize(mean, std)

    def __call__(self, img):
        return self.normalize(self.to_uint8(img))

    def normalize(self, images):
        """(x - mean) / std in float32 of a uint8 CHW image or NCHW batch: a numpy array, or a Paddle tensor, which
        stays where it is. On the CPU numpy does the arithmetic: 3x faster than Paddle's CPU kernels (measured)."""
        if not isinstance(images, paddle.Tensor):
            return self.normalize_float32(images)
        if images.place.is_cpu_place():
            return paddle.to_tensor(self.normalize_float32(images.numpy()), place=images.place)
        return self.normalize_float32(images.astype("float32"))  # Paddle does not promote uint8 tensors to float


def build_train_transform(cfg):
    """The training augmentation of one task, from a dict with the keys of `TRAIN_DEFAULTS`.

    Order as the original: AutoAugment (probability `autoaug_prob`), bicubic resize, pad + random crop back to size,
    horizontal flip, normalise, random erasing (probability `erasing_prob`; mode 'pixel' = N(0, 1) noise per pixel in
    normalised units, 'const' = 0). The original's config key `autoaug_prob: p` applied AutoAugment with probability
    1 - p; here the key is the probability of applying it (the released recipe's 0.5 means the same in both).
    """
    unknown = set(cfg) - set(TRAIN_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown train transform keys {sorted(unknown)}; known: {sorted(TRAIN_DEFAULTS)}")
    cfg = {**TRAIN_DEFAULTS, **cfg}
    size = _pair(cfg["size"])
    steps = []
    if cfg["autoaug_prob"] > 0:
        steps.append(RandomApply(ImageNetAutoAugment(), cfg["autoaug_prob"]))
    steps.append(T.Resize(size, interpolation="bicubic"))
    if cfg["padding"] > 0:
        steps += [T.Pad(cfg["padding"], fill=0), T.RandomCrop(size)]
    if cfg["flip_prob"] > 0:
        steps.append(T.RandomHorizontalFlip(cfg["flip_prob"]))
    steps += [ToCHW(), T.Normalize(cfg["mean"], cfg["std"])]
    if cfg["erasing_prob"] > 0:
        steps.append(NormalizedRandomErasing(cfg["erasing_prob"], cfg["erasing_mode"]))
    return T.Compose(steps)


class ToCHW:
    """PIL image -> contiguous uint8 CHW array. Paddle's `Transpose` returns a strided view, which makes the
    normalisation and the batch stack after it about twice as slow."""

    def __call__(self, img):
        return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))


class RandomApply:
    """Apply `transform` with probability `prob` (drawn from Python's `random`)."""

    def __init__(self, transform, prob):
        self.transform, self.prob = transform, prob

    def __call__(self, img):
        return self.transform(img) if random.random() < self.prob else img


class NormalizedRandomErasing:
    """timm's RandomErasing (one box, area 2%-1/3, aspect 0.3-3.3) on a normalised CHW float image.

    Paddle's `RandomErasing` has the same geometry but takes numpy images as HWC and draws their noise in pixel
    units (N(0, 1) * 255): it works in place on an HWC view, and for 'pixel' mode on the image scaled by 255,
    giving the N(0, 1) noise of the original.
    """

    MODES = ("pixel", "const")

    def __init__(self, prob, mode="pixel"):
        if mode not in self.MODES:
            raise ValueError(f"erasing_mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.erase = T.RandomErasing(prob=prob, scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3),
                                     value="random" if mode == "pixel" else 0, inplace=True)

    def __call__(self, img):
        scale = 255.0 if self.mode == "pixel" else 1.0
        work = img * np.float32(scale)
        self.erase(work.transpose(1, 2, 0))
        return work / np.float32(scale)


# The global generators are shared by all threads of a process, and a loader without workers runs one per task:
# hold this lock to read or set their state while such a loader may be running. A forked loader worker has one
# thread: the lock starts free there, even if a thread of the parent held it.
GLOBAL_RNGS_LOCK = threading.Lock()
os.register_at_fork(after_in_child=GLOBAL_RNGS_LOCK._at_fork_reinit)


@contextlib.contextmanager
def global_rngs_restored():
    """Python's and NumPy's global generators, held by this thread alone for the duration and then put back as they
    were, so whatever runs inside neither disturbs nor is disturbed by other users of the lock."""
    with GLOBAL_RNGS_LOCK:
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


@contextlib.contextmanager
def seeded_global_rngs(seed):
    """Python's and NumPy's global generators seeded from `seed` (two independent 128-bit seeds derived from it)
    for the duration, as in `global_rngs_restored`: the random transforms inside draw a function of `seed` alone."""
    words = np.random.SeedSequence(seed).generate_state(8)
    with global_rngs_restored():
        random.seed(int.from_bytes(words[:4].tobytes(), "little"))
        np.random.seed(words[4:])
        yield


# ImageNet AutoAugment policy (Cubuk et al. 2019), as timm's 'original' variant: 25 sub-policies of two
# (operation, probability, magnitude 0-10) steps; one sub-policy is drawn per image.
IMAGENET_POLICY = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)


class ImageNetAutoAugment:
    """The ImageNet AutoAugment policy on PIL images, with timm's magnitude scales (rotate up to 30 degrees, shear
    up to 0.3, enhance factor 0.1-1.9, solarize threshold magnitude/10 * 256, posterize 4-8 bits), a random sign
    for rotate/shear, gray fill `fill` and a random bilinear/bicubic resampling, as the original configured it."""

    def __init__(self, policy=IMAGENET_POLICY, fill=128):
        self.policy, self.fill = policy, (fill,) * 3

    def __call__(self, img):
        for name, prob, magnitude in random.choice(self.policy):
            if random.random() < prob:
                img = getattr(self, name.lower())(img, magnitude / 10.0)
        return img

    def resampling(self):
        return {"resample": random.choice((Image.BILINEAR, Image.BICUBIC)), "fillcolor": self.fill}

    def rotate(self, img, level):
        return img.rotate(_random_sign(level * 30.0), **self.resampling())

    def shearx(self, img, level):
        return img.transform(img.size, Image.AFFINE, (1, _random_sign(level * 0.3), 0, 0, 1, 0), **self.resampling())

    def posterize(self, img, level):
        bits = int(level * 4) + 4
        return img if bits >= 8 else ImageOps.posterize(img, bits)

    def solarize(self, img, level):
        return ImageOps.solarize(img, int(level * 256))

    def color(self, img, level):
        return ImageEnhance.Color(img).enhance(level * 1.8 + 0.1)

    def contrast(self, img, level):
        return ImageEnhance.Contrast(img).enhance(level * 1.8 + 0.1)

    def sharpness(self, img, level):
        return ImageEnhance.Sharpness(img).enhance(level * 1.8 + 0.1)

    def autocontrast(self, img, level):
        return ImageOps.autocontrast(img)

    def equalize(self, img, level):
        return ImageOps.equalize(img)

    def invert(self, img, level):
        return ImageOps.invert(img)


def _random_sign(value):
    return -value if random.random() < 0.5 else value


def _pair(size):
    if isinstance(size, int):
        return (size, size)
    if len(size) != 2:
        raise ValueError(f"image size must be an int or (height, width), got {size!r}")
    return tuple(int(s) for s in size)
