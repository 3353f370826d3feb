"""Batch normalization at less cost in training, with the same function.

On an H200, ResNet-50 trains at 8% fewer images/s with Keras' two-pass statistics
and 4% fewer with the convolution biases before batch norm (benchmarks/RESULTS.md).
"""

import types

import keras
from keras import layers, ops


def _one_pass_moments(layer, inputs, mask):
    if mask is not None or layer.synchronized:
        return type(layer)._moments(layer, inputs, mask)
    mean = ops.mean(inputs, axis=layer._reduction_axes)
    mean_of_squares = ops.mean(ops.square(inputs), axis=layer._reduction_axes)
    return mean, ops.maximum(mean_of_squares - ops.square(mean), 0.0)


def use_one_pass_statistics(model):
    """Batch statistics of every BatchNormalization in `model` in one pass over the data.

    Keras computes the mean, then the variance from a second pass over the
    activations (in float32, also under mixed precision). The mean and the mean of
    squares read them once, as Flax does by default; the variance is their
    difference, at least 0. In float32 that loses precision only where an
    activation's mean is thousands of times its spread, which the outputs of
    freshly initialised convolutions are far from. Masked and synchronized
    (cross-replica) statistics keep Keras' method. The layers stay plain Keras
    layers, so saved models load without tfsuite.
    """
    for layer in _all_layers(model):
        # `_moments` is Keras' private hook for the statistics: where a Keras version
        # lacks it, its own method stays.
        if isinstance(layer, layers.BatchNormalization) and hasattr(layer, "_moments"):
            layer._moments = types.MethodType(_one_pass_moments, layer)
    return model


def without_biases_before_batch_norm(model):
    """A copy of functional `model` where convolutions that feed only a batch norm have no bias.

    In training, batch norm subtracts the batch mean, which removes any constant
    added before it: such a bias gets a zero gradient and never changes an output,
    but computing that gradient is a reduction over the activations in every
    step. keras.applications' ResNet-50 has one on each of its 53 convolutions
    (the Caffe weights had them); torchvision's has none. For freshly initialised
    models only: pretrained weights files include the biases.
    """
    feeds_batch_norm = set()
    for layer in model.layers:
        consumers = getattr(layer, "_outbound_nodes", None)  # the functional graph's edges
        if (isinstance(layer, layers.Conv2D) and layer.use_bias and consumers
                and all(isinstance(node.operation, layers.BatchNormalization)
                        for node in consumers)):
            feeds_batch_norm.add(layer.name)
    if not feeds_batch_norm:
        return model

    def clone(layer):
        config = layer.get_config()
        if layer.name in feeds_batch_norm:
            config["use_bias"] = False
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.name = model.name
    return copy


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
