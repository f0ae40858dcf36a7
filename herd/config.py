"""Building typed, frozen config dataclasses from YAML files, ``key=value`` overrides
and ``HERD_*`` environment variables. Only entry points call this; library code
receives the typed values.

Every error names the offending key and what is allowed, and ends with the docs page
that explains it (``herd.docs_links``), e.g. ``unknown config key 'agent.learning_rat';
allowed keys of 'agent': ...; see docs/configuration.md#impalaconfig``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from herd import docs_links

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad config file, flag or override; the message names the key.

    ``docs`` is the docs page that explains the key (``herd.docs_links``); ``str()`` ends with
    ``; see <docs>``. :func:`build` fills it in with the section of the dataclass it builds
    unless the raiser chose a page already.
    """

    def __init__(self, message: str, docs: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.docs = docs

    def __str__(self) -> str:
        return f"{self.message}; {docs_links.see(self.docs)}" if self.docs else self.message


def option(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best at the call sites
    """A config dataclass field whose ``help`` text documents it (and becomes ``--help``)."""
    return dataclasses.field(default=default, metadata={"help": help})


def field_help(cls: type, name: str) -> str:
    """The help text of a dataclass field: its ``metadata['help']``, else its attribute docstring."""
    return field_docs(cls).get(name, "")


def field_docs(cls: type) -> dict[str, str]:
    """Every field's help text of dataclass ``cls``: ``option(help=...)`` metadata, or the
    string literal right below the field (an attribute docstring, as in ``TableConfig``)."""
    docs = _attribute_docstrings(cls)
    out = {}
    for f in dataclasses.fields(cls):
        text = str(f.metadata.get("help", "")) or docs.get(f.name, "")
        out[f.name] = " ".join(text.split())
    return out


def _attribute_docstrings(cls: type) -> dict[str, str]:
    """``name -> docstring`` of the ``name: T = ...`` lines of ``cls``'s source followed by a string."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (e.g. built in a REPL)
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = after.value.value
    return docs


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
                errors.append(e)
        raise errors[0] if errors else ConfigError(f"config key '{key}': bad value {value!r}")
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
    try:
        return _build(cls, values, prefix)
    except ConfigError as e:
        if not e.docs:  # the innermost dataclass names the page: nested builds fill it in first
            e.docs = docs_links.config_page(cls)
        raise


def _build(cls: type[T], values: Mapping[str, Any], prefix: str) -> T:
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
            raise ConfigError(f"override {pair!r} is not of the form key=value", docs_links.CONFIGURATION)
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {pair!r} has an empty key", docs_links.CONFIGURATION)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {pair!r}: '{part}' is not a section", docs_links.CONFIGURATION)
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
        raise ConfigError(f"config file {path} is not valid YAML: {e}", docs_links.CONFIGURATION) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys", docs_links.CONFIGURATION)
    return data


def env_overrides(environ: Mapping[str, str], prefix: str = "HERD_") -> dict[str, Any]:
    """``HERD_AGENT__LEARNING_RATE=1e-3`` -> ``{'agent': {'learning_rate': 1e-3}}`` (``__`` nests)."""
    pairs = []
    for name, value in environ.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            key = name[len(prefix):].lower().replace("__", ".")
            pairs.append(f"{key}={value}")
    return parse_overrides(pairs)
