"""Scoring recommenders on the held-out split: recall@k and NDCG@k over the whole
catalogue (keras-rs metrics), the popularity baseline, and RMSE for ranking.

For each user with a positive rating in the split, every item is scored; the
items the user rated before the split are excluded (a recommender does not
suggest what the user has seen), and the split's positives are the relevant
items. The popularity baseline ranks items by their positive training ratings
and is scored the same way, so the two are comparable.
"""

import csv
import os

import numpy as np

import keras_rs


def seen_before(data, split):
    """{user index: item indices rated before `split`} (all ratings, liked or not)."""
    m = data.split < split
    seen = {}
    for u, i in zip(data.users[m], data.items[m]):
        seen.setdefault(int(u), []).append(int(i))
    return seen


def relevant(data, split):
    """{user index: positive item indices in `split`} that the user had not rated before
    it (a repeat of an earlier item is never recommended, so it cannot be a hit)."""
    seen = {u: set(items) for u, items in seen_before(data, split).items()}
    out = {}
    m = data.mask(split)
    for u, i in zip(data.users[m], data.items[m]):
        if int(i) not in seen.get(int(u), ()):
            out.setdefault(int(u), []).append(int(i))
    return out


CURVE_KS = (1, 5, 10, 20, 50, 100)


def score_catalogue(score_users, data, split, k, batch_size, seed=0):
    """Recall@k and NDCG@k of a scorer on `split`, and recall at each of `CURVE_KS`.

    Args:
        score_users: function of a user-index array to scores [users, num_items + 1]
            (column 0, the unknown item, is never recommended).
        data: `Interactions`.
        split: 1 (validation) or 2 (test).
    """
    import keras

    ks = sorted({k, *(c for c in CURVE_KS if c <= data.num_items)})
    recalls = {c: keras_rs.metrics.RecallAtK(k=c, seed=seed) for c in ks}
    ndcg = keras_rs.metrics.NDCG(k=k, seed=seed)
    seen, wanted = seen_before(data, split), relevant(data, split)
    users = np.array(sorted(wanted), np.int32)
    for begin in range(0, len(users), batch_size):
        batch = users[begin:begin + batch_size]
        scores = np.asarray(keras.ops.convert_to_numpy(score_users(batch)), np.float32)
        labels = np.zeros_like(scores)
        labels[:, 0] = -1  # -1: left out of the ranking (keras-rs' convention)
        for row, u in enumerate(batch):
            labels[row, seen.get(int(u), [])] = -1
            labels[row, wanted[int(u)]] = 1
        for metric in (*recalls.values(), ndcg):
            metric.update_state(labels, scores)
    curve = {c: round(float(m.result()), 6) for c, m in recalls.items()}
    return {f"recall_at_{k}": curve[k], f"ndcg_at_{k}": round(float(ndcg.result()), 6),
            "recall_curve": curve, "num_users_evaluated": int(len(users))}


def popularity_scorer(data):
    """Positive training ratings as every user's scores (keras-rs breaks ties at random,
    with the seed)."""
    counts = data.popularity().astype(np.float32)
    return lambda users: np.broadcast_to(counts, (len(users), len(counts)))


def model_scorer(model, data):
    """Scores of every item for a batch of users, from a two-tower or ranking model."""
    import keras

    items = np.arange(data.num_items + 1, dtype=np.int32)
    if hasattr(model, "item_vectors"):
        item_vectors = model.item_vectors(items)
        return lambda users: keras.ops.matmul(model.user_vectors(users),
                                              keras.ops.transpose(item_vectors))
    return lambda users: model.score_items(np.asarray(users, np.int32), items)


def rmse(model, data, split, batch_size=4096):
    """Root-mean-square error of predicted ratings on every rating of `split`."""
    import keras

    m = data.split == split
    users, items, ratings = data.users[m], data.items[m], data.ratings[m]
    predicted = np.concatenate([keras.ops.convert_to_numpy(model(
        {"user": users[b:b + batch_size], "item": items[b:b + batch_size]}))
        for b in range(0, len(users), batch_size)]) if len(users) else np.zeros(0)
    return float(np.sqrt(np.mean((predicted - ratings) ** 2))) if len(users) else None


def write_recommendations(path, model, data, users, k, titles=None):
    """A CSV of the top-k test recommendations of some users, with hits marked."""
    import keras

    scorer, seen, wanted = model_scorer(model, data), seen_before(data, 2), relevant(data, 2)
    scores = np.array(keras.ops.convert_to_numpy(scorer(np.asarray(users, np.int32))))
    rows = []
    for row, u in enumerate(users):
        scores[row, [0, *seen.get(int(u), [])]] = -np.inf
        ranked = np.argsort(-scores[row], kind="stable")[:k]
        for rank, i in enumerate(ranked[np.isfinite(scores[row, ranked])], 1):
            raw = data.item_ids[i - 1]
            rows.append((data.user_ids[u - 1], rank, raw, (titles or {}).get(raw, ""),
                         f"{scores[row, i]:.4f}", int(i in wanted.get(int(u), ()))))
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("user", "rank", "item", "title", "score", "liked_in_test"))
        writer.writerows(rows)
    os.replace(tmp, path)
