"""Translation quality: corpus BLEU (sacrebleu) and exact match, with the evidence.

BLEU is sacrebleu's corpus BLEU with its default 13a tokenization (the
signature is reported), the number the literature quotes; exact match is the
fraction of test sentences translated character for character.
"""

import csv
import os

import numpy as np

from tfsuite.errors import require_module
from tfsuite.io import replacing, write_json
from tfsuite.translation.tokenizer import INSTALL


def _sacrebleu():
    return require_module("sacrebleu", "BLEU", INSTALL)  # it imports lxml too


def score(hypotheses, references, tokenizer=None):
    """{"bleu", "exact_match", "chrf", "num_sentences", "bleu_signature"}.

    With `tokenizer`, references are first normalized as it normalizes text (NFKC:
    French Tatoeba's narrow no-break spaces become spaces), the only form a decoded
    translation can take.
    """
    if tokenizer is not None:
        references = tokenizer.normalize(references)
    sacrebleu = _sacrebleu()
    bleu = sacrebleu.metrics.BLEU()
    corpus_bleu = bleu.corpus_score(hypotheses, [references])
    chrf = sacrebleu.metrics.CHRF().corpus_score(hypotheses, [references])
    exact = np.mean([h.strip() == r.strip() for h, r in zip(hypotheses, references)])
    return {"bleu": round(float(corpus_bleu.score), 2), "exact_match": round(float(exact), 4),
            "chrf": round(float(chrf.score), 2), "num_sentences": len(references),
            "bleu_signature": str(bleu.get_signature())}


def write_evaluation(out_dir, sources, references, hypotheses, metrics, extra=None):
    """evaluation/metrics.json, translations.tsv (every test sentence) and a PNG of exact
    match by reference length."""
    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, "metrics.json"), {"metrics": metrics, **(extra or {})})
    with replacing(os.path.join(out_dir, "translations.tsv")) as tmp, \
            open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["source", "reference", "translation", "exact"])
        for s, r, h in zip(sources, references, hypotheses):
            writer.writerow([s, r, h, int(h.strip() == r.strip())])
    from tfsuite.plots import plot_exact_match_by_length

    plot_exact_match_by_length(references, hypotheses, os.path.join(out_dir, "by_length.png"),
                               title=f"BLEU {metrics['bleu']:.2f}, exact match "
                                     f"{metrics['exact_match']:.2%}")
    return out_dir

