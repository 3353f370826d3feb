"""Keras 3 under tf.distribute strategies: fixes for two upstream problems.

1. Before fit/evaluate, Keras 3.15's TensorFlow trainer draws a batch from a
   new iterator over the distributed dataset only to learn the input shapes,
   and averages it over the replicas with `strategy.reduce`. Under
   MultiWorkerMirroredStrategy that reduction fails ("Attempt to convert a
   value (PerReplica...) ... to a Tensor"; the official multi-worker Keras
   tutorial fails the same way). Under any strategy the extra iterator
   advances the shuffle (`reshuffle_each_iteration`), so a distributed run
   sees other batches than a single-device run with the same seed.
   `patch_model` builds the model from the dataset's element spec instead:
   the same shapes, no batch drawn.
2. Each multi-worker step averages the scalar logs (loss, metrics) with
   `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar ("Invalid
   reduction dimension 0 for input with 0 dimensions"). `patch_trainer`
   averages scalars with `axis=None`.

Both are open upstream (keras-team/keras#20585, tensorflow/tensorflow#72388).
"""

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tensorflow_trainer

_original_reduce_per_replica = tensorflow_trainer.reduce_per_replica


def _reduce_per_replica(values, strategy, reduction="auto"):
    if reduction not in ("auto", "mean") or \
            not tensorflow_trainer._collective_all_reduce_multi_worker(strategy):
        return _original_reduce_per_replica(values, strategy, reduction)

    def reduce(value):
        if getattr(value, "shape", None) is not None and len(value.shape) == 0:
            return strategy.reduce("MEAN", value, axis=None)
        return _original_reduce_per_replica(value, strategy, reduction)

    return tf.nest.map_structure(reduce, values)


def patch_trainer():
    """Scalar logs are averaged over the workers without a batch axis (fix 2)."""
    tensorflow_trainer.reduce_per_replica = _reduce_per_replica


def patch_model(model):
    """`model` builds from its data's element spec, not from a drawn batch (fix 1)."""

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if data_batch is None and iterator is not None:
            data_batch = iterator.data_adapter.get_tf_dataset().element_spec
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    return model
