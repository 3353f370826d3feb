"""Image classification: image folders, arrays and TFDS into CNNs, ResNets and keras.applications."""
