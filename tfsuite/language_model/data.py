"""Language-model inputs: documents tokenized, packed end to end and cut into windows.

Every document starts with `<s>` and ends in `</s>` (as Llama was pretrained, and as
KerasHub's preprocessor starts a prompt); the documents of a split are concatenated and
cut into
windows of `sequence_length + 1` tokens that overlap by one, so each window gives
`sequence_length` inputs and the next token of each as its label, and no token of the
split is lost as a label (the tail shorter than a window is). The splits are made by
document (`corpus.split_documents`), so no held-out text is trained on. Batches are
numbered over epochs (`tfsuite.data.numbered`): a resumed run reads the batches an
unbroken one would, on every Keras backend, without TensorFlow.
"""

import dataclasses
from typing import Optional

import numpy as np

from tfsuite.data.decode import BatchIndices
from tfsuite.data.numbered import NumberedBatches
from tfsuite.errors import user_error
from tfsuite.language_model.tokenizer import BOS_ID, EOS_ID


def token_stream(tokenizer, documents):
    """One int32 array: each document's ids between `<s>` and `</s>`."""
    pieces = []
    for ids in tokenizer.encode_many(documents):
        pieces.append(np.asarray([BOS_ID, *ids, EOS_ID], np.int32))
    return np.concatenate(pieces) if pieces else np.zeros([0], np.int32)


def windows(stream, sequence_length):
    """[n, sequence_length + 1] windows of `stream`, each starting where the last one's
    inputs end."""
    n = (len(stream) - 1) // sequence_length
    if n < 1:
        return np.zeros([0, sequence_length + 1], np.int32)
    starts = np.arange(n) * sequence_length
    return stream[starts[:, None] + np.arange(sequence_length + 1)[None, :]]


class WindowBatches(NumberedBatches):
    """({"token_ids", "labels"}, labels) batches of windows, in a seeded order per epoch."""

    def __init__(self, windows, batch_size, shuffle=False, seed=0, drop_remainder=False):
        super().__init__()
        self.windows = windows
        self.indices = BatchIndices(len(windows), batch_size, shuffle, seed, drop_remainder)

    def __getitem__(self, index):
        chosen = np.sort(self.indices[self.number(index)])
        batch = self.windows[chosen]
        inputs, labels = batch[:, :-1], batch[:, 1:]
        return {"token_ids": inputs, "labels": labels}, labels


@dataclasses.dataclass
class LanguageModelData:
    """What the trainer, the evaluation and the baseline need."""

    train: object  # WindowBatches
    val: Optional[object]
    test_windows: np.ndarray
    train_stream: np.ndarray
    num_train: int  # windows
    num_val: int
    num_test: int
    num_classes: int  # the vocabulary size
    report: dict
    tokenizer: object = None
    test_documents: list = None  # prompts of the samples come from them
    unit = "sequences"


def build_data(config, corpus, splits, tokenizer, full_batches=False):
    """Windows of each split; a split too short for one window, or training text shorter
    than one batch, is a clear error. Training batches are all full (one shape: nothing is
    traced or compiled twice); validation batches are when `full_batches` (a JAX mesh)."""
    lm, batch = config.language_model, config.train.batch_size
    train_docs, val_docs, test_docs = splits
    streams = [token_stream(tokenizer, docs) for docs in (train_docs, val_docs, test_docs)]
    cut = [windows(s, lm.sequence_length) for s in streams]
    for name, key, part in (("training", None, cut[0]), ("test", "data.test_split", cut[2])):
        if not len(part):
            raise user_error(f"The {name} documents are shorter than one window",
                             f"at least language_model.sequence_length + 1 = "
                             f"{lm.sequence_length + 1} tokens of {name} text",
                             f"{len(streams[0 if name == 'training' else 2]):,} tokens in "
                             f"{len(train_docs if name == 'training' else test_docs)} "
                             f"documents", "Add text, lower language_model.sequence_length"
                             + (f" or raise {key}." if key else "."))
    if len(cut[0]) < batch:
        raise user_error("The training text is shorter than one batch", f"at least "
                         f"train.batch_size={batch} windows of {lm.sequence_length + 1} "
                         "tokens", f"{len(cut[0])} windows ({len(streams[0]):,} tokens)",
                         "Add text, or lower train.batch_size or "
                         "language_model.sequence_length.")
    report = {"path": corpus.path, "files": corpus.files, "documents": len(corpus.documents),
              "characters": corpus.characters, "skipped_records": corpus.skipped_records,
              "split_documents": [len(train_docs), len(val_docs), len(test_docs)],
              "tokens": [int(len(s)) for s in streams],
              "windows": [int(len(c)) for c in cut],
              "vocabulary_size": tokenizer.vocabulary_size,
              "sequence_length": lm.sequence_length}
    train = WindowBatches(cut[0], batch, shuffle=True, seed=config.runtime.seed,
                          drop_remainder=True)
    return LanguageModelData(
        train=train,
        val=WindowBatches(cut[1], batch, drop_remainder=full_batches)
        if len(cut[1]) >= (batch if full_batches else 1) else None,
        test_windows=cut[2], train_stream=streams[0],
        # The windows an epoch trains on (the partial batch is left out: one shape).
        num_train=train.num_batches * batch, num_val=len(cut[1]), num_test=len(cut[2]),
        num_classes=tokenizer.vocabulary_size, report=report)
