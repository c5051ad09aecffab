"""Frozen dataclass configs <-> YAML / TOML files, with `--key=value` overrides.

Every subsystem describes its settings as frozen dataclasses validated in `__post_init__`. This module loads them
from a file (YAML `.yaml/.yml` or TOML `.toml`), applies command-line overrides (`key=value`, dotted keys for nested
dataclasses: `model.width=64`), coerces strings to the declared field types, and rejects unknown keys by name,
listing the valid ones. Any problem raises ConfigError (a ValueError), which the CLI turns into a one-line message
and exit status 2.

Per-method options: a section that names a method (`method: str`) holds that method's own frozen options dataclass
in `options`; `method_options` builds it from a mapping (or checks an instance) and refuses an option the method does
not have, naming the option, the method and its options. `lift_options` accepts the earlier flat form (the options
beside `method`); a section class opts in with a classmethod `upgrade_config(data) -> data`, which `from_dict` calls
before it reads the mapping, so the flat form works in files, in `key=value` overrides and as a nested section.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from tailorkit.core.results import write_text_atomic

C = TypeVar("C")
OptionsT = TypeVar("OptionsT")


class ConfigError(ValueError):
    """A config file or override that does not fit the config's dataclass."""


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML or TOML file into a dict; the suffix picks the parser."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(p.read_text()) or {}
        elif suffix == ".toml":
            data = tomllib.loads(p.read_text())
        else:
            raise ConfigError(f"config file {str(p)!r}: expected a .yaml, .yml or .toml file")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {str(p)!r} could not be parsed: {err}".replace("\n", " ")) from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r}: expected a mapping of keys to values at top level")
    return data


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ["a=1", "--b.c=x"] into a nested dict {"a": "1", "b": {"c": "x"}} (values stay strings)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value (dotted keys for nested settings)")
        parts = key.replace("-", "_").split(".")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is set both as a value and as a section")
            node = child
        node[parts[-1]] = value
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[C], data: Mapping[str, Any], *, where: str = "") -> C:
    """Build dataclass `cls` from a (nested) mapping, coercing values and rejecting unknown keys."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    upgrade = getattr(cls, "upgrade_config", None)
    if upgrade is not None:  # a section that accepts an earlier form (flat method options) rewrites it first
        try:
            data = upgrade(data)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}" if where else str(err)) from None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        valid = ", ".join(prefix + name for name in fields)
        raise ConfigError(f"unknown config key {prefix + unknown[0]!r}; valid keys: {valid}")
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err
    except ValueError as err:  # __post_init__ validation: keep its message, name the section
        raise ConfigError(f"{where + ': ' if where else ''}{err}") from err


def options_as(method: str, options: object, cls: type[OptionsT]) -> OptionsT:
    """`options` (the options of `method`) typed as `cls`: what a method calls to read its own options. TypeError when
    `cls` is not exactly that options class (a method reading another method's options is a bug, not a user error)."""
    if type(options) is not cls:
        raise TypeError(f"method {method!r} has {type(options).__name__}, not {cls.__name__}")
    return cast(OptionsT, options)


def method_options(method: str, cls: type[OptionsT], value: Any, *, kind: str = "method") -> OptionsT:
    """`value` as the options of `method`, the frozen dataclass `cls`.

    Args:
        method: The method's name (for messages).
        cls: The method's options dataclass.
        value: None (the method's defaults), an instance of exactly `cls`, or a mapping of option name -> value
            (strings from the command line are coerced to the declared types, as every config value).
        kind: What a method is called in messages ("patching method", "variant").

    Raises:
        ConfigError: One line naming the option, the method and the method's options: for a name `cls` lacks (an
            unknown option, or another method's), a dataclass of another class, or a value its checks refuse.
    """
    names = [f.name for f in dataclasses.fields(cast(Any, cls))]
    allowed = ", ".join(names) or "none"
    if value is None:
        return cls()
    if type(value) is cls:
        return cast(OptionsT, value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        raise ConfigError(
            f"options: {kind} {method!r} takes {cls.__name__} (options: {allowed}), got {type(value).__name__}"
        )
    if not isinstance(value, Mapping):
        raise ConfigError(f"options: expected a mapping of option names to values for {kind} {method!r}, got {value!r}")
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ConfigError(f"option {unknown[0]!r} is not an option of {kind} {method!r}; its options: {allowed}")
    return from_dict(cls, value, where="options")


def lift_options(
    data: Mapping[str, Any],
    fields: Iterable[str],
    method: str,
    options_of: Mapping[str, type],
    *,
    aliases: Mapping[str, str] | None = None,
    kind: str = "method",
) -> dict[str, Any]:
    """A config section's mapping with the earlier flat form rewritten: keys that are not `fields` of the section but
    options of some method (`alpha: 0.5` beside `method: model_tailor`) move into `options`.

    Args:
        data: The section as read (file, overrides), possibly with an `options` mapping already.
        fields: The section's own field names; these stay.
        method: The method the section names.
        options_of: Every method's options dataclass, by method name.
        aliases: Earlier names of options -> their names now (`dare_rescale` -> `rescale`).
        kind: What a method is called in messages.

    Raises:
        ConfigError: A flat option that `method` does not have (naming the option, the methods that have it and
            `method`'s options), or an option set both flat and in `options`.
    """
    own = set(fields)
    aliases = dict(aliases or {})
    known = {f.name for cls in options_of.values() for f in dataclasses.fields(cast(Any, cls))} | set(aliases)
    flat = [k for k in data if k not in own and k in known]
    if not flat or method not in options_of:
        return dict(data)
    out = {k: v for k, v in data.items() if k not in flat}
    options = out.get("options")
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise ConfigError(f"options: cannot add the flat options {', '.join(flat)} to {options!r}")
    options = dict(options)
    names = [f.name for f in dataclasses.fields(cast(Any, options_of[method]))]
    for key in flat:
        name = aliases.get(key, key)
        if name not in names:
            owners = [
                m for m, cls in options_of.items() if name in {f.name for f in dataclasses.fields(cast(Any, cls))}
            ]
            raise ConfigError(
                f"option {key!r} is not an option of {kind} {method!r} (it is one of {', '.join(owners)}); "
                f"its options: {', '.join(names) or 'none'}"
            )
        if name in options:
            raise ConfigError(f"option {key!r} is set twice: as {key!r} and as 'options.{name}'")
        options[name] = data[key]
    out["options"] = options
    return out


def load_config(
    cls: type[C],
    path: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> C:
    """The config `cls` from defaults <- `base` <- file at `path` <- `overrides` ("key=value" strings)."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = merge(data, read_config_file(path))
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain nested dict (tuples as lists, Paths as strings), suitable for YAML/TOML/JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def save_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write `config` as YAML (atomically)."""
    return write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert `value` (from YAML/TOML or a command-line string) to the type `hint`, or raise ConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        is_null = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_null and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: cannot use {value!r}")
    if origin is typing.Literal:
        for allowed in args:
            if value == allowed or (isinstance(value, str) and str(allowed) == value):
                return allowed
        raise ConfigError(f"{key}: expected one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list):
        items = value
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",")] if value.strip() else []
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in items)
        if origin is tuple and args:
            if len(items) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} values, got {len(items)}")
            return tuple(_coerce(v, a, key) for v, a in zip(items, args, strict=True))
        elem = args[0] if args else Any
        out = [_coerce(v, elem, key) for v in items]
        return tuple(out) if origin is tuple else out
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a section of settings, got {value!r}")
        return from_dict(hint, value, where=key)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{key}: expected a path, got {value!r}")
    return value


# Validators for settings dataclasses' __post_init__: one place, so every subsystem words its errors the same way
# ("<name>: expected <form>, got <value>").


def check(ok: bool, message: str) -> None:
    """Raise ValueError(message) unless `ok`."""
    if not ok:
        raise ValueError(message)


def check_int_at_least(name: str, value: object, low: int) -> None:
    """`value` is an int (not a bool) >= low."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    check(ok, f"{name}: expected an int >= {low}, got {value!r}")


def check_number_at_least(name: str, value: object, low: float = 0.0) -> None:
    """`value` is a finite int or float (not a bool) >= low."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= low
    check(ok, f"{name}: expected a finite number >= {low:g}, got {value!r}")
