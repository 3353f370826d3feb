"""Silencing the C++ start-up chatter of native libraries (TensorFlow, LiteRT).

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
