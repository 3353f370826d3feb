"""Decoding: text in, translations out, with KerasHub's greedy or beam sampler.

Tokenization is NumPy-side (`Tokenizer`), and the model sees only token ids,
so decoding is the same on every backend and matches the exported SavedModel.
Batches are padded to a few fixed shapes, so the compiled generation function
is traced once per shape rather than once per call.
"""

import time

import numpy as np

from tfsuite.errors import user_error
from tfsuite.progress import ProgressBar
from tfsuite.translation.model import keras_hub, seq2seq
from tfsuite.translation.tokenizer import EOS_ID, PAD_ID


def sampler(name, num_beams):
    hub = keras_hub()
    if name == "beam":
        return hub.samplers.BeamSampler(num_beams=num_beams)
    return hub.samplers.GreedySampler()


def decoder_prompt(batch, max_length):
    """The decoder's start: the pad id (T5's start token) in column 0, nothing else."""
    mask = np.zeros((batch, max_length), bool)
    mask[:, 0] = True
    return np.full((batch, max_length), PAD_ID, np.int32), mask


def _bucket(count, batch_size):
    """Rows a batch of `count` is padded to: a power of two, at most `batch_size`."""
    return min(batch_size, 1 << max(0, int(count - 1).bit_length()))


class Translator:
    """Translates text with a trained T5 backbone.

    Args:
        backbone: a `keras_hub.models.T5Backbone`.
        tokenizer: the run's `Tokenizer`.
        prefix: the task prefix put before every source text.
        source_length: encoder tokens (longer sources are cut).
        max_length: the longest translation, in tokens (`</s>` included).
        sampler_name: "greedy" or "beam".
        num_beams: beams of beam search.
    """

    def __init__(self, backbone, tokenizer, prefix, source_length, max_length,
                 sampler_name="greedy", num_beams=4):
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.source_length = source_length
        self.max_length = max_length
        self.model = seq2seq(backbone)
        self.model.compile(sampler=sampler(sampler_name, num_beams))
        self.truncated = 0

    def generate_ids(self, encoder_ids, batch_size=256):
        """[N, max_length + 1] output ids (column 0 is the start token) for encoder id rows."""
        outputs = []
        bar = ProgressBar(len(encoder_ids), "Translating", "sentences")
        for start in range(0, len(encoder_ids), batch_size):
            chunk = encoder_ids[start:start + batch_size]
            rows = _bucket(len(chunk), batch_size)
            padded = np.zeros((rows, chunk.shape[1]), np.int32)
            padded[:len(chunk)] = chunk
            padded[len(chunk):, 0] = EOS_ID  # filler rows: an empty source
            # Column 0 holds the start token: max_length tokens come after it.
            decoder, decoder_mask = decoder_prompt(rows, self.max_length + 1)
            result = self.model.generate(
                {"encoder_token_ids": padded, "encoder_padding_mask": padded != PAD_ID,
                 "decoder_token_ids": decoder, "decoder_padding_mask": decoder_mask},
                stop_token_ids=(EOS_ID,))
            ids = np.asarray(result["decoder_token_ids"])
            mask = np.asarray(result["decoder_padding_mask"])
            outputs.append(np.where(mask, ids, PAD_ID)[:len(chunk)])
            bar.update(start + len(chunk))
        bar.close()
        return (np.concatenate(outputs) if outputs
                else np.zeros((0, self.max_length + 1), np.int32))

    def encode(self, texts):
        ids, truncated = self.tokenizer.encode([self.prefix + t for t in texts],
                                               self.source_length)
        self.truncated += truncated
        return ids

    def translate(self, texts, batch_size=256):
        """Translations of `texts` (a list of str), in order."""
        texts = list(texts)
        if not texts:
            return []
        ids = self.generate_ids(self.encode(texts), batch_size)
        return self.tokenizer.decode(ids[:, 1:])


def translator_for(config, backbone, tokenizer, sampler_name=None, num_beams=None,
                   max_length=None):
    from tfsuite.translation.data import task_prefix

    t = config.translation
    if num_beams is not None and num_beams < 1:
        raise user_error("--num-beams must be positive", "an int >= 1",
                         f"num_beams={num_beams}")
    if num_beams is not None and (sampler_name or t.sampler) != "beam":
        raise user_error("--num-beams needs beam search", "--sampler beam (or a run with "
                         "translation.sampler=beam)", f"num_beams={num_beams} with sampler "
                         f"{sampler_name or t.sampler!r}", "Add --sampler beam.")
    return Translator(backbone, tokenizer, task_prefix(t), t.max_source_length,
                      max_length or t.max_length or t.max_target_length,
                      sampler_name or t.sampler, num_beams or t.num_beams)


def evaluate_translator(translator, sources, references, out_dir, batch_size):
    """Translates the test split; writes evaluation/ and returns BLEU, exact match, chrF."""
    from tfsuite.translation.metrics import score, write_evaluation

    started = time.perf_counter()
    hypotheses = translator.translate(sources, batch_size)
    seconds = time.perf_counter() - started
    references = translator.tokenizer.normalize(references)  # see `score`
    metrics = {**score(hypotheses, references),
               "decode_seconds": round(seconds, 2),
               "sentences_per_second_decoding": round(len(sources) / max(seconds, 1e-9), 1),
               "truncated_test_sources": translator.truncated}
    write_evaluation(out_dir, sources, references, hypotheses, metrics)
    return metrics
