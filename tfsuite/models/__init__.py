"""Model builders (Keras 3 layers and ops only, so every backend can run them)."""
