"""Scoring a recommender: recall@k and NDCG@k against popularity, RMSE, sample lists."""

import os
import time

import numpy as np

from tfsuite.io import write_json

SAMPLE_USERS = 20  # test users whose recommendations go to evaluation/recommendations.csv


def evaluate_model(model, data, config, out_dir):
    """Test-split recall@k / NDCG@k of the model and of popularity (and RMSE for ranking);
    writes evaluation/ and returns the metrics."""
    from tfsuite.plots import plot_recall_at_k
    from tfsuite.recommend.metrics import (model_scorer, popularity_scorer, rmse,
                                           score_catalogue, write_recommendations)

    r, k = config.recommend, config.recommend.k
    os.makedirs(out_dir, exist_ok=True)
    # A ranking model scores each (user, item) pair: keep a batch near a million pairs.
    batch = r.eval_batch_size if r.model == "two_tower" else max(
        1, min(r.eval_batch_size, 1_000_000 // (data.num_items + 1)))
    started = time.perf_counter()
    ours = score_catalogue(model_scorer(model, data), data, 2, k, batch, config.runtime.seed)
    seconds = time.perf_counter() - started
    popular = score_catalogue(popularity_scorer(data), data, 2, k, batch, config.runtime.seed)
    metrics = {**{key: v for key, v in ours.items() if key != "recall_curve"},
               f"popularity_recall_at_{k}": popular[f"recall_at_{k}"],
               f"popularity_ndcg_at_{k}": popular[f"ndcg_at_{k}"],
               "recall_vs_popularity": round(ours[f"recall_at_{k}"]
                                             / max(popular[f"recall_at_{k}"], 1e-9), 3),
               "recall_curve": ours["recall_curve"],
               "popularity_recall_curve": popular["recall_curve"],
               "eval_seconds": round(seconds, 2), "k": k}
    if r.model == "ranking" and r.ranking_loss == "mse":  # list losses do not score ratings
        metrics["rmse"] = rmse(model, data, 2)
        metrics["item_mean_rmse"] = _item_mean_rmse(data)
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    plot_recall_at_k({f"{r.model} (recall@{k} {ours[f'recall_at_{k}']:.3f})":
                      ours["recall_curve"],
                      f"popularity ({popular[f'recall_at_{k}']:.3f})":
                      popular["recall_curve"]}, os.path.join(out_dir, "recall_at_k.png"),
                     title=f"{config.name}: test split, rated items excluded")
    users = sorted({int(u) for u in data.users[data.mask(2)]})[:SAMPLE_USERS]
    write_recommendations(os.path.join(out_dir, "recommendations.csv"), model, data, users,
                          k, data.titles)
    return metrics


def _item_mean_rmse(data):
    """The RMSE of predicting each item's mean training rating: a ranking baseline."""
    train, test = data.split == 0, data.split == 2
    sums = np.bincount(data.items[train], data.ratings[train], data.num_items + 1)
    counts = np.bincount(data.items[train], minlength=data.num_items + 1)
    global_mean = float(data.ratings[train].mean())
    means = np.where(counts > 0, sums / np.maximum(counts, 1), global_mean)
    error = means[data.items[test]] - data.ratings[test]
    return round(float(np.sqrt(np.mean(error ** 2))), 6) if test.any() else None
