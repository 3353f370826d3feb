"""Recommendation runs: train on a ratings log, evaluate against popularity, recommend.

A run directory holds what an image run holds (config.yaml, checkpoints/,
logs/, history.csv, model.keras, training_curves.png, evaluation/,
summary.json) plus the id vocabularies and rated items (`users.txt`,
`items.tsv`, `rated.npz`; see `tfsuite.recommend.serve`). evaluation/ has
metrics.json, recall_at_k.png (the model against popularity) and
recommendations.csv (the top k of some test users, hits marked).
"""

import os
import time

import numpy as np

from tfsuite.config import read_run_config, write_config
from tfsuite.errors import user_error
from tfsuite.io import display_path, write_json
from tfsuite.run_dir import MODEL, SUMMARY

SAMPLE_USERS = 20  # test users whose recommendations go to evaluation/recommendations.csv


def load_ratings(config):
    """(Ratings, items {id: (title, genres)} or None) of the config's data source."""
    from tfsuite.recommend.ratings import Ratings, default_items_path, read_items, read_ratings

    r = config.recommend
    if config.data.source == "generated":
        from tfsuite.recommend.generate import generate_ratings

        rows, movies = generate_ratings(r.num_users, r.num_items)
        columns = list(zip(*rows))
        ratings = Ratings([str(u) for u in columns[0]], [str(i) for i in columns[1]],
                          np.asarray(columns[2], np.float32), np.asarray(columns[3], float),
                          path="generated (python -m tfsuite.run write-ratings)")
        return ratings, {str(i): (t, g.split("|")) for i, t, g in movies}
    ratings = read_ratings(config.data.path, r)
    items_path = r.items_path or default_items_path(config.data.path)
    return ratings, read_items(items_path) if items_path else None


def check_same_ids(run_dir, data, config):
    """The run's saved vocabularies are those of `data` (ids are numbered in order of first
    appearance, so an edited ratings file renumbers them)."""
    from tfsuite.recommend.serve import USERS_FILE, load_index

    if not os.path.isfile(os.path.join(run_dir, USERS_FILE)):
        return
    index = load_index(run_dir)
    if index.user_ids != data.user_ids or index.item_ids != data.item_ids:
        raise user_error("The ratings are not the ones this run was trained on", "the same "
                         "users and items, first seen in the same order",
                         f"{config.data.path or 'generated'}: {data.num_users} users, "
                         f"{data.num_items} items; the run has {len(index.user_ids)} users, "
                         f"{len(index.item_ids)} items", "Train a new run (another "
                         "--run-dir) on the changed file.")


def load_interactions(config):
    from tfsuite.recommend.data import build_interactions

    ratings, items = load_ratings(config)
    data = build_interactions(ratings, config.recommend, config.data.validation_split,
                              config.data.test_split, items)
    if not data.mask(2).any():
        raise user_error("The test split has no positive rating", "users with at least 3 "
                         "ratings, some of them at or above recommend.rating_threshold in "
                         "their latest data.test_split", f"{len(ratings)} ratings of "
                         f"{data.num_users} users (data.test_split={config.data.test_split}, "
                         f"recommend.rating_threshold={config.recommend.rating_threshold})",
                         "Use a larger log, or lower the threshold.")
    return ratings, data


# ---------------------------------------------------------------- train


def train(config, run_dir=None, quiet=False):
    """Trains `config` (task: recommendation) end to end; returns the summary dict."""
    from tfsuite.plots import plot_history
    from tfsuite.recommend.data import RecommendationData, build_datasets
    from tfsuite.recommend.serve import build_index, save_index
    from tfsuite.run_dir import resolve_run_dir, start_run_dir
    from tfsuite.stages import (check_full_batches, completed_summary, save_model,
                                single_process_runtime)
    from tfsuite.tasks.recommendation import RecommendationTask
    from tfsuite.training.trainer import Trainer

    started = time.perf_counter()
    r = config.recommend
    run_dir, resuming = resolve_run_dir(config, run_dir)
    runtime = single_process_runtime(config, "A recommender")
    ratings, interactions = load_interactions(config)  # bad data fails before the run dir
    if resuming:
        check_same_ids(run_dir, interactions, config)
    train_ds, val_ds, num_train, num_val = build_datasets(
        interactions, r, config.train.batch_size, config.runtime.seed,
        drop_remainder=runtime.needs_full_batches)
    unit = "pairs" if r.model == "two_tower" or r.ranking_loss == "mse" else "lists"
    report = data_report(ratings, interactions, r)
    data = RecommendationData(runtime.shard_dataset(train_ds),
                              runtime.shard_dataset(val_ds) if val_ds is not None else None,
                              num_train, num_val, int(interactions.mask(2).sum()),
                              interactions.num_items, interactions, unit, report)
    check_full_batches(config, data, runtime)
    start_run_dir(run_dir, resuming)
    write_config(config, os.path.join(run_dir, "config.yaml"))
    index = build_index(interactions)
    save_index(run_dir, index)
    if not quiet:
        _print_start(config, run_dir, runtime, data, resuming)
    trainer = Trainer(config, run_dir, runtime, quiet=quiet)
    model = trainer.fit(RecommendationTask(config), data)
    save_model(model, os.path.join(run_dir, MODEL))
    history = trainer.history()
    if history:
        plot_history(history, os.path.join(run_dir, "training_curves.png"), title=config.name)
    metrics = evaluate_model(model, interactions, config, os.path.join(run_dir, "evaluation"))
    info = trainer.info()
    summary = {
        **completed_summary(config, trainer, metrics, started),
        "data": report,
        "runtime": runtime.report(),
        "examples_per_second": round(info["images_per_second"] or 0, 1),
        "model": {"name": r.model, "num_params": int(model.count_params()),
                  "path": os.path.join(run_dir, MODEL)},
    }
    write_json(os.path.join(run_dir, SUMMARY), summary)
    if config.export.formats:
        from tfsuite.stages import export_after_training

        summary["export"] = export_after_training(run_dir, config, quiet)
        write_json(os.path.join(run_dir, SUMMARY), summary)
    runtime.end_job()
    return summary


def data_report(ratings, data, r):
    split_sizes = {name: int((data.split == s).sum()) for s, name in
                   enumerate(("train", "val", "test"))}
    return {"path": ratings.path, "num_ratings": len(ratings), "num_users": data.num_users,
            "num_items": data.num_items, "num_genres": len(data.genre_names),
            "ratings_per_split": split_sizes,
            "positive_fraction": round(float(data.positive.mean()), 4),
            "rating_threshold": r.rating_threshold if ratings.ratings is not None else None,
            "skipped_lines": ratings.skipped_lines,
            "skipped": [{"line": n, "reason": why} for n, why in ratings.skipped]}


def _print_start(config, run_dir, runtime, data, resuming):
    r, rep, runtime_report = config.recommend, data.report, runtime.report()
    print(f"tfsuite: experiment '{config.name}' -> {run_dir}" + (" (resuming)" if resuming
                                                                 else ""))
    print(f"  data: {rep['path']}: {rep['num_ratings']:,} ratings of {rep['num_users']:,} "
          f"users and {rep['num_items']:,} items"
          + (f" ({rep['skipped_lines']} unparsable rows skipped)" if rep["skipped_lines"]
             else "") + f"; {data.num_train:,} train / {data.num_val:,} val {data.unit}, "
          f"latest ratings of each user held out")
    what = (f"two-tower retrieval (embeddings {r.embedding_dim}, in-batch softmax"
            f"{', logQ-corrected' * r.logq_correction})" if r.model == "two_tower" else
            f"ranking ({r.ranking_loss}{', DCN cross layers' * r.feature_cross})")
    print(f"  model: {what}; runtime: backend {runtime_report['backend']}, strategy "
          f"{runtime_report['strategy']} ({runtime_report['num_replicas']} replica(s)), "
          f"{runtime_report['precision']}", flush=True)


# ---------------------------------------------------------------- evaluate


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


def load_run(run_dir):
    """(config, model) of a finished recommendation run."""
    import tfsuite.recommend.model  # noqa: F401  (registers the model classes)
    from tfsuite.stages import load_run_model

    config = read_run_config(run_dir)
    if config.task != "recommendation":
        raise user_error("Not a recommendation run", "a run of a recommendation experiment "
                         "(e.g. ratings_retrieval)", f"{run_dir} (task={config.task})")
    return config, load_run_model(run_dir)


def evaluate(run_dir):
    """Re-scores a finished run on its test split; returns (metrics, out_dir)."""
    config, model = load_run(run_dir)
    _, data = load_interactions(config)
    check_same_ids(run_dir, data, config)
    out_dir = os.path.join(run_dir, "evaluation")
    return evaluate_model(model, data, config, out_dir), out_dir


def recommend(run_dir, user_ids, k=None):
    """[(user id, known, [(item id, title, genres, score)])] for raw user ids; an unknown
    user's scores are the items' positive training ratings."""
    from tfsuite.recommend.serve import Recommender, load_index

    config, model = load_run(run_dir)
    k = config.recommend.k if k is None else k
    if k < 1:
        raise user_error("--k must be positive", "an int >= 1", f"k={k}")
    index = load_index(run_dir)
    k = min(k, len(index.item_ids))
    out = []
    for user, known, top in Recommender(model, index, k).recommend(list(user_ids)):
        out.append((user, known, [(index.item_ids[i - 1], index.titles[i - 1],
                                   index.genres[i - 1], score) for i, score in top]))
    return out


# ---------------------------------------------------------------- what the CLI prints


def format_summary(summary):
    m, k = summary["metrics"], summary["metrics"]["k"]
    run_dir = os.path.dirname(summary["model"]["path"])
    line = (f"Done: {summary['experiment']} - recall@{k} {m[f'recall_at_{k}']:.4f} "
            f"(popularity {m[f'popularity_recall_at_{k}']:.4f}, "
            f"{m['recall_vs_popularity']:.2f}x), NDCG@{k} {m[f'ndcg_at_{k}']:.4f}")
    if "rmse" in m:
        line += f", RMSE {m['rmse']:.3f} (item means {m['item_mean_rmse']:.3f})"
    first_user = _first_user(run_dir)
    lines = [line + f" - {summary['epochs_completed']} epochs - "
                    f"{summary['wall_seconds']:.0f}s",
             f"  model: {summary['model']['path']}",
             f"  recall@k: {os.path.join(run_dir, 'evaluation', 'recall_at_k.png')}",
             f"  summary: {os.path.join(run_dir, SUMMARY)}",
             f"  try it: python -m tfsuite.run recommend {run_dir} --user {first_user} "
             f"--k {k}"]
    if summary["data"]["skipped_lines"]:
        lines.insert(1, f"  data: {summary['data']['skipped_lines']} unparsable rows skipped "
                        "(see summary.json data.skipped)")
    return "\n".join(lines)


def _first_user(run_dir):
    from tfsuite.recommend.serve import USERS_FILE

    with open(os.path.join(run_dir, USERS_FILE), encoding="utf-8") as f:
        return f.readline().strip()


def format_metrics(metrics, out_dir):
    k = metrics["k"]
    text = (f"recall@{k} {metrics[f'recall_at_{k}']:.4f} (popularity "
            f"{metrics[f'popularity_recall_at_{k}']:.4f}), NDCG@{k} "
            f"{metrics[f'ndcg_at_{k}']:.4f} on {metrics['num_users_evaluated']:,} test users")
    if "rmse" in metrics:
        text += f", RMSE {metrics['rmse']:.3f}"
    return text + f"\n  plot: {display_path(os.path.join(out_dir, 'recall_at_k.png'))}"


def format_recommendations(results):
    lines = []
    for user, known, top in results:
        lines.append(f"user {user}:" if known else
                     f"user {user}: not in the training data - the most popular items:")
        for rank, (item, title, genres, score) in enumerate(top, 1):
            what = f"score {score:.4f}" if known else f"{score:.0f} positive ratings"
            lines.append(f"  {rank:>2}. {item:<10} {title[:44]:<44} {genres[:28]:<28} {what}")
    return "\n".join(lines)
