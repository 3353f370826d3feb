"""The SentencePiece tokenizer: trained on the corpus, saved in the run directory.

Ids follow T5: `<pad>` = 0 (also the decoder's start token), `</s>` = 1,
`<unk>` = 2, no `<s>`; KerasHub's `T5Tokenizer` reads the same file. The task
prefix ("translate English to French:") is one user-defined piece, never split.
Encoding and decoding run in NumPy through the `sentencepiece` package, so
training, decoding and export see the same ids on every Keras backend.
"""

import numpy as np

from tfsuite.data.sentencepiece import TOKENIZER_FILE  # noqa: F401 (the run's file)
from tfsuite.data.sentencepiece import SentencePieceModel
from tfsuite.data.sentencepiece import train_sentencepiece as train
from tfsuite.packages import install_hint

INSTALL = install_hint("translation")  # what brings the translation packages
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


def train_sentencepiece(texts, vocab_size, model_type="unigram", user_symbols=(), seed=0):
    """A SentencePiece model with T5's ids trained on `texts` (serialized bytes);
    `vocab_size` is an upper bound (see `tfsuite.data.sentencepiece`)."""
    return train(texts, vocab_size, "t5", "translation.vocab_size", INSTALL, model_type,
                 user_symbols, seed)


class Tokenizer(SentencePieceModel):
    """Text <-> fixed-length id arrays with T5's special ids.

    Args:
        proto: serialized SentencePiece model (bytes), or the path of a `.model` file.
    """

    layout, purpose, install = "t5", "Translation", INSTALL

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
    return Tokenizer.of_run(run_dir)
