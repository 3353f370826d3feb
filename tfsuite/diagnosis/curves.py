"""Checks on a run's per-epoch history: divergence, overfitting, underfitting.

Each takes the history ({"loss": [...], "val_loss": [...], "accuracy": [...], ...}, one
value per epoch) and returns a `Verdict` or None. Thresholds are stated where they are
used; the evidence carries the numbers they were applied to, so a reader can judge.
"""

import math

import numpy as np

from tfsuite.diagnosis.verdict import Verdict

# A running loss this many times above the first step's (and above chance) exploded.
EXPLOSION = 10.0


def _round(value, digits=4):
    return None if value is None else float(f"{float(value):.{digits}g}")


def divergence(history, train, precision, record=None, peak=None, first_loss=None,
               chance_loss=None):
    """NaN (the trainer's `diverged.json`: `record`), or a loss that exploded without
    reaching NaN (`peak`: the largest running loss of any step), or one that rose.

    Args:
        train: the run's `TrainConfig` (its rate, clipping and schedule shape the fixes).
        precision: the run's precision (mixed_float16 adds loss scaling to the story).
        chance_loss: the loss of a model that knows nothing (ln C for C classes), if known.
    """
    fixes = _divergence_fixes(train, precision, record)
    if record:
        evidence = {k: record.get(k) for k in ("epoch", "batch", "loss", "learning_rate",
                                                "precision", "loss_scale", "last_good_epoch")}
        scale = (f"; the loss scale had fallen to {record['loss_scale']:g}"
                 if record.get("loss_scale") is not None else "")
        return Verdict("divergence", "problem", f"The loss became {record['loss']} at epoch "
                       f"{record['epoch']}, batch {record['batch']}, at learning rate "
                       f"{record['learning_rate']:.3g}{scale}. Training stopped there"
                       + (f"; the checkpoint of epoch {record['last_good_epoch']} is kept."
                          if record.get("last_good_epoch") else ", in its first epoch."),
                       evidence, fixes)
    losses = [v for v in history.get("loss", []) if v is not None]
    floor = max(first_loss or 0.0, chance_loss or 0.0)
    if peak and floor and peak["loss"] > EXPLOSION * floor:
        return Verdict("divergence", "problem", f"The loss exploded: its running mean reached "
                       f"{peak['loss']:.3g} at epoch {peak['epoch']}, batch {peak['batch']}, "
                       f"{peak['loss'] / floor:.3g}x the first step's "
                       f"({first_loss:.3g}), at learning rate {peak['learning_rate']:.3g}."
                       + _after(losses, chance_loss),
                       {"peak_loss": _round(peak["loss"]), "peak_epoch": peak["epoch"],
                        "peak_batch": peak["batch"], "first_step_loss": _round(first_loss),
                        "chance_loss": _round(chance_loss),
                        "learning_rate_at_peak": _round(peak["learning_rate"]),
                        "final_loss": _round(losses[-1]) if losses else None}, fixes)
    if len(losses) >= 3:
        low = int(np.argmin(losses))
        if low < len(losses) - 1 and losses[-1] > 1.5 * losses[low]:
            return Verdict("divergence", "warning", f"The training loss rose from "
                           f"{losses[low]:.4g} (epoch {low + 1}) to {losses[-1]:.4g} (epoch "
                           f"{len(losses)}): the rate is too high for the later epochs.",
                           {"lowest_loss": _round(losses[low]), "lowest_epoch": low + 1,
                            "final_loss": _round(losses[-1])}, fixes)
    return None


def _after(losses, chance_loss):
    if losses and chance_loss and losses[-1] > 0.9 * chance_loss:
        return (f" The last epoch's loss, {losses[-1]:.3g}, is no better than chance "
                f"({chance_loss:.3g}): the weights never recovered.")
    return ""


def _divergence_fixes(train, precision, record):
    fixes = [f"--set train.learning_rate={train.learning_rate / 10:.3g}"]
    if train.clipnorm is None:
        fixes.append("--set train.clipnorm=1.0")
    if train.schedule != "warmup_cosine":
        fixes.append("--set train.schedule=warmup_cosine --set train.warmup_epochs=2")
    elif train.warmup_epochs < 2:
        fixes.append("--set train.warmup_epochs=2")
    if precision == "mixed_float16" or (record or {}).get("precision") == "mixed_float16":
        fixes.append("--set runtime.precision=mixed_bfloat16")
        fixes.append("--set runtime.precision=float32")
    return fixes


def overfitting(history, train):
    """Validation loss rising while the training loss falls, and the accuracy gap."""
    loss, val = history.get("loss", []), history.get("val_loss", [])
    if len(val) < 3 or len(loss) != len(val) or not all(map(math.isfinite, loss + val)):
        return None
    best = int(np.argmin(val))
    rise = val[-1] / val[best] - 1 if val[best] > 0 else 0.0
    fall = 1 - loss[-1] / loss[best] if loss[best] > 0 else 0.0
    ratio = val[-1] / loss[-1] if loss[-1] > 0 else math.inf
    accuracy, val_accuracy = history.get("accuracy"), history.get("val_accuracy")
    gap = (accuracy[-1] - val_accuracy[-1]) if accuracy and val_accuracy else None
    evidence = {"best_epoch": best + 1, "epochs": len(val), "val_loss_best": _round(val[best]),
                "val_loss_last": _round(val[-1]), "val_loss_rise": _round(rise, 3),
                "train_loss_at_best": _round(loss[best]), "train_loss_last": _round(loss[-1]),
                "train_loss_fall_after_best": _round(fall, 3),
                "val_to_train_loss": _round(ratio, 3),
                "accuracy_gap": None if gap is None else _round(gap, 3)}
    rising = rise >= 0.05 and fall >= 0.3 and best < len(val) - 1
    gapped = gap is not None and gap >= 0.05 and ratio >= 5
    if rising or gapped:
        severity = "problem"
    elif (rise >= 0.05 and fall >= 0.1) or (gap is not None and gap >= 0.03 and ratio >= 2):
        severity = "warning"
    else:
        return None
    parts = []
    if rise >= 0.05:
        parts.append(f"validation loss rose {rise:.0%} after its best epoch ({best + 1} of "
                     f"{len(val)}) while the training loss fell {fall:.0%}")
    if gap is not None and gap >= 0.03:
        parts.append(f"training accuracy {accuracy[-1]:.2%} against validation "
                     f"{val_accuracy[-1]:.2%} ({gap * 100:.1f} points)")
    parts.append(f"validation loss is {ratio:.3g}x the training loss")
    fixes = []
    if not train.early_stopping_patience:
        fixes.append("--set train.early_stopping_patience=5")
    if not train.weight_decay:
        fixes.append("--set train.weight_decay=0.0001" + (
            " --set train.optimizer=adamw" if train.optimizer == "adam" else ""))
    if not train.label_smoothing:
        fixes.append("--set train.label_smoothing=0.1")
    return Verdict("overfitting", severity, "The model memorizes its training split: "
                   + "; ".join(parts) + ".", evidence, fixes,
                   ["More training data helps most; regularize until the validation loss "
                    "stops rising."])


def underfitting(history, train, chance_loss=None, accuracy_key="accuracy"):
    """Training accuracy (or loss) low and flat over the last third of the epochs."""
    accuracy = history.get(accuracy_key) or []
    loss = history.get("loss") or []
    if len(loss) < 3 or not all(map(math.isfinite, loss)):
        return None
    third = max(1, len(loss) // 3)
    if accuracy:
        low, gain = accuracy[-1] < 0.7, accuracy[-1] - accuracy[-1 - third]
        flat = gain < 0.02
        shown = f"training accuracy {accuracy[-1]:.2%}, {gain * 100:+.1f} points"
    elif chance_loss:
        low, gain = loss[-1] > 0.5 * chance_loss, loss[-1 - third] - loss[-1]
        flat = gain < 0.02 * chance_loss
        shown = f"training loss {loss[-1]:.4g} (chance {chance_loss:.4g}), {-gain:+.3g}"
    else:
        return None
    if not low:
        return None
    evidence = {"final_train": _round(accuracy[-1] if accuracy else loss[-1]),
                "gain_last_third": _round(gain, 3), "epochs": len(loss),
                "chance_loss": _round(chance_loss), "final_loss": _round(loss[-1])}
    fixes = [f"--set train.epochs={2 * len(loss)}"]
    if train.weight_decay:
        fixes.append("--set train.weight_decay=0")
    if train.label_smoothing:
        fixes.append("--set train.label_smoothing=0")
    advice = ["Find a learning rate with `python -m tfsuite.run lr-find EXPERIMENT`."]
    if flat:
        return Verdict("underfitting", "problem", f"The model does not fit its training "
                       f"split: {shown} over the last {third} epoch(s). It needs a better "
                       "learning rate, more capacity, or less regularization.", evidence,
                       fixes, advice)
    return Verdict("underfitting", "warning", f"Training stopped while the model still "
                   f"learned: {shown} over the last {third} epoch(s).", evidence, fixes, advice)
