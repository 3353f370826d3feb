"""TensorBoard: per-step scalars on one step axis for the whole run, and the run's
hyperparameters for the HParams dashboard (its run comparison table)."""

import dataclasses

import keras


class RunTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback counting steps over the whole run: Keras starts each `fit`
    at step 0, so a resumed or extended run, or a fine-tuning phase (a second `fit`), would
    draw its per-step curves over the earlier ones. Set `first_step` before each `fit`."""

    first_step = 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = self.first_step
        self._pop_writer()
        self._push_writer(self._train_writer, self._global_train_batch)


def hparams_of(config):
    """The config as flat `section.key` values TensorBoard takes (bool, int, float, str):
    lists and null become their text."""
    from tfsuite.config.parsing import flatten

    flat = {}
    for key, value in flatten(dataclasses.asdict(config)).items():
        flat[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def write_hparams(log_dir, config):
    """Writes the hyperparameters to `log_dir`, above Keras' train/ and validation/ scalars,
    as `hp.KerasCallback` does (TensorFlow's summary writer, on any Keras backend)."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams(hparams_of(config))
    writer.close()
