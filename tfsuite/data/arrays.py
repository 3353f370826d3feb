"""Batches of in-memory images without TensorFlow: a `keras.utils.PyDataset`.

The tf.data pipeline (`tfsuite.data.pipeline`) needs TensorFlow. Machines that
train on JAX or PyTorch often have none (GPU images ship PyTorch and JAX
only), and a synthetic throughput run gains nothing from a host pipeline. This
one serves array sources (digits, .npz, synthetic): it shuffles every epoch,
applies the augmentation layers on the Keras backend, and casts to float32.

With `on_device=True` (JAX) the uint8 images are copied to the accelerator
once and every batch is gathered there, so training never waits on a host to
device copy.
"""

import keras
import numpy as np


def _put_on_device(array):
    import jax

    return jax.device_put(array)


class ArrayBatches(keras.utils.PyDataset):
    """(float32 images in 0..255, int32 labels) batches of uint8 arrays.

    Args:
        images: uint8 [n, height, width, channels].
        labels: int [n].
        batch_size: examples per batch.
        shuffle: a new order every epoch (seeded by `seed`). Defaults to `False`.
        seed: seeds the order. Defaults to `0`.
        augment_layers: Keras augmentation layers applied to each batch, in order.
            Defaults to none.
        drop_remainder: leave out the last, partial batch. Defaults to `False`.
        on_device: keep the images on the JAX device (JAX backend only).
            Defaults to `False`.
    """

    def __init__(self, images, labels, batch_size, shuffle=False, seed=0, augment_layers=(),
                 drop_remainder=False, on_device=False):
        super().__init__()  # one worker in this thread: batches come in order, no copies
        self.num_examples = len(labels)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment_layers = list(augment_layers)
        self.drop_remainder = drop_remainder
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(self.num_examples)
        self.on_device = on_device
        labels = np.asarray(labels, np.int32)
        if on_device:
            self.images, self.labels = _put_on_device(images), _put_on_device(labels)
        else:
            self.images, self.labels = images, labels
        if shuffle:
            self._rng.shuffle(self._order)

    @property
    def num_batches(self):
        whole, partial = divmod(self.num_examples, self.batch_size)
        return whole if self.drop_remainder or not partial else whole + 1

    def __len__(self):
        return self.num_batches

    def __getitem__(self, index):
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        if not self.on_device:
            chosen = np.sort(chosen)  # reads memory in order; the batch's order is random anyway
        images, labels = self.images[chosen], self.labels[chosen]
        for layer in self.augment_layers:
            images = layer(images)
        return keras.ops.cast(images, "float32"), labels

    def __iter__(self):
        for index in range(self.num_batches):
            yield self[index]

    def on_epoch_end(self):
        if self.shuffle:
            self._rng.shuffle(self._order)
