"""FeatureExtractor: image files in, the eval embedding of one task (model.embed) out, in input order."""
import numpy as np
import paddle
import pytest
from PIL import Image

from allinone import FeatureExtractor, build_model
from allinone.data import ImageReadError


@pytest.fixture
def image_files(tmp_path):
    """Real files in the formats test sets hold: RGB JPEG, grayscale JPEG, RGBA PNG; different sizes."""
    rng = np.random.RandomState(0)
    files = []
    for i, (mode, size, ext) in enumerate([("RGB", (40, 50), "jpg"), ("L", (32, 32), "jpg"),
                                           ("RGBA", (20, 70), "png"), ("RGB", (64, 48), "png")]):
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        pixels = rng.randint(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
        path = tmp_path / f"img{i}.{ext}"
        Image.fromarray(pixels, mode).save(path)
        files.append(str(path))
    return files


def preprocess(path, size=(32, 32)):
    """The evaluation's test transform (docs/model.md): RGB, PIL bicubic resize to (W, H), (x - 127.5) / 127.5, CHW float32."""
    image = Image.open(path).convert("RGB").resize(size[::-1], Image.BICUBIC)
    return ((np.asarray(image, dtype=np.float32) - 127.5) / 127.5).transpose(2, 0, 1)


def test_features_are_the_heads_eval_output_for_the_preprocessed_images_in_order(tiny_model, image_files):
    tiny_model.heads["task3"].bottleneck[0].bias.set_value(paddle.full([64], 0.25))
    features = FeatureExtractor(tiny_model, head="task3", batch_size=3).extract(image_files)
    batch = paddle.to_tensor(np.stack([preprocess(path) for path in image_files]))
    with paddle.no_grad():
        expected = tiny_model({"task3": batch})["task3"].numpy()
    assert features.shape == (4, 64) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_a_task_is_routed_through_task_to_head_as_in_evaluation(tiny_cfg, image_files):
    tiny_cfg.Model.task_to_head = {"market1501": "task3"}
    model = build_model(tiny_cfg)
    model.heads["task3"].bottleneck[0].bias.set_value(paddle.full([64], 0.25))
    model.eval()
    features = FeatureExtractor(model, task="market1501").extract(image_files[:2])
    batch = paddle.to_tensor(np.stack([preprocess(path) for path in image_files[:2]]))
    with paddle.no_grad():
        expected = model.heads["task3"](model.backbone(batch)).numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="task_to_head routes 'market1501' to head 'task3'"):
        FeatureExtractor(model, head="market1501")


def test_extraction_leaves_a_training_model_in_training_mode(tiny_model, image_files):
    tiny_model.train()
    FeatureExtractor(tiny_model).extract(image_files[:1])
    assert tiny_model.training and tiny_model.heads["task1"].training


def test_no_images_give_an_empty_feature_array(tiny_model):
    assert FeatureExtractor(tiny_model).extract([]).shape == (0, 64)


def test_an_unknown_head_is_an_error_naming_the_heads(tiny_model):
    with pytest.raises(KeyError, match=r"task 'task7' has no head.*\['task1', 'task2', 'task3', 'task4'\]"):
        FeatureExtractor(tiny_model, head="task7")


def test_an_unreadable_image_is_an_error_naming_it(tiny_model, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        FeatureExtractor(tiny_model).extract([str(broken)])
