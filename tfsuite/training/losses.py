"""Losses Keras lacks: sparse categorical cross-entropy with label smoothing."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfsuite")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy for integer labels, with optional label smoothing.

    Keras' own sparse loss has no `label_smoothing`; this one one-hot encodes
    the labels in the loss, so the data pipeline keeps integer labels (and the
    sparse accuracy metrics) either way. Computed in float32.

    Args:
        label_smoothing: in [0, 1). Defaults to `0`.
        from_logits: whether predictions are logits. Defaults to `False`.
    """

    def __init__(self, label_smoothing=0.0, from_logits=False,
                 name="sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(
                y_true, y_pred, from_logits=self.from_logits)
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):  # labels of shape [batch, 1]
            labels = ops.squeeze(labels, axis=-1)
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype="float32")
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "from_logits": self.from_logits}
