"""The `.keras` artifact: the float32 model without optimizer state, loadable on any backend."""

import numpy as np


def export_keras(model, path):
    """Saves the (already float32, uncompiled) export model as a `.keras` file."""
    model.save(path)


class KerasRunner:
    """Loads the `.keras` file back and runs it, as a user of the artifact would."""

    def __init__(self, path):
        from tfsuite.models.saving import load_model_file

        self.model = load_model_file(path, compile=False)

    def __call__(self, images):
        # The compiled predict function, as `model.predict` users get (not an eager call).
        return np.asarray(self.model.predict_on_batch(np.asarray(images, np.float32)))
