"""Llama-style decoders from KerasHub: built from a size, or a preset found on this machine;
the training model with its chunked loss inside; LoRA; the text-in model that is saved.

Training never makes the float32 logits of a whole batch: `CausalLMTraining` runs the
backbone, then the output projection and the cross-entropy one chunk of positions at a
time, each chunk under `keras.remat` (its logits are made again in the backward pass
instead of being kept). It returns, per position, the loss and whether the argmax was
right; the Keras loss and metrics average those.
"""

import contextlib
import json
import os

import keras
from keras import ops

from tfsuite.errors import require_module, user_error
from tfsuite.language_model.config import MODEL_SIZES, model_shape
from tfsuite.language_model.tokenizer import INSTALL

# The longest window a model built from a size is trained on (Llama 2's context for the
# large ones); a preset's is in its preprocessor.json.
CONTEXT_LENGTHS = {"tiny": 1024, "small": 2048, "1b": 4096, "7b": 4096}


def keras_hub():
    return require_module("keras_hub", "The language model", INSTALL)


def build_backbone(lm, vocabulary_size):
    """A randomly initialised `LlamaBackbone` of the config's shape."""
    layers, heads, kv_heads, hidden, intermediate = model_shape(lm)
    return keras_hub().models.LlamaBackbone(
        vocabulary_size=vocabulary_size, num_layers=layers, num_query_heads=heads,
        num_key_value_heads=kv_heads, hidden_dim=hidden, intermediate_dim=intermediate,
        dropout=lm.dropout)


def context_length(lm):
    """The longest sequence the model takes: the size's, or a preset backbone's
    `max_sequence_length` (None: a rotary-position model such as Llama sets no limit; a
    preprocessor's sequence_length is only its packing length, not the model's)."""
    if lm.preset:
        path = resolve_preset(lm.preset)
        try:
            with open(os.path.join(path, "config.json")) as f:
                value = json.load(f)["config"].get("max_sequence_length")
        except (OSError, KeyError, ValueError, TypeError, AttributeError):
            return None
        return int(value) if value else None
    return CONTEXT_LENGTHS.get(lm.size)


# ---------------------------------------------------------------- the training model


def output_kernel(embedding, dtype):
    """The [hidden, vocabulary] matrix of a KerasHub `ReversibleEmbedding`'s reverse call,
    in `dtype`."""
    kernel = (ops.transpose(embedding.embeddings) if embedding.tie_weights
              else embedding.reverse_embeddings)
    return ops.cast(kernel, dtype)


def chunk_loss(hidden, labels, kernel):
    """[batch, chunk, 2]: the cross-entropy of each position and whether its argmax is the
    label (the logits are float32 for this chunk only). `labels` come as float32 (exact
    below 2**24): TensorFlow's recompute_grad watches every input and warns on integers."""
    labels = ops.cast(labels, "int32")
    logits = ops.cast(ops.matmul(hidden, kernel), "float32")
    picked = ops.take_along_axis(logits, ops.expand_dims(labels, -1), axis=-1)[..., 0]
    loss = ops.logsumexp(logits, axis=-1) - picked
    correct = ops.cast(ops.equal(ops.argmax(logits, axis=-1), labels), "float32")
    return ops.stack([loss, ops.stop_gradient(correct)], axis=-1)


def fused_attention():
    """Whether Keras' backend runs attention in a fused kernel that can skip the masked
    half: JAX on a GPU or TPU (cuDNN, Splash), torch on a GPU (SDPA). TensorFlow has none."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.devices()[0].platform in ("gpu", "tpu")
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


@contextlib.contextmanager
def causal_attention():
    """Inside: KerasHub's Llama attention computes causal attention with `is_causal` and
    ignores the mask it is given. Valid where no window holds padding (every training
    and scoring window is full): the mask is then the causal mask alone, and `is_causal`
    lets the attention kernel (cuDNN's flash attention on GPUs) skip the masked half
    instead of reading a [batch, length, length] mask as a bias."""
    try:
        from keras_hub.src.models.llama.llama_attention import LlamaAttention
    except ImportError:  # another KerasHub layout: its own (masked) attention
        yield
        return
    masked = LlamaAttention._compute_attention

    def causal(self, query, key, value, attention_mask=None):
        return ops.dot_product_attention(query, key, value, scale=self._inv_norm_factor,
                                         is_causal=True)

    LlamaAttention._compute_attention = causal
    try:
        yield
    finally:
        LlamaAttention._compute_attention = masked


@contextlib.contextmanager
def rematerialized_layers(backbone):
    """Inside: each decoder layer of `backbone` runs under `keras.remat` (`train.remat`):
    the backward pass computes the layer's activations again from its input instead of
    keeping them, so a step holds one layer's activations at a time, for about a third more
    compute.

    `keras.RematScope` fails on KerasHub's layers (it passes `training` into
    `jax.checkpoint`, which traces it; TensorFlow's `recompute_grad` takes no keyword
    arguments in a graph): here only tensors go through the rematerialized function, the
    other arguments are closed over, and a call with a cache (generation) is left as is.
    """
    classes = {type(layer) for layer in getattr(backbone, "transformer_layers", [])}
    originals = {cls: cls.call for cls in classes}

    def wrap(original):
        def call(self, decoder_sequence, **kwargs):
            if any(kwargs.get(key) is not None for key in ("self_attention_cache",
                                                           "cache", "past_key_values")):
                return original(self, decoder_sequence, **kwargs)
            names = [key for key, value in kwargs.items() if _is_tensor(value)]
            static = {key: value for key, value in kwargs.items() if key not in names}

            def layer(sequence, *tensors):  # a new function per trace: nothing stale
                return original(self, sequence, **static, **dict(zip(names, tensors)))

            return keras.remat(layer)(decoder_sequence, *[kwargs[key] for key in names])

        return call

    for cls, original in originals.items():
        cls.call = wrap(original)
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.call = original


def _is_tensor(value):
    return hasattr(value, "shape")  # not None, a Python flag or number


@keras.saving.register_keras_serializable(package="tfsuite")
class CausalLMTraining(keras.Model):
    """A decoder backbone and its loss: `{"token_ids", "labels"}` in, [batch, length, 2]
    out (the loss of each position, and 1.0 where the argmax is the label).

    Args:
        backbone: a KerasHub decoder backbone with a reversible `token_embedding`.
        loss_chunk: positions whose logits are made at once.
        causal: attention with `is_causal` instead of KerasHub's mask (`causal_attention`);
            None: where a fused kernel skips the masked half (`fused_attention`: JAX on
            GPUs and TPUs, torch on GPUs); on CPUs the mask was faster (3% on TensorFlow,
            8% on JAX, tiny decoder).
        remat: each decoder layer rematerialized (`rematerialized_layers`).
    """

    def __init__(self, backbone, loss_chunk, causal=None, remat=False, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.loss_chunk = loss_chunk
        self.causal = causal
        self.remat = remat

    def call(self, inputs):
        ids, labels = inputs["token_ids"], inputs["labels"]
        causal = self.causal if self.causal is not None else fused_attention()
        # The windows are full: no padding to mask.
        with causal_attention() if causal else contextlib.nullcontext(), \
                rematerialized_layers(self.backbone) if self.remat else contextlib.nullcontext():
            hidden = self.backbone({"token_ids": ids, "padding_mask": ops.ones_like(ids)})
        embedding = self.backbone.token_embedding
        kernel = output_kernel(embedding, hidden.dtype)
        # The weights go in as an argument: a function that closes over a variable would
        # keep the value it was first traced with (JAX).
        chunk = keras.remat(chunk_loss)
        labels = ops.cast(labels, "float32")
        pieces = [chunk(hidden[:, start:start + self.loss_chunk],
                        labels[:, start:start + self.loss_chunk], kernel)
                  for start in range(0, ids.shape[1], self.loss_chunk)]
        return pieces[0] if len(pieces) == 1 else ops.concatenate(pieces, axis=1)

    def get_config(self):
        return {**super().get_config(), "loss_chunk": self.loss_chunk, "causal": self.causal,
                "remat": self.remat,
                "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        backbone = keras.saving.deserialize_keras_object(config.pop("backbone"))
        return cls(backbone, **config)


class TokenLoss(keras.losses.Loss):
    """The mean of the per-position cross-entropy the model returns."""

    def __init__(self, name="token_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return y_pred[..., 0]


def token_accuracy(y_true, y_pred):
    return y_pred[..., 1]


class Perplexity(keras.metrics.Metric):
    """exp(mean cross-entropy per token) over everything seen since the last reset."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        losses = ops.cast(y_pred[..., 0], "float32")
        self.total.assign_add(ops.sum(losses))
        self.count.assign_add(ops.cast(ops.size(losses), "float32"))

    def result(self):
        return ops.exp(self.total / ops.maximum(self.count, 1.0))


def metrics():
    return [keras.metrics.MeanMetricWrapper(token_accuracy, name="accuracy"), Perplexity()]


# ---------------------------------------------------------------- saved models


def with_preprocessor(backbone, tokenizer_proto, sequence_length):
    """A text-in `LlamaCausalLM` over `backbone` (what `model.keras` holds)."""
    hub = keras_hub()
    tokenizer = hub.models.LlamaTokenizer(proto=tokenizer_proto)
    preprocessor = hub.models.LlamaCausalLMPreprocessor(tokenizer=tokenizer,
                                                        sequence_length=sequence_length)
    return hub.models.LlamaCausalLM(backbone=backbone, preprocessor=preprocessor)


# ---------------------------------------------------------------- presets


def resolve_preset(preset):
    """A local preset folder (never downloaded), or a clear error."""
    keras_hub()
    path = os.path.abspath(os.path.expanduser(preset))
    if not os.path.isdir(path):
        raise user_error("The preset is not on this machine (tfsuite does not download)",
                         "a local KerasHub preset folder (config.json, model.weights.h5, "
                         "tokenizer.json and assets/)", f"language_model.preset={preset!r}",
                         "Save a run's model as one with `keras.saving.load_model("
                         "'RUN_DIR/model.keras').save_to_preset(FOLDER)`, or download a "
                         "preset on a connected machine with keras_hub and copy its folder "
                         "here.")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise user_error("Not a KerasHub preset folder", "a folder holding config.json "
                         "(written by `save_to_preset` or a KerasHub download)",
                         f"language_model.preset={preset!r}")
    return path


def _load(kind, preset):
    hub = keras_hub()
    path = resolve_preset(preset)
    try:
        return getattr(hub.models, kind).from_preset(path)
    except (ValueError, OSError, KeyError) as e:
        raise user_error("The preset cannot be loaded", "a complete KerasHub decoder preset "
                         "(config.json, model.weights.h5, tokenizer.json and its assets)",
                         f"{path} ({type(e).__name__}: {str(e)[:200]})") from None


def load_backbone(preset):
    """The backbone of a local decoder preset."""
    backbone = _load("Backbone", preset)
    if not isinstance(backbone, keras_hub().models.LlamaBackbone):
        raise user_error("The preset is not a Llama model", "a KerasHub Llama preset (its "
                         "model.keras and generation are LlamaCausalLM's)",
                         f"{preset} ({type(backbone).__name__})")
    return backbone


def preset_tokenizer(preset):
    """The SentencePiece proto (bytes) of a local preset's tokenizer."""
    proto = getattr(_load("Tokenizer", preset), "proto", None)
    if isinstance(proto, str):
        with open(proto, "rb") as f:
            proto = f.read()
    if not proto:
        raise user_error("The preset's tokenizer is not SentencePiece", "a Llama preset "
                         "with a SentencePiece tokenizer", f"{preset}")
    return proto


def sampler(lm):
    """The KerasHub sampler of `language_model.sampler` and its settings."""
    samplers = keras_hub().samplers
    if lm.sampler == "greedy":
        return samplers.GreedySampler()
    if lm.sampler == "top_k":
        return samplers.TopKSampler(k=lm.top_k, temperature=lm.temperature)
    return samplers.TopPSampler(p=lm.top_p, temperature=lm.temperature)


LORA_FILE = "lora.lora.h5"  # KerasHub's save_lora_weights wants the ".lora.h5" suffix


def lora_enabled(backbone):
    return bool(getattr(backbone, "_lora_enabled_layers", None))


def merged(backbone):
    """The same network without LoRA: each LoRA kernel becomes W + (alpha / rank) A B (what
    the LoRA layer computes), every other weight is copied. A backbone without LoRA is
    returned as it is."""
    if not lora_enabled(backbone):
        return backbone
    lora_kernels = {}
    for layer in backbone._flatten_layers(include_self=False):
        if getattr(layer, "lora_enabled", False):
            lora_kernels[id(layer._kernel)] = layer.kernel  # the merged value
    fresh = type(backbone).from_config(backbone.get_config())
    kept = [v for v in backbone.weights if v.name not in ("lora_kernel_a", "lora_kernel_b")]
    if len(kept) != len(fresh.weights):
        raise RuntimeError(f"merging LoRA: {len(kept)} weights against {len(fresh.weights)}")
    for old, new in zip(kept, fresh.weights):
        value = lora_kernels.get(id(old), old.value)
        if tuple(value.shape) != tuple(new.shape):
            raise RuntimeError(f"merging LoRA: {old.path} {value.shape} -> {new.shape}")
        new.assign(ops.copy(value))  # its own buffer: JAX's generate donates the state's
    return fresh


def weight_counts(backbone):
    """(trainable, total) weights of `backbone`."""
    trainable = sum(int(ops.size(v)) for v in backbone.trainable_weights)
    total = sum(int(ops.size(v)) for v in backbone.weights)
    return trainable, total


assert set(CONTEXT_LENGTHS) == set(MODEL_SIZES)
