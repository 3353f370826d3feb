"""The language-model settings: the `language_model` section of an experiment config.

No Keras or KerasHub import here, so reading a config stays cheap. The corpus
is `data.path` (a text file, a folder of them, or JSONL with a `text` field) and
its held-out splits `data.validation_split` / `data.test_split`, by document;
optimizer, schedule, epochs and batch size are `train.*`; precision is `runtime.*`;
LoRA is `model.lora_rank`.
"""

from dataclasses import dataclass
from typing import Optional

from tfsuite.config import BFLOAT16_OPTIMIZERS, require
from tfsuite.config.sections import register_export_format

# Llama-style decoder shapes: (num_layers, num_query_heads, num_key_value_heads,
# hidden_dim, intermediate_dim). "1b" is the ~0.85B configuration of issue 25's bench
# (vocabulary 32,000); "7b" is Llama-2-7B's. "tiny" is sized for a CPU: the one that
# went furthest below the bigram baseline on the bundled corpus in ten minutes on two
# cores (benchmarks/RESULTS.md).
MODEL_SIZES = {
    "tiny": (4, 4, 2, 128, 384),
    "small": (8, 8, 4, 512, 1408),
    "1b": (16, 32, 8, 2048, 5632),
    "7b": (32, 32, 32, 4096, 11008),
}
SAMPLERS = ("greedy", "top_k", "top_p")
register_export_format("keras_hub_preset")  # a KerasHub preset folder (language models)
TOKENIZER_TYPES = ("unigram", "bpe")


@dataclass(frozen=True)
class LanguageModelConfig:
    """A KerasHub Llama-style decoder, its tokenizer, data packing and generation."""

    size: str = "tiny"
    """tiny, small, 1b or 7b (see MODEL_SIZES); the keys below override it."""
    num_layers: Optional[int] = None
    num_query_heads: Optional[int] = None
    num_key_value_heads: Optional[int] = None
    hidden_dim: Optional[int] = None
    intermediate_dim: Optional[int] = None
    preset: Optional[str] = None
    """A local KerasHub Llama preset folder (weights and tokenizer) to fine-tune instead;
    never downloaded."""
    vocab_size: int = 2000
    """Upper bound of the SentencePiece vocabulary trained on the training documents."""
    tokenizer_type: str = "unigram"
    """unigram or bpe (Llama's own tokenizers are BPE; on a small corpus BPE reaches a
    large vocabulary where unigram stops short)."""
    sequence_length: int = 256
    """Tokens per training window; documents are packed end to end, each ending in </s>."""
    loss_chunk: int = 128
    """Positions per chunk of the cross-entropy: logits are made one chunk at a time (and
    made again in the backward pass), never for the whole batch."""
    dropout: float = 0.0
    max_new_tokens: int = 64
    """`generate`: tokens generated after the prompt."""
    sampler: str = "top_k"
    """`generate`: greedy, top_k or top_p."""
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    eval_batch_size: int = 32
    """Windows scored together for perplexity and token accuracy."""
    samples: int = 3
    """Texts generated after training from the first words of held-out documents
    (evaluation/samples.txt); 0 for none."""


def model_shape(lm):
    """(num_layers, num_query_heads, num_key_value_heads, hidden_dim, intermediate_dim)."""
    layers, heads, kv_heads, hidden, intermediate = MODEL_SIZES[lm.size]
    return (lm.num_layers or layers, lm.num_query_heads or heads,
            lm.num_key_value_heads or (kv_heads if not lm.num_query_heads else
                                       lm.num_query_heads),
            lm.hidden_dim or hidden, lm.intermediate_dim or intermediate)


def validate_generation(lm):
    """The generation settings (also checked when `generate` overrides them)."""
    require(lm.max_new_tokens >= 1, "language_model.max_new_tokens", "an int >= 1",
            lm.max_new_tokens)
    require(lm.sampler in SAMPLERS, "language_model.sampler", f"one of {list(SAMPLERS)}",
            lm.sampler)
    require(lm.temperature > 0, "language_model.temperature", "a number > 0", lm.temperature)
    require(0 < lm.top_p <= 1, "language_model.top_p", "a fraction in (0, 1]", lm.top_p)


def validate(config, check_files):
    lm = config.language_model
    validate_generation(lm)
    require(lm.samples >= 0, "language_model.samples", "an int >= 0", lm.samples)
    for key in ("vocab_size", "sequence_length", "loss_chunk", "eval_batch_size", "top_k"):
        require(getattr(lm, key) >= 1, f"language_model.{key}", "an int >= 1",
                getattr(lm, key))
    require(lm.vocab_size >= 64, "language_model.vocab_size", "an int >= 64",
            lm.vocab_size)
    require(lm.sequence_length >= 8, "language_model.sequence_length", "an int >= 8 (tokens)",
            lm.sequence_length)
    for key in ("num_layers", "num_query_heads", "num_key_value_heads", "hidden_dim",
                "intermediate_dim"):
        value = getattr(lm, key)
        require(value is None or value >= 1, f"language_model.{key}", "null or an int >= 1",
                value)
    layers, heads, kv_heads, hidden, _ = model_shape(lm)
    require(hidden % heads == 0, "language_model.hidden_dim", f"a multiple of "
            f"num_query_heads={heads}", hidden)
    require(heads % kv_heads == 0, "language_model.num_key_value_heads", f"a divisor of "
            f"num_query_heads={heads}", kv_heads)
    require(0 <= lm.dropout < 1, "language_model.dropout", "a rate in [0, 1)", lm.dropout)
    require(config.data.test_split > 0, "data.test_split", "a fraction in (0, 1): "
            "perplexity is measured on held-out documents", config.data.test_split)
    require(not config.compress.methods, "compress.methods", "[] for language_model",
            config.compress.methods)
    if config.export.formats:
        from tfsuite.language_model.export import formats_for

        formats_for(config.export.formats)
    if config.runtime.precision == "bfloat16":
        require(config.train.optimizer in BFLOAT16_OPTIMIZERS, "train.optimizer",
                f"one of {list(BFLOAT16_OPTIMIZERS)} with runtime.precision=bfloat16 (their "
                "update of bfloat16 weights runs in float32)", config.train.optimizer,
                "Use --set train.optimizer=adamw, or --set runtime.precision=mixed_bfloat16 "
                "(float32 weights) for this optimizer.")
    require(config.train.optimizer_state == "float32" or config.runtime.precision == "bfloat16",
            "train.optimizer_state", "float32 unless runtime.precision=bfloat16 (float32 "
            "weights keep float32 state)", config.train.optimizer_state,
            "Add --set runtime.precision=bfloat16 for bfloat16 weights and state.")
    lora = config.model.lora_rank
    require(lora is None or lora >= 1, "model.lora_rank", "null or an int >= 1", lora)
    require(lora is None or lm.preset, "model.lora_rank", "null unless "
            "language_model.preset is set (LoRA fine-tunes a pretrained model)", lora)
