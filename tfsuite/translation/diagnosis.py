"""What `diagnose` checks of a translation run: the teacher-forced token accuracy of
training against the model's own decoded test translations (BLEU, chrF, exact match, and
how many distinct translations it gave)."""

import collections
import csv
import math
import os

import numpy as np

from tfsuite.diagnosis.verdict import Verdict
from tfsuite.io import read_json
from tfsuite.translation.tokenizer import TOKENIZER_FILE

TRANSLATIONS = os.path.join("evaluation", "translations.tsv")
# At most this share of distinct translations among the test sentences: the decoder says
# the same few things whatever the source.
FEW_DISTINCT = 0.2
# Exact match below this share of accuracy ** length (what independent token errors
# would give): errors compound once the model reads its own output.
COMPOUNDED = 0.5


def chance_loss(config):
    """ln V: the cross-entropy of a model that gives every token of the vocabulary the same
    probability (None for a preset, whose vocabulary the config does not say)."""
    t = config.translation
    return None if t.preset else math.log(t.vocab_size)


def token_accuracy_verdict(run):
    """`token_accuracy_vs_bleu`: what teacher forcing (the next token from the right ones
    before it, as training measures it) promises against what decoding delivered.

    A problem when a few translations cover most test sentences (the decoder learned the
    target language, not the source); a warning when the exact matches fall well below
    `accuracy ** tokens per reference`; None before a test score.
    """
    history = run.history
    key = "val_accuracy" if _last(history.get("val_accuracy")) is not None else "accuracy"
    # The latest scores (a later `evaluate` rewrites them with translations.tsv).
    scores = _evaluation(run.run_dir) or run.value("metrics", default={})
    accuracy, bleu = _last(history.get(key)), scores.get("bleu")
    if accuracy is None or bleu is None:
        return None
    t, train = run.config.translation, run.config.train
    exact = scores.get("exact_match")
    evidence = {key: round(accuracy, 4), "bleu": bleu, "exact_match": exact,
                "chrf": scores.get("chrf"), "sampler": t.sampler,
                "max_length": t.max_length or t.max_target_length}
    rows = _translations(run.run_dir)
    said = (f"{'Validation' if key.startswith('val_') else 'Training'} token accuracy "
            f"{accuracy:.1%} (each token predicted from the right ones before it); the "
            f"model's own test translations score BLEU {bleu:.1f}, exact match {exact:.0%}")
    if rows:
        outputs = collections.Counter(row["translation"] for row in rows)
        (common, times), = outputs.most_common(1)
        evidence.update(test_sentences=len(rows), distinct_translations=len(outputs),
                        most_common_translation=common, most_common_count=times)
        if len(rows) >= 10 and len(outputs) <= FEW_DISTINCT * len(rows):
            return Verdict(
                "token_accuracy_vs_bleu", "problem", f"{said}, and {len(rows)} test "
                f"sentences got {len(outputs)} distinct translation(s) ({common!r} "
                f"{times} times): the decoder learned the target language, not to read the "
                "source.", evidence, [f"--set train.epochs={2 * train.epochs}"],
                ["Run lr-find for the rate; with little data, a preset "
                 "(translation.preset) starts from a model that already reads sources."])
    tokens = _reference_tokens(run.run_dir, rows)
    if tokens:
        expected = accuracy ** tokens
        evidence.update(reference_tokens_mean=round(tokens, 2),
                        exact_match_expected=round(expected, 4))
        if exact is not None and expected >= 0.05 and exact < COMPOUNDED * expected:
            fixes = [] if t.sampler == "beam" else ["--set translation.sampler=beam"]
            if t.max_length is not None and t.max_length < t.max_target_length:
                fixes.insert(0, "--set translation.max_length=null")  # cut short
            fixes.append(f"--set train.epochs={2 * train.epochs}")
            if not train.label_smoothing:
                fixes.append("--set train.label_smoothing=0.1")
            return Verdict(
                "token_accuracy_vs_bleu", "warning", f"{said}, where {accuracy:.1%} per "
                f"token over {tokens:.1f} tokens would give {expected:.0%}: one wrong token "
                "derails what follows once the model reads its own output (exposure bias), "
                "or decoding stops early. See evaluation/translations.tsv and "
                "evaluation/by_length.png for where it goes wrong.", evidence, fixes)
    return Verdict("token_accuracy_vs_bleu", "info", said + ": decoding keeps what the "
                   "token accuracy promises.", evidence)


def _evaluation(run_dir):
    path = os.path.join(run_dir, "evaluation", "metrics.json")
    return read_json(path).get("metrics", {}) if os.path.isfile(path) else {}


def _translations(run_dir):
    """The test translations `evaluate` wrote ([] when there are none)."""
    path = os.path.join(run_dir, TRANSLATIONS)
    if not os.path.isfile(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _reference_tokens(run_dir, rows):
    """Mean tokens per test reference (`</s>` included) with the run's own tokenizer (None
    for a preset's, or without translations)."""
    if not rows or not os.path.isfile(os.path.join(run_dir, TOKENIZER_FILE)):
        return None
    from tfsuite.translation.tokenizer import load_tokenizer

    return float(np.mean(load_tokenizer(run_dir).lengths([r["reference"] for r in rows])))


def _last(values):
    finite = [v for v in values or [] if v is not None and np.isfinite(v)]
    return float(finite[-1]) if finite else None
