"""Image classification: image folders, arrays and TFDS into CNNs, ResNets, keras.applications."""
