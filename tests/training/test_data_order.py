"""A resumed run sees the epochs an uninterrupted run would: batches whose order is a function
of (seed, epoch) are moved to the checkpoint's epoch (issue 22: resume keeps the data order)."""

import numpy as np
import pytest

from tfsuite.config import load_config
from tfsuite.data.arrays import ArrayBatches
from tfsuite.data.pipeline import ImageData
from tfsuite.task import get_task
from tfsuite.training.runtime import setup_runtime
from tfsuite.training.trainer import Trainer

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)


class Recording(ArrayBatches):
    """ArrayBatches that note the (epoch, labels) of every batch the trainer reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def __getitem__(self, index):
        images, labels = super().__getitem__(index)
        self.seen.append((self.epoch, index, np.asarray(labels).tolist()))
        return images, labels


def fit(run_dir, epochs, fine_tune_epochs=0):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (96, 8, 8, 1), dtype=np.uint8)
    labels = (images.mean(axis=(1, 2, 3)) > 127).astype(np.int32)
    train = Recording(images, labels, 32, shuffle=True, seed=5, feed_ahead=False)
    data = ImageData(train=train, val=None, test=None, class_names=["dark", "bright"],
                     num_train=96, num_val=0, num_test=0, image_shape=(8, 8, 1))
    config = load_config("digits_mlp", overrides=[f"train.epochs={epochs}",
                                                  f"train.fine_tune_epochs={fine_tune_epochs}"])
    Trainer(config, run_dir, setup_runtime(config.runtime), quiet=True).fit(get_task(config),
                                                                           data)
    return train.seen


def epochs_read(seen):
    """The epochs read whole, in order: (epoch, index) runs 0, 1, 2 (Keras also reads a
    batch or two to build the model before each `fit`)."""
    keys = [(epoch, index) for epoch, index, _ in seen]
    return [keys[i][0] for i in range(len(keys) - 2)
            if keys[i:i + 3] == [(keys[i][0], 0), (keys[i][0], 1), (keys[i][0], 2)]]


def test_a_resumed_run_reads_the_epochs_an_unbroken_one_reads(tmp_path):
    unbroken = fit(str(tmp_path / "unbroken"), 3)
    fit(str(tmp_path / "broken"), 2)  # "killed" after epoch 2 (its checkpoint is there)
    resumed = fit(str(tmp_path / "broken"), 3)
    assert epochs_read(unbroken) == [0, 1, 2] and epochs_read(resumed) == [2]
    assert resumed[-3:] == unbroken[-3:]  # the same batches, in the same order


def test_a_second_training_phase_reads_the_next_epochs(tmp_path):
    """Fine-tuning is a second `fit`: its epochs go on from the first phase's."""
    assert epochs_read(fit(str(tmp_path / "run"), 2, fine_tune_epochs=1)) == [0, 1, 2]
