"""Translation inputs: the corpus, split, tokenized and batched as T5 trains on them.

Each example is teacher forcing: the encoder reads `prefix + source </s>`, the
decoder reads `<pad> target` (T5 starts decoding from the pad id) and learns
to predict `target </s>`; padded positions weigh 0 in the loss and metrics.
"""

import dataclasses
from typing import List, Optional

import numpy as np

from tfsuite.translation import corpus as corpus_lib
from tfsuite.translation.tokenizer import PAD_ID


@dataclasses.dataclass
class TranslationData:
    """What the trainer and the evaluation need."""

    train: object  # tf.data.Dataset of (inputs, labels, weights)
    val: Optional[object]
    num_train: int
    num_val: int
    num_test: int
    test_sources: List[str]
    test_targets: List[str]
    num_classes: int  # the vocabulary size (the trainer passes it to the metrics)
    source_length: int
    target_length: int
    report: dict
    corpus: object = None  # the whole corpus (written to the run when generated)
    tokenizer: object = None  # the run's `Tokenizer`
    unit = "sentences"  # what the progress lines count


def task_prefix(t):
    if t.task_prefix is not None:
        return t.task_prefix
    return f"translate {t.source_language} to {t.target_language}: "


def load_pairs(config):
    """(Corpus, Splits) for the config's data source; bad files fail here, nothing written."""
    data, t = config.data, config.translation
    if data.source == "numbers":
        from tfsuite.translation.config import NUMBER_LANGUAGES
        from tfsuite.translation.numbers import number_pairs, number_pool

        numbers = number_pool(t.num_pairs, t.max_number, config.runtime.seed)
        sources, targets = number_pairs(numbers, NUMBER_LANGUAGES[t.source_language],
                                        NUMBER_LANGUAGES[t.target_language])
        corpus = corpus_lib.Corpus(sources, targets, path="num2words (generated)")
    else:
        corpus = corpus_lib.read_corpus(data.path, t.target_path)
    splits = corpus_lib.split(corpus.sources, corpus.targets, data.validation_split,
                              data.test_split, config.runtime.seed)
    return corpus, splits


def sequence_length(tokenizer, texts, limit):
    """The longest text in tokens (with `</s>`) rounded up to 8, at most `limit`: shorter
    sequences than the configured maximum train faster and decode the same."""
    longest = int(tokenizer.lengths(texts).max()) if texts else 1
    return int(min(limit, -(-longest // 8) * 8))


def teacher_forcing(tokenizer, sources, targets, source_length, target_length):
    """(inputs, labels, weights) arrays and the number of truncated sources and targets."""
    encoder, cut_sources = tokenizer.encode(sources, source_length)
    labels, cut_targets = tokenizer.encode(targets, target_length)
    decoder = np.concatenate([np.full((len(labels), 1), PAD_ID, np.int32), labels[:, :-1]],
                             axis=1)
    decoder_mask = np.concatenate([np.ones((len(labels), 1), bool), labels[:, :-1] != PAD_ID],
                                  axis=1)
    inputs = {"encoder_token_ids": encoder, "encoder_padding_mask": encoder != PAD_ID,
              "decoder_token_ids": decoder, "decoder_padding_mask": decoder_mask}
    return inputs, labels, (labels != PAD_ID).astype(np.float32), cut_sources, cut_targets


def _dataset(arrays, batch_size, shuffle_seed, drop_remainder):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(arrays[1]), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def build_translation_data(config, corpus, splits, tokenizer, drop_remainder=False):
    t = config.translation
    prefix = task_prefix(t)
    train_sources = [prefix + s for s in splits.train[0]]
    source_length = sequence_length(tokenizer, train_sources, t.max_source_length)
    target_length = sequence_length(tokenizer, splits.train[1], t.max_target_length)
    train = teacher_forcing(tokenizer, train_sources, splits.train[1], source_length,
                            target_length)
    val = (teacher_forcing(tokenizer, [prefix + s for s in splits.val[0]], splits.val[1],
                           source_length, target_length) if splits.val[0] else None)
    batch = config.train.batch_size
    report = {
        "source": config.data.source, "path": corpus.path, "num_pairs": len(corpus),
        "skipped_lines": corpus.skipped_lines,
        "skipped": [{"line": n, "reason": r} for n, r in corpus.skipped],
        "num_train": len(splits.train[0]), "num_val": len(splits.val[0]),
        "num_test": len(splits.test[0]), "task_prefix": prefix,
        "vocabulary_size": tokenizer.vocabulary_size,
        "source_length": source_length, "target_length": target_length,
        "truncated_train_sources": train[3], "truncated_train_targets": train[4],
    }
    return TranslationData(
        train=_dataset(train[:3], batch, config.runtime.seed, drop_remainder),
        val=_dataset(val[:3], batch, None, drop_remainder) if val else None,
        num_train=len(splits.train[0]), num_val=len(splits.val[0]),
        num_test=len(splits.test[0]), test_sources=splits.test[0],
        test_targets=splits.test[1], num_classes=tokenizer.vocabulary_size,
        source_length=source_length, target_length=target_length, report=report)

