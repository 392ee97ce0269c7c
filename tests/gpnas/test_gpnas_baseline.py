"""The baseline is PaddleSlim's GPNAS with the notebook's procedure: its predictions equal direct library calls."""
import importlib.util
import os
import warnings

import numpy as np
import pytest

from oneforall.gpnas import PaddleSlimGPNAS, encode, paddleslim_gpnas_class, read_ranking_json


@pytest.fixture(scope="module")
def small_task(benchmark):
    """convert_x features and market1501 ranks: 60 training rows, 40 rows to predict."""
    train = read_ranking_json(benchmark["train"])
    x, y = encode(train.codes, "convert_x"), train.ranks[:, 1].astype(float)
    return x[:60], y[:60], x[60:100]


def direct_paddleslim(x_train, y_train):
    """The competition notebook's calls, one by one (np.matrix warnings silenced by the caller)."""
    gpnas = paddleslim_gpnas_class()(2, 2)
    gpnas.get_initial_mean(x_train[0::2], y_train[0::2])
    gpnas.get_initial_cov(x_train)
    gpnas.get_posterior_mean(x_train[1::2], y_train[1::2])
    return gpnas


def test_gpnas_class_is_the_installed_paddleslim_file():
    package_dir = importlib.util.find_spec("paddleslim").submodule_search_locations[0]
    source = paddleslim_gpnas_class().get_predict_jiont.__code__.co_filename
    assert source == os.path.join(package_dir, "nas", "gp_nas.py")


def test_fast_mode_equals_paddleslim_get_predict(small_task):
    x_train, y_train, x_test = small_task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        expected = np.asarray(direct_paddleslim(x_train, y_train).get_predict(x_test)).ravel()
    ours = PaddleSlimGPNAS(mode="fast").fit(x_train, y_train).predict(x_test)
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-9 * np.abs(expected).max())
    library_path = PaddleSlimGPNAS(mode="fast", backend="paddleslim").fit(x_train, y_train).predict(x_test)
    np.testing.assert_array_equal(library_path, expected)


def test_slow_mode_vectorised_equals_paddleslim_get_predict_jiont(small_task):
    x_train, y_train, x_test = small_task
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        expected = np.asarray(direct_paddleslim(x_train, y_train).get_predict_jiont(x_test, x_train, y_train)).ravel()
    ours = PaddleSlimGPNAS(mode="slow").fit(x_train, y_train).predict(x_test)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-6 * np.abs(expected).max())


def test_slow_mode_through_paddleslim_loops_gives_the_same_predictions(small_task):
    x_train, y_train, x_test = small_task
    loops = PaddleSlimGPNAS(mode="slow", backend="paddleslim").fit(x_train, y_train).predict(x_test)
    vectorised = PaddleSlimGPNAS(mode="slow").fit(x_train, y_train).predict(x_test)
    np.testing.assert_allclose(vectorised, loops, rtol=1e-9, atol=1e-6 * np.abs(loops).max())


def test_slow_mode_interpolates_its_training_ranks(small_task):
    x_train, y_train, _ = small_task
    np.testing.assert_allclose(PaddleSlimGPNAS(mode="slow").fit(x_train, y_train).predict(x_train), y_train,
                               atol=1e-2)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode must be 'fast' or 'slow'"):
        PaddleSlimGPNAS(mode="medium").fit(np.zeros((4, 3)), np.arange(4.0))
