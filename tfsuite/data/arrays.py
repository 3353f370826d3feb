"""Batches of in-memory images without TensorFlow: a `keras.utils.PyDataset`.

The tf.data pipeline (`tfsuite.data.pipeline`) needs TensorFlow. Machines that
train on JAX or PyTorch often have none (GPU images ship PyTorch and JAX
only), and a synthetic throughput run gains nothing from a host pipeline. This
one serves array sources (digits, .npz, synthetic): it shuffles every epoch,
applies the augmentation layers on the Keras backend, and casts to float32.

With `on_device=True` (JAX) the uint8 images are copied to the accelerator
once and every batch is gathered there, so training never waits on a host to
device copy. Arrays that stay in host memory while JAX trains on an accelerator
are fed ahead: threads gather the next batches and start their copies while
the device computes the current step, as uint8 (a quarter of float32's bytes),
across epoch ends (`tfsuite.data.prefetch`); the model's first layer casts them
inside the compiled step.
"""

import weakref

import keras
import numpy as np

from tfsuite.data.decode import BatchIndices
from tfsuite.data.numbered import NumberedBatches
from tfsuite.data.prefetch import Prefetcher

# Threads that gather and copy batches ahead for an accelerator; each keeps two batches
# ready. (A ResNet-50 step on an H200 takes about 35 ms for 256 images; one thread
# gathering 38 MB of random rows and copying them took about as long.)
FEED_THREADS = 6


def put_on_device(array):
    import jax

    return jax.device_put(array)


def feeds_an_accelerator():
    """Whether Keras runs on JAX with a GPU or TPU (host batches then cross to it)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() != "cpu"


class ArrayBatches(NumberedBatches):
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
        feed_ahead: gather and copy batches ahead on worker threads, as uint8 (without
            augmentation layers). Defaults to `None`: when host arrays feed an
            accelerator (`feeds_an_accelerator`).
    """

    def __init__(self, images, labels, batch_size, shuffle=False, seed=0, augment_layers=(),
                 drop_remainder=False, on_device=False, feed_ahead=None):
        super().__init__()  # batches are made here, or ahead by this class's own threads
        # Fed ahead (see the module docstring), else in this thread: on a CPU there is no
        # device to overlap with.
        if feed_ahead is None:
            # Not with augmentation layers: their random state is not safe across threads.
            feed_ahead = not on_device and not augment_layers and feeds_an_accelerator()
        self.feed_ahead = feed_ahead
        self.num_examples = len(labels)
        self.augment_layers = list(augment_layers)
        self.indices = BatchIndices(self.num_examples, batch_size, shuffle, seed, drop_remainder)
        self.on_device = on_device
        labels = np.asarray(labels, np.int32)
        if on_device:
            self.images, self.labels = put_on_device(images), put_on_device(labels)
        else:
            self.images, self.labels = images, labels
        self._prefetch = None
        if feed_ahead:  # each thread keeps two batches ready, across epoch ends
            self._prefetch = Prefetcher(self._batch, FEED_THREADS, 2 * FEED_THREADS)
            weakref.finalize(self, self._prefetch.close)

    def __getitem__(self, index):
        if self._prefetch is not None:
            return self._prefetch.get(self.number(index, self._prefetch.next))
        return self._batch(self.number(index))

    def _batch(self, number):
        """Batch `number` (counted over all epochs)."""
        chosen = self.indices[number]
        if not self.on_device:
            chosen = np.sort(chosen)  # reads memory in order; the batch's order is random anyway
        images, labels = self.images[chosen], self.labels[chosen]
        if self.feed_ahead:
            return put_on_device(images), put_on_device(labels)  # uint8: the step casts
        return self.augmented(images), labels

    def __iter__(self):
        for index in range(self.num_batches):
            yield self[index]

    def close(self):
        """Stops the threads that feed ahead (also done when the object is collected)."""
        if self._prefetch is not None:
            self._prefetch.close()
