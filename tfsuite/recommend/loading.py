"""A recommendation run's ratings: read or generated, split, and checked against the run."""

import os

import numpy as np

from tfsuite.errors import user_error


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
