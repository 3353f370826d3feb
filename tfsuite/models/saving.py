"""Saving and loading a run's Keras model (RUN_DIR/model.keras)."""

import os
import zipfile

from tfsuite.errors import user_error
from tfsuite.run_dir import MODEL


def register_custom_objects():
    """Imports the modules whose layers, losses and optimizers saved models refer to."""
    import tfsuite.data.augment  # noqa: F401
    import tfsuite.models.preprocessing  # noqa: F401
    import tfsuite.training.bfloat16_optimizers  # noqa: F401
    import tfsuite.training.losses  # noqa: F401


def save_model(model, path):
    """Saves to a temporary name, then renames: a killed save leaves the old file whole."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def load_run_model(run_dir):
    path = os.path.join(run_dir, MODEL)
    if not os.path.isfile(path):
        raise user_error("The run has no trained model", f"{path} (written when training "
                         "completes)", f"run_dir={run_dir!r}", "Finish training first: "
                         "run the same train command again to resume it.")
    return load_model_file(path)


# What a damaged or hostile .keras file raises: a truncated zip, a missing weights entry, a
# config naming functions or classes outside Keras (safe_mode refuses them, as TypeError).
LOAD_ERRORS = (ValueError, OSError, KeyError, TypeError, AttributeError, ImportError,
               zipfile.BadZipFile, RecursionError)


def load_model_file(path, compile=True):
    """`keras.saving.load_model` in safe mode (no Lambda code, no functions from outside
    Keras), with tfsuite's layers registered; a file that cannot be loaded is one error."""
    import keras

    register_custom_objects()
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except LOAD_ERRORS as e:
        raise user_error("The model file cannot be loaded", "a complete .keras file saved "
                         "by tfsuite (or Keras), whose config names only Keras and tfsuite "
                         "objects", f"{path} ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]})", "The file may be damaged or "
                         "not from tfsuite; retrain, or restore it from a copy. Nothing "
                         "in it was run.") from None
