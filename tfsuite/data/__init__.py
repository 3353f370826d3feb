"""Data: image sources, ImageDataGenerator-style augmentation, tf.data pipelines."""
