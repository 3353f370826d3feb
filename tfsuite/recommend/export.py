"""Recommender export: a SavedModel that takes user ids and returns their top-k items.

Its `serving_default` signature takes `user_id` (string [batch], the ids of the
ratings file) and returns `item_ids` (string [batch, k]), `scores` (float32
[batch, k]) and `known_user` (bool [batch]). The vocabularies, the rated items
and the popularity list are inside the graph (hash tables and constants), so a
TF Serving client sends ids and gets ids. Known users get what `recommend`
gives (the rated items left out; a user who has rated all but fewer than k
items gets those, then empty ids with score 0); unknown ones get the k most
popular items, scored by their positive training ratings. The export is
checked against the run's Keras model before the version is published.
"""

import json
import os
import time

import numpy as np

from tfsuite.errors import user_error
from tfsuite.export import layout
from tfsuite.export.saved_model import SIGNATURE
from tfsuite.run_dir import MODEL

FORMATS = ("saved_model",)
INPUT = "user_id"
UNKNOWN_USER = "__unknown_user__"


def formats_for(requested):
    other = sorted(set(requested or ["all"]) - {"saved_model", "all"})
    if other:
        raise user_error("A recommender exports as a SavedModel", "saved_model or all",
                         f"format={other}", "ONNX, LiteRT and TensorRT are not built for "
                         "recommenders; serve the SavedModel (TF Serving) instead.")
    return list(FORMATS)


def serving_module(model, index, k):
    """A tf.Module with the top-k signature (see the module docstring)."""
    import tensorflow as tf

    from tfsuite.recommend.serve import Recommender

    recommender = Recommender(model, index, k)
    n_items, depth = len(index.item_ids), recommender.depth
    module = tf.Module()
    module.users = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(index.user_ids), tf.range(1, len(index.user_ids) + 1, dtype=tf.int64)), 0)
    rated_users = np.repeat(np.arange(len(index.indptr) - 1), np.diff(index.indptr))
    module.rated = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(rated_users * (n_items + 1) + index.indices, tf.int64),
        tf.ones(len(index.indices), tf.int64)), 0)
    item_ids = tf.constant(index.item_ids)
    popular = index.popular(k)
    popular_ids = tf.constant(popular.astype(np.int32))
    popular_scores = tf.constant(index.popularity[popular].astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT)],
                 jit_compile=False)
    def serve(user_id):
        users = module.users.lookup(user_id)
        scores, ids = recommender.top(tf.cast(users, tf.int32))
        rated = module.rated.lookup(users[:, None] * (n_items + 1) + tf.cast(ids, tf.int64))
        # Unrated candidates first, each group in score order; then the first k.
        order = tf.argsort(tf.cast(rated > 0, tf.int32) * depth + tf.range(depth), axis=1)
        ids = tf.gather(ids, order, batch_dims=1)[:, :k]
        scores = tf.gather(scores, order, batch_dims=1)[:, :k]
        unrated = tf.gather(rated == 0, order, batch_dims=1)[:, :k]
        known = users > 0
        batch = tf.shape(users)[0]
        ids = tf.where(known[:, None], ids, tf.tile(popular_ids[None], [batch, 1]))
        valid = unrated | ~known[:, None]  # a user who rated nearly all: fewer than k left
        scores = tf.where(known[:, None], tf.cast(scores, tf.float32),
                          tf.tile(popular_scores[None], [batch, 1]))
        return {"item_ids": tf.where(valid, tf.gather(item_ids, ids - 1), ""),
                "scores": tf.where(valid, scores, 0.0), "known_user": known}

    concrete = serve.get_concrete_function()
    module.captured_variables = list(concrete.variables)
    module.serve = serve
    return module, concrete


def _check(staging, recommender, users, k):
    """Fraction of users whose SavedModel top k equals the Keras model's, in order."""
    import tensorflow as tf

    signature = tf.saved_model.load(staging).signatures[SIGNATURE]
    got = signature(**{INPUT: tf.constant(users)})
    got_ids = got["item_ids"].numpy().astype(str)
    expected = recommender.recommend(users)
    index = recommender.index
    same = [[i for i in row if i] == [index.item_ids[i - 1] for i, _ in top]
            and np.allclose(scores[:len(top)], [s for _, s in top], atol=1e-4)
            and known == bool(flag)
            for row, scores, flag, (_, known, top) in zip(got_ids, got["scores"].numpy(),
                                                          got["known_user"].numpy(), expected)]
    return float(np.mean(same)), signature


class RecommenderExport:
    """The recommender's serving module for the shared export flow (see the module
    docstring), checked against the Keras model on test users and an unknown id."""

    def __init__(self, run_dir, config, export_config, model):
        from tfsuite.recommend.serve import Recommender, load_index

        self.export_config, self.model = export_config, model
        self.index = load_index(run_dir)
        self.k = min(config.recommend.k, len(self.index.item_ids))
        self.recommender = Recommender(model, self.index, self.k)
        self.users = self.index.user_ids[:export_config.verify_samples - 1] + [UNKNOWN_USER]
        self.model_path = os.path.abspath(os.path.join(run_dir, MODEL))

    def write(self, staging, final, formats, quiet):
        import tensorflow as tf

        k, users = self.k, self.users
        started = time.perf_counter()
        module, concrete = serving_module(self.model, self.index, k)
        tf.saved_model.save(module, staging, signatures={SIGNATURE: concrete})
        agreement, signature = _check(staging, self.recommender, users, k)
        batch = tf.constant(users[:self.export_config.batch_size])
        signature(**{INPUT: batch})
        timed = time.perf_counter()
        signature(**{INPUT: batch})
        latency = (time.perf_counter() - timed) * 1000
        results = {"saved_model": {
            "path": final, "size_bytes": layout.folder_size(staging),
            "user_agreement": round(agreement, 4), "verified": agreement == 1.0,
            "latency_ms": round(latency, 2), "latency_batch_size": int(batch.shape[0]),
            "export_seconds": round(time.perf_counter() - started, 2)}}
        if not quiet:
            print(f"  saved_model      written and checked: top {k} of {len(users)} users "
                  f"(one unknown) {agreement:.1%} identical to the Keras model's", flush=True)
        with open(os.path.join(staging, "request.json"), "w", encoding="utf-8") as f:
            json.dump({"signature_name": SIGNATURE,
                       "instances": [{INPUT: u} for u in users[:2]]}, f)
        entries = {
            "input": {"name": INPUT, "shape": [None], "dtype": "string",
                      "description": "user ids as in the ratings file"},
            "outputs": {"item_ids": [None, k], "scores": [None, k], "known_user": [None]},
            "reference": {"model": self.model_path, "num_samples": len(users),
                          "inputs": "the run's users and one unknown id"},
            "formats": results, "skipped": {}}
        failure = None if results["saved_model"]["verified"] else (
            f"Export verification failed: the SavedModel's top {k} matches the Keras model's "
            f"for {agreement:.1%} of {len(users)} users (100% needed).")
        return entries, failure
