"""Translation: T5 encoder-decoders (KerasHub) trained on parallel corpora, offline."""
