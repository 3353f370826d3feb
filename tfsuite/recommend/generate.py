"""The bundled ratings dataset of `ratings_retrieval`: MovieLens-format files from a seeded
generator with the structure real rating logs have.

Each movie has one or two of 12 genres and a latent taste vector near its genres'
centres; each user likes one to three genres. Which movies a user rates is drawn
from their taste plus a heavy-tailed (Zipf) popularity, so a popularity list is a
real baseline to beat; how many a user rates is log-normal. Ratings (0.5 to 5
stars) follow taste, a per-movie quality and a per-user bias, with noise.
Timestamps increase per user over 1998-2018. The files are MovieLens'
`ratings.csv` (userId,movieId,rating,timestamp) and `movies.csv`
(movieId,title,genres), so everything that reads MovieLens reads them.
"""

import csv
import os

import numpy as np

from tfsuite.errors import user_error

GENRES = ("Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Horror", "Romance", "Sci-Fi", "Thriller")
_WORDS_A = ("Silent", "Last", "Hidden", "Broken", "Golden", "Distant", "Midnight", "Lost",
            "Crimson", "Wild", "Frozen", "Electric", "Quiet", "Burning", "Secret", "Iron")
_WORDS_B = ("River", "Harbor", "Empire", "Garden", "Signal", "Voyage", "Mirror", "Kingdom",
            "Summer", "Machine", "Letter", "Horizon", "Island", "Storm", "Circle", "Promise")
_START, _END = 883_612_800, 1_514_764_800  # 1998-01-01 .. 2018-01-01 (Unix seconds)


def generate_ratings(num_users=3000, num_items=1200, seed=0, dim=16, taste=3.0,
                     mean_ratings=30, zipf=0.8):
    """Returns (ratings rows, movies rows) as lists of tuples, in MovieLens' order."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(GENRES), dim))
    item_genres = [sorted(rng.choice(len(GENRES), size=rng.integers(1, 3), replace=False))
                   for _ in range(num_items)]
    items = np.stack([centres[g].mean(0) for g in item_genres])
    items += 0.5 * rng.normal(size=items.shape)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    quality = rng.normal(scale=0.5, size=num_items)
    popularity = np.log(1.0 / np.arange(1, num_items + 1) ** zipf)
    popularity = popularity[rng.permutation(num_items)] + 0.6 * quality  # good films spread
    ratings = []
    for user in range(num_users):
        liked = rng.choice(len(GENRES), size=rng.integers(1, 4), replace=False)
        u = centres[liked].mean(0) + 0.4 * rng.normal(size=dim)
        u /= np.linalg.norm(u)
        affinity = items @ u
        logits = taste * affinity * 2 + popularity
        p = np.exp(logits - logits.max())
        count = int(np.clip(rng.lognormal(np.log(mean_ratings), 0.7), 8, 400))
        chosen = rng.choice(num_items, size=min(count, num_items), replace=False, p=p / p.sum())
        stars = 3.2 + 1.6 * affinity[chosen] + quality[chosen] + rng.normal(scale=0.3) \
            + rng.normal(scale=0.6, size=len(chosen))
        stars = np.clip(np.round(stars * 2) / 2, 0.5, 5.0)
        start = rng.integers(_START, _END - 400 * 86_400)
        times = start + np.cumsum(rng.exponential(86_400 * 3, size=len(chosen))).astype(int)
        for item, star, t in sorted(zip(chosen, stars, times), key=lambda r: r[0]):
            ratings.append((user + 1, int(item) + 1, float(star), int(t)))
    titles = {}
    movies = [(i + 1, f"{_title(rng, titles)} ({rng.integers(1960, 2018)})",
               "|".join(GENRES[g] for g in item_genres[i])) for i in range(num_items)]
    return ratings, movies


def _title(rng, seen):
    """A made-up title; a repeat becomes a sequel ("Lost Harbor 2")."""
    a, b = rng.choice(_WORDS_A), rng.choice(_WORDS_B)
    title = f"The {a} {b}" if rng.random() < 0.5 else f"{a} {b}"
    seen[title] = seen.get(title, 0) + 1
    return title if seen[title] == 1 else f"{title} {seen[title]}"


def write_movielens(out_dir, ratings, movies):
    """Writes `ratings.csv` and `movies.csv` in MovieLens' layout; returns their paths.
    Refuses a folder that already holds either file (it may be a real MovieLens copy)."""
    names = ("ratings.csv", "movies.csv")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise user_error("Destination is a file", "a folder (new, or without ratings.csv "
                         "and movies.csv)", f"out={out_dir!r}")
    there = [n for n in names if os.path.exists(os.path.join(out_dir, n))]
    if there:
        raise user_error("The folder already has ratings files", "a folder without "
                         "ratings.csv and movies.csv (they are never overwritten)",
                         f"out={out_dir!r} (holds {there})", "Choose another folder, or "
                         "remove those files first.")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, header, rows in (("ratings.csv", ("userId", "movieId", "rating", "timestamp"),
                                ratings),
                               ("movies.csv", ("movieId", "title", "genres"), movies)):
        path = os.path.join(out_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows((*r[:2], f"{r[2]:g}", r[3]) if len(r) == 4 else r for r in rows)
        os.replace(tmp, path)
        paths.append(path)
    return paths
