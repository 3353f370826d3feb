"""The SentencePiece tokenizer: trained on the corpus, saved in the run directory.

Ids follow T5: `<pad>` = 0 (also the decoder's start token), `</s>` = 1,
`<unk>` = 2, no `<s>`; KerasHub's `T5Tokenizer` reads the same file. The task
prefix ("translate English to French:") is one user-defined piece, never split.
Encoding and decoding run in NumPy through the `sentencepiece` package, so
training, decoding and export see the same ids on every Keras backend.
"""

import io
import os

import numpy as np

from tfsuite.errors import require_module, user_error
from tfsuite.packages import install_hint

TOKENIZER_FILE = "tokenizer.model"
INSTALL = install_hint("translation")  # what brings the translation packages
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


def _sentencepiece():
    return require_module("sentencepiece", "Translation", INSTALL)


def train_sentencepiece(texts, vocab_size, model_type="unigram", user_symbols=(), seed=0):
    """Trains a SentencePiece model on `texts`; returns its serialized bytes.

    `vocab_size` is an upper bound: a small corpus (the number words have ~100
    distinct pieces) gets the vocabulary it supports instead of an error.
    """
    spm = _sentencepiece()
    texts = [t for t in texts if t]
    out = io.BytesIO()
    spm.set_random_generator_seed(seed)  # the sample of a corpus over a million sentences
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=out, vocab_size=vocab_size,
            model_type=model_type, character_coverage=1.0, hard_vocab_limit=False,
            bos_id=-1, pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
            # SentencePiece matches user symbols on its normalized text, where a space is
            # "▁" and a sentence starts with one: the prefix must be written so.
            user_defined_symbols=["\u2581" + s.strip().replace(" ", "\u2581")
                                  for s in user_symbols if s.strip()],
            # A large corpus: a seeded sample of a million sentences trains the model.
            input_sentence_size=1_000_000, shuffle_input_sentence=True,
            num_threads=os.cpu_count() or 1, minloglevel=2)
    except RuntimeError as e:  # e.g. fewer pieces than the corpus has characters
        raise user_error("SentencePiece could not be trained on this corpus",
                         "a translation.vocab_size the corpus supports",
                         f"translation.vocab_size={vocab_size} ({str(e).strip()[:200]})",
                         "Raise translation.vocab_size (it must hold every character of "
                         "the corpus).") from None
    return out.getvalue()


class Tokenizer:
    """Text <-> fixed-length id arrays with T5's special ids.

    Args:
        proto: serialized SentencePiece model (bytes), or the path of a `.model` file.
    """

    def __init__(self, proto):
        spm = _sentencepiece()
        if isinstance(proto, (str, os.PathLike)):
            with open(proto, "rb") as f:
                proto = f.read()
        self.proto = proto
        self.processor = spm.SentencePieceProcessor(model_proto=proto)
        for piece, wanted in (("<pad>", PAD_ID), ("</s>", EOS_ID)):
            if self.processor.piece_to_id(piece) != wanted:
                raise user_error("The tokenizer does not use T5's special ids",
                                 "<pad> = 0 and </s> = 1 (T5's layout)",
                                 f"{piece} = {self.processor.piece_to_id(piece)}",
                                 "Use a T5 SentencePiece model or let tfsuite train one.")

    @property
    def vocabulary_size(self):
        return self.processor.get_piece_size()

    def save(self, path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.proto)
        os.replace(tmp, path)

    def lengths(self, texts):
        """Tokens per text, `</s>` included."""
        return np.array([len(ids) + 1 for ids in self.processor.encode(list(texts))])

    def encode(self, texts, length):
        """[N, length] int32 ids, each row `tokens </s> <pad>...`; returns (ids, truncated).

        A text longer than `length - 1` tokens is cut (and still ends in `</s>`);
        `truncated` counts them.
        """
        ids = np.full((len(texts), length), PAD_ID, np.int32)
        truncated = 0
        for row, tokens in enumerate(self.processor.encode(list(texts))):
            if len(tokens) > length - 1:
                truncated += 1
                tokens = tokens[:length - 1]
            ids[row, :len(tokens)] = tokens
            ids[row, len(tokens)] = EOS_ID
        return ids, truncated

    def normalize(self, texts):
        """Texts as the tokenizer sees them (NFKC, spaces collapsed): what decoding can give
        back, so references are scored in the same form."""
        return [self.processor.normalize(t).replace("\u2581", " ").strip() for t in texts]

    def decode(self, ids):
        """Texts from id rows: everything up to the first `</s>`, pads dropped."""
        texts = []
        for row in np.asarray(ids):
            row = [int(t) for t in row]
            if EOS_ID in row:
                row = row[:row.index(EOS_ID)]
            texts.append(self.processor.decode([t for t in row if t != PAD_ID]))
        return texts


def load_tokenizer(run_dir):
    path = os.path.join(run_dir, TOKENIZER_FILE)
    if not os.path.isfile(path):
        raise user_error("The run has no tokenizer", f"{path} (written when training "
                         "starts)", f"run_dir={run_dir!r}", "Train the run first.")
    return Tokenizer(path)
