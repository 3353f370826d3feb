"""Where tfsuite's ResNet-50 training step spends its time on a GPU, by ablation.

    python benchmarks/gpu_step_ablation.py [--variants tfsuite no_top5 one_pass_bn]
        [--batch-size 256] [--steps 60] [--epochs 3] [--image-size 224]

Each variant trains the `resnet50` experiment through tfsuite's own `Trainer` in this
process (JAX, mixed_bfloat16, synthetic data kept on the device, no augmentation), with
one thing changed, and reports the median per-epoch images/s after the first epoch
(which compiles). Differences against `tfsuite` say what each part costs:

- `tfsuite`: the step as `train resnet50` runs it;
- `no_top5`: without the top-5 accuracy metric (a top-k over 1,000 classes per step);
- `one_pass_bn`: batch-norm statistics as the mean and the mean of squares in one pass
  over the activations (as Flax computes them), instead of Keras' mean then variance;
- `no_nan_check`: without the trainer's per-step NaN check, which reads the loss on the
  host after every step (so the host waits for the GPU before dispatching the next step);
- `all`: `no_nan_check`, `no_top5` and `one_pass_bn` together;
- `steps8`: `train.steps_per_execution=8`.

Prints a table, then one line of JSON. No variant changes tfsuite itself: they patch
the classes in this process only.
"""

import argparse
import json
import statistics
import tempfile
import time


def _one_pass_moments(self, inputs, mask):
    from keras import ops

    if mask is not None:
        return ORIGINAL_MOMENTS(self, inputs, mask)
    mean = ops.mean(inputs, axis=self._reduction_axes)
    mean_of_squares = ops.mean(ops.square(inputs), axis=self._reduction_axes)
    return mean, ops.maximum(mean_of_squares - ops.square(mean), 0.0)


ORIGINAL_MOMENTS = None


def train_variant(name, config, data, runtime_config):
    """Images/s of one variant: median per-epoch rate after the first epoch."""
    import keras

    from tfsuite.config import with_overrides
    from tfsuite.tasks import get_task
    from tfsuite.training.runtime import setup_runtime
    from tfsuite.training.callbacks import NanGuard
    from tfsuite.training.trainer import Trainer

    global ORIGINAL_MOMENTS
    batch_norm = keras.layers.BatchNormalization
    ORIGINAL_MOMENTS = batch_norm._moments
    nan_check = NanGuard.on_train_batch_end
    parts = {"no_top5", "one_pass_bn", "no_nan_check"} if name == "all" else {name}
    if name == "steps8":
        config = with_overrides(config, ["train.steps_per_execution=8"])
    task = get_task(config)
    if "no_top5" in parts:
        task.metrics = lambda num_classes: [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if "one_pass_bn" in parts:
        batch_norm._moments = _one_pass_moments
    if "no_nan_check" in parts:  # Keras' no-op: it then dispatches batch ends off-thread
        NanGuard.on_train_batch_end = keras.callbacks.Callback.on_train_batch_end
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            started = time.perf_counter()
            trainer = Trainer(config, run_dir, setup_runtime(runtime_config), quiet=True)
            trainer.fit(task, data)
            wall = time.perf_counter() - started
    finally:
        batch_norm._moments = ORIGINAL_MOMENTS
        NanGuard.on_train_batch_end = nan_check
    rates = trainer.info()["epoch_images_per_second"]
    return statistics.median(rates[1:]), rates, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ["tfsuite", "no_nan_check", "no_top5", "one_pass_bn", "all", "steps8"]
    parser.add_argument("--variants", nargs="+", default=names, choices=names)
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

    from tfsuite.tasks import get_task

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
