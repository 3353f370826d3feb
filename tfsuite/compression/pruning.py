"""Native Keras 3 magnitude pruning, on every backend (TensorFlow, JAX, PyTorch).

A callback keeps one mask per pruned kernel. Before each training step it
counts the step as TFMOT does (from 1), recomputes the masks when the schedule
says so (the smallest-magnitude weights of the current kernel, so pruned
weights may grow back until the mask settles, as in TFMOT), and multiplies the
kernels by their masks, so every forward pass runs on the pruned weights. The
masks are applied once more at the end of each epoch and of training, and then
dropped: the model that remains is the plain Keras model, with exact zeros.
"""


import keras
import numpy as np

from tfsuite.models import selection
from tfsuite.models.selection import leaf_layers  # noqa: F401  (re-exported)

# Layer classes with a kernel to prune, and the attribute that holds it.
PRUNABLE = {"Dense": "kernel", "EinsumDense": "kernel", "Conv1D": "kernel",
            "Conv2D": "kernel", "Conv3D": "kernel", "Conv2DTranspose": "kernel",
            "DepthwiseConv2D": "kernel"}


def kernel_of(layer):
    """The kernel variable a pruning or factorizing method works on."""
    return getattr(layer, PRUNABLE[type(layer).__name__])


def select_layers(model, patterns, kinds=PRUNABLE, key="compress.pruning_layers"):
    """The layers to prune: every prunable layer, or those `patterns` name or match."""
    return selection.select_layers(model, patterns, kinds, key)


def magnitude_mask(weights, sparsity):
    """TFMOT's mask: keep the round(size * (1 - sparsity)) largest |w| (at least one)."""
    magnitude = np.abs(weights).ravel()
    keep = max(int(np.round(magnitude.size * (1.0 - sparsity))), 1)
    threshold = np.partition(magnitude, magnitude.size - keep)[magnitude.size - keep]
    return (np.abs(weights) >= threshold).astype(weights.dtype)


def m_by_n_mask(weights, zeros=2, block=4):
    """TFMOT's m-by-n mask: `zeros` of every `block` consecutive input-channel weights
    are zero (2:4 for sparse tensor cores). Kernels are (..., in, out); the blocks run
    along `in`, padded with zeros at its end as TFMOT does."""
    if weights.ndim == 2:
        arranged = weights.T
    elif weights.ndim == 4:
        arranged = np.transpose(weights, (3, 0, 1, 2)).reshape(-1, weights.shape[2])
    else:
        raise ValueError(f"2:4 sparsity needs a rank 2 or 4 kernel. Received: shape "
                         f"{weights.shape}")
    pad = block - arranged.shape[1] % block
    padded = np.pad(np.abs(arranged), [(0, 0), (0, pad)]).reshape(-1, block)
    order = np.argsort(-padded, axis=1, kind="stable")[:, : block - zeros]
    mask = np.zeros_like(padded)
    np.put_along_axis(mask, order, 1.0, axis=1)
    mask = mask.reshape(arranged.shape[0], -1)[:, : arranged.shape[1]]
    if weights.ndim == 2:
        return mask.T.astype(weights.dtype)
    return np.transpose(mask.reshape(weights.shape[3], *weights.shape[:3]),
                        (1, 2, 3, 0)).astype(weights.dtype)


class MagnitudePruning(keras.callbacks.Callback):
    """Prunes the kernels of `layers` during `fit`, following `schedule`.

    Args:
        layers: the layers to prune (see `select_layers`).
        schedule: a `tfsuite.compression.schedules` schedule.
        structure: "unstructured" or "2:4". Defaults to `"unstructured"`.

    Example:
        >>> pruning = MagnitudePruning(select_layers(model, []), schedule)
        >>> model.fit(data, epochs=8, callbacks=[pruning])  # kernels are now sparse
    """

    def __init__(self, layers, schedule, structure="unstructured"):
        super().__init__()
        self.layers = list(layers)
        self.schedule = schedule
        self.structure = structure
        self.step = 0
        self.masks = None

    def _sync(self):
        # JAX keeps the training state outside the variables during an epoch;
        # this writes it back so the variables can be read and assigned.
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()

    def _update_masks(self):
        sparsity = self.schedule.sparsity(self.step)
        self.masks = []
        for layer in self.layers:
            weights = keras.ops.convert_to_numpy(kernel_of(layer)).astype(np.float32)
            mask = (m_by_n_mask(weights) if self.structure == "2:4"
                    else magnitude_mask(weights, sparsity))
            self.masks.append(keras.ops.convert_to_tensor(mask, kernel_of(layer).dtype))

    def apply_masks(self):
        """Sets the pruned weights to zero (no-op before the first mask update)."""
        if self.masks is None:
            return
        self._sync()
        for layer, mask in zip(self.layers, self.masks):
            kernel = kernel_of(layer)
            kernel.assign(keras.ops.multiply(kernel.value, mask))

    def on_train_batch_begin(self, batch, logs=None):
        self.step += 1
        due = (self.step == 1 if self.structure == "2:4"
               else self.schedule.should_prune(self.step))
        if due:
            self._sync()
            self._update_masks()
        self.apply_masks()

    def on_test_begin(self, logs=None):
        self.apply_masks()  # validation during fit sees the pruned model, as in TFMOT

    def on_epoch_end(self, epoch, logs=None):
        self.apply_masks()

    def on_train_end(self, logs=None):
        self.apply_masks()


def sparsity_by_layer(model, names):
    """{layer name: fraction of exact zeros in its kernel} for the named layers."""
    found = {layer.name: layer for layer in leaf_layers(model)}
    result = {}
    for name in names:
        weights = keras.ops.convert_to_numpy(kernel_of(found[name]))
        result[name] = float((weights == 0).sum() / weights.size)
    return result


def count_params(model):
    """(number of weights, number of non-zero weights) over every weight of the model."""
    total = nonzero = 0
    for weight in model.weights:
        values = keras.ops.convert_to_numpy(weight)
        total += values.size
        nonzero += int(np.count_nonzero(values))
    return total, nonzero
