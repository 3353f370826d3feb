"""`train movielens` on a MovieLens-format file, `recommend`, `evaluate`, the SavedModel,
a ranking run, and the bad inputs they refuse, as a user runs them."""

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import assert_user_error, call_cli, run_cli, trained_run, tree_hashes
from tfsuite.recommend.generate import generate_ratings, write_movielens

pytestmark = pytest.mark.backend_agnostic  # also run with KERAS_BACKEND=jax (README)

SMALL = ["--set", "train.epochs=4", "--set", "train.batch_size=128",
         "--set", "export.verify_samples=64"]


@pytest.fixture(scope="module")
def movielens_run(tmp_path_factory):
    """500 generated users in MovieLens' files, with one unparsable row added."""
    import keras

    def write(work):
        ratings_csv, _ = write_movielens(os.path.join(work, "ml"), *generate_ratings(500, 200))
        with open(ratings_csv, "a", encoding="utf-8") as f:
            f.write("7,12,not-a-rating,978300760\n")

    cwd, result = trained_run(tmp_path_factory, f"movielens_{keras.backend.backend()}",
                              "train", "movielens", "--set", "data.path=ml/ratings.csv",
                              *SMALL, prepare=write)
    assert result.returncode == 0, result.stdout + result.stderr
    return (cwd, os.path.join(cwd, "runs", "movielens"), os.path.join(cwd, "ml", "ratings.csv"),
            result.stdout)


def rated_by(ratings_csv, user):
    with open(ratings_csv, encoding="utf-8") as f:
        return {row["movieId"] for row in csv.DictReader(f) if row["userId"] == user}


def test_movielens_file_trains_and_beats_popularity(movielens_run):
    cwd, run_dir, _, printed = movielens_run
    assert "1 unparsable rows skipped" in printed and "recall@10" in printed
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    m, data = summary["metrics"], summary["data"]
    assert data["num_users"] == 500 and data["num_items"] <= 200 and data["skipped_lines"] == 1
    assert data["num_genres"] == 12  # from movies.csv next to ratings.csv
    assert m["num_users_evaluated"] > 400
    assert m["recall_at_10"] >= 1.5 * m["popularity_recall_at_10"] > 0
    assert 0 < m["ndcg_at_10"] <= 1 and m["recall_curve"]["100"] > m["recall_at_10"]
    for name in ("model.keras", "users.txt", "items.tsv", "rated.npz", "training_curves.png",
                 "evaluation/recall_at_k.png", "evaluation/recommendations.csv",
                 "evaluation/metrics.json", "export.json"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    with open(os.path.join(run_dir, "evaluation", "recommendations.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200 and all(r["title"] for r in rows)  # 20 users x 10, with titles


def test_diagnose_weighs_recall_against_popularity(movielens_run):
    cwd, run_dir, _, _ = movielens_run
    result = call_cli("diagnose", run_dir, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    with open(os.path.join(run_dir, "diagnosis", "diagnose.json"), encoding="utf-8") as f:
        report = json.load(f)
    with open(os.path.join(run_dir, "summary.json")) as f:
        m = json.load(f)["metrics"]
    verdicts = {v["name"]: v for v in report["verdicts"]}
    found = verdicts["recall_vs_popularity"]
    assert found["severity"] == "info" and report["worst"] == "info" and "healthy" in verdicts
    assert found["evidence"]["recall_vs_popularity"] == m["recall_vs_popularity"] >= 1.5
    assert found["evidence"]["popularity_recall_at_10"] == m["popularity_recall_at_10"]
    assert "recall@10" in result.stdout and report["epochs"] == 4


def test_recommend_known_and_unknown_users(movielens_run):
    cwd, run_dir, ratings_csv, _ = movielens_run
    result = call_cli("recommend", run_dir, "--user", "3", "--user", "no-such-user",
                     "--k", "5", cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "user 3:" and "not in the training data" in lines[6]
    items = [line.split()[1] for line in lines[1:6]]
    assert len(set(items)) == 5 and not set(items) & rated_by(ratings_csv, "3")
    popular = [line.split()[1] for line in lines[7:12]]
    with open(os.path.join(run_dir, "items.tsv")) as f:
        counts = {r["item_id"]: int(r["popularity"]) for r in csv.DictReader(f, delimiter="\t")}
    assert popular == sorted(counts, key=lambda i: -counts[i])[:5]


def test_saved_model_returns_what_recommend_prints(movielens_run):
    """The SavedModel (user id in, top k out) in plain TensorFlow, against the CLI."""
    cwd, run_dir, _, _ = movielens_run
    with open(os.path.join(run_dir, "export.json")) as f:
        report = json.load(f)
    assert report["formats"]["saved_model"]["user_agreement"] == 1.0
    printed = call_cli("recommend", run_dir, "--user", "3", "--user", "x", cwd=str(cwd))
    assert printed.returncode == 0, printed.stderr
    expected = [line.split()[1] for line in printed.stdout.splitlines()
                if line.startswith("  ")]
    code = f"""
import json, tensorflow as tf
serve = tf.saved_model.load({report['path']!r}).signatures['serving_default']
out = serve(user_id=tf.constant(['3', 'x']))
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}, default=bytes.decode))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "tensorflow"}, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["known_user"] == [True, False]
    assert out["item_ids"][0] + out["item_ids"][1] == expected


def test_evaluate_rescores_the_run(movielens_run):
    cwd, run_dir, _, _ = movielens_run
    with open(os.path.join(run_dir, "summary.json")) as f:
        recall = json.load(f)["metrics"]["recall_at_10"]
    result = call_cli("evaluate", run_dir, cwd=str(cwd))
    assert result.returncode == 0, result.stderr
    assert f"recall@10 {recall:.4f}" in result.stdout and "recall_at_k.png" in result.stdout


def test_bad_inputs_exit_2_and_change_nothing(movielens_run, tmp_path):
    cwd, run_dir, ratings_csv, _ = movielens_run
    before = tree_hashes(run_dir)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("user,item,stars\n1,2,4\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for path, fragments in ((wrong, ["lacks a column", "recommend.user_column"]),
                            (empty, ["is empty"]), (tmp_path / "nope.csv", ["does not exist"])):
        result = call_cli("train", "movielens", "--set", f"data.path={path}",
                         "--run-dir", str(tmp_path / "new"), cwd=str(cwd))
        assert_user_error(result, *fragments, "Received:")
        assert not (tmp_path / "new").exists()
    assert_user_error(call_cli("recommend", run_dir, "--user", "3", "--k", "0", cwd=str(cwd)),
                      "--k must be positive")
    # `write-ratings` into the folder of the user's ratings: refused, nothing replaced
    ratings_before = tree_hashes(os.path.dirname(ratings_csv))
    assert_user_error(call_cli("write-ratings", os.path.dirname(ratings_csv), cwd=str(cwd)),
                      "already has ratings files")
    assert tree_hashes(os.path.dirname(ratings_csv)) == ratings_before
    # the ratings file edited after training renumbers the ids: evaluate refuses it
    with open(ratings_csv, encoding="utf-8") as f:
        original = f.read()
    header, rest = original.split("\n", 1)
    try:
        with open(ratings_csv, "w", encoding="utf-8") as f:
            f.write(f"{header}\n99999,1,5.0,0\n{rest}")
        assert_user_error(call_cli("evaluate", run_dir, cwd=str(cwd)),
                          "not the ones this run was trained on", "501 users")
    finally:
        with open(ratings_csv, "w", encoding="utf-8") as f:
            f.write(original)
    assert tree_hashes(run_dir) == before


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="the suite's time budget: on JAX the retrieval run above trains, "
                    "recommends and scores; the ranking model trains in the TensorFlow pass")
def test_ranking_run_beats_item_means(tmp_path):
    result = run_cli("train", "ratings_ranking", "--set", "recommend.num_users=500",
                     "--set", "recommend.num_items=200", *SMALL, cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "runs" / "ratings_ranking" / "summary.json") as f:
        m = json.load(f)["metrics"]
    assert m["rmse"] < m["item_mean_rmse"] and "popularity_recall_at_10" in m


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
                    reason="MirroredStrategy is TensorFlow's")
def test_two_tower_trains_mirrored_over_two_cpu_devices(tmp_path):
    """Each replica scores its own half of the batch: the in-batch labels must follow."""
    result = run_cli("train", "ratings_retrieval", "--set", "recommend.num_users=500",
                     "--set", "recommend.num_items=200", "--set", "runtime.cpu_devices=2",
                     "--set", "runtime.strategy=mirrored", "--set", "export.formats=[]",
                     *SMALL[:4], cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "runs" / "ratings_retrieval" / "summary.json") as f:
        summary = json.load(f)
    assert summary["runtime"]["num_replicas"] == 2
    assert summary["metrics"]["recall_vs_popularity"] > 1.5
