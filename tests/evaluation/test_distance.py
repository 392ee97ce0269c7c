import numpy as np
import pytest

from allinone.evaluation.distance import GEMM_ENGINES, InnerProducts, resolve_engine

ENGINES = ("dygraph", "inference")


@pytest.mark.parametrize("engine", ENGINES)
def test_inner_products_match_float64_numpy_to_float32_rounding(engine):
    rng = np.random.RandomState(0)
    gallery = rng.randn(300, 64).astype(np.float32)
    query = rng.randn(17, 64).astype(np.float32)
    products = InnerProducts(gallery, engine)
    expected = query.astype(np.float64) @ gallery.T.astype(np.float64)
    for block in (query, query[:1], query[5:]):
        got = products(block)
        assert got.dtype == np.float32 and got.shape == (len(block), 300)
    np.testing.assert_allclose(products(query), expected, rtol=0, atol=1e-5)


def test_both_engines_agree_and_auto_is_inference_on_the_cpu():
    rng = np.random.RandomState(1)
    gallery = rng.randn(200, 32).astype(np.float32)
    query = rng.randn(9, 32).astype(np.float32)
    np.testing.assert_allclose(InnerProducts(gallery, "dygraph")(query), InnerProducts(gallery, "inference")(query),
                               rtol=0, atol=1e-5)
    assert resolve_engine("auto") == "inference"


def test_the_gallery_is_shared_not_copied():
    # the CPU engines read the caller's array in place: a large gallery is never duplicated in host memory
    gallery = np.zeros((4, 8), np.float32)
    products = InnerProducts(gallery, "inference")
    gallery[2, 0] = 1.0
    np.testing.assert_array_equal(products(np.eye(1, 8, dtype=np.float32))[0], [0, 0, 1, 0])


def test_empty_query_or_gallery_gives_an_empty_block():
    assert InnerProducts(np.zeros((0, 8), np.float32))(np.ones((3, 8), np.float32)).shape == (3, 0)
    assert InnerProducts(np.ones((5, 8), np.float32))(np.ones((0, 8), np.float32)).shape == (0, 5)


def test_wrong_shapes_and_engine_names_are_errors():
    products = InnerProducts(np.ones((5, 8), np.float32))
    with pytest.raises(ValueError, match=r"\[n, 8\]"):
        products(np.ones((2, 7), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        InnerProducts(np.ones(8, np.float32))
    with pytest.raises(ValueError, match="engine"):
        InnerProducts(np.ones((5, 8), np.float32), engine="numpy")
    assert set(ENGINES) < set(GEMM_ENGINES)
