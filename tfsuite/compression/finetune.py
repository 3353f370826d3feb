"""The short training runs compression needs: fine-tuning after pruning or
factorizing, with one progress line per epoch."""

import math

import keras


def fine_tune_learning_rate(config):
    """`compress.learning_rate`, or a tenth of the run's own rate."""
    return config.compress.learning_rate or config.train.learning_rate / 10.0


def steps_per_epoch(config, data):
    return max(1, math.ceil(data.num_train / config.train.batch_size))


def fine_tune(model, data, epochs, learning_rate, callbacks=(), quiet=False, label=""):
    """Trains `model` on the run's training data with Adam and plain cross-entropy.

    `learning_rate` is a float or a Keras schedule.

    One step per callback call (`steps_per_execution=1`), so pruning masks
    are applied before every step. Returns the Keras history dict.
    """
    from tfsuite.training.callbacks import ProgressLogger

    if epochs < 1:
        return {}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    if not quiet and label:
        rate = getattr(learning_rate, "initial_learning_rate", learning_rate)
        print(f"  {label}: {epochs} epoch{'s' * (epochs != 1)}, learning rate {rate:g}"
              + (" (cosine decay)" if rate is not learning_rate else ""))
    progress = ProgressLogger(epochs, data.num_train, quiet=quiet)
    # shuffle=False: tf.data already shuffles (Keras warns that it ignores the flag).
    history = model.fit(data.train, validation_data=data.val, epochs=epochs, verbose=0,
                        shuffle=False, callbacks=[*callbacks, progress])
    return history.history
