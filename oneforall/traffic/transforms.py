"""Per-task transforms on sample dicts (RGB uint8 HWC `images` in, CHW float32 `images` out).

The three tasks use three different normalisations, as the baseline: classification ImageNet mean/std in 0-255
units, detection ImageNet mean/std in 0-1 units (the same numbers), segmentation (x / 255 - 0.5) / 0.5.
Randomness comes from Python's and NumPy's global generators, which the datasets seed per sample.
"""
import random

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from allinone.data.transforms import ImageNetAutoAugment, NormalizedRandomErasing

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def to_chw(image):
    return np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)


def imagenet_normalize(image):
    """uint8/float HWC in 0-255 -> CHW float32 with ImageNet statistics."""
    return to_chw((np.asarray(image, np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD)


# ---- classification ---------------------------------------------------------------------------------------------
class ClassificationTrain:
    """AutoAugment (ImageNet policy) on half of the images, bicubic resize to `size` (H, W), horizontal flip,
    normalisation, random erasing (one box, per-pixel noise)."""

    def __init__(self, size=(448, 448), autoaug_prob=0.5, flip_prob=0.5, erasing_prob=0.5):
        self.size, self.autoaug_prob, self.flip_prob = tuple(size), autoaug_prob, flip_prob
        self.autoaugment = ImageNetAutoAugment()
        self.erasing = NormalizedRandomErasing(erasing_prob, "pixel") if erasing_prob > 0 else None

    def __call__(self, sample):
        img = Image.fromarray(sample["images"])
        if random.random() < self.autoaug_prob:
            img = self.autoaugment(img)
        img = img.resize((self.size[1], self.size[0]), Image.BICUBIC)
        if random.random() < self.flip_prob:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        image = imagenet_normalize(img)
        if self.erasing is not None:
            image = self.erasing(image)
        return {**sample, "images": image}


class ClassificationTest:
    def __init__(self, size=(448, 448)):
        self.size = tuple(size)

    def __call__(self, sample):
        img = Image.fromarray(sample["images"]).resize((self.size[1], self.size[0]), Image.BICUBIC)
        return {**sample, "images": imagenet_normalize(img)}


# ---- segmentation -----------------------------------------------------------------------------------------------
def segmentation_normalize(image):
    return to_chw((np.asarray(image, np.float32) / 255.0 - 0.5) / 0.5)


class SegmentationTrain:
    """Random scale (one of `scales`), padding crop, flip, photometric distortion, normalisation.

    `crop_wh` is (width, height) in PaddleSeg's convention: the baseline's [720, 1280] therefore cuts portrait
    1280-high, 720-wide crops from 720x1280 images, padding the rest (image 127.5, label 255), which this keeps.
    """

    def __init__(self, crop_wh=(720, 1280), scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), flip_prob=0.5,
                 distort_prob=0.5, ignore_index=255):
        self.crop_w, self.crop_h = crop_wh
        self.scales, self.flip_prob, self.distort_prob = tuple(scales), flip_prob, distort_prob
        self.ignore_index = ignore_index

    def __call__(self, sample):
        image, label = sample["images"].astype(np.float32), sample["targets"]
        scale = self.scales[np.random.randint(len(self.scales))]
        if scale != 1.0:
            size = (int(round(image.shape[1] * scale)), int(round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
            label = cv2.resize(label.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(np.int64)
        image, label = self.pad_crop(image, label)
        if random.random() < self.flip_prob:
            image, label = image[:, ::-1], label[:, ::-1]
        image = self.distort(np.clip(image, 0, 255).astype(np.uint8))
        return {**sample, "images": segmentation_normalize(image), "targets": np.ascontiguousarray(label)}

    def pad_crop(self, image, label):
        height, width = label.shape
        pad_h, pad_w = max(self.crop_h - height, 0), max(self.crop_w - width, 0)
        if pad_h or pad_w:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(127.5,) * 3)
            label = np.pad(label, ((0, pad_h), (0, pad_w)), constant_values=self.ignore_index)
        height, width = label.shape
        top = np.random.randint(height - self.crop_h + 1)
        left = np.random.randint(width - self.crop_w + 1)
        return (image[top:top + self.crop_h, left:left + self.crop_w],
                label[top:top + self.crop_h, left:left + self.crop_w])

    def distort(self, image):
        """Brightness, contrast, saturation factors in [0.6, 1.4] and a hue shift in [-18, 18] (8-bit HSV), each
        with probability `distort_prob`, in random order."""
        img = Image.fromarray(image)
        ops = [self.brightness, self.contrast, self.saturation, self.hue]
        random.shuffle(ops)
        for op in ops:
            if np.random.uniform() < self.distort_prob:
                img = op(img)
        return np.asarray(img)

    @staticmethod
    def brightness(img):
        return ImageEnhance.Brightness(img).enhance(np.random.uniform(0.6, 1.4))

    @staticmethod
    def contrast(img):
        return ImageEnhance.Contrast(img).enhance(np.random.uniform(0.6, 1.4))

    @staticmethod
    def saturation(img):
        return ImageEnhance.Color(img).enhance(np.random.uniform(0.6, 1.4))

    @staticmethod
    def hue(img):
        hsv = np.array(img.convert("HSV"))
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + int(np.random.uniform(-18, 18))) % 256  # wraps, no overflow
        return Image.fromarray(hsv, "HSV").convert("RGB")


class SegmentationTest:
    def __call__(self, sample):
        return {**sample, "images": segmentation_normalize(sample["images"])}


# ---- detection --------------------------------------------------------------------------------------------------
def resize_short_side(image, boxes, short, max_long):
    """Aspect-kept bilinear resize to short side `short` with the long side at most `max_long` (None: no cap)."""
    height, width = image.shape[:2]
    scale = short / min(height, width)
    if max_long is not None and max(height, width) * scale > max_long:
        scale = max_long / max(height, width)
    new_w, new_h = int(round(width * scale)), int(round(height * scale))
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    boxes = boxes * np.array([new_w / width, new_h / height] * 2, np.float32)
    return image, boxes


class DetectionTrain:
    """Flip; then with probability 1 - crop_prob a short-side resize (long side capped), otherwise a short-side
    resize, a random crop (boxes clipped, empty ones dropped) and the capped resize; normalise; boxes -> normalised
    cxcywh."""

    def __init__(self, short_sides=(480, 512, 544, 576, 608), max_long=608, crop_short_sides=(400, 500, 600),
                 crop_range=(384, 600), flip_prob=0.5, crop_prob=0.5):
        self.short_sides, self.max_long = tuple(short_sides), max_long
        self.crop_short_sides, self.crop_range = tuple(crop_short_sides), tuple(crop_range)
        self.flip_prob, self.crop_prob = flip_prob, crop_prob

    def __call__(self, sample):
        image, boxes, classes = sample["images"], sample["gt_boxes"].astype(np.float32), sample["gt_classes"]
        if random.random() < self.flip_prob:
            image = image[:, ::-1]
            width = image.shape[1]
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
        if random.random() < self.crop_prob:
            image, boxes = resize_short_side(image, boxes, random.choice(self.crop_short_sides), None)
            image, boxes, classes = self.random_crop(image, boxes, classes)
        image, boxes = resize_short_side(image, boxes, random.choice(self.short_sides), self.max_long)
        height, width = image.shape[:2]
        boxes = boxes / np.array([width, height, width, height], np.float32)
        centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                           boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1).reshape([-1, 4])
        return {**sample, "images": imagenet_normalize(image), "gt_boxes": centre.astype(np.float32),
                "gt_classes": classes, "im_shape": np.array([height, width], np.float32)}

    def random_crop(self, image, boxes, classes):
        height, width = image.shape[:2]
        crop_h = random.randint(self.crop_range[0], max(self.crop_range[0], min(height, self.crop_range[1])))
        crop_w = random.randint(self.crop_range[0], max(self.crop_range[0], min(width, self.crop_range[1])))
        crop_h, crop_w = min(crop_h, height), min(crop_w, width)
        top, left = random.randint(0, height - crop_h), random.randint(0, width - crop_w)
        image = image[top:top + crop_h, left:left + crop_w]
        boxes = boxes - np.array([left, top, left, top], np.float32)
        boxes = np.clip(boxes, 0, [crop_w, crop_h, crop_w, crop_h]).astype(np.float32)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return image, boxes[keep], classes[keep]


class DetectionTest:
    """Resize to exactly `size` (H, W), aspect not kept; scale_factor = new / original per axis."""

    def __init__(self, size=(608, 608)):
        self.size = tuple(size)

    def __call__(self, sample):
        image = sample["images"]
        height, width = image.shape[:2]
        image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
        return {**sample, "images": imagenet_normalize(image),
                "im_shape": np.array(self.size, np.float32),
                "scale_factor": np.array([self.size[0] / height, self.size[1] / width], np.float32)}


TRANSFORMS = {
    ("fgvc", "train"): ClassificationTrain, ("fgvc", "test"): ClassificationTest,
    ("segmentation", "train"): SegmentationTrain, ("segmentation", "test"): SegmentationTest,
    ("trafficsign", "train"): DetectionTrain, ("trafficsign", "test"): DetectionTest,
}


def build_transform(task, train, **kwargs):
    """The training or evaluation transform of a task, with keyword overrides of its defaults."""
    key = (task, "train" if train else "test")
    if key not in TRANSFORMS:
        raise KeyError(f"no transform for task {task!r}; tasks: {sorted({t for t, _ in TRANSFORMS})}")
    try:
        return TRANSFORMS[key](**kwargs)
    except TypeError as err:
        raise TypeError(f"transform of task {task!r} ({'train' if train else 'test'}): {err}") from None


__all__ = ["ClassificationTest", "ClassificationTrain", "DetectionTest", "DetectionTrain", "SegmentationTest",
           "SegmentationTrain", "build_transform"]
