"""Host arrays fed ahead to an accelerator (issue 22): threads gather and copy the batches as
uint8, across epoch ends, in the same order as one thread, and the model casts them."""

import keras
import numpy as np
import pytest

from tfsuite.data.arrays import ArrayBatches

pytestmark = pytest.mark.backend_agnostic


def epochs_of(batches, epochs=2):
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(batches, shuffle=False)
    seen = []
    for _ in range(epochs):
        adapter.on_epoch_begin()
        seen.append([(np.asarray(x), np.asarray(y)) for x, y in adapter.get_numpy_iterator()])
        adapter.on_epoch_end()
    return seen


def test_batches_fed_ahead_are_the_same_batches_as_uint8_and_train():
    if keras.backend.backend() != "jax":
        pytest.skip("feeding ahead copies to a JAX device")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 50)
    plain = ArrayBatches(images, labels, 16, shuffle=True, seed=3, feed_ahead=False)
    ahead = ArrayBatches(images, labels, 16, shuffle=True, seed=3, feed_ahead=True)
    assert ahead._prefetch is not None and plain._prefetch is None
    for one, other in zip(epochs_of(plain), epochs_of(ahead)):
        assert len(one) == len(other) == 4
        for (x1, y1), (x2, y2) in zip(one, other):
            assert x1.dtype == np.float32 and x2.dtype == np.uint8
            np.testing.assert_array_equal(x1, x2.astype(np.float32))
            np.testing.assert_array_equal(y1, y2)
    # The next epoch's first batches are under way before this epoch ends.
    ahead.set_epoch(5)
    ahead[len(ahead) - 1]
    assert min(ahead._prefetch.pending) == 6 * len(ahead)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(4)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ArrayBatches(images, labels, 16, shuffle=True, feed_ahead=True),
                        epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
