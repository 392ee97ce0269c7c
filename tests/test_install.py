"""The installed environment keeps the pins the project depends on (see requirements.txt)."""
import importlib.metadata as md

import pytest


def installed(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def test_numpy_stays_below_2_for_opencv_4_6_and_paddleslim():
    assert int(installed("numpy").split(".")[0]) < 2


def test_only_the_pinned_opencv_wheel_is_installed():
    assert installed("opencv-python") == "4.6.0.66"
    assert installed("opencv-python-headless") is None, "a second opencv wheel would shadow the pinned one"


@pytest.mark.parametrize("module", ["paddle", "paddleslim.nas", "faiss", "cv2", "visualdl", "sklearn", "scipy"])
def test_runtime_dependencies_import(module):
    importlib = __import__("importlib")
    importlib.import_module(module)


def test_package_exposes_its_public_api_lazily():
    import allinone

    assert {"build_model", "load_checkpoint", "FeatureExtractor", "load_config"} <= set(allinone.__all__)
    import oneforall

    assert oneforall.__version__
