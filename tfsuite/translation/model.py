"""T5 models from KerasHub: built from config sizes, or a preset found on this machine.

Training uses `T5Seq2SeqLM` without a preprocessor: the data is already
token ids (`tfsuite.translation.data`), so the same model trains on every
Keras backend and inside any distribution strategy. The saved `model.keras`
gets KerasHub's `T5Seq2SeqLMPreprocessor` attached, so it also takes text.
"""

import os

from tfsuite.errors import require_module, user_error
from tfsuite.translation.config import MODEL_SIZES
from tfsuite.translation.tokenizer import INSTALL


def keras_hub():
    return require_module("keras_hub", "Translation", INSTALL)


def model_sizes(t):
    """(num_layers, num_heads, hidden_dim, intermediate_dim, key_value_dim) of the config."""
    layers, heads, hidden, intermediate, key_value = MODEL_SIZES[t.size]
    overridden = t.num_heads is not None or t.hidden_dim is not None
    layers = t.num_layers or layers
    heads = t.num_heads or heads
    hidden = t.hidden_dim or hidden
    intermediate = t.intermediate_dim or intermediate
    if t.key_value_dim is not None:
        key_value = t.key_value_dim
    elif overridden:
        key_value = max(1, hidden // heads)
    return layers, heads, hidden, intermediate, key_value


def build_backbone(t, vocabulary_size):
    """A randomly initialised `T5Backbone` of the config's sizes."""
    layers, heads, hidden, intermediate, key_value = model_sizes(t)
    return keras_hub().models.T5Backbone(
        vocabulary_size=vocabulary_size, num_layers=layers, num_heads=heads,
        hidden_dim=hidden, intermediate_dim=intermediate, key_value_dim=key_value,
        dropout=t.dropout, activation="gelu" if t.gated_activation else "relu",
        use_gated_activation=t.gated_activation, tie_embedding_weights=t.tie_embeddings)


def seq2seq(backbone, preprocessor=None):
    return keras_hub().models.T5Seq2SeqLM(backbone=backbone, preprocessor=preprocessor)


def with_preprocessor(model, tokenizer, t):
    """The same weights as a text-in model (what `model.keras` holds)."""
    hub = keras_hub()
    text_tokenizer = hub.models.T5Tokenizer(proto=tokenizer.proto)
    preprocessor = hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=text_tokenizer, encoder_sequence_length=t.max_source_length,
        decoder_sequence_length=t.max_target_length)
    return seq2seq(model.backbone, preprocessor)


# ---------------------------------------------------------------- presets


def _kagglehub_cache():
    return os.environ.get("KAGGLEHUB_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "kagglehub")


def resolve_preset(preset):
    """A preset folder on this machine: the path itself, or KerasHub's download cache.

    Never downloads: a name not in the cache is an error that says how to get it.
    """
    keras_hub()  # a clear error when KerasHub is missing
    expanded = os.path.abspath(os.path.expanduser(preset))
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "config.json")):
            raise user_error("Not a KerasHub preset folder", "a folder holding config.json "
                             "(written by `save_to_preset` or a KerasHub download)",
                             f"translation.preset={preset!r}")
        return expanded
    from keras_hub.src.models.t5.t5_presets import backbone_presets

    if preset not in backbone_presets:
        raise user_error("Unknown T5 preset", f"a local preset folder or one of "
                         f"{sorted(backbone_presets)}", f"translation.preset={preset!r}")
    handle = backbone_presets[preset]["kaggle_handle"].removeprefix("kaggle://")
    owner, model, framework, variation, *version = handle.split("/")
    folder = os.path.join(_kagglehub_cache(), "models", owner, model, framework, variation)
    versions = [version[0]] if version else sorted(
        os.listdir(folder) if os.path.isdir(folder) else [], key=str)
    for v in reversed(versions):
        path = os.path.join(folder, v)
        if os.path.isfile(os.path.join(path, "config.json")):
            return path
    raise user_error(f"The KerasHub preset {preset!r} is not on this machine (tfsuite does "
                     "not download)", f"it in the KerasHub cache ({folder}) or a local "
                     "preset folder", f"translation.preset={preset!r}",
                     f"On a connected machine run `python -c \"import keras_hub; keras_hub."
                     f"models.T5Seq2SeqLM.from_preset('{preset}')\"` and copy "
                     f"{_kagglehub_cache()} here (or set KAGGLEHUB_CACHE), or pass "
                     "--set translation.preset=/path/to/preset_folder; leave "
                     "translation.preset out to train a model from scratch.")


def load_preset(preset):
    """(backbone, SentencePiece proto bytes) of a local T5 preset."""
    hub = keras_hub()
    path = resolve_preset(preset)
    try:
        backbone = hub.models.T5Backbone.from_preset(path)
        tokenizer = hub.models.T5Tokenizer.from_preset(path)
    except (ValueError, OSError, KeyError) as e:
        raise user_error("The T5 preset cannot be loaded", "a complete KerasHub T5 preset "
                         "(config.json, model.weights.h5, tokenizer.json and its assets)",
                         f"{path} ({type(e).__name__}: {str(e)[:200]})") from None
    proto = tokenizer.proto
    if isinstance(proto, str):
        with open(proto, "rb") as f:
            proto = f.read()
    return backbone, proto
