"""The translation settings: the `translation` section of an experiment config.

No Keras or KerasHub import here, so reading a config stays cheap. Data paths
and splits are the shared `data.*` keys (`data.path` is the TSV or the source
side of paired files); optimizer, schedule, epochs and batch size are
`train.*`; precision and strategy are `runtime.*`.
"""

import os
from dataclasses import dataclass, field
from typing import Optional

from tfsuite.config import PATH, require

# T5 sizes (num_layers, num_heads, hidden_dim, intermediate_dim, key_value_dim): small and
# base as in the T5 paper and KerasHub's t5_small_multi / t5_base_multi presets. "tiny" is the
# one that learned translate_numbers fastest in a sweep (benchmarks/RESULTS.md): at
# AdamW 1e-3 to 2e-3, models of hidden size 96 and up, or 2e-3 with 3 layers, stalled.
MODEL_SIZES = {
    "tiny": (3, 4, 64, 256, 16),
    "mini": (4, 4, 256, 1024, 64),
    "small": (6, 8, 512, 2048, 64),
    "base": (12, 12, 768, 3072, 64),
}
SAMPLERS = ("greedy", "beam")
# data.source=numbers: language names and their num2words codes
NUMBER_LANGUAGES = {"English": "en", "French": "fr", "German": "de", "Spanish": "es",
                    "Italian": "it", "Portuguese": "pt", "Dutch": "nl"}


@dataclass(frozen=True)
class TranslationConfig:
    """A T5 encoder-decoder (KerasHub) and its tokenizer, data and decoding."""

    source_language: str = "English"
    """Name of the source language, used in the task prefix."""
    target_language: str = "French"
    """Name of the target language, used in the task prefix."""
    task_prefix: Optional[str] = None
    """Text put before every source sentence, as T5 does; null: "translate SOURCE to
    TARGET: " from the two language names; "" for none."""
    target_path: Optional[str] = field(default=None, metadata=PATH)
    """Paired plain-text files: the target side (`data.path` is the source side)."""
    num_pairs: int = 24_000
    """data.source=numbers: distinct numbers in the generated corpus."""
    max_number: int = 999_999
    """data.source=numbers: the largest number."""
    vocab_size: int = 8000
    """Upper bound of the SentencePiece vocabulary trained on the training split."""
    tokenizer_type: str = "unigram"
    """SentencePiece model type: unigram or bpe."""
    max_source_length: int = 64
    """Encoder tokens (with `</s>`); longer sources are truncated and counted."""
    max_target_length: int = 64
    """Decoder tokens (with `</s>`): training targets are cut to it, and it is the
    default longest translation."""
    size: str = "tiny"
    """tiny, mini, small or base (see MODEL_SIZES); the keys below override it."""
    num_layers: Optional[int] = None
    """Encoder layers (the decoder has as many)."""
    num_heads: Optional[int] = None
    hidden_dim: Optional[int] = None
    intermediate_dim: Optional[int] = None
    key_value_dim: Optional[int] = None
    """Per-head size; null: from the size (hidden_dim // num_heads when overridden)."""
    dropout: float = 0.1
    gated_activation: bool = False
    """True: T5 v1.1's gated-GELU feed-forward; False: T5's original ReLU."""
    tie_embeddings: bool = False
    """Share the input embedding with the output layer (T5 v1.0). Untied (T5 v1.1) trains
    faster from scratch: the tied layer's logits start near zero."""
    preset: Optional[str] = None
    """A KerasHub T5 preset to fine-tune instead (its tokenizer too): a local preset
    folder, or a name such as t5_small_multi already in the local KerasHub cache."""
    sampler: str = "greedy"
    """Decoding: greedy or beam."""
    num_beams: int = 4
    """Beams of beam search."""
    max_length: Optional[int] = None
    """Longest translation in tokens; null: max_target_length."""
    eval_batch_size: int = 256
    """Sentences decoded together when translating the test split."""


def validate(config, check_files):
    """The T5 settings, and which data sources and methods go with which task."""
    t = config.translation
    for key in ("num_pairs", "eval_batch_size", "num_beams"):
        require(getattr(t, key) >= 1, f"translation.{key}", "an int >= 1", getattr(t, key))
    require(t.max_number >= 1, "translation.max_number", "an int >= 1", t.max_number)
    for key in ("max_source_length", "max_target_length"):
        require(getattr(t, key) >= 4, f"translation.{key}", "an int >= 4 (tokens, with "
                 "</s>)", getattr(t, key))
    require(t.max_length is None or t.max_length >= 2, "translation.max_length",
             "null or an int >= 2", t.max_length)
    for key in ("num_layers", "num_heads", "hidden_dim", "intermediate_dim", "key_value_dim"):
        value = getattr(t, key)
        require(value is None or value >= 1, f"translation.{key}", "null or an int >= 1",
                 value)
    require(0 <= t.dropout < 1, "translation.dropout", "a rate in [0, 1)", t.dropout)
    require(t.vocab_size >= 16, "translation.vocab_size", "an int >= 16", t.vocab_size)
    if check_files and t.target_path is not None:
        require(os.path.isfile(t.target_path), "translation.target_path",
                 "null or an existing text file (the target side of paired files)",
                 t.target_path)
    if config.data.source == "numbers":
        require(t.num_pairs >= 10, "translation.num_pairs", "an int >= 10", t.num_pairs)
        require(t.num_pairs <= t.max_number + 1, "translation.num_pairs",
                 f"at most translation.max_number + 1 = {t.max_number + 1} (distinct numbers)",
                 t.num_pairs)
    require(config.data.test_split > 0, "data.test_split", "a fraction in (0, 1): BLEU "
             "and exact match are measured on the test split", config.data.test_split)
    for method in config.compress.methods:
        require(method == "quantize", "compress.methods", "[] or [quantize] for translation "
                 "(Keras int8 of the Dense layers)", config.compress.methods)
    if config.compress.methods:
        require(config.compress.quantization in ("int8", "keras_int8"),
                 "compress.quantization", "int8 or keras_int8 for translation (Keras int8 of "
                 "the Dense layers)", config.compress.quantization)
    if config.data.source == "numbers":
        require(t.source_language in NUMBER_LANGUAGES, "translation.source_language",
                 f"one of {sorted(NUMBER_LANGUAGES)} for data.source=numbers (num2words)",
                 t.source_language)
        require(t.target_language in NUMBER_LANGUAGES, "translation.target_language",
                 f"one of {sorted(NUMBER_LANGUAGES)} for data.source=numbers (num2words)",
                 t.target_language)
