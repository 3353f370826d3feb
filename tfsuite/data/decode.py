"""Image files to uint8 arrays with PIL, and the batches a Grain worker decodes.

Nothing here imports Keras or TensorFlow: Grain's worker processes load this module
alone, so they start in a fraction of a second and hold no accelerator.
"""

import os

import numpy as np
from PIL import Image

MODES = {1: "L", 3: "RGB", 4: "RGBA"}
EPOCHS = 10 ** 6  # a stream of batches long enough for any run


def decode_with_pil(path, channels, size=None):
    """Decodes any PIL-readable image to uint8 [h, w, channels] (the first frame).

    With `size` ((height, width)) the image is resized to it (bilinear, antialiased, as
    tf.image.resize with antialias=True); a JPEG is decoded at the smallest of its reduced
    scales (1/2, 1/4, 1/8) that still covers `size` (`Image.draft`), which is faster.
    """
    mode = MODES[channels]
    with Image.open(path) as image:
        if size is not None and image.format == "JPEG":
            image.draft(mode, (size[1], size[0]))
        if image.mode.startswith("I;16") or image.mode in ("I", "F"):
            array = np.asarray(image, dtype=np.float32)
            scale = 255.0 / max(float(array.max()), 1.0) if image.mode != "I;16" else 255 / 65535
            image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8))
        image = image.convert(mode)
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array.reshape(array.shape[0], array.shape[1], channels)


class BatchIndices:
    """A Grain data source: item g is the example indices of batch g % n of epoch g // n.

    Each epoch's order is a permutation seeded by (seed, epoch), so any batch of any epoch
    can be computed on its own: in any worker, out of turn, or after a restart.
    """

    def __init__(self, num_examples, batch_size, shuffle, seed, drop_remainder):
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        whole, partial = divmod(num_examples, batch_size)
        self.batches_per_epoch = whole if drop_remainder or not partial else whole + 1
        self._order = (None, None)  # (epoch, permutation): the last one computed

    def order(self, epoch):
        if not self.shuffle:
            return np.arange(self.num_examples)
        cached = self._order  # read once: threads may replace it
        if cached[0] != epoch:
            cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(
                self.num_examples))
            self._order = cached
        return cached[1]

    def number(self, epoch, index, expected=None):
        """The number of batch `index` of `epoch` in the stream. Unshuffled epochs are all
        alike: the number `expected` next, when it is that batch (so a validation set read
        every epoch continues one stream instead of starting it again)."""
        if not self.shuffle:
            if expected is not None and expected % self.batches_per_epoch == index:
                return expected
            return index
        return epoch * self.batches_per_epoch + index

    def reachable(self):
        """How many examples (the first ones) epochs can hold: unshuffled with a dropped
        partial batch, the last ones are never read."""
        if self.shuffle:
            return self.num_examples
        return min(self.num_examples, self.batches_per_epoch * self.batch_size)

    def __len__(self):
        return EPOCHS * self.batches_per_epoch

    def __getitem__(self, number):
        epoch, index = divmod(int(number), self.batches_per_epoch)
        return self.order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]


class DecodeBatch:
    """A Grain map: example indices -> (uint8 images [b, h, w, c], int32 labels, indices)."""

    def __init__(self, paths, labels, size, channels):
        self.paths = paths  # bytes: a file name need not be UTF-8
        self.labels = labels
        self.size = tuple(size)
        self.channels = channels

    def __call__(self, chosen):
        images = np.empty((len(chosen), *self.size, self.channels), np.uint8)
        for row, index in enumerate(chosen):
            path = self.paths[index]
            try:
                images[row] = decode_with_pil(path, self.channels, self.size)
            except Exception as e:  # PIL raises many types; name the file
                raise OSError(f"Cannot decode {os.fsdecode(path)!r} (it was readable when the "
                              f"folder was scanned): {type(e).__name__}: {e}") from e
        return images, self.labels[chosen], np.asarray(chosen)
