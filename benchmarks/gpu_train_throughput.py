"""ResNet-50 training throughput on a GPU: tfsuite's trainer against PyTorch.

    python benchmarks/gpu_train_throughput.py [--parts torch tfsuite] [--batch-size 256]
        [--variants default host_fed steps8] [--devices 1|2] [--json FILE]

One run, side by side, 224x224 synthetic images, bf16, the same batch size:

- tfsuite: `python -m tfsuite.run train resnet50` on JAX with
  `runtime.precision=mixed_bfloat16` and `data.source=synthetic` (1,000 classes,
  no augmentation, no validation split), as a user runs it. Its figure is the
  median of the per-epoch rates after the first epoch (which compiles), read
  from the run's summary.json. Variants add `--set` overrides (VARIANTS below).
- PyTorch: torchvision's ResNet-50, channels_last, autocast bf16, SGD Nesterov
  with weight decay and label smoothing, eager and under `torch.compile`,
  on random device tensors. Warm-up steps are excluded; the figure is the
  median of repeated timed blocks (CUDA-synchronized).

Model FLOPs utilization takes 24.5 GFLOP per training image (forward and
backward) over the bf16 matrix rate measured here (8192^3 products). With
`--devices 2`, tfsuite also runs `runtime.strategy=data_parallel` on both GPUs
with twice the batch against one GPU, and the scaling efficiency is printed.
Prints a table, then one line of JSON. Bars (issue 9): tfsuite >= 1.1x
`torch.compile` on one GPU; >= 1.9x on two GPUs against one.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

FLOP_PER_IMAGE = 24.5e9  # ResNet-50 training, 224x224: ~3 x 4.1 GMAC forward x 2
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_AUGMENTATION = ["data.augment.rotation_range=0", "data.augment.width_shift_range=0",
                   "data.augment.height_shift_range=0", "data.augment.zoom_range=0",
                   "data.augment.horizontal_flip=false"]
VARIANTS = {  # name: (extra --set overrides, extra environment) for the tfsuite run
    "default": ([], {}),
    "host_fed": (["data.on_device=false"], {}),  # batches copied from host memory every step
    "steps8": (["train.steps_per_execution=8"], {}),
    "latency_hiding": ([], {"XLA_FLAGS": "--xla_gpu_enable_latency_hiding_scheduler=true"}),
}


def matmul_tflops():
    """The bf16 matrix rate of this GPU: 8192^3 products, mean of 10 after 3 warm-ups."""
    import torch

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * 10 / (time.perf_counter() - started) / 1e12


def torch_images_per_second(batch_size, compiled, warmup, blocks, steps):
    import torch
    import torchvision

    torch.backends.cudnn.benchmark = True
    model = torchvision.models.resnet50(num_classes=1000).cuda().to(
        memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    images = torch.randn(batch_size, 3, 224, 224, device="cuda").to(
        memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (batch_size,), device="cuda")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()

    if compiled:
        step = torch.compile(step)
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    warmup_seconds = time.perf_counter() - started
    rates = []
    for _ in range(blocks):
        started = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        rates.append(batch_size * steps / (time.perf_counter() - started))
    return statistics.median(rates), rates, warmup_seconds


def tfsuite_images_per_second(batch_size, steps, epochs, overrides, env=None):
    """Runs the CLI; returns (median images/s after epoch 1, per-epoch rates, wall s)."""
    with tempfile.TemporaryDirectory() as work:
        train = steps * batch_size
        test = batch_size
        command = [sys.executable, "-m", "tfsuite.run", "train", "resnet50", "--run-dir",
                   os.path.join(work, "run"), "--quiet",
                   "--set", "data.source=synthetic", "--set", "data.num_classes=1000",
                   "--set", f"data.num_examples={train + test}",
                   "--set", "data.validation_split=0",
                   "--set", f"data.test_split={(test + 0.4) / (train + test)}",
                   "--set", f"train.batch_size={batch_size}", "--set", f"train.epochs={epochs}",
                   "--set", "runtime.precision=mixed_bfloat16",
                   *[a for o in NO_AUGMENTATION + list(overrides) for a in ("--set", o)]]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=work,
                                env={**os.environ, "KERAS_BACKEND": "jax",
                                     "PYTHONPATH": REPO + os.pathsep + os.environ.get(
                                         "PYTHONPATH", ""), **(env or {})})
        wall = time.perf_counter() - started
        if result.returncode:
            raise RuntimeError(f"tfsuite failed ({' '.join(overrides)}):\n"
                               f"{result.stdout[-2000:]}{result.stderr[-4000:]}")
        with open(os.path.join(work, "run", "summary.json")) as f:
            summary = json.load(f)
    rates = summary["epoch_images_per_second"]
    return statistics.median(rates[1:]), rates, wall, summary["runtime"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["torch", "tfsuite"],
                        choices=["torch", "tfsuite"])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="tfsuite steps per epoch")
    parser.add_argument("--epochs", type=int, default=5, help="tfsuite epochs (first: warm-up)")
    parser.add_argument("--torch-blocks", type=int, default=5)
    parser.add_argument("--torch-steps", type=int, default=30)
    parser.add_argument("--devices", type=int, default=1, choices=[1, 2])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.get_device_name(0)
    peak = matmul_tflops()
    rows, results = [], {"gpu": gpu, "gpus": torch.cuda.device_count(),
                         "bf16_matmul_tflops": round(peak, 1), "batch_size": args.batch_size,
                         "python": platform.python_version(), "torch": torch.__version__}
    print(f"{gpu}: bf16 matrix rate {peak:.0f} TFLOP/s; batch {args.batch_size}", flush=True)
    if "torch" in args.parts:
        for name, compiled in (("pytorch eager", False), ("pytorch torch.compile", True)):
            rate, rates, warm = torch_images_per_second(
                args.batch_size, compiled, warmup=15 if compiled else 10,
                blocks=args.torch_blocks, steps=args.torch_steps)
            torch.cuda.empty_cache()  # the model is gone: leave the memory to JAX
            rows.append((name, rate, f"warm-up {warm:.0f} s; blocks "
                         + " ".join(f"{r:.0f}" for r in rates)))
            print(f"{name}: {rate:.0f} images/s; blocks " + " ".join(f"{r:.0f}" for r in rates),
                  flush=True)
    if "tfsuite" in args.parts:
        import jax

        results["jax"] = jax.__version__
        one_gpu = {"CUDA_VISIBLE_DEVICES": "0"} if args.devices == 2 else {}
        for variant in args.variants:
            overrides, env = VARIANTS[variant]
            try:
                rate, rates, wall, runtime = tfsuite_images_per_second(
                    args.batch_size, args.steps, args.epochs, overrides, env={**one_gpu, **env})
            except RuntimeError as e:  # one variant failing leaves the others' figures
                print(f"tfsuite {variant} failed: {e}", flush=True)
                continue
            rows.append((f"tfsuite jax {variant}", rate, f"{wall:.0f} s wall; epochs "
                         + " ".join(f"{r:.0f}" for r in rates)))
            print(f"tfsuite {variant}: {rate:.0f} images/s ({runtime['devices']}); epochs "
                  + " ".join(f"{r:.0f}" for r in rates), flush=True)
        if args.devices == 2:
            overrides, env = VARIANTS[args.variants[0]]
            rate, rates, wall, runtime = tfsuite_images_per_second(
                2 * args.batch_size, args.steps, args.epochs,
                overrides + ["runtime.strategy=data_parallel"], env=env)
            rows.append((f"tfsuite jax {args.variants[0]} data_parallel x2", rate,
                         f"batch {2 * args.batch_size}; {wall:.0f} s wall; epochs "
                         + " ".join(f"{r:.0f}" for r in rates)))
            print(f"tfsuite data_parallel: {rate:.0f} images/s ({runtime['devices']})")
    reference = next((r for n, r, _ in rows if n == "pytorch torch.compile"), None)
    print("\n| run | images/s | vs torch.compile | MFU | notes |\n|---|---|---|---|---|")
    for name, rate, notes in rows:
        ratio = f"{rate / reference:.2f}x" if reference else "-"
        gpus = 2 if "x2" in name else 1
        mfu = rate * FLOP_PER_IMAGE / (gpus * peak * 1e12)
        print(f"| {name} | {rate:,.0f} | {ratio} | {mfu:.1%} | {notes} |")
        results[name] = {"images_per_second": round(rate, 1), "mfu": round(mfu, 4),
                         "vs_torch_compile": round(rate / reference, 3) if reference else None}
    two = [r for n, r, _ in rows if "x2" in n]
    if two:
        one = next(r for n, r, _ in rows if n == f"tfsuite jax {args.variants[0]}")
        results["scaling_2_gpus"] = round(two[0] / one, 3)
        print(f"\n2 GPUs against 1: {two[0] / one:.2f}x (bar 1.9x)")
    print(json.dumps(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
