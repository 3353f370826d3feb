"""What `diagnose` checks of a recommender run: its test recall@k against ranking every
user the same most-rated items."""

from tfsuite.diagnosis.verdict import Verdict

AHEAD = 1.1  # recall this many times popularity's, at least, to have learned the users


def popularity_verdict(run):
    """`recall_vs_popularity`: a problem when the model recalls no more held-out items than
    popularity, a warning when it is less than 10% ahead; None before a test score."""
    m = run.value("metrics", default={})
    k = m.get("k")
    ratio = m.get("recall_vs_popularity")
    if k is None or ratio is None:
        return None
    ours, popular = m[f"recall_at_{k}"], m[f"popularity_recall_at_{k}"]
    evidence = {"k": k, f"recall_at_{k}": ours, f"popularity_recall_at_{k}": popular,
                "recall_vs_popularity": ratio, f"ndcg_at_{k}": m.get(f"ndcg_at_{k}"),
                f"popularity_ndcg_at_{k}": m.get(f"popularity_ndcg_at_{k}")}
    said = (f"Test recall@{k} {ours:.4f} against popularity's {popular:.4f} "
            f"({ratio:.2f}x)")
    if ratio >= AHEAD:
        return Verdict("recall_vs_popularity", "info", said + ": the model learned more "
                       "than what everyone watches.", evidence)
    r, train = run.config.recommend, run.config.train
    fixes = [f"--set train.epochs={2 * train.epochs}"]
    if r.model == "two_tower":
        if not r.logq_correction:  # popular items otherwise dominate the in-batch negatives
            fixes.append("--set recommend.logq_correction=true")
        fixes.append(f"--set recommend.embedding_dim={2 * r.embedding_dim}")
        if r.temperature > 0.1:
            fixes.append(f"--set recommend.temperature={r.temperature / 2:.3g}")
    severity = "problem" if ratio <= 1.0 else "warning"
    return Verdict("recall_vs_popularity", severity, said + ": the model has learned little "
                   "beyond what everyone watches.", evidence, fixes)
