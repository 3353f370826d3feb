"""Batches of in-memory images without TensorFlow: a `keras.utils.PyDataset`.

The tf.data pipeline (`tfsuite.data.pipeline`) needs TensorFlow. Machines that
train on JAX or PyTorch often have none (GPU images ship PyTorch and JAX
only), and a synthetic throughput run gains nothing from a host pipeline. This
one serves array sources (digits, .npz, synthetic): it shuffles every epoch,
applies the augmentation layers on the Keras backend, and casts to float32.

With `on_device=True` (JAX) the uint8 images are copied to the accelerator
once and every batch is gathered there, so training never waits on a host to
device copy. Arrays that stay in host memory while JAX trains on an accelerator
are fed ahead: worker threads gather the next batches and start their copies
while the device computes the current step, as uint8 (a quarter of float32's
bytes); the model's first layer casts them inside the compiled step.
"""

import keras
import numpy as np

# Threads that gather and copy batches ahead for an accelerator; each keeps two batches
# ready. (A ResNet-50 step on an H200 takes about 35 ms for 256 images; one thread
# gathering 38 MB of random rows and copying them took about as long.)
FEED_THREADS = 6


def _put_on_device(array):
    import jax

    return jax.device_put(array)


def feeds_an_accelerator():
    """Whether Keras runs on JAX with a GPU or TPU (host batches then cross to it)."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return jax.default_backend() != "cpu"


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
        feed_ahead: gather and copy batches ahead on worker threads, as uint8 (without
            augmentation layers). Defaults to `None`: when host arrays feed an
            accelerator (`feeds_an_accelerator`).
    """

    def __init__(self, images, labels, batch_size, shuffle=False, seed=0, augment_layers=(),
                 drop_remainder=False, on_device=False, feed_ahead=None):
        # Fed ahead (see the module docstring), else one worker in this thread: on a CPU
        # there is no device to overlap with.
        if feed_ahead is None:
            # Not with augmentation layers: their random state is not safe across threads.
            feed_ahead = not on_device and not augment_layers and feeds_an_accelerator()
        self.feed_ahead = feed_ahead
        super().__init__(workers=FEED_THREADS if self.feed_ahead else 1,
                         max_queue_size=2 * FEED_THREADS)
        self.num_examples = len(labels)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment_layers = list(augment_layers)
        self.drop_remainder = drop_remainder
        self.seed = seed
        self.epoch = 0
        self._order = np.arange(self.num_examples)
        self.on_device = on_device
        labels = np.asarray(labels, np.int32)
        if on_device:
            self.images, self.labels = _put_on_device(images), _put_on_device(labels)
        else:
            self.images, self.labels = images, labels
        self.set_epoch(0)

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
        if self.feed_ahead:
            return _put_on_device(images), _put_on_device(labels)  # uint8: the step casts
        for layer in self.augment_layers:
            images = layer(images)
        return keras.ops.cast(images, "float32"), labels

    def __iter__(self):
        for index in range(self.num_batches):
            yield self[index]

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)

    def set_epoch(self, epoch):
        """Epoch `epoch`'s order, seeded by (seed, epoch): a resumed run continues the
        order of the uninterrupted one."""
        self.epoch = epoch
        if self.shuffle:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(
                self.num_examples)
