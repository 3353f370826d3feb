"""The run's hyperparameters for TensorBoard's HParams dashboard (its run comparison table)."""

import dataclasses


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
