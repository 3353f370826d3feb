"""The recommender models (keras-rs layers, Keras 3 ops: any backend).

`TwoTowerModel`: a user tower and an item tower (id embeddings, the item's
genres, optional Dense layers) whose unit-length outputs are scored by cosine.
Trained with an in-batch softmax: each positive (user, item) pair in a batch is
one row, and the batch's other items are its negatives. Two corrections make
that softmax an unbiased retrieval loss: the log of each item's sampling
probability is subtracted from its logits (keras-rs
`SamplingProbabilityCorrection`; without it popular items, negatives in many
batches, sink), and negatives that are the row's own item are masked.

`RankingModel`: user and item embeddings (and genres), concatenated, through a
DCN cross stack (keras-rs `FeatureCross`) and Dense layers to one score: a
rating (MSE) or a list score (keras-rs listwise and pairwise losses).
"""

import keras
import keras_rs
from keras import ops


@keras.saving.register_keras_serializable(package="tfsuite")
class AccidentalHitsMask(keras.layers.Layer):
    """Masks the in-batch negatives that are the row's positive item.

    keras-rs 0.4's `RemoveAccidentalHits` adds `+1e-40` to those logits, which changes
    nothing (keras-team/keras-rs#206), so the mask is applied here with `where`.
    """

    def call(self, logits, item_ids):
        same = ops.equal(ops.expand_dims(item_ids, 1), ops.expand_dims(item_ids, 0))
        accidental = ops.logical_and(same, ops.logical_not(ops.eye(ops.shape(logits)[0],
                                                                    dtype="bool")))
        return ops.where(accidental, ops.full_like(logits, -1e4), logits)


def _dense_stack(widths, output_dim, prefix):
    layers = [keras.layers.Dense(w, activation="relu", name=f"{prefix}_dense_{n}")
              for n, w in enumerate(widths)]
    if widths:
        layers.append(keras.layers.Dense(output_dim, name=f"{prefix}_output"))
    return layers


class _Embeddings(keras.Model):
    """Id embeddings of users and items, and the items' genre table (not trained)."""

    def __init__(self, num_users, num_items, num_genres, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.num_users, self.num_items = num_users, num_items
        self.num_genres, self.embedding_dim = num_genres, embedding_dim
        # index 0: an id the model never saw
        self.user_embedding = keras.layers.Embedding(num_users + 1, embedding_dim,
                                                     name="user_embedding")
        self.item_embedding = keras.layers.Embedding(num_items + 1, embedding_dim,
                                                     name="item_embedding")
        self.item_genres = keras.layers.Embedding(num_items + 1, max(1, num_genres),
                                                  trainable=False, name="item_genres")
        self.genre_projection = (keras.layers.Dense(embedding_dim, use_bias=False,
                                                    name="genre_projection")
                                 if num_genres else None)

    def set_genres(self, table):
        """Writes the [num_items + 1, num_genres] multi-hot table into the model."""
        self.item_genres.build((None,))
        if self.num_genres:
            self.item_genres.embeddings.assign(ops.convert_to_tensor(table, "float32"))

    def item_features(self, items):
        x = self.item_embedding(items)
        if self.genre_projection is not None:
            x = x + self.genre_projection(self.item_genres(items))
        return x

    def get_config(self):
        return {**super().get_config(), "num_users": self.num_users,
                "num_items": self.num_items, "num_genres": self.num_genres,
                "embedding_dim": self.embedding_dim}


@keras.saving.register_keras_serializable(package="tfsuite")
class TwoTowerModel(_Embeddings):
    """Retrieval: `call` returns in-batch logits [batch, batch] whose column 0 is each row's
    positive (the labels are all 0). `user_vectors` / `item_vectors` are the towers, for
    top-k scoring."""

    def __init__(self, num_users, num_items, num_genres=0, embedding_dim=32, tower_layers=(),
                 temperature=0.3, logq_correction=True, remove_accidental_hits=True,
                 **kwargs):
        super().__init__(num_users, num_items, num_genres, embedding_dim, **kwargs)
        self.tower_layers = list(tower_layers)
        self.temperature = temperature
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits
        # Each item's sampling probability (its share of the training positives), for the
        # logQ correction: a table in the model, float32, set by `set_probabilities`.
        self.item_probability = keras.layers.Embedding(
            num_items + 1, 1, trainable=False, dtype="float32", name="item_probability")
        self.user_tower = _dense_stack(self.tower_layers, embedding_dim, "user")
        self.item_tower = _dense_stack(self.tower_layers, embedding_dim, "item")
        # float32 even under mixed precision: the logits and the log-probabilities
        # (up to ~14) would lose their small differences in bfloat16.
        self.hits_mask = AccidentalHitsMask(name="accidental_hits", dtype="float32")
        self.sampling_correction = keras_rs.layers.SamplingProbabilityCorrection(
            name="sampling_correction", dtype="float32")

    def set_probabilities(self, probabilities):
        """Writes the [num_items + 1] sampling probabilities into the model."""
        self.item_probability.build((None,))
        self.item_probability.embeddings.assign(
            ops.reshape(ops.convert_to_tensor(probabilities, "float32"), (-1, 1)))

    def user_vectors(self, users):
        x = self.user_embedding(users)
        for layer in self.user_tower:
            x = layer(x)
        return ops.normalize(ops.cast(x, "float32"), axis=-1)

    def item_vectors(self, items):
        x = self.item_features(items)
        for layer in self.item_tower:
            x = layer(x)
        return ops.normalize(ops.cast(x, "float32"), axis=-1)

    def call(self, inputs):
        users, items = inputs["user"], inputs["item"]
        logits = ops.matmul(self.user_vectors(users),
                            ops.transpose(self.item_vectors(items))) / self.temperature
        if self.remove_accidental_hits:
            logits = self.hits_mask(logits, items)
        if self.logq_correction:
            logits = self.sampling_correction(
                logits, ops.squeeze(self.item_probability(items), -1))
        # Row i's positive moves to column 0 (row i rolled left by i), so every label is
        # 0: labels 0..B-1 from the input pipeline would be wrong once tf.distribute
        # splits a batch over replicas (each replica's logits are its own B/R x B/R).
        size = ops.shape(logits)[0]
        shift = ops.mod(ops.expand_dims(ops.arange(size), 1)
                        + ops.expand_dims(ops.arange(size), 0), size)
        return ops.take_along_axis(logits, shift, axis=1)

    def get_config(self):
        return {**super().get_config(), "tower_layers": self.tower_layers,
                "temperature": self.temperature, "logq_correction": self.logq_correction,
                "remove_accidental_hits": self.remove_accidental_hits}


@keras.saving.register_keras_serializable(package="tfsuite")
class RankingModel(_Embeddings):
    """Ranking: a score for each (user, item); inputs of shape [batch] or [batch, list]."""

    def __init__(self, num_users, num_items, num_genres=0, embedding_dim=32,
                 feature_cross=True, cross_layers=2, deep_layers=(64, 32), **kwargs):
        super().__init__(num_users, num_items, num_genres, embedding_dim, **kwargs)
        self.feature_cross, self.cross_layers = feature_cross, cross_layers
        self.deep_layers = list(deep_layers)
        self.crosses = ([keras_rs.layers.FeatureCross(name=f"cross_{n}")
                         for n in range(cross_layers)] if feature_cross else [])
        self.deep = [keras.layers.Dense(w, activation="relu", name=f"deep_{n}")
                     for n, w in enumerate(self.deep_layers)]
        self.score = keras.layers.Dense(1, name="score")

    def call(self, inputs):
        x0 = ops.concatenate([self.user_embedding(inputs["user"]),
                              self.item_features(inputs["item"])], axis=-1)
        x = x0
        for cross in self.crosses:
            x = cross(x0, x)
        for layer in self.deep:
            x = layer(x)
        return ops.squeeze(ops.cast(self.score(x), "float32"), -1)

    def score_items(self, users, items):
        """Scores [len(users), len(items)]: every user against every item (backend ops, so
        also inside the SavedModel's tf.function)."""
        return self({"user": ops.repeat(ops.expand_dims(users, 1), ops.shape(items)[0], 1),
                     "item": ops.tile(ops.expand_dims(items, 0), [ops.shape(users)[0], 1])})

    def get_config(self):
        return {**super().get_config(), "feature_cross": self.feature_cross,
                "cross_layers": self.cross_layers, "deep_layers": self.deep_layers}


def build_model(r, data):
    """The model `r.model` names (`r`: RecommendConfig), sized for `data`, genres set."""
    num_genres = data.genres.shape[1] if r.use_genres else 0
    common = dict(num_users=data.num_users, num_items=data.num_items, num_genres=num_genres,
                  embedding_dim=r.embedding_dim)
    if r.model == "two_tower":
        model = TwoTowerModel(**common, tower_layers=r.tower_layers,
                              temperature=r.temperature, logq_correction=r.logq_correction,
                              remove_accidental_hits=r.remove_accidental_hits,
                              name="two_tower")
    else:
        model = RankingModel(**common, feature_cross=r.feature_cross,
                             cross_layers=r.cross_layers, deep_layers=r.deep_layers,
                             name="ranking")
    model.set_genres(data.genres)
    if r.model == "two_tower":
        popularity = data.popularity()
        model.set_probabilities(popularity / max(1, popularity.sum()))
    return model
