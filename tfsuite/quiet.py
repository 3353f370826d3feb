"""Silencing what is known to be noise: the C++ start-up chatter of native libraries
(TensorFlow, LiteRT), and Python warnings named by their message.

Those libraries log to file descriptor 2 directly (CUDA probing, "Created
TensorFlow Lite XNNPACK delegate"), before or outside Python's logging, so the
only way to keep a CLI's output readable is to point fd 2 at /dev/null for the
duration. Python exceptions still propagate; `--debug` leaves fd 2 alone.
"""

import contextlib
import os


@contextlib.contextmanager
def native_stderr_silenced(enabled=True):
    """Sends fd 2 to /dev/null inside the block (a no-op when `enabled` is False)."""
    if not enabled or os.environ.get("TFSUITE_DEBUG"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (some embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# Python warnings known to be noise in tfsuite's runs, matched by message (a warning of the
# same category with another message still shows); `--debug` shows these too.
KNOWN_NOISY_WARNINGS = (
    # Keras' quantize() names every layer it leaves in float; the compress report says which
    # layers were quantized and that convolutions stay float.
    r"Layer \w+ does not have a `quantize` method implemented",
    # A tf.data pipeline shuffles itself (with its own seeded buffer).
    r"`shuffle=True` was passed, but will be ignored since the data `x` was provided as a "
    r"tf\.data\.Dataset",
    # KerasHub's T5Seq2SeqLM has its own compile(); tfsuite compiles a loaded model itself.
    r"`compile\(\)` was not called as part of model loading because the model's `compile\(\)` "
    r"method is custom",
    # KerasHub's T5 attention layers take their padding masks as arguments, not as Keras masks.
    r"Layer '(self|cross)_attention' \(of type T5MultiHeadAttention\) was passed an input "
    r"with a mask attached to it",
    # The two-tower recommender's towers are built by their first call, which loading makes.
    r"`build\(\)` was called on layer 'two_tower_model', however the layer does not have a "
    r"`build\(\)` method implemented",
)


def silence_known_warnings():
    """Ignores the warnings of `KNOWN_NOISY_WARNINGS`, by message, and no others."""
    import warnings

    for message in KNOWN_NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
