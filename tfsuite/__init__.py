"""tfsuite: a Keras 3 training suite on TensorFlow."""

__version__ = "0.1.0"
