"""How a configuration key is declared, and every rule derived from that declaration.

A key is a field of a frozen dataclass (`alphawatch.config`) carrying `described(...)`
metadata: a one-line doc, its environment variable, bounds or choices, an extra check.
Its Python type and default come from the field itself. From that one declaration this
module derives the value parser (YAML, environment and CLI text), the key path, the
"must be ..." wording of errors and the row of the docs table -- so a key cannot be
validated one way and documented another.

Standard library only, on purpose: pydantic or msgspec would cost the daemon's main
process import time and memory (bench/config_import.py measures it) and still need this
layer for our messages, text coercion of environment values and dotted CLI overrides.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_META = "alphawatch.config"  # the field-metadata slot holding a key's `About`


class Invalid(Exception):
    """A value that is not allowed; the message says what is ("must be ..., got ...")."""


Parser = Callable[[object, bool], object]  # (value, from_text) -> typed value


def got(value: object) -> str:
    return f"got {value!r}"


@dataclasses.dataclass(frozen=True)
class About:
    """What a field's metadata says about its key (everything the type and default don't)."""

    doc: str  # the meaning column of docs/configuration.md (markdown, one line)
    env: str | None = None  # ALPHAWATCH_* variable overriding it
    gt: float | None = None  # bounds of a number / integer
    ge: float | None = None
    le: float | None = None
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None  # extra rule: what is wrong, or None
    name: str | None = None  # the key inside its section when it differs from the field name
    shown: str | None = None  # the docs' default column, when the default is computed


def described(doc: str, **rules: Any) -> dict[str, About]:
    """Field metadata declaring a key; use `dataclasses.field(metadata=...)` for required keys."""
    return {_META: About(doc, **rules)}


def key(default: Any, doc: str, **rules: Any) -> Any:
    """A dataclass field that is a configuration key: default, doc, rules (see `About`)."""
    return dataclasses.field(default=default, metadata=described(doc, **rules))


# --------------------------------------------------------------------------- value parsers
# Each turns a raw value (from YAML, or text from the environment / CLI: `from_text`)
# into the typed value, or raises Invalid("must be ..., got ..."); the caller adds the key.


def _bounds(about: About, integer: bool, docs: bool = False) -> str:
    """The allowed range in words: "> 0", ">= 1", "from 0 to 19" (docs: "≥ 1", "0–19")."""
    def fmt(v: float) -> str:
        return str(int(v)) if integer else f"{v:g}"

    if about.ge is not None and about.le is not None:
        return f"{fmt(about.ge)}–{fmt(about.le)}" if docs else f"from {fmt(about.ge)} to {fmt(about.le)}"
    ge, le = ("≥", "≤") if docs else (">=", "<=")
    parts = [f"> {fmt(about.gt)}"] if about.gt is not None else []
    parts += [f"{ge} {fmt(about.ge)}"] if about.ge is not None else []
    parts += [f"{le} {fmt(about.le)}"] if about.le is not None else []
    return " and ".join(parts)


def _in_bounds(number: float, about: About) -> bool:
    return not ((about.gt is not None and number <= about.gt) or (about.ge is not None and number < about.ge)
                or (about.le is not None and number > about.le))


def _number(about: About) -> Parser:
    want = f"must be a number {_bounds(about, integer=False)}".rstrip()

    def parse(value: object, from_text: bool) -> float:
        if isinstance(value, bool):
            raise Invalid(f"{want}, {got(value)}")
        try:  # numeric strings are accepted everywhere: PyYAML reads `1e-6` as a string
            number = float(value) if isinstance(value, (int, float, str)) else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not _in_bounds(number, about):
            raise Invalid(f"{want}, {got(value)}")
        return number

    return parse


def _integer(about: About) -> Parser:
    want = f"must be an integer {_bounds(about, integer=True)}".rstrip()

    def parse(value: object, from_text: bool) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise Invalid(f"{want}, {got(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int) or not _in_bounds(value, about):
            raise Invalid(f"{want}, {got(value)}")
        return value

    return parse


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _boolean(value: object, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise Invalid(f"must be true or false, {got(value)}")


def _choice(options: tuple[str, ...]) -> Parser:
    def parse(value: object, from_text: bool) -> str:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in options:
            raise Invalid(f"must be one of {', '.join(options)}, {got(value)}")
        return str(text)

    return parse


def _text(value: object, from_text: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a non-empty string, {got(value)}")
    return value


def _optional_text(value: object, from_text: bool) -> str | None:
    if value is None or (from_text and isinstance(value, str) and not value.strip()):
        return None
    return _text(value, from_text)


def _or_null(parse: Parser) -> Parser:
    """`null` (or empty text from the environment) means "not set": the caller's default."""
    def parse_or_null(value: object, from_text: bool) -> object:
        if value is None or (from_text and isinstance(value, str) and not value.strip()):
            return None
        return parse(value, from_text)

    return parse_or_null


def _path(value: object, from_text: bool) -> Path:
    text = os.fspath(value) if isinstance(value, os.PathLike) else value  # Path overrides from Python
    return Path(os.path.expanduser(_text(text, from_text)))


def _text_list(value: object, from_text: bool) -> tuple[str, ...]:
    if from_text and isinstance(value, str):  # ALPHAWATCH_STOP_NETWORKS=actor,critic_1
        value = [part.strip() for part in value.split(",") if part.strip()]
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(f"must be a list of non-empty strings, {got(value)}")
    return tuple(value)


def _patterns(value: object, from_text: bool) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    want = "must map network names to lists of glob patterns (e.g. actor: ['actor.*'])"
    if not isinstance(value, Mapping):
        raise Invalid(f"{want}, {got(value)}")
    out: dict[str, tuple[str, ...]] = {}
    for name, globs in value.items():
        if isinstance(globs, str):
            globs = [globs]
        if not isinstance(name, str) or not name or not isinstance(globs, list) or not globs or not all(
            isinstance(g, str) and g for g in globs
        ):
            raise Invalid(f"{want}, {got({name: globs})}")
        out[name] = tuple(globs)
    return out


# Python type of a field -> (parser factory, how the docs name the type). A key of a
# type not listed here fails at import time, so a new kind of value gets a rule first.
_BY_TYPE: dict[object, tuple[Callable[[About], Parser], Callable[[About], str]]] = {
    bool: (lambda a: _boolean, lambda a: "bool"),
    int: (_integer, lambda a: f"integer {_bounds(a, integer=True, docs=True)}".rstrip()),
    float: (_number, lambda a: f"number {_bounds(a, integer=False, docs=True)}".rstrip()),
    str: (lambda a: _choice(a.choices) if a.choices else _text,
          lambda a: " \\| ".join(f"`{c}`" for c in a.choices) if a.choices else "string"),
    str | None: (lambda a: _optional_text, lambda a: "string or `null`"),
    int | None: (lambda a: _or_null(_integer(a)),
                 lambda a: f"integer {_bounds(a, integer=True, docs=True)} or `null`".replace("  ", " ")),
    tuple[str, ...] | None: (lambda a: _or_null(_text_list), lambda a: "list of strings or `null`"),
    Path: (lambda a: _path, lambda a: "path"),
    tuple[str, ...]: (lambda a: _text_list, lambda a: "list of strings"),
    Mapping[str, tuple[str, ...]]: (lambda a: _patterns, lambda a: "mapping name → list of globs"),
}


def _checked(parse: Parser, check: Callable[[Any], str | None]) -> Parser:
    def parse_and_check(value: object, from_text: bool) -> object:
        typed = parse(value, from_text)
        problem = check(typed)
        if problem:
            raise Invalid(f"{problem}, {got(value)}")
        return typed

    return parse_and_check


# --------------------------------------------------------------------------- keys


@dataclasses.dataclass(frozen=True)
class Key:
    """One configuration key, resolved from its declaration."""

    section: str
    name: str  # inside the section, dotted when nested in YAML (dead_neurons.method)
    field: str  # the dataclass attribute it fills
    type: object
    default: Any  # dataclasses.MISSING: required
    about: About
    parse: Parser

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    def docs_row(self) -> str:
        """The key's row in docs/configuration.md, as the declaration says it must read."""
        shown_path = f"runs[].{self.name}" if self.section == "runs" else self.path
        kind = _BY_TYPE[self.type][1](self.about)
        default = self.about.shown or f"`{show(self.default)}`"
        return f"| `{shown_path}` | {kind} | {default} | {self.about.doc} |"


def show(value: object) -> str:
    """A default as the YAML file writes it."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _check_declaration(where: str, kind: object, about: About) -> None:
    """Refuse at import what would otherwise be silently ignored."""
    if kind not in _BY_TYPE:
        raise TypeError(f"{where}: no config rule for type {kind}")
    if (about.gt, about.ge, about.le) != (None, None, None) and kind not in (int, float, int | None):
        raise TypeError(f"{where}: bounds apply to int and float keys only, not {kind}")
    if about.choices and kind is not str:
        raise TypeError(f"{where}: choices apply to str keys only, not {kind}")


def keys_of(section: str, cls: type, about: Mapping[str, Mapping[str, About]] | None = None,
            defaults: object = None) -> dict[str, Key]:
    """The keys a dataclass declares: name in the section -> Key.

    `about`: field name -> `described(...)`, for a dataclass owned by another module
    (AnalysisOptions); fields without a declaration are not configuration keys.
    `defaults`: an instance supplying defaults for required fields in the docs.
    """
    hints = typing.get_type_hints(cls)
    keys: dict[str, Key] = {}
    for f in dataclasses.fields(cls):
        meta = (about or {}).get(f.name, f.metadata).get(_META)
        if meta is None:
            continue
        _check_declaration(f"{cls.__name__}.{f.name}", hints[f.name], meta)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is dataclasses.MISSING and defaults is not None:
            default = getattr(defaults, f.name)
        parse = _BY_TYPE[hints[f.name]][0](meta)
        if meta.check is not None:
            parse = _checked(parse, meta.check)
        name = meta.name or f.name
        keys[name] = Key(section, name, f.name, hints[f.name], default, meta, parse)
    return keys


def env_vars_of(*tables: Mapping[str, Key]) -> dict[str, str]:
    """Environment variable -> dotted key, refusing a variable declared for two keys."""
    out: dict[str, str] = {}
    for table in tables:
        for k in table.values():
            if k.about.env is not None:
                if k.about.env in out:
                    raise TypeError(f"{k.about.env} is declared for both {out[k.about.env]} and {k.path}")
                out[k.about.env] = k.path
    return out
