"""Command-line flags derived from a config dataclass: one flag per field, its help the field's docstring.

The configs (:class:`inerf.pose.PoseConfig`, :class:`inerf.train.TrainConfig`, ...) document every field in
an attribute docstring, type it (``Literal[...]`` for a choice) and validate themselves in
``__post_init__``. This module turns one into argparse options, as nerfstudio's tyro does, so the CLI never
repeats a default, a choice or a help text:

* field ``adam.lr`` of a nested config -> ``--adam-lr`` (a nested config's prefix can be renamed or dropped,
  and any flag renamed or given aliases: ``--lr``, ``--blur`` keep working);
* ``Literal["a", "b"]`` -> ``choices``; ``bool`` -> ``--x`` (and ``--no-x`` when the default is on);
  ``tuple[int, ...]`` -> a comma-separated list; floats must be finite (``nan`` is refused while parsing);
* only the flags the user typed are recorded, so :meth:`ConfigFlags.build` applies them on top of any base
  (a preset): ``--preset robust --blur 0`` gives the robust preset without blur;
* a config's ``ValueError`` becomes one line naming the typed flag(s) and value(s) that caused it, with the
  field names in its text spelled as flags (``n_rays >= 1`` reads ``--rays >= 1``).

Example::

    flags = ConfigFlags(PoseConfig, key="pose", names={"n_rays": "--rays"}, prefixes={"adam": ""})
    flags.add_to(parser, PAPER, title="solver")
    args = parser.parse_args(["--rays", "512", "--lm-steps", "20"])
    flags.build(ROBUST, args)  # ROBUST with n_rays=512 and lm.steps=20, validated
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import math
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inerf.errors import InerfError

__all__ = ["ConfigFlags", "Given", "attribute_docs", "finite_float", "int_list", "rst_to_text"]

Path_ = tuple[str, ...]
"""A field's path from the root config: ``("adam", "lr")``."""


@functools.cache
def attribute_docs(owner) -> dict[str, str]:
    """The docstrings written under the attributes of a dataclass (our configs' documentation) or of a module
    (its presets), by name, whitespace collapsed."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(owner)))
    body = tree.body if inspect.ismodule(owner) else tree.body[0].body
    docs = {}
    for node, nxt in itertools.pairwise(body):
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(nxt, "value", None)
        is_doc = (
            isinstance(nxt, ast.Expr) and isinstance(value, ast.Constant) and isinstance(value.value, str)
        )
        if isinstance(target, ast.Name) and is_doc:
            docs[target.id] = " ".join(value.value.split())
    return docs


_ROLE = re.compile(r":(data|class|mod|meth|func|attr|obj):`~?([^`]+)`")


def rst_to_text(
    text: str, literal: Callable[[str], str] = lambda s: s, name: Callable[[str], str] | None = None
) -> str:
    """Docstring markup as plain text for ``--help``: ``:mod:`a.b``` -> ``a.b``, ``:class:`a.B``` -> ``B`` (or
    ``name("a.B")``), ````x```` -> ``literal(x)``."""

    def role(m: re.Match) -> str:
        if m.group(1) == "mod":
            return m.group(2)
        return name(m.group(2)) if name else m.group(2).rsplit(".", 1)[-1]

    text = _ROLE.sub(role, text)
    return re.sub(r"``([^`]+)``", lambda m: literal(m.group(1)), text)


def finite_float(text: str) -> float:
    """argparse type: a finite float (``nan`` and ``inf`` would pass a ``> 0`` check and fail later)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_list(text: str) -> tuple[int, ...]:
    """argparse type: comma- or space-separated integers (``100,200``)."""
    try:
        return tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(n: int | None) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        values = tuple(finite_float(x) for x in text.replace(",", " ").split())
        if n is not None and len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {text!r}")
        return values

    return parse


def show_default(value) -> str | None:
    """How ``--help`` writes a default: ``100,200`` for a tuple, ``none`` for an empty one, None to omit it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(show_default(v) or "" for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Given:
    """A flag the user typed: the parsed ``value``, the ``flag`` spelling used and the ``raw`` text."""

    value: Any
    flag: str
    raw: str

    def __str__(self) -> str:
        return f"{self.flag} {self.raw}" if self.raw else self.flag


@dataclass(frozen=True)
class _Leaf:
    path: Path_
    flags: tuple[str, ...]
    """Primary spelling first, then aliases."""
    kind: str
    """``value``, ``switch`` (store-true) or ``toggle`` (``--x`` / ``--no-x``)."""
    convert: Callable[[str], Any] | None
    choices: tuple | None


class _Record(argparse.Action):
    """Records a typed flag as ``namespace.<key>[path] = Given(...)``; nothing when the flag is absent."""

    def __init__(self, option_strings, dest, *, key: str, leaf: _Leaf, **kw):
        super().__init__(option_strings, dest, **kw)
        self.key, self.leaf = key, leaf

    def __call__(self, parser, namespace, values, option_string=None):
        leaf = self.leaf
        if leaf.kind == "switch":
            value, raw = True, ""
        elif leaf.kind == "toggle":
            value, raw = not option_string.startswith("--no-"), ""
        else:
            raw = values
            try:
                value = leaf.convert(values) if leaf.convert else values
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentError(self, str(exc)) from None
        record = getattr(namespace, self.key, None)
        if record is None:
            record = {}
            setattr(namespace, self.key, record)
        record.pop(leaf.path, None)  # keep the order of the last mention
        record[leaf.path] = Given(value, option_string, raw)


def _unwrap_optional(tp):
    """``T | None`` -> ``T`` (a flag not typed keeps the base's value, None or not); anything else as is."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


class ConfigFlags:
    """The argparse flags of one config dataclass (nested configs included) and how to apply what was typed.

    Args:
        cls: the root config dataclass.
        key: namespace attribute that holds the typed flags (one per config on a parser).
        names: ``"adam.lr" -> "--lr"``: primary spelling of a field's flag (default: ``--`` + prefix + name,
            underscores as hyphens).
        aliases: ``"blur.sigma" -> ("--blur",)``: further spellings.
        prefixes: ``"adam" -> ""``: flag prefix of a nested config's fields (default: its name and ``-``).
        skip: fields not offered as flags (a verb spells them its own way; a name in ``names`` is still
            used in messages).
        choices: choices of a ``str`` field that is not typed ``Literal``.
        types: argparse type of a field, replacing the one derived from its annotation.
        required: fields whose flag must be given.
        metavars, help: per-field metavar; help text replacing the docstring.
    """

    def __init__(
        self,
        cls,
        *,
        key: str,
        names: Mapping[str, str] | None = None,
        aliases: Mapping[str, Iterable[str]] | None = None,
        prefixes: Mapping[str, str] | None = None,
        skip: Iterable[str] = (),
        choices: Mapping[str, Iterable] | None = None,
        types: Mapping[str, Callable[[str], Any]] | None = None,
        required: Iterable[str] = (),
        metavars: Mapping[str, str] | None = None,
        help: Mapping[str, str] | None = None,
    ):
        self.cls, self.key = cls, "_flags_" + key
        self._names = dict(names or {})
        self._aliases = {k: tuple(v) for k, v in (aliases or {}).items()}
        self._prefixes = dict(prefixes or {})
        self._skip = set(skip)
        self._choices = {k: tuple(v) for k, v in (choices or {}).items()}
        self._types = dict(types or {})
        self._required = set(required)
        self._metavars = dict(metavars or {})
        self._help = dict(help or {})
        self._classes: dict[Path_, type] = {}
        """Every config class by its path (``()`` the root)."""
        self._fields: dict[Path_, Any] = {}
        """Every leaf field's resolved type, by path, in declaration order."""
        self._collect(cls, ())
        self._flag: dict[Path_, str] = {p: self._spell(p) for p in self._fields}

    # -- structure -------------------------------------------------------------------------------------
    def _collect(self, cls, prefix: Path_) -> None:
        self._classes[prefix] = cls
        hints = typing.get_type_hints(cls, include_extras=True)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                self._collect(tp, (*prefix, f.name))
            else:
                self._fields[(*prefix, f.name)] = tp

    def _spell(self, path: Path_) -> str:
        dotted = ".".join(path)
        if dotted in self._names:
            return self._names[dotted]
        parts = [self._prefixes.get(".".join(path[: i + 1]), path[i] + "-") for i in range(len(path) - 1)]
        return "--" + "".join(parts) + path[-1].replace("_", "-")

    def flag(self, path: str | Path_) -> str:
        """The flag spelling of a field (``"adam.lr"`` -> ``"--lr"``)."""
        return self._flag[tuple(path.split(".")) if isinstance(path, str) else tuple(path)]

    def _leaf(self, path: Path_, default) -> _Leaf | None:
        dotted = ".".join(path)
        if dotted in self._skip:
            return None
        tp = _unwrap_optional(self._fields[path])
        flags = (self._flag[path], *self._aliases.get(dotted, ()))
        convert, choices, kind = self._types.get(dotted), self._choices.get(dotted), "value"
        if typing.get_origin(tp) is Literal:
            choices = choices or typing.get_args(tp)
        elif tp is bool:
            kind = "toggle" if default else "switch"
            if kind == "toggle":
                flags = (*flags, *("--no-" + s[2:] for s in flags))
        elif convert is None:
            if tp is int:
                convert = _int
            elif tp is float:
                convert = finite_float
            elif typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (int,):
                convert = int_list
            elif typing.get_origin(tp) is tuple and typing.get_args(tp)[:1] == (float,):
                items = typing.get_args(tp)
                convert = _float_list(None if items[-1] is Ellipsis else len(items))
            elif tp is not str:
                raise TypeError(
                    f"{self.cls.__name__}.{dotted}: no flag for type {tp!r}; skip it or give a type"
                )
        return _Leaf(path, flags, kind, convert, choices)

    # -- parser ------------------------------------------------------------------------------------------
    def _doc(self, path: Path_) -> str:
        dotted = ".".join(path)
        if dotted in self._help:
            return self._help[dotted]
        cls = self._classes[path[:-1]]
        doc = attribute_docs(cls).get(path[-1], "")
        return rst_to_text(doc, lambda s: self.spell_fields(s, path[:-1]), lambda s: _constant(cls, s))

    def add_to(
        self, parser: argparse.ArgumentParser, defaults=None, *, title: str | None = None, group=None
    ) -> None:
        """Add one flag per field to ``parser``, in argument groups: ``group`` (or a new one named ``title``)
        for the root config's fields, ``title: name`` for each nested config's. ``defaults`` (an instance,
        default ``cls()``) is only shown in the help: a flag not typed leaves the value of whatever base
        :meth:`build` is given."""
        defaults = self.cls() if defaults is None else defaults
        groups: dict[Path_, Any] = {} if group is None else {(): group}
        for path in self._fields:
            parent = path[:-1]
            default = _get(defaults, path)
            leaf = self._leaf(path, default)
            if leaf is None:
                continue
            if parent not in groups:
                if not parent:
                    groups[parent] = parser.add_argument_group(title) if title else parser
                else:
                    cls_doc = rst_to_text(" ".join((self._classes[parent].__doc__ or "").split()))
                    name = f"{title}: {'.'.join(parent)}" if title else ".".join(parent)
                    groups[parent] = parser.add_argument_group(name, cls_doc or None)
            text = self._doc(path)
            shown = show_default(default)
            if leaf.kind == "switch" or ".".join(path) in self._required:
                shown = None  # a switch is off unless typed; a required flag has no default
            if shown is not None and "(default" not in text:
                text += f" (default: {shown})"
            kw: dict[str, Any] = {
                "help": text.replace("%", "%%"),
                "default": argparse.SUPPRESS,
                "required": ".".join(path) in self._required,
            }
            if leaf.kind == "value":
                kw["metavar"] = self._metavars.get(".".join(path))
                if kw["metavar"] is None and leaf.choices is None:
                    kw["metavar"] = leaf.flags[0][2:].replace("-", "_").upper()
                kw["choices"] = leaf.choices
            else:
                kw["nargs"] = 0
            groups[parent].add_argument(
                *leaf.flags, action=_Record, dest="_" + "__".join(path), key=self.key, leaf=leaf, **kw
            )

    # -- values ------------------------------------------------------------------------------------------
    def given(self, args: argparse.Namespace) -> dict[Path_, Given]:
        """The flags typed on the command line, by field path, in the order typed."""
        return dict(getattr(args, self.key, None) or {})

    def build(self, base, args: argparse.Namespace | Mapping[Path_, Given]):
        """``base`` with the typed flags applied (nested configs rebuilt, so every ``__post_init__`` checks
        the result); a config ``ValueError`` becomes an :class:`InerfError` naming the flags that caused it."""
        given = args if isinstance(args, Mapping) else self.given(args)
        return self._apply(base, (), given)

    def _apply(self, obj, prefix: Path_, given: Mapping[Path_, Given]):
        n = len(prefix)
        mine = {p: g for p, g in given.items() if p[:n] == prefix}
        if not mine:
            return obj
        # Candidates for blame: each typed leaf of this level, each nested config with typed leaves.
        parts: dict[str, Any] = {}
        blame: dict[str, list[Given]] = {}
        for p, g in mine.items():
            name = p[n]
            blame.setdefault(name, []).append(g)
            if len(p) == n + 1:
                parts[name] = g.value
            elif name not in parts:
                parts[name] = self._apply(getattr(obj, name), (*prefix, name), given)
        try:
            return dataclasses.replace(obj, **parts)
        except ValueError as exc:
            culprits = [
                name
                for name in parts
                if _valid(obj, {k: v for k, v in parts.items() if k != name}) and len(parts) > 1
            ] or list(parts)
            typed = ", ".join(str(g) for name in culprits for g in blame[name])
            raise InerfError(f"{typed}: {self.spell_fields(str(exc), prefix)}") from None

    def spell_fields(self, text: str, context: Path_ = ()) -> str:
        """``text`` with the config's field names written as their flags: dotted (``lm.steps``) or spaced
        (``lm steps``) paths anywhere, and bare names of the fields of ``context`` or of the root."""
        phrases: dict[str, str] = {}
        for path, flag in self._flag.items():
            if len(path) > 1:
                phrases[".".join(path)] = phrases[" ".join(path)] = flag
        for path, flag in self._flag.items():
            if path[:-1] == ():
                phrases.setdefault(path[-1], flag)
        for path, flag in self._flag.items():
            if path[:-1] == context and context:
                phrases[path[-1]] = flag
        if not phrases:
            return text
        alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.+\-])({alternatives})(?![\w\-])")
        return pattern.sub(lambda m: phrases[m.group(1)], text)


def _constant(cls, name: str) -> str:
    """A docstring's reference as help text: a tuple of names in the config's module (``OPTIMIZERS``) is
    spelled out (``adam, lm, adam+lm``); anything else is its last dotted component."""
    short = name.rsplit(".", 1)[-1]
    value = getattr(sys.modules.get(cls.__module__), short, None)
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return short


def _get(obj, path: Path_):
    for name in path:
        obj = getattr(obj, name)
    return obj


def _valid(obj, parts: dict) -> bool:
    try:
        dataclasses.replace(obj, **parts)
    except ValueError:
        return False
    return True
