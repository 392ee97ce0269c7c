"""CPU images/s of one task's feature extractor three ways: Paddle dygraph (`model.embed`), Paddle Inference (the
`paddle.jit.save`d files) and ONNX Runtime (paddle2onnx), measured in the same run on the same batch, with the
largest feature difference of each exported model against dygraph.

    python bench/deploy.py                 # tiny parity model (32x32) and ViT-B/16 at 224x224: ~2 min on 2 cores
    python bench/deploy.py --size 384      # ViT-B/16 at the evaluation size

Weights are random (the BN statistics drawn away from 0/1 so the neck is not the identity): speed and agreement do not
depend on them. Each runtime gets the same number of threads (--threads); timings alternate between the runtimes and
the best of --repeats is kept, so load on a shared machine hits all three alike.
"""
import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from allinone.utils.cli import quiet_third_party  # noqa: E402

quiet_third_party()

from allinone.utils.env import configure_threads  # noqa: E402
from random_models import random_eval_model  # noqa: E402  (bench/random_models.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def best_rates(runners, batch, timed, repeats):
    """Images/s of each runner: one warm-up call, then `repeats` alternating rounds of `timed` calls; best kept."""
    for run in runners.values():
        run()
    best = {name: 0.0 for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(timed):
                run()
            best[name] = max(best[name], batch * timed / (time.perf_counter() - start))
    return best


def bench(case, size, batch, timed, repeats, threads):
    import numpy as np
    import paddle
    import paddle.inference as inference

    from allinone.engine.export import export_onnx, export_task, onnx_session

    model = random_eval_model(None if case == "tiny" else "base", size)
    height, width = model.backbone.img_size
    images = np.random.RandomState(1).uniform(-1, 1, [batch, 3, height, width]).astype("float32")
    with tempfile.TemporaryDirectory() as folder:
        extractor, prefix = export_task(model, "task3", folder)
        start = time.perf_counter()
        onnx_path = export_onnx(prefix)
        convert_seconds = time.perf_counter() - start
        config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        config.disable_gpu()
        config.disable_glog_info()
        config.set_cpu_math_library_num_threads(threads)
        predictor = inference.create_predictor(config)
        input_handle = predictor.get_input_handle(predictor.get_input_names()[0])
        output_handle = predictor.get_output_handle(predictor.get_output_names()[0])
        session = onnx_session(onnx_path, threads)
        input_name = session.get_inputs()[0].name
        tensor = paddle.to_tensor(images)

        def dygraph():
            with paddle.no_grad():
                return extractor(tensor).numpy()

        def paddle_inference():
            input_handle.copy_from_cpu(images)
            predictor.run()
            return output_handle.copy_to_cpu()

        def onnx_runtime():
            return session.run(None, {input_name: images})[0]

        expected = dygraph()
        differences = {"Paddle Inference": float(np.abs(paddle_inference() - expected).max()),
                       "ONNX Runtime": float(np.abs(onnx_runtime() - expected).max())}
        rates = best_rates({"dygraph": dygraph, "Paddle Inference": paddle_inference, "ONNX Runtime": onnx_runtime},
                           batch, timed, repeats)
    return rates, differences, convert_seconds, float(np.abs(expected).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224, help="ViT-B input size (default 224)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configure_threads(args.threads)
    import paddle

    paddle.set_device("cpu")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads per "
          f"runtime, paddle {paddle.__version__}")
    print("| model (batch) | dygraph img/s | Paddle Inference img/s (x dygraph) | ONNX Runtime img/s (x dygraph) | "
          "max abs diff PI / ORT (max abs feature) | ONNX conversion s |")
    print("|---|---|---|---|---|---|")
    cases = [("tiny", 32, "tiny parity ViT, 32x32 (64)", 64, 20), ("base", args.size,
                                                                   f"ViT-B/16, {args.size}x{args.size} (4)", 4, 2)]
    for case, size, label, batch, timed in cases:
        rates, diffs, convert, scale = bench(case, size, batch, timed, args.repeats, args.threads)
        base = rates["dygraph"]
        print(f"| {label} | {base:.1f} | {rates['Paddle Inference']:.1f} (x{rates['Paddle Inference'] / base:.2f}) | "
              f"{rates['ONNX Runtime']:.1f} (x{rates['ONNX Runtime'] / base:.2f}) | "
              f"{diffs['Paddle Inference']:.2g} / {diffs['ONNX Runtime']:.2g} ({scale:.3g}) | {convert:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
