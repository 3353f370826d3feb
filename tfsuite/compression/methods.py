"""The four compression methods. Each takes the shared `CompressContext`, writes its
deployable file into the staging folder and says what to measure it against."""

import dataclasses
import os

from tfsuite.compression import finetune, measure


@dataclasses.dataclass
class CompressContext:
    """What a method needs: the config, the float32 source model, data, where to write."""

    config: object  # ExperimentConfig, with the compress overrides applied
    model: object  # float32, uncompiled Keras 3 model to compress
    source_path: str  # the .keras file it was loaded from
    data: object  # the task's data (augmented training split, clean val/test)
    task: object
    staging: str
    test: tuple  # (images, labels) of the test split, as NumPy
    quiet: bool = False

    @property
    def compress(self):
        return self.config.compress

    def path(self, name):
        return os.path.join(self.staging, name)

    def clean_training_images(self, count):
        """Training images without augmentation (calibration data for int8)."""
        from tfsuite.compression.quantization import representative_images

        return representative_images(self.task.build_inputs(augment=False).train, count)

    def sample_images(self, count=64):
        """Real test images for the bridge's equality checks."""
        return self.test[0][:count]


def _result(path, model, **extra):
    return {"path": path, "model": model, **extra}


# ---------------------------------------------------------------- pruning


def prune(context):
    from tfsuite.compression.pruning import (
        MagnitudePruning,
        select_layers,
        sparsity_by_layer,
    )
    from tfsuite.compression.schedules import build_schedule

    compress, model = context.compress, context.model
    layers = select_layers(model, compress.pruning_layers)
    names = [layer.name for layer in layers]
    epochs = compress.fine_tune_epochs
    total_steps = finetune.steps_per_epoch(context.config, context.data) * epochs
    schedule = build_schedule(compress, max(1, total_steps))
    _check_pruning_plan(compress, schedule, total_steps, layers)
    learning_rate = finetune.fine_tune_learning_rate(context.config)
    settings = {"backend": compress.pruning_backend, "structure": compress.pruning_structure,
                "schedule": dataclasses.asdict(schedule) | {"kind": type(schedule).__name__},
                "fine_tune_epochs": epochs, "learning_rate": learning_rate}
    if compress.pruning_backend == "tfmot":
        from tfsuite.compression.tfmot_bridge import prune_with_tfmot

        model, bridge = prune_with_tfmot(model, context.data, names, schedule,
                                         compress.pruning_structure, epochs, learning_rate,
                                         context.sample_images(), quiet=context.quiet)
        settings.update(bridge)
    else:
        pruning = MagnitudePruning(layers, schedule, compress.pruning_structure)
        finetune.fine_tune(model, context.data, epochs, learning_rate, [pruning],
                           quiet=context.quiet, label="pruning")
    path = measure.save_deployable(model, context.path("model.keras"))
    return _result(path, model, settings=settings,
                   pruned_layers=sparsity_by_layer(model, names))


def _check_pruning_plan(compress, schedule, total_steps, layers):
    """Refuses settings under which nothing would be pruned; warns when the target is missed."""
    import logging

    from tfsuite.compression.pruning import kernel_of
    from tfsuite.errors import user_error

    if compress.pruning_structure == "2:4":
        odd = [l.name for l in layers if len(kernel_of(l).shape) not in (2, 4)]
        if odd:
            raise user_error("2:4 sparsity needs rank-2 or rank-4 kernels (Dense, Conv2D)",
                             "compress.pruning_layers without these layers",
                             f"layers={odd}", "Select the layers with compress.pruning_layers.")
    steps = [s for s in range(1, total_steps + 1) if schedule.should_prune(s)]
    if total_steps < 1 or (compress.pruning_structure != "2:4" and not steps):
        raise user_error("No pruning step falls within the fine-tuning", "begin_step and "
                         "pruning_frequency that leave a pruning step within "
                         f"{total_steps} fine-tuning steps", f"compress.fine_tune_epochs="
                         f"{compress.fine_tune_epochs}, compress.begin_step="
                         f"{compress.begin_step}, compress.pruning_frequency="
                         f"{compress.pruning_frequency}", "Raise compress.fine_tune_epochs or "
                         "lower compress.begin_step / compress.pruning_frequency.")
    if steps and schedule.sparsity(steps[-1]) < compress.sparsity - 1e-6:
        logging.getLogger("tfsuite").warning(
            "The last pruning step (%d of %d) applies %.1f%% sparsity, short of "
            "compress.sparsity=%g: compress.end_step is beyond the fine-tuning.", steps[-1],
            total_steps, 100 * schedule.sparsity(steps[-1]), compress.sparsity)


# ---------------------------------------------------------------- quantization


def quantize(context):
    from tfsuite.compression import quantization

    compress, model = context.compress, context.model
    mode = compress.quantization
    if mode in quantization.KERAS_MODES:
        baseline = measure.save_deployable(model, context.path("baseline_float32.keras"))
        note = quantization.keras_quantize(model, mode)
        path = context.path("model.keras")
        model.save(path)
        return _result(path, model, baseline=baseline, note=note,
                       settings={"mode": mode, "quantized_layers":
                                 quantization.keras_coverage(model)[1]})
    baseline = quantization.write_litert(model, context.path("baseline_float32.tflite"))
    path = context.path("model.tflite")
    settings = {"mode": mode, "int8_io": compress.int8_io}
    if mode == "qat":
        from tfsuite.compression.tfmot_bridge import quantization_aware_training

        qat, annotated, left = quantization_aware_training(
            model, context.data, compress.fine_tune_epochs,
            finetune.fine_tune_learning_rate(context.config), context.sample_images(),
            quiet=context.quiet)
        quantization.write_litert(qat, path, "qat", int8_io=compress.int8_io)
        settings.update(fine_tune_epochs=compress.fine_tune_epochs,
                        quantized_layers=annotated, float_layers=left)
    else:
        calibration = None
        if mode == "int8":
            calibration = context.clean_training_images(compress.representative_samples)
            settings["representative_samples"] = len(calibration)
        quantization.write_litert(model, path, mode, calibration, compress.int8_io)
    return _result(path, model, baseline=baseline, settings=settings)


# ---------------------------------------------------------------- low rank


def low_rank(context):
    from tfsuite.compression.low_rank import factorize

    compress = context.compress
    model, plan = factorize(context.model, compress)
    learning_rate = finetune.fine_tune_learning_rate(context.config)
    before = sum(p["params_before"] for p in plan.values())
    after = sum(p["params_after"] for p in plan.values())
    if not context.quiet:
        print(f"  factorized {len(plan)} layers: {before:,} -> {after:,} weights "
              f"({1 - after / before:.0%} fewer)")
    accuracy_before_fine_tuning = _accuracy(model, context.test)
    finetune.fine_tune(model, context.data, compress.fine_tune_epochs, learning_rate,
                       quiet=context.quiet, label="fine-tuning")
    path = measure.save_deployable(model, context.path("model.keras"))
    return _result(path, model, factorized_layers=plan, settings={
        "rank": compress.rank, "energy": compress.energy,
        "param_reduction": compress.param_reduction,
        "factorized_params_before": before, "factorized_params_after": after,
        "factorized_param_reduction": round(1 - after / before, 4),
        "test_accuracy_before_fine_tuning": accuracy_before_fine_tuning,
        "fine_tune_epochs": compress.fine_tune_epochs, "learning_rate": learning_rate})


def _accuracy(model, test):
    from tfsuite.export.model import predict_in_batches

    images, labels = test
    return float((predict_in_batches(model, images, 128).argmax(1) == labels).mean())


# ---------------------------------------------------------------- distillation


def distill(context):
    """The run's model teaches `compress.student`; the same student trained alone on the
    labels, with the same epochs and learning rate, is measured beside it."""
    import keras

    from tfsuite.compression.distillation import Distiller
    from tfsuite.models.vision import build_classifier

    config, compress, data = context.config, context.compress, context.data
    epochs = compress.distill_epochs or config.train.epochs

    def student():
        keras.utils.set_random_seed(config.runtime.seed)
        return build_classifier(compress.student, config.data.augment, data.image_shape,
                                data.num_classes, data.feature_mean, data.feature_variance)

    schedule = keras.optimizers.schedules.CosineDecay(
        config.train.learning_rate, epochs * finetune.steps_per_epoch(config, data))
    distilled = student()
    distiller = Distiller(distilled, context.model, compress.temperature, compress.alpha)
    finetune.fine_tune(distiller, data, epochs, schedule, quiet=context.quiet,
                       label=f"distilling into a {compress.student.name} of width "
                             f"{compress.student.width}")
    alone = student()
    finetune.fine_tune(alone, data, epochs, schedule, quiet=context.quiet,
                       label="the same student trained alone on the labels")
    path = measure.save_deployable(distilled, context.path("model.keras"))
    alone_path = measure.save_deployable(alone, context.path("student_alone.keras"))
    return _result(path, distilled, others={"student_alone": (alone_path, alone)},
                   settings={"student": dataclasses.asdict(compress.student),
                             "temperature": compress.temperature, "alpha": compress.alpha,
                             "epochs": epochs, "learning_rate": config.train.learning_rate})


METHODS = {"prune": prune, "quantize": quantize, "low_rank": low_rank, "distill": distill}
