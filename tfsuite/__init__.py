"""tfsuite: a Keras 3 training suite on TensorFlow."""

__version__ = "0.1.0"


def load_model(path):
    """Loads a model saved by tfsuite (`RUN_DIR/model.keras`, or `RUN_DIR`) with its layers.

    Plain `keras.saving.load_model` works too once `tfsuite` custom objects are
    registered; this function registers them and loads.
    """
    import os

    import keras

    from tfsuite.stages import register_custom_objects

    if os.path.isdir(path):  # a run directory
        path = os.path.join(path, "model.keras")
    register_custom_objects()
    return keras.saving.load_model(path)
