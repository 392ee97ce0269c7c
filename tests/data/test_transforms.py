"""Test transform parity with the original (alone and through the loader), and the training augmentation built
from a per-task dict."""
import os
import random

import numpy as np
import paddle
import pytest
from PIL import Image

from allinone.data import build_test_loader, build_test_transform, build_train_transform, read_image
from allinone.data.transforms import IMAGENET_POLICY, ImageNetAutoAugment, NormalizedRandomErasing

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "spec", "reference")


def reference_path(name):
    path = os.path.abspath(os.path.join(REFERENCE, name))
    assert os.path.exists(path), f"parity reference file missing: {path}"
    return path


def test_test_transform_reproduces_the_original_preprocessing():
    out = build_test_transform((384, 384))(read_image(reference_path("preproc_raw_rgb.png")))
    expected = np.load(reference_path("preproc_out_rgb.npy"))
    assert out.shape == (3, 384, 384) and out.dtype == np.float32
    assert np.abs(out - expected).max() <= 1e-5


@pytest.mark.parametrize("num_workers", [0, 2])
def test_test_loader_batches_reproduce_the_original_preprocessing(num_workers):
    batch = next(iter(build_test_loader([reference_path("preproc_raw_rgb.png")] * 2, build_test_transform((384, 384)),
                                        batch_size=2, num_workers=num_workers)))
    expected = np.load(reference_path("preproc_out_rgb.npy"))
    assert str(batch["images"].dtype) == "paddle.float32"
    assert np.abs(batch["images"].numpy() - expected).max() <= 1e-5


def test_test_transform_in_two_steps_equals_the_whole_on_a_batch_tensor():
    transform = build_test_transform((24, 20))
    images = [Image.fromarray(np.random.RandomState(seed).randint(0, 256, (30, 17, 3), dtype=np.uint8))
              for seed in range(3)]
    uint8_batch = np.stack([transform.to_uint8(image) for image in images])
    assert uint8_batch.dtype == np.uint8 and uint8_batch.shape == (3, 3, 24, 20)
    normalized = transform.normalize(paddle.to_tensor(uint8_batch))
    np.testing.assert_array_equal(normalized.numpy(), np.stack([transform(image) for image in images]))


def test_read_image_turns_grayscale_into_three_equal_channels(tmp_path):
    Image.new("L", (5, 4), 77).save(tmp_path / "gray.jpg")
    assert np.asarray(read_image(str(tmp_path / "gray.jpg"))).shape == (4, 5, 3)


def test_train_transform_without_randomness_equals_resize_and_normalise():
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (40, 30, 3), dtype=np.uint8))
    plain = build_train_transform({"size": [32, 16], "flip_prob": 0, "padding": 0, "mean": [127.5] * 3,
                                   "std": [127.5] * 3})
    np.testing.assert_array_equal(plain(image), build_test_transform((32, 16))(image))


def test_train_transform_with_every_augmentation_keeps_shape_and_dtype():
    image = Image.fromarray(np.random.RandomState(1).randint(0, 256, (70, 45, 3), dtype=np.uint8))
    augment = build_train_transform({"size": [64, 32], "autoaug_prob": 1.0, "erasing_prob": 1.0, "padding": 10})
    for _ in range(5):
        out = augment(image)
        assert out.shape == (3, 64, 32) and out.dtype == np.float32


def test_unknown_train_transform_key_is_an_error():
    with pytest.raises(KeyError, match="rea_prob"):
        build_train_transform({"rea_prob": 0.5})


def test_imagenet_policy_has_25_sub_policies_of_two_known_operations():
    augment = ImageNetAutoAugment()
    assert len(IMAGENET_POLICY) == 25 and all(len(sub) == 2 for sub in IMAGENET_POLICY)
    image = Image.fromarray(np.random.RandomState(2).randint(0, 256, (20, 24, 3), dtype=np.uint8))
    for name, _, magnitude in {step for sub in IMAGENET_POLICY for step in sub}:
        out = getattr(augment, name.lower())(image, magnitude / 10)
        assert out.size == image.size and out.mode == "RGB"


def test_autoaugment_changes_images_and_is_reproducible_from_the_seed():
    image = Image.fromarray(np.random.RandomState(3).randint(0, 256, (20, 24, 3), dtype=np.uint8))
    runs = []
    for _ in range(2):
        random.seed(5)
        runs.append([np.asarray(ImageNetAutoAugment()(image)) for _ in range(10)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    assert any(not np.array_equal(out, np.asarray(image)) for out in runs[0])


def test_pixel_erasing_fills_one_box_with_unit_normal_noise():
    np.random.seed(0)
    image = np.full((3, 64, 64), 5.0, dtype=np.float32)
    out = NormalizedRandomErasing(prob=1.0, mode="pixel")(image)
    erased = out[out != 5.0]
    assert out.dtype == np.float32 and erased.size >= 0.02 * image.size * 0.9
    assert abs(erased.mean()) < 0.2 and 0.8 < erased.std() < 1.2


def test_const_erasing_fills_with_zero():
    np.random.seed(0)
    out = NormalizedRandomErasing(prob=1.0, mode="const")(np.full((3, 64, 64), 5.0, dtype=np.float32))
    assert set(np.unique(out)) == {0.0, 5.0}
    erased = out == 0.0
    assert (erased[0] == erased[1]).all() and (erased[0] == erased[2]).all()  # the same box in every channel
