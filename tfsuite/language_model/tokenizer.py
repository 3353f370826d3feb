"""The language model's SentencePiece tokenizer, with Llama's ids: `<unk>` 0, `<s>` 1,
`</s>` 2 (KerasHub's `LlamaTokenizer` reads the same file; it pads with id 0).

Trained on the training documents (seeded) before the run folder is written, or a
preset's own. Encoding runs in NumPy through `sentencepiece`, so every Keras backend sees
the same ids (KerasHub's tokenizer decodes what `generate` makes).
"""

from tfsuite.data.sentencepiece import SentencePieceModel, train_sentencepiece
from tfsuite.packages import install_hint

INSTALL = install_hint("language_model")
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


def train_tokenizer(documents, vocab_size, model_type, seed):
    """A Llama-layout SentencePiece model (unigram or bpe) trained on the documents'
    lines (bytes)."""
    lines = [line for document in documents for line in document.split("\n")]
    return train_sentencepiece(lines, vocab_size, "llama", "language_model.vocab_size",
                               INSTALL, model_type=model_type, seed=seed)


class Tokenizer(SentencePieceModel):
    """Text -> ids with Llama's special ids.

    Args:
        proto: serialized SentencePiece model (bytes), or the path of a `.model` file.
    """

    layout, purpose, install = "llama", "The language model", INSTALL

    def encode_many(self, texts):
        return self.processor.encode(list(texts))

