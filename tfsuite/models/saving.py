"""Saving and loading a run's Keras model (RUN_DIR/model.keras)."""

import os

from tfsuite.errors import user_error
from tfsuite.run_dir import MODEL


def register_custom_objects():
    """Imports the modules whose layers and losses saved models refer to."""
    import tfsuite.data.augment  # noqa: F401
    import tfsuite.models.preprocessing  # noqa: F401
    import tfsuite.training.losses  # noqa: F401


def save_model(model, path):
    """Saves to a temporary name, then renames: a killed save leaves the old file whole."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def load_run_model(run_dir):
    import keras

    register_custom_objects()
    path = os.path.join(run_dir, MODEL)
    if not os.path.isfile(path):
        raise user_error("The run has no trained model", f"{path} (written when training "
                         "completes)", f"run_dir={run_dir!r}", "Finish training first: "
                         "run the same train command again to resume it.")
    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, KeyError) as e:  # a truncated zip, a missing weights entry
        raise user_error("The run's model file cannot be loaded", "a complete model.keras "
                         "saved by tfsuite", f"{path} ({type(e).__name__}: {str(e)[:200]})",
                         "The file may be damaged; retrain, or restore it from a copy.") from e
