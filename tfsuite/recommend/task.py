"""The recommendation task: a ratings log into a two-tower retrieval or a ranking model.

A run directory holds what an image run holds (config.yaml, checkpoints/,
logs/, history.csv, model.keras, training_curves.png, evaluation/,
summary.json) plus the id vocabularies and rated items (`users.txt`,
`items.tsv`, `rated.npz`; see `tfsuite.recommend.serve`). evaluation/ has
metrics.json, recall_at_k.png (the model against popularity) and
recommendations.csv (the top k of some test users, hits marked).
"""

import os

from tfsuite.config import LANGUAGE_MODEL_ONLY, TaskSchema, unused_image_keys
from tfsuite.errors import user_error
from tfsuite.io import display_path
from tfsuite.recommend import config as recommend_config
from tfsuite.run_dir import EVALUATION, SUMMARY
from tfsuite.task import Task, check_full_batches, model_line, register_task


@register_task
class RecommendationTask(Task):
    """A two-tower retrieval model (in-batch softmax) or a ranking model."""

    name = "recommendation"
    noun = "recommenders"
    schema = TaskSchema(
        task=name, data_sources=("generated", "ratings"), section="recommend",
        section_class=recommend_config.RecommendConfig,
        choices={"recommend.model": recommend_config.RECOMMENDER_MODELS,
                 "recommend.ranking_loss": recommend_config.RANKING_LOSSES},
        validate=recommend_config.validate,
        unused={**unused_image_keys("recommend"), **LANGUAGE_MODEL_ONLY})
    compression_methods = ()
    run_files = ("users.txt", "items.tsv", "rated.npz")  # the index (tfsuite.recommend.serve)
    commands = {"recommend": "top-k items for users, from a recommendation run",
                "write-ratings": "write the bundled generated ratings (MovieLens format: "
                                 "ratings.csv, movies.csv)"}

    # ---------------------------------------------------------------- the trainer's

    def build_model(self, data):
        import numpy as np

        from tfsuite.recommend.model import build_model

        model = build_model(self.config.recommend, data.interactions)
        ids = np.ones(2, np.int32)
        # Built here, so a resumed run can load its checkpoint into the weights.
        model({"user": ids, "item": ids})
        return model

    def loss(self):
        import keras

        r = self.config.recommend
        if r.model == "two_tower":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if r.ranking_loss == "mse":
            return keras.losses.MeanSquaredError()
        import keras_rs

        losses = keras_rs.losses
        return {"list_mle": losses.ListMLELoss, "pairwise_hinge": losses.PairwiseHingeLoss,
                "pairwise_logistic": losses.PairwiseLogisticLoss}[r.ranking_loss]()

    def metrics(self, num_classes):
        import keras

        r = self.config.recommend
        if r.model == "two_tower":  # the batch's own items: a cheap proxy of recall@k
            return [keras.metrics.SparseTopKCategoricalAccuracy(
                k=r.k, name=f"batch_recall_at_{r.k}")]
        if r.ranking_loss == "mse":
            return [keras.metrics.RootMeanSquaredError(name="rmse")]
        import keras_rs

        return [keras_rs.metrics.NDCG(name="list_ndcg")]

    # ---------------------------------------------------------------- diagnosis

    def task_verdicts(self, run):
        from tfsuite.recommend.diagnosis import popularity_verdict

        verdict = popularity_verdict(run)
        return ([verdict] if verdict else []), ["recall_vs_popularity"]

    # ---------------------------------------------------------------- the run

    def prepare(self, runtime, run_dir, resuming):
        from tfsuite.recommend.data import RecommendationData, build_datasets
        from tfsuite.recommend.loading import check_same_ids, data_report, load_interactions

        config, r = self.config, self.config.recommend
        ratings, interactions = load_interactions(config)
        if resuming:
            check_same_ids(run_dir, interactions, config)
        train_ds, val_ds, num_train, num_val = build_datasets(
            interactions, r, config.train.batch_size, config.runtime.seed,
            drop_remainder=runtime.needs_full_batches)
        unit = "pairs" if r.model == "two_tower" or r.ranking_loss == "mse" else "lists"
        data = RecommendationData(runtime.shard_dataset(train_ds),
                                  runtime.shard_dataset(val_ds) if val_ds is not None else None,
                                  num_train, num_val, int(interactions.mask(2).sum()),
                                  interactions.num_items, interactions, unit,
                                  data_report(ratings, interactions, r))
        check_full_batches(config, data, runtime)
        return data

    def write_run_files(self, run_dir, data, resuming):
        from tfsuite.recommend.serve import build_index, save_index

        save_index(run_dir, build_index(data.interactions))

    def print_start(self, run_dir, runtime, data, resuming):
        super().print_start(run_dir, runtime, data, resuming)
        r, rep = self.config.recommend, data.report
        print(f"  data: {rep['path']}: {rep['num_ratings']:,} ratings of {rep['num_users']:,} "
              f"users and {rep['num_items']:,} items"
              + (f" ({rep['skipped_lines']} unparsable rows skipped)" if rep["skipped_lines"]
                 else "") + f"; {data.num_train:,} train / {data.num_val:,} val {data.unit}, "
              f"latest ratings of each user held out")
        what = (f"two-tower retrieval (embeddings {r.embedding_dim}, in-batch softmax"
                f"{', logQ-corrected' * r.logq_correction})" if r.model == "two_tower" else
                f"ranking ({r.ranking_loss}{', DCN cross layers' * r.feature_cross})")
        print(model_line(what, runtime), flush=True)

    def evaluate_model(self, model, data, out_dir):
        from tfsuite.recommend.evaluation import evaluate_model

        return evaluate_model(model, data.interactions, self.config, out_dir)

    def summary(self, fitted, data, runtime):
        return {"data": data.report, "runtime": runtime.report(),
                "examples_per_second": round(fitted.throughput or 0, 1)}

    def model_name(self):
        return self.config.recommend.model

    def format_summary(self, summary):
        return format_summary(summary)

    # ---------------------------------------------------------------- finished runs

    def load_model(self, run_dir):
        import tfsuite.recommend.model  # noqa: F401  (registers the model classes)

        return super().load_model(run_dir)

    def evaluate_run(self, run_dir, options):
        """Re-scores a finished run on its test split."""
        from tfsuite.recommend.evaluation import evaluate_model
        from tfsuite.recommend.loading import check_same_ids, load_interactions

        model = self.load_model(run_dir)
        _, data = load_interactions(self.config)
        check_same_ids(run_dir, data, self.config)
        out_dir = os.path.join(run_dir, EVALUATION)
        metrics = evaluate_model(model, data, self.config, out_dir)
        return metrics, format_metrics(metrics, out_dir)

    def recommend(self, run_dir, user_ids, k=None):
        """[(user id, known, [(item id, title, genres, score)])] for raw user ids; an
        unknown user's scores are the items' positive training ratings."""
        from tfsuite.recommend.serve import Recommender, load_index

        model = self.load_model(run_dir)
        k = self.config.recommend.k if k is None else k
        if k < 1:
            raise user_error("--k must be positive", "an int >= 1", f"k={k}")
        index = load_index(run_dir)
        k = min(k, len(index.item_ids))
        out = []
        for user, known, top in Recommender(model, index, k).recommend(list(user_ids)):
            out.append((user, known, [(index.item_ids[i - 1], index.titles[i - 1],
                                       index.genres[i - 1], score) for i, score in top]))
        return out

    def predict(self, run_dir, inputs, k=None):
        """Recommendations for a user id or a list of them (see `recommend`)."""
        return self.recommend(run_dir, [inputs] if isinstance(inputs, str) else inputs, k)

    def serving_formats(self, requested):
        from tfsuite.recommend.export import formats_for

        return formats_for(requested)

    def serving_export(self, run_dir, export_config):
        from tfsuite.recommend.export import RecommenderExport

        return RecommenderExport(run_dir, self.config, export_config,
                                 self.load_model(run_dir))

    @classmethod
    def add_command(cls, name, parser):
        if name == "write-ratings":
            parser.add_argument("out", nargs="?", default=os.path.join("data", "ratings"))
            return _run_write_ratings
        parser.add_argument("run_dir")
        parser.add_argument("--user", dest="users", action="append", required=True,
                            metavar="ID", help="a user id as in the ratings file "
                            "(repeatable); an unknown one gets the most popular items")
        parser.add_argument("--k", type=int, help="items per user (default: the run's "
                            "recommend.k)")
        return _run_recommend


def _run_write_ratings(args, backends):
    from tfsuite.recommend.generate import generate_ratings, write_movielens

    ratings, movies = generate_ratings()
    paths = write_movielens(args.out, ratings, movies)
    print(f"Wrote {len(ratings):,} ratings of {len({r[0] for r in ratings}):,} users and "
          f"{len(movies):,} movies to {paths[0]} and {paths[1]} (MovieLens layout). Train on "
          f"them with: python -m tfsuite.run train movielens --set data.path={paths[0]}")


def _run_recommend(args, backends):
    from tfsuite.task import get_task

    config = backends.run_config(args.run_dir, "recommendation", "`recommend` needs a "
                                 "recommendation run", "ratings_retrieval")
    backends.start(config, args.debug)
    print(format_recommendations(get_task(config).recommend(args.run_dir, args.users,
                                                             args.k)))


# ---------------------------------------------------------------- what the CLI prints


def format_summary(summary):
    """What `train` prints when a recommendation run is done."""
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
