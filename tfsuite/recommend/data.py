"""A run's recommendation data: id vocabularies, per-user time-ordered splits, the
popularity counts, and the tf.data pipelines the trainer fits on.

Each user's ratings are ordered by timestamp; the latest `data.test_split` of
them are the test split and the `data.validation_split` before those the
validation split (a user with fewer than 3 ratings stays in training), so the
model is scored on what users went on to like, never on their past. Ids are
mapped to indices 1..N in order of first appearance; 0 is kept for ids the
model never saw (`tfsuite.recommend.serve` saves the vocabularies in the run).
"""

import dataclasses
from typing import Dict, List, Optional

import numpy as np

from tfsuite.errors import user_error

MIN_RATINGS_TO_SPLIT = 3


@dataclasses.dataclass
class Interactions:
    """Every rating as index arrays, with its split (0 train, 1 validation, 2 test)."""

    users: np.ndarray  # int32 user index per rating
    items: np.ndarray  # int32 item index per rating
    ratings: Optional[np.ndarray]  # float32, or None (implicit only)
    positive: np.ndarray  # bool: at or above the rating threshold
    split: np.ndarray  # int8
    user_ids: List[str]  # raw id of index i + 1
    item_ids: List[str]
    genres: np.ndarray  # float32 [num_items + 1, num_genres] multi-hot (index 0: none)
    genre_names: List[str]
    titles: Dict[str, str]  # raw item id -> title

    @property
    def num_users(self):
        return len(self.user_ids)

    @property
    def num_items(self):
        return len(self.item_ids)

    def mask(self, split, positive=True):
        keep = self.split == split
        return keep & self.positive if positive else keep

    def popularity(self):
        """Positive training interactions per item index (index 0 included, as 0)."""
        return np.bincount(self.items[self.mask(0)], minlength=self.num_items + 1)


def vocabulary(ids):
    """{raw id: index from 1}, in order of first appearance."""
    return {i: n for n, i in enumerate(dict.fromkeys(ids), 1)}


def build_interactions(ratings, r, validation_split, test_split, items=None):
    """`Interactions` from `Ratings`, `RecommendConfig` and the split fractions."""
    user_index, item_index = vocabulary(ratings.users), vocabulary(ratings.items)
    users = np.fromiter((user_index[u] for u in ratings.users), np.int32, len(ratings))
    item_arr = np.fromiter((item_index[i] for i in ratings.items), np.int32, len(ratings))
    if ratings.ratings is None or r.rating_threshold is None:
        positive = np.ones(len(ratings), bool)
    else:
        positive = ratings.ratings >= r.rating_threshold
    if not positive.any():
        raise user_error("No rating reaches recommend.rating_threshold", "some ratings at or "
                         "above it (they are the positive interactions)",
                         f"recommend.rating_threshold={r.rating_threshold} (highest rating "
                         f"{float(ratings.ratings.max()):g})", "Lower it, or set it to null "
                         "to count every rated item.")
    times = ratings.timestamps if ratings.timestamps is not None else np.arange(len(ratings))
    split = _split_by_time(users, times, validation_split, test_split)
    item_ids = list(item_index)
    genre_names = sorted({g for _, genres in (items or {}).values() for g in genres})
    genres = np.zeros((len(item_ids) + 1, len(genre_names)), np.float32)
    column = {g: n for n, g in enumerate(genre_names)}
    for i, raw in enumerate(item_ids, 1):
        for g in (items or {}).get(raw, ("", []))[1]:
            genres[i, column[g]] = 1.0
    return Interactions(users, item_arr, ratings.ratings, positive, split, list(user_index),
                        item_ids, genres, genre_names,
                        {k: title for k, (title, _) in (items or {}).items()})


def _split_by_time(users, times, validation_split, test_split):
    """0/1/2 per rating: each user's latest ratings go to test, the ones before to val."""
    order = np.lexsort((np.arange(len(users)), times, users))  # stable within equal times
    split = np.zeros(len(users), np.int8)
    starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
    for begin, end in zip(starts, np.r_[starts[1:], len(order)]):
        n = end - begin
        if n < MIN_RATINGS_TO_SPLIT:
            continue
        # at least one of each held-out split, and always one rating left to train on
        n_test = min(max(1, round(n * test_split)), n - 1) if test_split > 0 else 0
        n_val = max(1, round(n * validation_split)) if validation_split > 0 else 0
        n_val = max(0, min(n_val, n - n_test - 1))
        split[order[end - n_test:end]] = 2
        split[order[end - n_test - n_val:end - n_test]] = 1
    return split


# ---------------------------------------------------------------- what the trainer fits


@dataclasses.dataclass
class RecommendationData:
    """The trainer's view: tf.data pipelines and counts (`unit` names the examples)."""

    train: object
    val: Optional[object]
    num_train: int
    num_val: int
    num_test: int
    num_classes: int  # items (the trainer passes it to the metrics)
    interactions: Interactions
    unit: str
    report: dict


def build_datasets(data, r, batch_size, seed, drop_remainder=False):
    """tf.data pipelines of the training and validation splits for `r.model`."""
    import tensorflow as tf

    if r.model == "two_tower":
        def examples(split):
            m = data.mask(split)
            x = {"user": data.users[m], "item": data.items[m]}
            # every label is 0: the model puts each row's positive in column 0
            return x, np.zeros(int(m.sum()), np.int32), int(m.sum())
    elif r.ranking_loss == "mse":
        def examples(split):
            m = data.mask(split, positive=False)
            return ({"user": data.users[m], "item": data.items[m]}, data.ratings[m],
                    int(m.sum()))
    else:
        def examples(split):
            x, y = user_lists(data, split, r.list_size, seed)
            return x, y, len(y)

    def pipeline(split, shuffle):
        x, y, n = examples(split)
        if n == 0:
            return None, 0
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds.prefetch(tf.data.AUTOTUNE), n

    train, num_train = pipeline(0, True)
    val, num_val = pipeline(1, False)
    return train, val, num_train, num_val


def user_lists(data, split, list_size, seed):
    """Lists of `list_size` items one user rated in `split`, labelled with the ratings,
    for the listwise and pairwise losses: about one list per `list_size` ratings."""
    rng = np.random.default_rng(seed)
    m = data.mask(split, positive=False)
    users, items, ratings = data.users[m], data.items[m], data.ratings[m]
    order = np.argsort(users, kind="stable")
    starts = np.flatnonzero(np.r_[True, users[order][1:] != users[order][:-1]])
    xs_u, xs_i, ys = [], [], []
    for begin, end in zip(starts, np.r_[starts[1:], len(order)]):
        rows = order[begin:end]
        if len(rows) < 2:
            continue
        for _ in range(max(1, len(rows) // list_size)):
            pick = rng.choice(rows, size=list_size, replace=len(rows) < list_size)
            xs_u.append(users[pick])
            xs_i.append(items[pick])
            ys.append(ratings[pick])
    if not ys:
        empty = np.zeros((0, list_size), np.int32)
        return {"user": empty, "item": empty}, empty.astype(np.float32)
    return {"user": np.stack(xs_u), "item": np.stack(xs_i)}, np.stack(ys)
