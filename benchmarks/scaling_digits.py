"""Scaling of the digits CNN: one device against two, on each engine, in one command.

    python benchmarks/scaling_digits.py [--epochs N] [--experiment NAME]

Trains the same experiment (no compression or export) with the same global
batch, seed and data five ways, each in its own process (a device layout is set
once per process): TensorFlow on one device, MirroredStrategy over 2 devices
(`runtime.cpu_devices=2` without GPUs), a 2-worker MultiWorkerMirroredStrategy
job through `launch`, and JAX on one device and DataParallel over 2. Prints
images/s (median of the epochs after the first), the ratio to the same
engine's single device, per-replica throughput and test accuracy, then one
line of JSON. On GPUs drop nothing: `runtime.cpu_devices` is ignored there.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

VARIANTS = [  # (name, engine, launch workers, environment, overrides)
    ("tensorflow, 1 device", "tensorflow", 0, {}, ["runtime.strategy=none"]),
    ("tensorflow mirrored, 2 devices", "tensorflow", 0, {},
     ["runtime.strategy=mirrored", "runtime.cpu_devices=2"]),
    ("tensorflow multi_worker, 2 workers", "tensorflow", 2, {}, []),
    ("jax, 1 device", "jax", 0, {"KERAS_BACKEND": "jax"}, ["runtime.strategy=none"]),
    ("jax data_parallel, 2 devices", "jax", 0, {"KERAS_BACKEND": "jax"},
     ["runtime.strategy=data_parallel", "runtime.cpu_devices=2"]),
]


def train(run_dir, experiment, epochs, workers, env, overrides):
    sets = [a for o in [f"train.epochs={epochs}", "compress.methods=[]", "export.formats=[]",
                        *overrides] for a in ("--set", o)]
    command = ["train", experiment, "--run-dir", run_dir, *sets, "--quiet"]
    if workers:
        command = ["launch", "--workers", str(workers), "--", *command]
    result = subprocess.run([sys.executable, "-m", "tfsuite.run", *command],
                            env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}"
                         f"{result.stderr[-2000:]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--experiment", default="digits")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfsuite-scaling-")
    rows, single = [], {}
    for index, (name, engine, workers, env, overrides) in enumerate(VARIANTS):
        summary = train(os.path.join(work, str(index)), args.experiment, args.epochs,
                        workers, env, overrides)
        scaling = summary["scaling"]
        rate = scaling["images_per_second"]
        single.setdefault(engine, rate)
        rows.append({"variant": name, "strategy": scaling["strategy"],
                     "replicas": scaling["num_replicas"],
                     "per_replica_batch": scaling["per_replica_batch_size"],
                     "images_per_second": rate, "ratio": round(rate / single[engine], 2),
                     "per_replica": scaling["images_per_second_per_replica"],
                     "test_accuracy": round(summary["metrics"]["test_accuracy"], 4)})
    print(f"{args.experiment}, {args.epochs} epochs, global batch "
          f"{rows[0]['per_replica_batch']}, on {platform.processor() or platform.machine()} "
          f"({os.cpu_count()} cores)")
    print(f"{'variant':<36}{'replicas x batch':>17}{'img/s':>8}{'vs 1':>7}"
          f"{'per replica':>13}{'test acc':>10}")
    for row in rows:
        print(f"{row['variant']:<36}{row['replicas']:>8} x {row['per_replica_batch']:<6}"
              f"{row['images_per_second']:>8.0f}{row['ratio']:>6.2f}x"
              f"{row['per_replica']:>13.0f}{row['test_accuracy']:>10.2%}")
    print(json.dumps({"benchmark": "scaling_digits", "epochs": args.epochs, "rows": rows}))


if __name__ == "__main__":
    main()
