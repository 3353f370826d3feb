"""What each of tfsuite's GPU speed-ups is worth on ResNet-50, by undoing it.

    python benchmarks/gpu_step_ablation.py [--variants tfsuite sync_nan_check ...]
        [--batch-size 256] [--steps 60] [--epochs 3] [--image-size 224]

Each variant trains the `resnet50` experiment through tfsuite's own `Trainer` in this
process (JAX, mixed_bfloat16, synthetic data kept on the device, no augmentation), with
one thing changed, and reports the median per-epoch images/s after the first epoch
(which compiles):

- `tfsuite`: the step as `train resnet50` runs it;
- `sync_nan_check`: the batch-end logs read right after each step is dispatched, as
  Keras does (so the GPU idles while the host prepares the next step), instead of one
  step late (`OneStepLateBatchEnd`);
- `two_pass_bn`: Keras' batch-norm statistics (the mean, then the variance) instead of
  one pass (`tfsuite.models.batch_norm.use_one_pass_statistics`);
- `conv_bias`: keras.applications' bias on every convolution, each before a batch norm
  (`without_biases_before_batch_norm` undone);
- `keras`: all three undone, the step as plain Keras runs it;
- `no_top5`: without the top-5 accuracy metric;
- `steps8`: `train.steps_per_execution=8`.

Prints a table, then one line of JSON. The variants patch tfsuite in this process only.
"""

import argparse
import json
import statistics
import tempfile
import time

UNDO = {"keras": {"sync_nan_check", "two_pass_bn", "conv_bias"}}
NAMES = ["tfsuite", "sync_nan_check", "two_pass_bn", "conv_bias", "keras", "no_top5", "steps8"]


def train_variant(name, config, data, runtime_config):
    """Images/s of one variant: median per-epoch rate after the first epoch."""
    import keras

    from tfsuite.config import with_overrides
    from tfsuite.models import vision
    from tfsuite.task import get_task
    from tfsuite.training import trainer as trainer_module
    from tfsuite.training.runtime import setup_runtime

    undo = UNDO.get(name, {name})
    saved = (trainer_module.OneStepLateBatchEnd, vision.use_one_pass_statistics,
             vision.without_biases_before_batch_norm)
    if "sync_nan_check" in undo:
        trainer_module.OneStepLateBatchEnd = keras.callbacks.CallbackList
    if "two_pass_bn" in undo:
        vision.use_one_pass_statistics = lambda model: model
    if "conv_bias" in undo:
        vision.without_biases_before_batch_norm = lambda model: model
    if name == "steps8":
        config = with_overrides(config, ["train.steps_per_execution=8"])
    task = get_task(config)
    if name == "no_top5":
        task.metrics = lambda num_classes: [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            started = time.perf_counter()
            trainer = trainer_module.Trainer(config, run_dir, setup_runtime(runtime_config),
                                             quiet=True)
            trainer.fit(task, data)
            wall = time.perf_counter() - started
    finally:
        (trainer_module.OneStepLateBatchEnd, vision.use_one_pass_statistics,
         vision.without_biases_before_batch_norm) = saved
    rates = trainer.info()["epoch_images_per_second"]
    return statistics.median(rates[1:]), rates, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=NAMES, choices=NAMES)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first compiles)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--precision", default="mixed_bfloat16")
    args = parser.parse_args()

    from tfsuite.config import load_config
    from tfsuite.training.runtime import select_backend, setup_runtime

    train, test = args.steps * args.batch_size, args.batch_size
    config = load_config("resnet50", overrides=[
        "data.source=synthetic", "data.num_classes=1000", f"data.num_examples={train + test}",
        "data.validation_split=0", f"data.test_split={(test + 0.4) / (train + test)}",
        f"data.image_size=[{args.image_size},{args.image_size}]",
        "data.augment.rotation_range=0", "data.augment.width_shift_range=0",
        "data.augment.height_shift_range=0", "data.augment.zoom_range=0",
        "data.augment.horizontal_flip=false", "data.on_device=true",
        f"train.batch_size={args.batch_size}", f"train.epochs={args.epochs}",
        f"runtime.precision={args.precision}", "runtime.backend=jax"])
    select_backend(config.runtime)
    import jax

    from tfsuite.task import get_task

    setup_runtime(config.runtime)
    data = get_task(config).build_inputs()
    device = jax.devices()[0]
    print(f"{device.device_kind}: batch {args.batch_size}, {args.steps} steps x "
          f"{args.epochs} epochs per variant", flush=True)
    rows = []
    for name in args.variants:
        rate, rates, wall = train_variant(name, config, data, config.runtime)
        rows.append((name, rate, rates, wall))
        print(f"{name}: {rate:.0f} images/s; epochs " + " ".join(f"{r:.0f}" for r in rates),
              flush=True)
    base = next((r for n, r, _, _ in rows if n == "tfsuite"), rows[0][1])
    print("\n| variant | images/s | ms per step | vs tfsuite | wall s |\n|---|---|---|---|---|")
    for name, rate, _, wall in rows:
        print(f"| {name} | {rate:,.0f} | {1000 * args.batch_size / rate:.1f} | "
              f"{rate / base:.3f}x | {wall:.0f} |")
    print(json.dumps({"device": device.device_kind, "batch_size": args.batch_size,
                      **{n: round(r, 1) for n, r, _, _ in rows}}))


if __name__ == "__main__":
    main()
