import os
import shutil

import pytest


@pytest.fixture
def copy_of(mini_root, tmp_path):
    """copy_of('folder', ...) -> a fresh root holding copies of those folders of the mini tree, free to break."""

    def copy(*folders):
        for folder in folders:
            shutil.copytree(os.path.join(mini_root, folder), os.path.join(tmp_path, folder))
        return str(tmp_path)

    return copy


@pytest.fixture
def train_loader():
    """build_train_loader(...) whose loaders are closed after the test (their worker processes stopped)."""
    from allinone.data import build_train_loader

    opened = []

    def build(*args, **kwargs):
        opened.append(build_train_loader(*args, **kwargs))
        return opened[-1]

    yield build
    for loader in opened:
        loader.close()
