"""Recommenders: ratings logs, two-tower retrieval and ranking with keras-rs, top-k serving."""
