import os
import shutil

import pytest

from allinone.data.mini import make_mini_datasets


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    """The miniature tree of every layout, generated once per test session (read-only for tests)."""
    return make_mini_datasets(str(tmp_path_factory.mktemp("mini_datasets")))


@pytest.fixture
def copy_of(mini_root, tmp_path):
    """copy_of('folder', ...) -> a fresh root holding copies of those folders of the mini tree, free to break."""

    def copy(*folders):
        for folder in folders:
            shutil.copytree(os.path.join(mini_root, folder), os.path.join(tmp_path, folder))
        return str(tmp_path)

    return copy
