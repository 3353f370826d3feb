"""Recommenders against the popularity baseline: the shipped experiments, their
ablations, and real MovieLens files, each through the CLI as a user runs it.

    python benchmarks/recommenders.py [--seeds 42 1] [--movielens PATH ...] [--backend B]

On the bundled generated ratings (3,000 users, 1,200 movies): `ratings_retrieval`
for each seed, then the same without the logQ correction and without the
accidental-hits mask (first seed), and `ratings_ranking` with the MSE and the
keras-rs ListMLE loss. Each `--movielens` file (a real `ratings.csv`, `u.data` or
`ratings.dat`) trains with `train movielens --set data.path=PATH` unchanged.
Every row is one run's own test-split figures: recall@10 and NDCG@10 over the
whole catalogue (rated items left out), the popularity list's, their ratio, and
RMSE for rating regression. Prints a table, then one line of JSON. Bars (issue
8): recall@10 >= 2x popularity on the bundled data; a real MovieLens file beats
popularity.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def run(command, backend):
    started = time.perf_counter()
    env = {**os.environ, **({"KERAS_BACKEND": backend} if backend else {})}
    result = subprocess.run([sys.executable, "-m", "tfsuite.run", *command],
                            capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}"
                         f"{result.stderr[-3000:]}")
    return time.perf_counter() - started


def variants(seeds, movielens):
    first = seeds[0]
    for seed in seeds:
        yield f"ratings_retrieval seed {seed}", "ratings_retrieval", [f"runtime.seed={seed}"]
    yield "  without logQ correction", "ratings_retrieval", [
        f"runtime.seed={first}", "recommend.logq_correction=false"]
    yield "  without accidental-hits mask", "ratings_retrieval", [
        f"runtime.seed={first}", "recommend.remove_accidental_hits=false"]
    yield "ratings_ranking (MSE, DCN)", "ratings_ranking", [f"runtime.seed={first}"]
    yield "ratings_ranking (ListMLE)", "ratings_ranking", [
        f"runtime.seed={first}", "recommend.ranking_loss=list_mle"]
    for path in movielens:
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
        yield f"movielens: {name}/{os.path.basename(path)}", "movielens", [
            f"runtime.seed={first}", f"data.path={os.path.abspath(path)}"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1])
    parser.add_argument("--movielens", action="append", default=[], metavar="PATH",
                        help="a real MovieLens ratings file (repeatable)")
    parser.add_argument("--backend", help="KERAS_BACKEND for the runs (default: as set)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tfsuite-recommenders-")
    rows = []
    for n, (label, experiment, sets) in enumerate(variants(args.seeds, args.movielens)):
        run_dir = os.path.join(root, f"run{n}")
        sets = [a for s in [*sets, "export.formats=[]"] for a in ("--set", s)]
        wall = run(["train", experiment, "--run-dir", run_dir, *sets, "--quiet"], args.backend)
        with open(os.path.join(run_dir, "summary.json")) as f:
            summary = json.load(f)
        m, data = summary["metrics"], summary["data"]
        rows.append({"variant": label, "ratings": data["num_ratings"],
                     "users": data["num_users"], "items": data["num_items"],
                     "recall_at_10": m["recall_at_10"],
                     "popularity_recall_at_10": m["popularity_recall_at_10"],
                     "ratio": m["recall_vs_popularity"], "ndcg_at_10": m["ndcg_at_10"],
                     "popularity_ndcg_at_10": m["popularity_ndcg_at_10"],
                     "rmse": m.get("rmse"), "item_mean_rmse": m.get("item_mean_rmse"),
                     "epochs": summary["epochs_completed"],
                     "command_seconds": round(wall, 1)})
        print(f"done: {label}", file=sys.stderr, flush=True)
    print(f"{'variant':<40} {'ratings':>8} {'recall@10':>9} {'popular':>8} {'ratio':>6} "
          f"{'NDCG@10':>8} {'popular':>8} {'RMSE':>6} {'seconds':>8}")
    for r in rows:
        rmse = f"{r['rmse']:.3f}" if r["rmse"] is not None else "-"
        print(f"{r['variant'][:40]:<40} {r['ratings']:>8,} {r['recall_at_10']:>9.4f} "
              f"{r['popularity_recall_at_10']:>8.4f} {r['ratio']:>5.2f}x "
              f"{r['ndcg_at_10']:>8.4f} {r['popularity_ndcg_at_10']:>8.4f} {rmse:>6} "
              f"{r['command_seconds']:>8.1f}")
    print(json.dumps({"benchmark": "recommenders", "machine": platform.platform(),
                      "cpus": os.cpu_count(), "backend": args.backend or
                      os.environ.get("KERAS_BACKEND", "tensorflow"), "rows": rows}))


if __name__ == "__main__":
    main()
