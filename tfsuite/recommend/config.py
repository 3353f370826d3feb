"""The recommender settings: the `recommend` section of an experiment config.

No Keras import here, so reading a config stays cheap. The ratings file is
`data.path` (`data.source: ratings`) or the bundled generated set
(`data.source: generated`); `data.validation_split` and `data.test_split` are
the fractions of each user's ratings, latest last, held out for validation and
test. Optimizer, epochs and batch size are `train.*`.
"""

import os
from dataclasses import dataclass, field
from typing import List, Optional

from tfsuite.config import PATH, require

RECOMMENDER_MODELS = ("two_tower", "ranking")
RANKING_LOSSES = ("mse", "list_mle", "pairwise_hinge", "pairwise_logistic")


@dataclass(frozen=True)
class RecommendConfig:
    """A two-tower retrieval model or a ranking model, trained on a ratings log."""

    model: str = "two_tower"
    """two_tower (retrieval: in-batch softmax over items) or ranking (predicts ratings)."""
    user_column: str = "userId"
    item_column: str = "movieId"
    rating_column: Optional[str] = "rating"
    """null: every row is an interaction (implicit feedback without ratings)."""
    timestamp_column: Optional[str] = "timestamp"
    """null: each user's rows are taken in file order."""
    items_path: Optional[str] = field(default=None, metadata=PATH)
    """Item titles and genres: MovieLens' movies.csv or ml-100k's u.item. null: the one
    next to data.path, if there is one."""
    rating_threshold: Optional[float] = 4.0
    """A rating at or above this is a positive interaction; null: every rated item is."""
    embedding_dim: int = 32
    tower_layers: List[int] = field(default_factory=list)
    """Hidden Dense widths of each tower, before the output embedding."""
    use_genres: bool = True
    """Add the items' genres (when the items file has them) to the item tower."""
    temperature: float = 0.3
    """Divides the cosine scores of the in-batch softmax."""
    logq_correction: bool = True
    """Subtract log(item frequency) from the in-batch logits (SamplingProbabilityCorrection):
    without it popular items, negatives in many batches, are pushed down."""
    remove_accidental_hits: bool = True
    """Mask in-batch negatives that are the row's positive item."""
    ranking_loss: str = "mse"
    """ranking: mse (rating regression), or a keras-rs listwise (list_mle) or pairwise loss
    over lists of one user's rated items."""
    list_size: int = 8
    """ranking with a pairwise loss: rated items per user list."""
    feature_cross: bool = True
    """ranking: a DCN FeatureCross stack on the concatenated embeddings."""
    cross_layers: int = 2
    deep_layers: List[int] = field(default_factory=lambda: [64, 32])
    """ranking: Dense widths after the cross layers."""
    k: int = 10
    """Recall@k and NDCG@k are measured at this k; `recommend` and the SavedModel return k."""
    num_users: int = 3000
    """data.source=generated: users."""
    num_items: int = 1200
    """data.source=generated: movies."""
    eval_batch_size: int = 512
    """Users scored at once against the whole catalogue."""


def validate(config, check_files):
    """The recommender settings, and what a recommendation run does not take."""
    r = config.recommend
    for key in ("embedding_dim", "k", "num_users", "num_items", "eval_batch_size"):
        require(getattr(r, key) >= 1, f"recommend.{key}", "an int >= 1", getattr(r, key))
    require(r.list_size >= 2, "recommend.list_size", "an int >= 2", r.list_size)
    require(r.cross_layers >= 0, "recommend.cross_layers", "an int >= 0", r.cross_layers)
    require(0 < r.temperature < float("inf"), "recommend.temperature", "a finite value > 0",
             r.temperature)
    for key in ("tower_layers", "deep_layers"):
        require(all(w >= 1 for w in getattr(r, key)), f"recommend.{key}",
                 "a list of layer widths, each >= 1", getattr(r, key))
    for key in ("user_column", "item_column"):
        require(bool(getattr(r, key).strip()), f"recommend.{key}", "a column name",
                 getattr(r, key))
    if check_files and r.items_path is not None:
        require(os.path.isfile(r.items_path), "recommend.items_path", "null or an existing "
                 "items file (movies.csv, movies.dat or u.item)", r.items_path)
    if config.data.source == "generated":
        require(r.k <= r.num_items, "recommend.k", f"at most recommend.num_items = "
                 f"{r.num_items}", r.k)
    require(config.data.test_split > 0, "data.test_split", "a fraction in (0, 1): recall@k "
             "is measured on each user's latest ratings", config.data.test_split)
    require(config.train.monitor in ("val_loss", "loss"), "train.monitor", "val_loss or loss "
             "for recommendation (its metrics are measured after training)",
             config.train.monitor)
    if r.model == "ranking":
        require(r.rating_column is not None, "recommend.rating_column", "a column name: "
                 "a ranking model learns from ratings", r.rating_column,
                 "Use recommend.model=two_tower for logs without ratings.")
    require(not config.compress.methods, "compress.methods", "[] for recommendation "
             "(compression works on image classifiers and translation models)",
             config.compress.methods)
    for fmt in config.export.formats:
        require(fmt in ("saved_model", "all"), "export.formats", "[] or [saved_model] for "
                 "recommendation (user id in, top-k item ids and scores out)",
                 config.export.formats)
