"""SentencePiece models, shared by the text tasks (translation, language_model): training,
and loading one whose special ids are checked.

Each task keeps its own id layout: T5's (`<pad>` 0, `</s>` 1, `<unk>` 2, no `<s>`) or
Llama's (`<unk>` 0, `<s>` 1, `</s>` 2), which KerasHub's tokenizers read.
"""

import io
import os

from tfsuite.errors import require_module, user_error

# {layout: SentencePieceTrainer id arguments}
LAYOUTS = {
    "t5": {"pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1, "pad_piece": "<pad>",
           "eos_piece": "</s>", "unk_piece": "<unk>"},
    "llama": {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1, "unk_piece": "<unk>",
              "bos_piece": "<s>", "eos_piece": "</s>"},
}


TOKENIZER_FILE = "tokenizer.model"  # a run's tokenizer, in its folder
# {layout: (whose layout, {special piece: the id it must have})}
CHECKED_IDS = {"t5": ("T5", {"<pad>": 0, "</s>": 1}),
               "llama": ("Llama", {"<unk>": 0, "<s>": 1, "</s>": 2})}


def sentencepiece(purpose, install):
    """The `sentencepiece` module, or a clear error naming what needs it."""
    return require_module("sentencepiece", purpose, install)


def train_sentencepiece(texts, vocab_size, layout, key, install, model_type="unigram",
                        user_symbols=(), seed=0):
    """Trains a SentencePiece model on `texts`; returns its serialized bytes.

    Args:
        texts: the training sentences (or lines); empty ones are left out.
        vocab_size: an upper bound: a small corpus gets the vocabulary it supports
            instead of an error.
        layout: "t5" or "llama" (the special ids, see LAYOUTS).
        key: the config key of the vocabulary size, named in errors.
        install: the command that installs sentencepiece.
        model_type: unigram or bpe.
        user_symbols: pieces never split (e.g. a task prefix).
        seed: seeds the sample of a corpus over a million sentences.
    """
    spm = sentencepiece("Training a tokenizer", install)
    texts = [t for t in texts if t]
    out = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=out, vocab_size=vocab_size,
            model_type=model_type, character_coverage=1.0, hard_vocab_limit=False,
            **LAYOUTS[layout],
            # SentencePiece matches user symbols on its normalized text, where a space is
            # "▁" and a sentence starts with one: a symbol must be written so.
            user_defined_symbols=["\u2581" + s.strip().replace(" ", "\u2581")
                                  for s in user_symbols if s.strip()],
            # A large corpus: a seeded sample of a million sentences trains the model.
            input_sentence_size=1_000_000, shuffle_input_sentence=True,
            # Longer lines (a paragraph of prose) would be left out silently (default 4192).
            max_sentence_length=1 << 16,
            num_threads=os.cpu_count() or 1, minloglevel=2)
    except RuntimeError as e:  # e.g. fewer pieces than the corpus has characters
        raise user_error("SentencePiece could not be trained on this corpus",
                         f"a {key} the corpus supports", f"{key}={vocab_size} "
                         f"({str(e).strip()[:200]})", f"Raise {key} (it must hold every "
                         "character of the corpus).") from None
    return out.getvalue()


class SentencePieceModel:
    """A SentencePiece model with a task's id layout (subclasses set `layout`, `purpose`
    and `install`).

    Args:
        proto: serialized SentencePiece model (bytes), or the path of a `.model` file.
    """

    layout = purpose = install = None

    def __init__(self, proto):
        spm = sentencepiece(self.purpose, self.install)
        if isinstance(proto, (str, os.PathLike)):
            with open(proto, "rb") as f:
                proto = f.read()
        self.proto = proto
        self.processor = spm.SentencePieceProcessor(model_proto=proto)
        whose, ids = CHECKED_IDS[self.layout]
        for piece, wanted in ids.items():
            if self.processor.piece_to_id(piece) != wanted:
                raise user_error(f"The tokenizer does not use {whose}'s special ids",
                                 " and ".join(f"{p} = {i}" for p, i in ids.items())
                                 + f" ({whose}'s layout)",
                                 f"{piece} = {self.processor.piece_to_id(piece)}",
                                 f"Use a {whose} SentencePiece model or let tfsuite train one.")

    @property
    def vocabulary_size(self):
        return self.processor.get_piece_size()

    def save(self, path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(self.proto)
        os.replace(tmp, path)

    @classmethod
    def of_run(cls, run_dir):
        """The tokenizer a run wrote (`RUN_DIR/tokenizer.model`), or a clear error."""
        path = os.path.join(run_dir, TOKENIZER_FILE)
        if not os.path.isfile(path):
            raise user_error("The run has no tokenizer", f"{path} (written when training "
                             "starts)", f"run_dir={run_dir!r}", "Train the run first.")
        return cls(path)
