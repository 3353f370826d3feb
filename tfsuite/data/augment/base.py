"""The base of tfsuite's augmentation layers: seeds, batching, config."""

import keras
from keras.src.layers.preprocessing.data_layer import DataLayer  # public in keras.layers soon;
# DataLayer is what lets a layer run TensorFlow ops inside tf.data on any backend.


def uniform(layer, shape, low, high, seed, draw):
    """Uniform numbers: stateless from a per-batch `seed` tensor, else the layer's generator.

    The tf.data pipeline passes a per-batch seed (from `Dataset.random`), because
    a shared generator variable updated by parallel `map` calls would make the
    augmentation depend on thread timing; `draw` keeps each draw distinct.
    """
    if seed is not None:
        import tensorflow as tf  # only tf.data passes seeds, so TensorFlow is there

        seed = tf.cast(seed, tf.int64) + tf.constant([0, draw], tf.int64) * 7919
        return tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high)
    generator = layer._get_seed_generator(layer.backend._backend)
    return layer.backend.random.uniform(shape, minval=low, maxval=high, seed=generator)


class RandomImageLayer(DataLayer):
    """Samples parameters per image (`get_random_transformation`), then applies them
    (`transform_images`), like Keras' augmentation layers.

    Subclasses list their constructor arguments in `config_keys`.
    """

    config_keys = ()

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, images, seed=None):
        raise NotImplementedError

    def transform_images(self, images, transformation):
        raise NotImplementedError

    def call(self, images, seed=None):
        unbatched = len(images.shape) == 3
        if unbatched:
            images = self.backend.numpy.expand_dims(images, 0)
        outputs = self.transform_images(images, self.get_random_transformation(images, seed))
        if unbatched:
            outputs = self.backend.numpy.squeeze(outputs, 0)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({key: getattr(self, key) for key in (*self.config_keys, "seed")})
        return config
