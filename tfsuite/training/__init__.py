"""Training layer: runtime (backend, devices, strategy, precision), trainer, callbacks."""
