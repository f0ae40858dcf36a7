"""Building typed, frozen config dataclasses from YAML files, ``key=value`` overrides
and ``HERD_*`` environment variables. Only entry points call this; library code
receives the typed values.

Every error names the offending key and what is allowed, e.g.
``unknown config key 'agent.learning_rat'; allowed keys of 'agent': ...``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config file, flag or override; the message names the key."""


def option(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best at the call sites
    """A config dataclass field whose ``help`` text documents it (and becomes ``--help``)."""
    return dataclasses.field(default=default, metadata={"help": help})


def field_help(cls: type, name: str) -> str:
    """The help text of a dataclass field (its ``metadata['help']``)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    return ""


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Converts ``value`` (from YAML or a string override) to ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"config key '{key}': bad value {value!r}")
    if origin is typing.Literal:
        for allowed in args:
            if value == allowed or str(value) == str(allowed):
                return allowed
        raise ConfigError(
            f"config key '{key}': {value!r} is not allowed; allowed values: "
            + ", ".join(repr(a) for a in args)
        )
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            value = [v.strip() for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        item_type = args[0] if args else Any
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        return str(value)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping of fields")
        return build(annotation, value, prefix=key + ".")
    return value


def build(cls: type[T], values: Mapping[str, Any], prefix: str = "") -> T:
    """Builds dataclass ``cls`` from a (nested) mapping, checking every key."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            where = f"'{prefix[:-1]}'" if prefix else "the top level"
            raise ConfigError(
                f"unknown config key '{prefix}{key}'; allowed keys of {where}: " + ", ".join(names)
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix}{e}" if prefix and not str(e).startswith(prefix) else str(e)) from e


def to_dict(config: Any) -> dict[str, Any]:
    """A plain (YAML-serialisable) dict of a config dataclass, tuples as lists."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v

    return plain(config)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["agent.learning_rate=1e-3", "seed=2"]`` -> nested dict of raw strings/YAML scalars."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {pair!r} has an empty key")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r}: '{part}' is not a section")
        node[parts[-1]] = value
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of nested mappings; ``update`` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str) -> dict[str, Any]:
    """Reads a YAML config file (a mapping at the top level)."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys")
    return data


def env_overrides(environ: Mapping[str, str], prefix: str = "HERD_") -> dict[str, Any]:
    """``HERD_AGENT__LEARNING_RATE=1e-3`` -> ``{'agent': {'learning_rate': 1e-3}}`` (``__`` nests)."""
    pairs = []
    for name, value in environ.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            key = name[len(prefix):].lower().replace("__", ".")
            pairs.append(f"{key}={value}")
    return parse_overrides(pairs)
