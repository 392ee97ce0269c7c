import pytest


@pytest.fixture(scope="session")
def oneforall_root(tmp_path_factory):
    """The miniature tree plus the OneForAll recipe's training sets (tools/mini_datasets.py), made once per
    session; read-only for tests."""
    from mini_datasets import make_mini_datasets, make_oneforall_datasets

    root = str(tmp_path_factory.mktemp("oneforall_mini"))
    make_mini_datasets(root)
    return make_oneforall_datasets(root)
