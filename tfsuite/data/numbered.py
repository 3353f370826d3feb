"""The base of tfsuite's own batch loaders: batches numbered over all epochs.

Batch i of epoch e is a function of (seed, e, i) (`tfsuite.data.decode.BatchIndices`),
so a loader can make batches ahead across epoch ends, read one out of turn, and resume
at an epoch. Keras moves the epoch on (`on_epoch_end`); the trainer sets it from Keras'
own epoch index (`set_epoch`, `tfsuite.training.callbacks.DataEpoch`).
"""

import keras


class NumberedBatches(keras.utils.PyDataset):
    """A `PyDataset` over `self.indices` (a `BatchIndices`), read from one thread."""

    epoch = 0

    @property
    def num_batches(self):
        return self.indices.batches_per_epoch

    def __len__(self):
        return self.num_batches

    def number(self, index, expected=None):
        """The stream number of batch `index` of this epoch (checked); unshuffled epochs
        continue a stream that `expected` that number next."""
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        return self.indices.number(self.epoch, index, expected)

    def augmented(self, images):
        """`self.augment_layers` applied on the backend (`data.augment_on=host`), float32."""
        for layer in self.augment_layers:
            images = layer(images)
        return keras.ops.cast(images, "float32")

    def on_epoch_end(self):
        self.epoch += 1

    def set_epoch(self, epoch):
        """Continues at the start of `epoch`: its order is seeded by (seed, epoch), so a
        resumed run reads what an unbroken one would."""
        self.epoch = epoch
