"""The translation settings: the `translation` section of an experiment config.

No Keras or KerasHub import here, so reading a config stays cheap. Data paths
and splits are the shared `data.*` keys (`data.path` is the TSV or the source
side of paired files); optimizer, schedule, epochs and batch size are
`train.*`; precision and strategy are `runtime.*`.
"""

from dataclasses import dataclass
from typing import Optional

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
    target_path: Optional[str] = None
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
