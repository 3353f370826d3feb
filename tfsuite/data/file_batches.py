"""Batches of image files decoded on the host by Grain worker processes.

tf.data decodes image folders on TensorFlow. On JAX and PyTorch (and on machines
without TensorFlow) `ImageFileBatches` does, with Grain, Google's data loader for
JAX: worker processes each decode whole batches with PIL (libjpeg-turbo), JPEGs at
a reduced scale when the target size allows (`Image.draft`), resized to
`data.image_size` as uint8 (bilinear, antialiased, like the tf.data path). The
batches cross to the accelerator as uint8; the model casts them, and with
`data.augment_on=device` augments them inside the compiled step.

Batch i of epoch e is a pure function of (seed, e, i): a seeded permutation per
epoch. So a batch can be read at random (Keras reads the first one to build the
model), and a resumed run continues the same order (`set_epoch`). With `cache`,
the decoded images stay in memory after the first epoch, when they fit, and are
fed from there as host arrays are (`tfsuite.data.arrays`).
"""

import logging
import os
import weakref

import numpy as np

from tfsuite.data.arrays import FEED_THREADS, feeds_an_accelerator, put_on_device
from tfsuite.data.decode import BatchIndices, DecodeBatch
from tfsuite.data.numbered import NumberedBatches
from tfsuite.data.prefetch import Prefetcher

logger = logging.getLogger("tfsuite")

# Of the memory free when the cache would start, what the decoded images may fill.
CACHE_SHARE = 0.5


def default_workers():
    """One decoding process per core (the training process mostly waits on the device)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def available_memory():
    """Bytes of memory available to new allocations (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _Stream:
    """Grain's iterator over the batches, from batch number `next` on (counted over epochs)."""

    def __init__(self):
        self.iterator = self.next = None

    def close(self):
        if self.iterator is not None and hasattr(self.iterator, "close"):
            self.iterator.close()
        self.iterator = self.next = None


class ImageFileBatches(NumberedBatches):
    """(uint8 images [b, h, w, c], int32 labels) batches of image files.

    Args:
        paths: image file paths.
        labels: int labels, one per path.
        image_size: (height, width) the images are resized to.
        channels: 1, 3 or 4.
        batch_size: images per batch.
        shuffle: a new order every epoch (seeded by `seed`). Defaults to `False`.
        seed: seeds the order. Defaults to `0`.
        drop_remainder: leave out the last, partial batch. Defaults to `False`.
        workers: decoding processes; `0` decodes in this process. Defaults to one per core.
        cache: keep the decoded images in memory after the first epoch, if they fill
            under `CACHE_SHARE` of the free memory. Defaults to `False`.
        augment_layers: Keras augmentation layers applied here, on the backend, to each
            batch (`data.augment_on=host`; the batches are then float32). Defaults to none.
    """

    def __init__(self, paths, labels, image_size, channels, batch_size, shuffle=False, seed=0,
                 drop_remainder=False, workers=None, cache=False, augment_layers=()):
        super().__init__()  # one reader in this thread: Grain's processes do the work
        self.num_examples = len(paths)
        self.shuffle = shuffle
        # Not `self.workers`: that is Keras' own setting (its threads would call
        # __getitem__ concurrently); Grain's processes decode, one reader takes the batches.
        self.decoders = default_workers() if workers is None else workers
        self.labels = np.asarray(labels, np.int32)
        self.image_shape = (*image_size, channels)
        self.augment_layers = list(augment_layers)
        self.decode = DecodeBatch([os.fsencode(p) for p in paths], self.labels, image_size,
                                  channels)
        self.indices = BatchIndices(self.num_examples, batch_size, shuffle, seed,
                                    drop_remainder)
        self._stream = _Stream()
        # Stops the workers at exit at the latest, while the modules they need are still there.
        weakref.finalize(self, self._stream.close)
        self._cache = self._cache_filled = None
        self._cache_ready = False
        self._feed = None
        if cache:
            self._start_cache()

    def __getitem__(self, index):
        if self._cache_complete():
            if self._feed is not None:
                return self._feed.get(self.number(index, self._feed.next))
            images, labels = self._cached_batch(self.number(index))
        else:
            images, labels, chosen = self._read(self.number(index, self._stream.next))
            if self._cache is not None:
                self._cache[chosen] = images
                self._cache_filled[chosen] = True
        if not self.augment_layers:
            return images, labels  # uint8: the model casts (and augments, on the device)
        return self.augmented(images), labels

    def close(self):
        """Stops the decoding processes, and the threads that feed cached images ahead."""
        self._stream.close()
        if self._feed is not None:
            self._feed.close()

    def _read(self, number):
        """Batch `number` (counted over all epochs), from Grain's stream; a batch out of turn
        (Keras reads the first one to build the model) restarts the stream there."""
        import grain
        from absl import flags

        stream = self._stream
        if stream.iterator is None or number != stream.next:
            if not flags.FLAGS.is_parsed():  # Grain reads absl flags; there is no absl.app
                flags.FLAGS.mark_as_parsed()
            stream.close()
            dataset = grain.MapDataset.source(self.indices).map(self.decode)[number:]
            dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=0,
                                                                prefetch_buffer_size=0))
            if self.decoders > 0:
                dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
                    num_workers=self.decoders, per_worker_buffer_size=2))
            stream.iterator, stream.next = iter(dataset), number
        stream.next += 1
        images, labels, chosen = next(stream.iterator)
        # Out of Grain's shared memory at once: a segment still referenced when the process
        # ends is reported as leaked (Grain frees them on a background thread).
        return np.array(images), np.array(labels), np.array(chosen)

    def _start_cache(self):
        size = self.num_examples * int(np.prod(self.image_shape))
        free = available_memory()
        if free is not None and size > CACHE_SHARE * free:
            logger.warning("data.cache: the %d decoded images (%.1f GB) would fill more than "
                           "half of the free memory (%.1f GB); they are decoded every epoch "
                           "instead.", self.num_examples, size / 1e9, free / 1e9)
            return
        self._cache = np.empty((self.num_examples, *self.image_shape), np.uint8)
        self._cache_filled = np.zeros(self.num_examples, bool)
        self._cache_filled[self.indices.reachable():] = True  # never read: never needed

    def _cache_complete(self):
        if not self._cache_ready and self._cache is not None and self._cache_filled.all():
            self._cache_ready = True
            self.close()  # every image is decoded: the workers can go
            if not self.augment_layers and feeds_an_accelerator():
                # From memory to the accelerator, ahead on threads (as host arrays are).
                self._feed = Prefetcher(self._cached_batch_on_device, FEED_THREADS,
                                        2 * FEED_THREADS)
                weakref.finalize(self, self._feed.close)
        return self._cache_ready

    def _cached_batch(self, number):
        chosen = self.indices[number]
        return self._cache[chosen], self.labels[chosen]

    def _cached_batch_on_device(self, number):
        return tuple(put_on_device(array) for array in self._cached_batch(number))
