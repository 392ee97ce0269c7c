"""Inner products `query @ gallery.T` of feature blocks on Paddle's compute path, for the ranking evaluators.

The distance GEMM is most of the ranking time (MSMT17: 2 TFLOP). It runs in Paddle, never in NumPy's BLAS, whose
speed depends on whether that BLAS build recognises the CPU. Engines (`GEMM_ENGINES`):

* `dygraph`: `paddle.matmul` on Paddle's current device. The choice on a GPU (cuBLAS).
* `inference`: the same matmul as a Paddle Inference program with oneDNN (CPU only). Paddle's dygraph CPU matmul calls
  its bundled MKL, which takes a generic SSE path on non-Intel CPUs (about 48 GFLOP/s per core on an AVX-512 AMD EPYC,
  against about 200 for oneDNN, which picks its kernels from the CPU's instruction sets): see docs/evaluation.md.
* `auto` (default): `dygraph` when Paddle's device is a GPU, else `inference`.

The gallery is used as given (float32, C-contiguous; shared with Paddle without a copy on the CPU): callers normalise
the query block themselves and scale the columns, so a large gallery is never copied in host memory.
"""
import os
import tempfile
import warnings

import numpy as np

from ..utils.env import default_num_threads

GEMM_ENGINES = ("auto", "dygraph", "inference")
_PREDICTORS = {}  # (feature dim, threads) -> Paddle Inference predictor of `q @ g.T`, built once per process


def resolve_engine(engine="auto"):
    """'auto' -> 'dygraph' on a GPU device, 'inference' on the CPU; checks the name."""
    if engine not in GEMM_ENGINES:
        raise ValueError(f"distance engine must be one of {GEMM_ENGINES}, got {engine!r}")
    if engine != "auto":
        return engine
    import paddle

    return "dygraph" if paddle.device.get_device().startswith("gpu") else "inference"


def cpu_threads():
    return int(os.environ.get("OMP_NUM_THREADS") or default_num_threads())


def _zero_copy_tensor(array, name):
    """A CPU paddle Tensor sharing `array`'s memory (float32, C-contiguous); keep `array` alive while it is used."""
    import paddle

    return paddle.base.core.eager.Tensor(value=array, place=paddle.CPUPlace(), persistable=False, zero_copy=True,
                                         name=name, stop_gradient=True)


def _inner_product_predictor(dim, threads):
    """A Paddle Inference predictor computing matmul(q, g, transpose_y=True) for q [n, dim], g [m, dim] (oneDNN)."""
    key = (dim, threads)
    if key not in _PREDICTORS:
        import paddle
        from paddle import inference

        class InnerProduct(paddle.nn.Layer):
            def forward(self, query, gallery):
                return paddle.matmul(query, gallery, transpose_y=True)

        specs = [paddle.static.InputSpec([None, dim], "float32", "query"),
                 paddle.static.InputSpec([None, dim], "float32", "gallery")]
        with tempfile.TemporaryDirectory() as folder:
            prefix = os.path.join(folder, "inner_product")
            with warnings.catch_warnings():  # "no variable in your model": the program has no weights, by design
                warnings.simplefilter("ignore", UserWarning)
                paddle.jit.save(InnerProduct(), prefix, input_spec=specs)
            program = next(prefix + ext for ext in (".json", ".pdmodel") if os.path.exists(prefix + ext))
            config = inference.Config(program, prefix + ".pdiparams")
            config.disable_gpu()
            config.disable_glog_info()
            (config.enable_onednn if hasattr(config, "enable_onednn") else config.enable_mkldnn)()
            config.set_cpu_math_library_num_threads(threads)
            _PREDICTORS[key] = inference.create_predictor(config)
    return _PREDICTORS[key]


class InnerProducts:
    """`products(query)` = query @ gallery.T (float32 NumPy [rows, G], read-only) for a fixed gallery [G, D], on
    `engine`."""

    def __init__(self, gallery, engine="auto"):
        self.engine = resolve_engine(engine)
        self.gallery = np.ascontiguousarray(gallery, dtype=np.float32)
        if self.gallery.ndim != 2:
            raise ValueError(f"gallery features must be a 2-D array [N, D], got shape {self.gallery.shape}")
        if len(self.gallery) == 0:
            return
        import paddle

        if self.engine == "inference":
            self._predictor = _inner_product_predictor(self.gallery.shape[1], cpu_threads())
            self._gallery_tensor = _zero_copy_tensor(self.gallery, "gallery")
        elif paddle.device.get_device() == "cpu":
            self._gallery_tensor = _zero_copy_tensor(self.gallery, "gallery")
        else:
            self._gallery_tensor = paddle.to_tensor(self.gallery)

    def __call__(self, query, first_column=0):
        """query @ gallery[first_column:].T"""
        query = np.ascontiguousarray(query, dtype=np.float32)
        if query.ndim != 2 or query.shape[1] != self.gallery.shape[1]:
            raise ValueError(f"query features must be [n, {self.gallery.shape[1]}] like the gallery, "
                             f"got shape {query.shape}")
        if len(query) == 0 or len(self.gallery) <= first_column:
            return np.empty((len(query), max(0, len(self.gallery) - first_column)), dtype=np.float32)
        gallery = self._gallery_tensor
        if first_column:
            gallery = (gallery[first_column:] if gallery.place.is_gpu_place()
                       else _zero_copy_tensor(self.gallery[first_column:], "gallery_part"))
        if self.engine == "inference":
            product = self._predictor.run([_zero_copy_tensor(query, "query"), gallery])[0]
        else:
            import paddle

            product = paddle.matmul(paddle.to_tensor(query), gallery, transpose_y=True)
        if product.place.is_cpu_place():
            return np.from_dlpack(product)  # no copy, read-only: the array keeps the tensor's memory alive
        return product.numpy()
