"""Images/s of decode + evaluation transform (PIL bicubic to 384x384, normalise) through `build_test_loader` at
batch 8, with 0, 2 and 4 loader workers, as ratios to the 0-worker loader measured in the same run; plus the
per-core rate of the training augmentation (AutoAugment, pad + crop, flip, random erasing) at 256x256.

Three test loaders per worker count (the baseline is the first with 0 workers):
  float32  the transform run whole in the dataset: float32 images leave the workers (the loader before uint8);
  default  `build_test_transform` as is: the dataset yields uint8, the loader normalises each batch after it
           arrives (here on the CPU, in the main process);
  uint8    the uint8 batches as they leave the loader, what a GPU receives (the normalise then runs on the device).

    python bench/data_loading.py           # 320 JPEGs of mixed sizes, best of 3 passes: about a minute
    python bench/data_loading.py --full    # 800 JPEGs
    python bench/data_loading.py --guards  # only the cost of the error guards (seconds)

The error guards (`allinone/data/load_errors.py`: every loader catches exceptions of its sampler, dataset and
collate) are measured where they weigh most: tiny in-memory samples (no decoding), batch 256, the guarded loader
against a plain `paddle.io.DataLoader` over the same dataset and collate, as a ratio of samples per CPU second.

The target: decoding must not starve the model at batch 8 of 384x384. For scale, ViT-L/16 at 384 runs at about
300 img/s on an RTX 4090 in AMP at large batch, far less in fp32 at batch 8.
"""
import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.utils.env import configure_threads  # noqa: E402

# (height, width) of typical test images: person crops, aligned faces, vehicles, product photos
SIZES = ((128, 64), (112, 112), (256, 256), (480, 480))


def write_images(folder, count):
    """`count` JPEGs cycling through SIZES, with a pattern and noise so they compress like photographs."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    paths = []
    for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        ys, xs = np.mgrid[0:height, 0:width]
        base = np.stack([np.sin(xs / (5 + i % 7)), np.cos(ys / (3 + i % 5)), np.sin((xs + ys) / 11)], -1)
        pixels = np.clip(127 + 90 * base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        paths.append(os.path.join(folder, f"{i:05d}.jpg"))
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


def test_transforms():
    """The three transforms compared (see the module doc), by name."""
    import paddle.vision.transforms as T

    from allinone.data import build_test_transform

    default = build_test_transform((384, 384))
    return {"float32": T.Compose([default]),  # not a TestTransform: the loader cannot split it
            "default": default, "uint8": default.to_uint8}


def loader_rate(paths, transform, num_workers, batch_size=8):
    """Images/s over one pass, timed from the first batch on (worker start-up excluded)."""
    from allinone.data import build_test_loader

    batches = iter(build_test_loader(paths, transform, batch_size, num_workers))
    next(batches)
    start, seen = time.perf_counter(), 0
    for batch in batches:
        seen += len(batch["index"])
    return seen / (time.perf_counter() - start)


class TinySamples:
    """In-memory samples of a 3x16x16 float32 image and an index: loading costs nothing but the loader itself."""

    def __init__(self, count):
        import numpy as np

        self.images = np.random.RandomState(0).rand(count, 3, 16, 16).astype("float32")

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return {"images": self.images[index], "index": index}


def guard_rates(repeats, count=65536, batch_size=256):
    """Samples per CPU second (this process, all threads) of the plain and the guarded loader over TinySamples at
    0 workers, best of interleaved passes."""
    import paddle

    from allinone.data import collate
    from allinone.data.load_errors import guarded_loader

    dataset = TinySamples(count)

    def batches():
        return paddle.io.BatchSampler(range(count), batch_size=batch_size)

    loaders = {"plain": lambda: paddle.io.DataLoader(dataset, batch_sampler=batches(), collate_fn=collate),
               "guarded": lambda: guarded_loader(dataset, batches(), collate, "bench")}
    best = {}
    for _ in range(repeats):
        for name, make in loaders.items():
            start = time.process_time()  # CPU time of all threads: less moved by other jobs than the clock
            seen = sum(len(batch["index"]) for batch in make())
            best[name] = max(best.get(name, 0.0), seen / (time.process_time() - start))
    return best


def train_transform_rate(paths):
    """Images/s of read_image + the full training augmentation, in this process."""
    from allinone.data import build_train_transform, read_image

    augment = build_train_transform({"size": [256, 256], "autoaug_prob": 0.5, "erasing_prob": 0.5,
                                     "mean": [127.5] * 3, "std": [127.5] * 3})
    start = time.perf_counter()
    for path in paths:
        augment(read_image(path))
    return len(paths) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="800 images instead of 320")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all loaders; the best pass of each counts")
    parser.add_argument("--guards", action="store_true", help="only the cost of the error guards")
    args = parser.parse_args(argv)
    threads = configure_threads(1)  # one thread per process: the workers are the parallelism being measured
    rates = guard_rates(max(args.repeats, 7))
    print(f"error guards, tiny samples, batch 256, 0 workers: plain {rates['plain']:8.0f} samples/CPU s, guarded "
          f"{rates['guarded']:8.0f} samples/CPU s ({rates['guarded'] / rates['plain']:.3f}x plain)")
    if args.guards:
        return 0
    count = 800 if args.full else 320
    print(f"{platform.node()} {os.cpu_count()} CPUs, {threads} thread(s) per process; {count} JPEGs of "
          f"{', '.join(f'{h}x{w}' for h, w in SIZES)}; batch 8 of 3x384x384; best of {args.repeats} passes")
    with tempfile.TemporaryDirectory() as folder:
        paths = write_images(folder, count)
        # rounds over every loader, best pass of each: other jobs on the cores only ever slow a pass down, and
        # interleaving spreads their load over all loaders alike
        loaders = [(workers, name, transform) for workers in (0, 2, 4) for name, transform in test_transforms().items()]
        best = {}
        for _ in range(args.repeats):
            for workers, name, transform in loaders:
                best[workers, name] = max(best.get((workers, name), 0.0), loader_rate(paths, transform, workers))
        baseline = best[0, "float32"]
        for (workers, name), rate in best.items():
            print(f"test loader, {workers} workers, {name:7s}: {rate:7.1f} img/s  ({rate / baseline:.2f}x float32 with "
                  f"0 workers)")
        print(f"train augmentation at 256x256, one process: {train_transform_rate(paths):7.1f} img/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
