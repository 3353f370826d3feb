"""Choosing layers of a model by class and by name or regular expression.

Pruning, low-rank factorization and model-parallel sharding all pick layers
the same way: every layer of the classes that apply, or those a user names.
"""

import re

from tfsuite.errors import user_error


def leaf_layers(model):
    """Every layer that holds no other layers, nested models searched."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if not layer._flatten_layers(include_self=False, recursive=False)]


def select_layers(model, patterns, kinds, key):
    """The layers of the classes in `kinds` that `patterns` name or match.

    Args:
        model: a Keras model (nested models are searched too).
        patterns: layer names or regular expressions (full match); empty: every
            layer of a class in `kinds`.
        kinds: the layer class names that may be selected.
        key: the config key the patterns came from, for error messages.

    Returns:
        The layers, in model order.
    """
    candidates = [layer for layer in leaf_layers(model) if type(layer).__name__ in kinds]
    if not patterns:
        return candidates
    names = [layer.name for layer in candidates]
    chosen = []
    for pattern in patterns:
        matched = [layer for layer in candidates if re.fullmatch(pattern, layer.name)]
        if not matched:
            others = [layer.name for layer in leaf_layers(model)
                      if re.fullmatch(pattern, layer.name)]
            problem = (f"{others} are not layers of the kinds it selects ({sorted(kinds)})"
                       if others else "it matches no layer")
            raise user_error(f"A layer pattern in `{key}` selects nothing: {problem}",
                             f"names or regular expressions matching some of {names}",
                             f"{key}={list(patterns)!r}")
        chosen.extend(layer for layer in matched if layer not in chosen)
    return [layer for layer in candidates if layer in chosen]
