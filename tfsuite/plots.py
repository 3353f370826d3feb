"""Plots people would rather look at than read: training curves, confusion matrices,
augmentation previews. Matplotlib with the non-interactive Agg backend."""

import os

import numpy as np

from tfsuite.io import replacing


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and "inline" not in \
            matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(fig, path):
    """Writes the figure atomically: a kill never leaves half a PNG."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100, format=os.path.splitext(path)[1][1:] or "png")


def _save(fig, path, title=None):
    """Titles, lays out, writes and closes a figure; returns the path."""
    plt = _pyplot()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _write(fig, path)
    plt.close(fig)
    return path


def plot_history(history, path, title=None, best_epoch=None, model_epoch=None, phases=()):
    """Loss and metric curves, train against validation, one panel per metric, and the
    learning rate per epoch in a last panel (log scale).

    Args:
        best_epoch: the best epoch by the monitored metric, marked on every panel.
        model_epoch: the epoch whose weights the saved model holds, named in the legend.
        phases: (first epoch, name) of each training phase after the first (e.g. the
            fine-tuning epochs), marked where it starts.
    """
    plt = _pyplot()
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    rates = [r for r in history.get("learning_rate", []) if r is not None]
    panels = names + (["learning_rate"] if rates else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, name in zip(axes[0], panels):
        # A run resumed from a version that kept no rates has them for its last epochs only.
        epochs = np.arange(len(history[names[0]]) - len(history[name]) + 1,
                           len(history[names[0]]) + 1)
        if name == "learning_rate":
            ax.plot(epochs, history[name], color="tab:green", label="learning rate")
            if min(rates) > 0:
                ax.set_yscale("log")
        else:
            ax.plot(epochs, history[name], label="train")
            if "val_" + name in history:
                ax.plot(epochs, history["val_" + name], label="validation")
        for start, phase in phases:
            ax.axvline(start - 0.5, color="grey", linewidth=1)
            ax.annotate(phase, (start - 0.5, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -12), textcoords="offset points", fontsize=8,
                        color="grey")
        if best_epoch is not None:
            held = " (the saved model)" if model_epoch == best_epoch else ""
            ax.axvline(best_epoch, color="tab:red", linestyle="--", linewidth=1,
                       label=f"best: epoch {best_epoch}{held}")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path, title)


def plot_diagnosis(panels, verdicts, path, title=None, timings=None, marks=(), unit="epoch"):
    """What `diagnose` found, drawn: the task's curves (a loss panel on a log scale when it
    spans decades) with the points its verdicts mark, and with a probe the batches per
    second of the input pipeline, the cached-batch step and the real loop.

    Args:
        panels: [(title, {label: [one value per epoch or episode]})], the first one titled
            with the verdicts (`Task.diagnosis_curves`).
        verdicts: the `Verdict`s.
        timings: `tfsuite.diagnosis.probe.step_timings`'s dict, or None.
        marks: (epoch, label) pairs drawn as vertical lines (the best epoch, a NaN).
        unit: what the x axis counts.
    """
    plt = _pyplot()
    panels = [(name, curves) for name, curves in panels if any(len(v) for v in curves.values())]
    panels = panels or [("loss", {})]
    count = len(panels) + bool(timings)
    fig, axes = plt.subplots(1, count, figsize=(5.2 * count, 3.9), squeeze=False)
    axes = axes[0]
    for ax, (name, curves) in zip(axes, panels):
        for label, values in curves.items():
            values = np.asarray(values, np.float64)
            shown = np.isfinite(values)  # gaps (a DQN episode without updates) joined
            if shown.any():
                ax.plot(np.arange(1, len(values) + 1)[shown], values[shown], label=label,
                        marker="." if shown.sum() < 30 else None)
        finite = np.concatenate([np.asarray(v, np.float64) for v in curves.values()] or [[]])
        finite = finite[np.isfinite(finite) & (finite > 0)]
        if name == "loss" and len(finite) and finite.max() / finite.min() > 100:
            ax.set_yscale("log")
        for epoch, label in marks:
            ax.axvline(epoch, color="tab:red", linestyle="--", linewidth=1, label=label)
        ax.set_xlabel(unit)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    found = ", ".join(f"{v.name} ({v.severity})" for v in verdicts)
    axes[0].set_title(f"{panels[0][0]}\n{found}", fontsize=9)
    if timings:
        ax = axes[-1]
        names = ["input pipeline alone", "step on a cached batch", "real training loop"]
        rates = [timings["input_batches_per_second"], timings["compute_batches_per_second"],
                 timings["loop_batches_per_second"]]
        ax.barh(names[::-1], rates[::-1], color=["tab:green", "tab:orange", "tab:blue"])
        for y, rate in enumerate(rates[::-1]):
            ax.annotate(f" {rate:.3g}", (rate, y), va="center", fontsize=8)
        ax.set_xlabel("batches per second")
        ax.set_title(f"where the step goes: {timings['data_share']:.0%} waiting for data",
                     fontsize=9)
    return _save(fig, path, title)


def plot_lr_find(rates, losses, smoothed, suggestion, path, title=None, configured=None):
    """The learning-rate range test: loss against rate (log scale), raw and smoothed, with
    the suggested rate and the configured one marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(rates, losses, color="tab:blue", alpha=0.3, label="loss per step")
    ax.plot(rates, smoothed, color="tab:blue", label="smoothed")
    if suggestion is not None:
        ax.axvline(suggestion, color="tab:red", linestyle="--",
                   label=f"suggested: {suggestion:.3g} (steepest descent)")
    if configured is not None:
        ax.axvline(configured, color="grey", linestyle=":", label=f"configured: {configured:.3g}")
    finite = np.asarray(smoothed, np.float64)
    if len(finite):  # the divergence at the end would squash the interesting part
        low, high = finite.min(), finite[: max(1, int(np.argmin(finite)) + 1)].max()
        ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.3 * (high - low + 1e-9))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path, title)


MOST_CONFUSED = 30  # classes a confusion matrix shows, with their counts


def most_confused_classes(matrix, k):
    """Indices (ascending) of the `k` classes with the most wrong predictions to or from them."""
    matrix = np.asarray(matrix)
    errors = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * np.diag(matrix)
    return np.sort(np.argsort(-errors, kind="stable")[:k])


def plot_confusion_matrix(matrix, class_names, path, title="Confusion matrix"):
    """A confusion matrix with counts in the cells (rows: true, columns: predicted).

    With more than 30 classes it shows the 30 most confused ones (most wrong
    predictions to or from them), which stays readable: all 1,000 of ImageNet's
    would take a 45,000-pixel figure (7.6 GB to draw).
    """
    matrix = np.asarray(matrix)
    if len(class_names) > MOST_CONFUSED:
        keep = most_confused_classes(matrix, MOST_CONFUSED)
        title = f"{title}: the {MOST_CONFUSED} most confused of {len(class_names)} classes"
        matrix = matrix[np.ix_(keep, keep)]
        class_names = [class_names[i] for i in keep]
    plt = _pyplot()
    n = len(class_names)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    _write(fig, path)
    plt.close(fig)
    return path


def plot_image_grid(images, titles, path=None, columns=8):
    """A grid of images (uint8 or 0..255 floats); returns the figure when no path is given."""
    plt = _pyplot()
    images = np.asarray(images)
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        image = np.clip(image, 0, 255).astype(np.uint8)
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image[..., :3],
                  cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(str(title), fontsize=8)
    fig.tight_layout()
    if path is None:
        return fig
    _write(fig, path)
    plt.close(fig)
    return path


_COMPRESSION_PANELS = (("test_accuracy", "test accuracy (%)", 100.0),
                       ("size_bytes", "size, gzip (KB)", 1 / 1024),
                       ("nonzero_params", "non-zero weights (thousands)", 1 / 1000),
                       ("latency_ms", "CPU latency per batch (ms)", 1.0))


def plot_compression(entries, path, title=None, layer_sparsity=None):
    """Bars comparing compression entries ({label: report entry}) on accuracy, size,
    non-zero weights and latency; with `layer_sparsity` ({layer: fraction}), a panel of
    the sparsity of each pruned layer."""
    plt = _pyplot()
    panels = len(_COMPRESSION_PANELS) + (1 if layer_sparsity else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.8), squeeze=False)
    labels = list(entries)
    colors = ["#8c8c8c", "#1f77b4", "#ff7f0e", "#2ca02c"][: len(labels)]
    for ax, (key, name, scale) in zip(axes[0], _COMPRESSION_PANELS):
        values = [entries[label][key] * scale for label in labels]
        bars = ax.bar(labels, values, color=colors)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.tick_params(axis="x", labelsize=8, rotation=15)
        if key == "test_accuracy":
            ax.set_ylim(max(0.0, min(values) - 5), 100.5)
    if layer_sparsity:
        ax = axes[0][-1]
        names = list(layer_sparsity)
        ax.barh(names, [100 * layer_sparsity[n] for n in names], color="#1f77b4")
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.set_title("zeros per pruned layer (%)", fontsize=10)
        ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path, title)


def moving_average(values, window):
    """The mean of each value and up to `window - 1` before it (as many as there are)."""
    values = np.asarray(values, np.float64)
    count = min(window - 1, len(values))
    head = np.cumsum(values[:count]) / np.arange(1, count + 1)
    if len(values) < window:
        return head
    return np.concatenate([head, np.convolve(values, np.ones(window) / window, mode="valid")])


def plot_rl_history(history, path, title=None, reward_threshold=None):
    """Reinforcement-learning curves over environment steps: episode returns (with a
    20-episode moving average and the env's "solved" line), the TD loss, the mean
    Q(s, a) of the updates (against the largest return: past it is overestimation) and
    epsilon."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    steps, returns = history["episode_steps"], history["episode_returns"]
    axes[0].plot(steps, returns, alpha=0.3, label="episode")
    axes[0].plot(steps, moving_average(returns, 20), label="mean of 20")
    if reward_threshold is not None:
        axes[0].axhline(reward_threshold, color="gray", linestyle="--",
                        label=f"solved ({reward_threshold:g})")
    evaluations = history.get("evaluations") or []
    if evaluations:
        axes[0].plot([e["env_step"] for e in evaluations],
                     [e["mean_return"] for e in evaluations], "o-", label="greedy evaluation")
    if history.get("best_env_step") is not None:
        axes[0].axvline(history["best_env_step"], color="green", alpha=0.4,
                        label="policy kept")
    axes[0].set_title("episode return")
    axes[0].legend(fontsize=8)
    if history["losses"]:  # updates come in rounds at one env step: one mean per round
        loss_steps, rounds = np.unique(history["loss_steps"], return_inverse=True)
        counts = np.bincount(rounds)
        axes[1].plot(loss_steps, np.bincount(rounds, weights=history["losses"]) / counts)
        axes[1].set_yscale("log")
        if history.get("q_values"):
            axes[2].plot(loss_steps, np.bincount(rounds, weights=history["q_values"]) / counts,
                         label="mean Q(s, a)")
        if returns:
            axes[2].axhline(max(returns), color="gray", linestyle="--",
                            label=f"largest return ({max(returns):g})")
            axes[2].legend(fontsize=8)
    axes[1].set_title("TD loss (Huber), mean per round of updates")
    axes[2].set_title("Q-values, mean per round of updates")
    axes[3].plot(steps, history["epsilons"])
    axes[3].set_ylim(0, 1.02)
    axes[3].set_title("epsilon (exploration)")
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    return _save(fig, path, title)


def plot_returns(returns, path, title=None, reward_threshold=None):
    """The return of each evaluation episode, as bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(16.0, max(5.0, 0.25 * len(returns) + 2)), 3.5))
    ax.bar(np.arange(1, len(returns) + 1), returns, color="#1f77b4")
    if reward_threshold is not None:
        ax.axhline(reward_threshold, color="gray", linestyle="--",
                   label=f"solved ({reward_threshold:g})")
        ax.legend(fontsize=8)
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title(f"greedy policy: mean {np.mean(returns):.1f} over {len(returns)} episodes")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, title)


def plot_exact_match_by_length(references, hypotheses, path, title=None):
    """Exact match of the test translations by reference length in words, with counts."""
    plt = _pyplot()
    lengths = np.array([len(r.split()) for r in references])
    exact = np.array([h.strip() == r.strip() for h, r in zip(hypotheses, references)])
    bins = np.unique(lengths)
    rates = [exact[lengths == b].mean() for b in bins]
    counts = [int((lengths == b).sum()) for b in bins]
    fig, ax = plt.subplots(figsize=(min(14.0, max(5.0, 0.5 * len(bins) + 2)), 3.5))
    ax.bar(bins, rates, color="#1f77b4")
    for b, rate, count in zip(bins, rates, counts):
        ax.text(b, min(rate, 1.0) + 0.02, str(count), ha="center", fontsize=7, color="gray")
    ax.set_ylim(0, 1.12)
    ax.set_xlabel("reference length (words); sentences per bar above it")
    ax.set_ylabel("exact match")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, title)


def plot_recall_at_k(curves, path, title=None):
    """Recall@k against k for each recommender ({name: {k: recall}}), on one panel."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (items recommended)")
    ax.set_ylabel("recall@k on the test split")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path, title)
