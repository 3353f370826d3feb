"""Compression of the digits CNN: every method against the same model, in one process.

    python benchmarks/compression_digits.py [--run-dir RUN_DIR]

Without --run-dir it trains the default `digits` experiment (30 epochs, no
compression or export) into a temporary folder first. It then runs prune,
quantize (int8), low_rank and distill with their default settings, prints a
table, times the float32 and int8 `.tflite` files side by side at batch sizes
1, 32 and 256 (alternating, median of 100 calls each), and ends with one line
of JSON.
"""

import argparse
import json
import os
import platform
import tempfile

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a finished digits run (default: train one)")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tfsuite
    from tfsuite.compression.measure import test_arrays
    from tfsuite.export.litert import LiteRTRunner
    from tfsuite.export.verify import latency_ms
    from tfsuite.task import get_task

    run_dir = args.run_dir
    if run_dir is None:
        run_dir = os.path.join(tempfile.mkdtemp(prefix="tfsuite-bench-"), "digits")
        tfsuite.train("digits", overrides={"export.formats": [], "compress.methods": []},
                      run_dir=run_dir, quiet=True)
    run = tfsuite.load_run(run_dir)
    config = run.config
    reports = {method: run.compress(method, quiet=True)
               for method in ("prune", "quantize", "low_rank", "distill")}
    print(f"{'method':<10}{'baseline':>10}{'compressed':>12}{'drop (pt)':>11}"
          f"{'non-zero':>10}{'size':>8}{'latency':>9}")
    for method, report in reports.items():
        ratios = report["ratios"]
        print(f"{method:<10}{report['baseline']['test_accuracy']:>10.2%}"
              f"{report['compressed']['test_accuracy']:>12.2%}"
              f"{ratios['accuracy_drop_points']:>11.2f}{ratios['nonzero_params']:>9.2f}x"
              f"{ratios['size']:>7.2f}x{ratios['latency']:>8.2f}x")
    folder = reports["quantize"]["path"]
    float32 = LiteRTRunner(os.path.join(folder, "baseline_float32.tflite"))
    int8 = LiteRTRunner(os.path.join(folder, "model.tflite"))
    images, _ = test_arrays(get_task(config).build_inputs(augment=False))
    timings = {}
    print(f"\nLiteRT on {platform.processor() or platform.machine()}: ms per call")
    print(f"{'batch':>6}{'float32':>10}{'int8':>10}{'int8/float32':>14}")
    for batch_size in (1, 32, 256):
        batch = np.resize(images, (batch_size, *images.shape[1:]))
        f32, i8 = (latency_ms(runner, batch, repeats=100, warmup=10) for runner in (float32, int8))
        timings[batch_size] = {"float32_ms": round(f32, 3), "int8_ms": round(i8, 3),
                               "ratio": round(i8 / f32, 3)}
        print(f"{batch_size:>6}{f32:>10.3f}{i8:>10.3f}{i8 / f32:>14.2f}")
    file_ratio = (reports["quantize"]["compressed"]["file_bytes"]
                  / reports["quantize"]["baseline"]["file_bytes"])
    print(json.dumps({"run_dir": run_dir, "int8_file_ratio": round(file_ratio, 4),
                      "int8_latency": timings,
                      **{m: {"accuracy_drop_points": r["ratios"]["accuracy_drop_points"],
                             "size_ratio": r["ratios"]["size"],
                             "nonzero_ratio": r["ratios"]["nonzero_params"]}
                         for m, r in reports.items()}}))


if __name__ == "__main__":
    main()
