"""Keras 3 under TensorFlow's MultiWorkerMirroredStrategy: two fixes for known breakage.

Keras 3.15's TensorFlow trainer fails with this strategy (the official
multi-worker Keras tutorial fails the same way):

1. Before fit/evaluate it averages the first distributed batch with
   `strategy.reduce`, only to learn the input shapes; the multi-worker
   cross-device reduction cannot take that per-replica value ("Attempt to
   convert a value (PerReplica...) ... to a Tensor").
2. Each step averages the scalar logs (loss, metrics) across workers with
   `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar
   ("Invalid reduction dimension 0 for input with 0 dimensions").

`patch_model` builds a model from the first local replica's batch (same
shapes); `patch_trainer` averages scalars over replicas with `axis=None`.
Both apply only to multi-worker training.
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
    """`model` builds from its first local batch instead of a cross-worker mean (fix 1)."""

    def maybe_symbolic_build(iterator=None, data_batch=None):
        strategy = model.distribute_strategy
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda x: strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build
    return model
