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
