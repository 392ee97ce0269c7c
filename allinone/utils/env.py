"""Process set-up shared by every entry point: CPU threads, seeds, device, distributed rank.

Paddle on CPU runs one thread unless told otherwise, and importing Paddle drops faiss to one thread: call
`configure_threads()` before importing paddle (entry points: `import_paddle()`) and `configure_faiss_threads()` after
it.
"""
import os
import random
import sys

from ..config import ConfigError

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_num_threads():
    """CPU threads per process: all cores shared between the processes of a local multi-process launch."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_procs = int(os.environ.get("PADDLE_LOCAL_SIZE", os.environ.get("PADDLE_TRAINERS_NUM", "1")) or 1)
    return max(1, cores // max(1, local_procs))


def configure_threads(num_threads=None):
    """Set the OpenMP/MKL thread count for this process (before paddle is imported). Keeps a user's explicit
    OMP_NUM_THREADS unless `num_threads` is given. Returns the count in force."""
    if num_threads is None:
        num_threads = os.environ.get("OMP_NUM_THREADS") or default_num_threads()
        where = "OMP_NUM_THREADS"
    else:
        where = "Global.num_threads"
    try:
        valid = not isinstance(num_threads, bool) and int(num_threads) == float(num_threads) and int(num_threads) >= 1
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ConfigError(f"{where} must be an integer >= 1 (CPU threads per process), got {num_threads!r}")
    num_threads = int(num_threads)
    for var in THREAD_VARS:
        os.environ[var] = str(num_threads)
    if "paddle" not in sys.modules:  # MKL reads it as Paddle loads it; later it would only flip a running process
        configure_mkl_kernels()
    return num_threads


PADDLE_THREAD_BANNER = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY.")


class _WithoutThreadBanner:
    """A stand-in for sys.stderr while paddle is imported: passes every write on except the banner's two lines.
    A logging handler that paddle creates meanwhile keeps this object, so it must go on forwarding afterwards."""

    def __init__(self, stream):
        self._stream, self._dropped = stream, False

    def write(self, text):
        if text.startswith(PADDLE_THREAD_BANNER):
            self._dropped = True  # print() writes its newline next
            return len(text)
        if self._dropped and text == "\n":
            self._dropped = False
            return len(text)
        self._dropped = False
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def import_paddle():
    """Import paddle (after `configure_threads`) without its start-up banner: with more than one thread Paddle prints
    "WARNING: OMP_NUM_THREADS set to N, not 1 ... PLEASE USE OMP_NUM_THREADS WISELY", but the count is the project's
    deliberate choice (docs/cli.md). Everything else Paddle writes to stderr is passed on."""
    if "paddle" in sys.modules:
        return sys.modules["paddle"]
    stderr = sys.stderr
    sys.stderr = _WithoutThreadBanner(stderr)
    try:
        import paddle
    finally:
        sys.stderr = stderr
    return paddle


def configure_mkl_kernels(cpuinfo="/proc/cpuinfo"):
    """On an AMD CPU with AVX2, set MKL_DEBUG_CPU_TYPE=5 (before paddle is imported) unless the user set it.

    Paddle's dygraph CPU matmul calls the MKL bundled with Paddle (2019), which runs a generic SSE path on non-Intel
    CPUs; this variable makes it take its AVX2 kernels (about 2x the dygraph ViT forward on the project's AMD EPYC,
    bench/RESULTS.md). It is never set on Intel CPUs (where MKL picks its kernels itself and forcing AVX2 costs
    speed on AVX-512 parts) nor on CPUs without AVX2. Returns the value in force (None when unset)."""
    if "MKL_DEBUG_CPU_TYPE" not in os.environ and amd_with_avx2(cpuinfo):
        os.environ["MKL_DEBUG_CPU_TYPE"] = "5"
    return os.environ.get("MKL_DEBUG_CPU_TYPE")


def amd_with_avx2(cpuinfo="/proc/cpuinfo"):
    """True when the first processor listed in `cpuinfo` is AuthenticAMD and has the avx2 flag (False when the
    file cannot be read, e.g. not Linux)."""
    vendor, flags = None, None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and vendor is None:
                    vendor = value.strip()
                elif key == "flags" and flags is None:
                    flags = value.split()
                if vendor is not None and flags is not None:
                    break
    except OSError:
        return False
    return vendor == "AuthenticAMD" and "avx2" in (flags or ())


def configure_faiss_threads(num_threads=None):
    """faiss keeps its own OpenMP pool, which importing paddle shrinks to one thread: set it back."""
    import faiss

    faiss.omp_set_num_threads(int(num_threads or os.environ.get("OMP_NUM_THREADS") or default_num_threads()))


def seed_everything(seed, rank=0):
    """Seed python, numpy and paddle in one place; ranks get distinct but reproducible streams."""
    import numpy as np
    import paddle

    seed = int(seed) + int(rank)
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    paddle.seed(seed)
    return seed


def get_rank():
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def get_world_size():
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def resolve_device(device="auto"):
    """'auto' -> 'gpu' when Paddle was built with CUDA and sees a GPU, else 'cpu'. Sets paddle's device."""
    import paddle

    if device in (None, "auto"):
        device = "gpu" if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0 else "cpu"
    if not isinstance(device, str) or device not in ("cpu", "gpu") and not device.startswith("gpu:"):
        raise ConfigError(f"device must be cpu, gpu or auto, got {device!r}")
    if device.startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise ConfigError(f"device '{device}' requested but this Paddle build has no CUDA: use --device cpu (or "
                          f"Global.device: cpu), or install paddlepaddle-gpu")
    if device.startswith("gpu") and paddle.device.cuda.device_count() == 0:
        raise ConfigError(f"device '{device}' requested but no GPU is visible (CUDA_VISIBLE_DEVICES="
                          f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); use --device cpu")
    if device == "gpu" and get_world_size() > 1:
        device = f"gpu:{int(os.environ.get('FLAGS_selected_gpus', os.environ.get('PADDLE_LOCAL_RANK', 0)))}"
    paddle.set_device(device)
    return device
