"""Choosing the Keras backend before anything imports Keras (the CLI and the Python API)."""

import os
import sys


def import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up chatter (CUDA probing) silenced."""
    from tfsuite.quiet import native_stderr_silenced

    with native_stderr_silenced():
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # JAX/torch machines without TensorFlow


def start_backend(config, debug=False):
    """Sets the run's Keras backend, then imports TensorFlow (which imports Keras)."""
    from tfsuite.training.runtime import select_backend

    select_backend(config.runtime)
    if not debug:
        import_tensorflow_quietly()


def start_tensorflow_backend(debug=False):
    """Export and SavedModel prediction run on TensorFlow whatever backend trained the model.

    TensorFlow gets no GPU here: conversion and checks run on the CPU, and the
    GPU stays free for TensorRT (and for the training process that may have
    started this one). Nothing happens once Keras is imported (its backend is set).
    """
    from tfsuite.packages import has_tensorflow

    if "keras" in sys.modules or not has_tensorflow():
        return
    os.environ["KERAS_BACKEND"] = "tensorflow"
    if not debug:
        import_tensorflow_quietly()
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
