"""Scoring a language model on held-out documents: perplexity and token accuracy, the
bigram baseline on the same tokens, and a few generated samples.

The baseline is an interpolated bigram model (Jelinek-Mercer: the bigram estimate mixed
with an add-one unigram), counted on the training tokens; its mixing weight is the one
of a grid that scores best on the validation tokens (the test tokens never choose it).
It predicts the same test positions as the model: each window's labels from its inputs.
"""

import numpy as np

from tfsuite.io import write_json, write_text

MIXES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


class Bigram:
    """Counts of a token stream; `log_probs(previous, following)`."""

    def __init__(self, stream, vocabulary_size, mix=0.8):
        self.vocabulary_size = vocabulary_size
        self.mix = mix
        unigram = np.bincount(stream, minlength=vocabulary_size).astype(np.float64) + 1.0
        self.unigram = unigram / unigram.sum()
        codes = stream[:-1].astype(np.int64) * vocabulary_size + stream[1:]
        self.pairs, self.pair_counts = np.unique(codes, return_counts=True)
        self.row_counts = np.bincount(stream[:-1], minlength=vocabulary_size)

    def log_probs(self, previous, following):
        codes = previous.astype(np.int64) * self.vocabulary_size + following
        at = np.clip(np.searchsorted(self.pairs, codes), 0, len(self.pairs) - 1)
        counts = np.where(self.pairs[at] == codes, self.pair_counts[at], 0)
        rows = self.row_counts[previous]
        bigram = counts / np.maximum(rows, 1)
        p = np.where(rows > 0, self.mix * bigram + (1 - self.mix) * self.unigram[following],
                     self.unigram[following])
        return np.log(p)

    def perplexity(self, windows):
        return float(np.exp(-self.log_probs(windows[:, :-1].ravel(),
                                            windows[:, 1:].ravel()).mean()))


def bigram_baseline(train_stream, val_windows, vocabulary_size):
    """A `Bigram` on the training tokens, its mix chosen on the validation windows."""
    model = Bigram(train_stream, vocabulary_size)
    if val_windows is not None and len(val_windows):
        scores = {}
        for mix in MIXES:
            model.mix = mix
            scores[mix] = model.perplexity(val_windows)
        model.mix = min(scores, key=scores.get)
    return model


def score_windows(model, windows, batch_size):
    """(perplexity, token accuracy) of the training model on [n, length + 1] windows."""
    import keras

    total, correct, count = 0.0, 0.0, 0
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size]
        rows = len(batch)
        if rows < batch_size:  # one shape (a device mesh splits whole batches): pad, drop
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - rows, axis=0)])
        out = keras.ops.convert_to_numpy(model.predict_on_batch(
            {"token_ids": batch[:, :-1], "labels": batch[:, 1:]}))[:rows].astype(np.float64)
        total += out[..., 0].sum()
        correct += out[..., 1].sum()
        count += out[..., 0].size
    return float(np.exp(total / count)), float(correct / count)


def prompts_of(documents, count, words=4):
    """The first words of the first `count` documents: prompts whose texts are held out."""
    prompts = []
    for document in documents:
        head = " ".join(document.split()[:words])
        if head and head not in prompts:
            prompts.append(head)
        if len(prompts) == count:
            break
    return prompts


def evaluate(model, data, lm, out_dir, generate=None):
    """Scores the model and the baseline, writes `out_dir`; returns the metrics.

    `generate(prompts)` gives the texts of the samples (None: no samples).
    """
    import os

    os.makedirs(out_dir, exist_ok=True)
    perplexity, accuracy = score_windows(model, data.test_windows, lm.eval_batch_size)
    val_windows = data.val.windows if data.val is not None else None
    baseline = bigram_baseline(data.train_stream, val_windows, data.num_classes)
    bigram = baseline.perplexity(data.test_windows)
    metrics = {"perplexity": perplexity, "token_accuracy": accuracy,
               "bigram_perplexity": bigram, "bigram_mix": baseline.mix,
               "perplexity_vs_bigram": perplexity / bigram,
               "test_tokens": int(data.test_windows[:, 1:].size),
               "test_documents": len(data.test_documents)}
    if generate is not None and lm.samples:
        prompts = prompts_of(data.test_documents, lm.samples)
        texts = generate(prompts)
        metrics["samples"] = [{"prompt": p, "text": t} for p, t in zip(prompts, texts)]
        write_text(os.path.join(out_dir, "samples.txt"),
                   "\n\n".join(f"[{p}]\n{t}" for p, t in zip(prompts, texts)) + "\n")
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    return metrics
