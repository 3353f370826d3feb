"""What a trained recommender needs to answer "top k for user X", saved in the run
directory, and the top-k recommender itself.

- `users.txt`: the raw user ids, line i holding index i + 1 (index 0: unknown).
- `items.tsv`: item_id, title, genres and popularity (positive training
  ratings), row i holding item index i + 1.
- `rated.npz`: the items each user rated (CSR `indptr`, `indices`), never
  recommended back to them.

Known users get the model's top k among the items they have not rated (fewer
when fewer are left); an unknown user gets the k most popular items (and
`known` False). Candidates are the top k plus the most items any user rated,
so dropping the rated ones never leaves fewer than k unrated items that a
full ranking would have given. A two-tower model retrieves them with keras-rs
`BruteForceRetrieval` over the item tower's vectors.
"""

import csv
import dataclasses
import os
from typing import Dict, List

import numpy as np

from tfsuite.errors import user_error
from tfsuite.io import write_text

USERS_FILE, ITEMS_FILE, RATED_FILE = "users.txt", "items.tsv", "rated.npz"


@dataclasses.dataclass
class Index:
    user_ids: List[str]
    item_ids: List[str]
    titles: List[str]
    genres: List[str]
    popularity: np.ndarray  # int64 [num_items + 1]
    indptr: np.ndarray  # rated items of user index u: indices[indptr[u]:indptr[u + 1]]
    indices: np.ndarray

    def __post_init__(self):
        self.user_index: Dict[str, int] = {u: n for n, u in enumerate(self.user_ids, 1)}

    @property
    def max_rated(self):
        return int(np.diff(self.indptr).max()) if len(self.indptr) > 1 else 0

    def rated(self, user):
        return self.indices[self.indptr[user]:self.indptr[user + 1]]

    def popular(self, k):
        """The k most popular item indices (ties: the lower index first)."""
        return np.argsort(-self.popularity[1:], kind="stable")[:k] + 1


def build_index(data):
    """The `Index` of `Interactions`: every rating counts as rated."""
    order = np.argsort(data.users, kind="stable")
    counts = np.bincount(data.users, minlength=data.num_users + 1)
    genres = ["|".join(g for g, x in zip(data.genre_names, row) if x) for row in data.genres]
    return Index(list(data.user_ids), list(data.item_ids),
                 [data.titles.get(i, "") for i in data.item_ids], genres[1:],
                 data.popularity(), np.r_[0, np.cumsum(counts)].astype(np.int64),
                 data.items[order].astype(np.int32))


def save_index(run_dir, index):
    write_text(os.path.join(run_dir, USERS_FILE), "".join(f"{u}\n" for u in index.user_ids))
    rows = [("item_id", "title", "genres", "popularity")] + [
        (i, t, g, int(p)) for i, t, g, p in zip(index.item_ids, index.titles, index.genres,
                                                index.popularity[1:])]
    tmp = os.path.join(run_dir, ITEMS_FILE + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
    os.replace(tmp, os.path.join(run_dir, ITEMS_FILE))
    tmp = os.path.join(run_dir, "rated.tmp.npz")
    np.savez(tmp, indptr=index.indptr, indices=index.indices)
    os.replace(tmp, os.path.join(run_dir, RATED_FILE))


def load_index(run_dir):
    paths = [os.path.join(run_dir, f) for f in (USERS_FILE, ITEMS_FILE, RATED_FILE)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise user_error("The run has no recommendation index", f"{', '.join(paths)} "
                         "(written when training starts)", f"run_dir={run_dir!r} (missing "
                         f"{missing})", "Train the run first.")
    with open(paths[0], encoding="utf-8") as f:
        users = f.read().split("\n")[:-1]
    with open(paths[1], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))[1:]
    rated = np.load(paths[2])
    return Index(users, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                 np.r_[0, [int(r[3]) for r in rows]].astype(np.int64), rated["indptr"],
                 rated["indices"])


class Recommender:
    """Top-k items for raw user ids, from a run's model and `Index`."""

    def __init__(self, model, index, k):
        self.model, self.index, self.k = model, index, k
        self.num_items = len(index.item_ids)
        self.depth = min(self.num_items, k + index.max_rated)
        self.retrieval = None
        if hasattr(model, "item_vectors"):
            import keras_rs

            items = np.arange(1, self.num_items + 1, dtype=np.int32)
            self.retrieval = keras_rs.layers.BruteForceRetrieval(
                model.item_vectors(items), items, k=self.depth)

    def top(self, users):
        """(scores, item indices) [batch, depth] as backend tensors, best first (also
        inside a tf.function: the SavedModel calls it)."""
        from keras import ops

        if self.retrieval is not None:
            return self.retrieval(self.model.user_vectors(users))
        items = ops.arange(1, self.num_items + 1, dtype="int32")
        scores, positions = ops.top_k(self.model.score_items(users, items), self.depth)
        return scores, positions + 1

    def candidates(self, users):
        import keras

        scores, ids = self.top(users)
        return keras.ops.convert_to_numpy(scores), keras.ops.convert_to_numpy(ids)

    def recommend(self, user_ids):
        """[(raw user id, known, [(item index, score)] best first)] for each id: k items,
        or all the user has not rated when that is fewer."""
        known = [u for u in user_ids if u in self.index.user_index]
        top = {}
        if known:
            users = np.array([self.index.user_index[u] for u in known], np.int32)
            scores, ids = self.candidates(users)
            for u, user, row_scores, row_ids in zip(known, users, scores, ids):
                keep = ~np.isin(row_ids, self.index.rated(user))
                top[u] = list(zip(row_ids[keep][:self.k].tolist(),
                                  row_scores[keep][:self.k].tolist()))
        popular = self.index.popular(self.k)
        counts = self.index.popularity[popular]
        fallback = list(zip(popular.tolist(), counts.astype(float).tolist()))
        return [(u, u in top, top[u] if u in top else fallback) for u in user_ids]
