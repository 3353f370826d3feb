"""Reading configs: tfsuite's YAML, `a.b=value` overrides, and typed building of the
dataclasses with one clear error per wrong key or type (no tfsuite schema here)."""

import copy
import dataclasses
import difflib
import os
import re
import typing
from typing import List, Union

import yaml

from tfsuite.errors import UserError, user_error

_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class _Loader(yaml.SafeLoader):
    """YAML without YAML 1.1's base-60 numbers, which read `2:4` as the int 124."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if not (tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
                    and ":" in regexp.pattern)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# The int and float patterns above hold the base-60 forms as alternatives; keep the others.
for _tag, _pattern in (
        ("tag:yaml.org,2002:int", r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"""
                                  r"""|[-+]?0x[0-9a-fA-F_]+)$"""),
        ("tag:yaml.org,2002:float", r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"""
                                    r"""|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"""
                                    r"""|\.(?:nan|NaN|NAN))$""")):
    _Loader.add_implicit_resolver(_tag, re.compile(_pattern, re.X), list("-+0123456789."))


MAX_NODES = 100_000  # values in one config (a real one holds a few hundred)
MAX_BYTES = 1_000_000  # a config file or an override


def read_yaml(text):
    """YAML as tfsuite reads it (see `_Loader`), bounded: too deep a nesting or too many
    values (aliases expanding to billions, as in "billion laughs") is a `UserError`."""
    try:
        value = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise user_error("A config value is nested too deeply", "at most a few levels of "
                         "[...] or {...}", "a value nested past Python's recursion limit",
                         "Check the brackets.") from None
    _check_size(value)
    return value


def _check_size(value):
    """Counts the values (each alias counted again, as a dump would show it), stopping at
    `MAX_NODES`: the count costs nothing for a real config and stops a bomb early."""
    stack, count = [value], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise user_error("A config holds too many values", f"at most {MAX_NODES:,}",
                             f"more than {MAX_NODES:,} (YAML aliases expand)", "Write the "
                             "values out, without anchors that refer to each other.")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def shown(value, limit=200):
    """`repr(value)` for an error message, cut to `limit` characters (a value can be huge)."""
    import reprlib

    short = reprlib.Repr()  # (keyword arguments only from Python 3.12)
    short.maxlevel, short.maxdict, short.maxlist = 4, 8, 8
    short.maxstring = short.maxother = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_yaml_file(path):
    """A YAML file that must hold a mapping, with clear errors."""
    if not os.path.isfile(path):
        raise user_error("Config file not found", "an existing YAML file", f"config={path!r}")
    if os.path.getsize(path) > MAX_BYTES:
        raise user_error("Config file is too large", f"at most {MAX_BYTES:,} bytes",
                         f"config={path!r} ({os.path.getsize(path):,} bytes)")
    try:
        with open(path, encoding="utf-8") as f:
            raw = read_yaml(f.read()) or {}
    except UnicodeDecodeError as e:
        raise user_error("Config file is not UTF-8 text", "a YAML file saved as UTF-8",
                         f"config={path!r} ({e.reason} at byte {e.start})", "Save it as "
                         "UTF-8 (a binary file, or UTF-16 from some Windows editors, is not "
                         "read).") from None
    except yaml.YAMLError as e:
        raise UserError(f"Config file {path!r} is not valid YAML: {shown(str(e), 500)}") \
            from None
    if not isinstance(raw, dict):
        raise user_error("Config file must hold a mapping", "`key: value` pairs",
                         f"config={path!r} (a {type(raw).__name__})")
    return raw


def merge(base, update):
    """Deep-merges `update` into `base` (both dicts), in place."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def parse_override(text):
    """Parses one `a.b.c=value` string into a nested dict; the value is YAML."""
    if "=" not in text:
        raise user_error("Malformed override", "`key=value`, e.g. train.epochs=5",
                         f"--set {text!r}")
    key, _, raw_value = text.partition("=")
    key = key.strip()
    if len(raw_value) > MAX_BYTES:
        raise user_error("Override value is too large", f"at most {MAX_BYTES:,} characters",
                         f"--set {key}=... ({len(raw_value):,} characters)")
    try:
        value = read_yaml(raw_value) if raw_value.strip() else None
    except yaml.YAMLError:
        value = raw_value
    nested = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return nested


def apply_overrides(raw, overrides):
    """Merges `a.b=value` strings (values read as YAML), or a {"a.b": value} mapping of
    Python values (a string value is read as YAML too, as on the command line)."""
    if isinstance(overrides, dict):
        for key, value in overrides.items():
            if not isinstance(key, str) or not key:
                raise user_error("Malformed override", "a dotted key such as 'train.epochs'",
                                 f"{key!r}")
            if isinstance(value, str):
                merge(raw, parse_override(f"{key}={value}"))
            else:
                nested = copy.deepcopy(value)  # merging must not change the caller's dicts
                for part in reversed(key.split(".")):
                    nested = {part: nested}
                merge(raw, nested)
        return raw
    if isinstance(overrides, str):
        raise user_error("Overrides must be a list or a mapping", "e.g. ['train.epochs=3'] "
                         "or {'train.epochs': 3}", f"overrides={overrides!r}")
    for text in overrides:
        merge(raw, parse_override(text))
    return raw


def valid_keys(cls, prefix=""):
    keys = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
            keys.extend(valid_keys(f.type, prefix + f.name + "."))
        else:
            keys.append(prefix + f.name)
    return keys


def check_value(value, hint, key):
    """Checks `value` against a type hint; returns it normalized (ints to floats)."""
    origin = typing.get_origin(hint)
    if origin is Union:
        for option in typing.get_args(hint):
            try:
                return check_value(value, option, key)
            except UserError:
                pass
        raise type_error(key, hint, value)
    if hint is type(None):
        if value is None:
            return None
        raise type_error(key, hint, value)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise type_error(key, hint, value)
        (item_hint,) = typing.get_args(hint)
        return [check_value(v, item_hint, key) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise type_error(key, hint, value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise type_error(key, hint, value)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads "1e-3" (no dot) as a string; users write it that way.
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            return float(value)
        raise type_error(key, hint, value)
    if hint is str:
        if isinstance(value, str):
            return value
        raise type_error(key, hint, value)
    raise TypeError(f"Unsupported config type {hint} for {key}")


_HINTS = {}


def check_types(obj, prefix=""):
    cls = type(obj)
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    for f in dataclasses.fields(obj):
        hint, value, key = _HINTS[cls][f.name], getattr(obj, f.name), prefix + f.name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise user_error(f"Wrong type for config section `{key}`",
                                 f"a {hint.__name__}", f"{key}={shown(value)}",
                                 "Use config.replace(...), which takes a dict of the "
                                 "section's keys.")
            check_types(value, key + ".")
        else:
            checked = check_value(value, hint, key)
            if checked is not value and checked != value or type(checked) is not type(value):
                object.__setattr__(obj, f.name, checked)  # frozen: set once, here


def _type_name(hint):
    origin = typing.get_origin(hint)
    if origin is Union:
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(hint)[0])}"
    if hint is type(None):
        return "null"
    return hint.__name__


def type_error(key, hint, value):
    fix = None
    if "list" in _type_name(hint) and not isinstance(value, list):
        example = f"[{value}]" if isinstance(value, str) and len(value) < 40 else "[32,32]"
        fix = f"Write a list, e.g. --set {key}={example}."
    return user_error(f"Wrong type for config key `{key}`", _type_name(hint),
                      f"{key}={shown(value)}", fix)


def build(cls, raw, prefix=""):
    if not isinstance(raw, dict):
        raise user_error(f"Config section `{prefix.rstrip('.') or 'root'}` must be a mapping",
                         "`key: value` pairs", f"{prefix.rstrip('.')}={raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            valid = valid_keys(cls, prefix)
            close = difflib.get_close_matches(prefix + str(key), valid, n=1)
            hint = f"Did you mean `{close[0]}`? " if close else ""
            raise user_error(f"Unknown config key `{prefix}{key}`",
                             "one of: " + ", ".join(valid),
                             f"{prefix}{key}={shown(raw[key])}",
                             hint + "Fix the key name.")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build(hint, value, prefix + name + ".")
        else:
            kwargs[name] = check_value(value, hint, prefix + name)
    return cls(**kwargs)


def flatten(d, prefix=""):
    flat = {}
    for key, value in d.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat
