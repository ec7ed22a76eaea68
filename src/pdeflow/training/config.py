"""Training configs: dataclasses to and from JSON, and range checks that name the field."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ..io import to_json, write_bytes

__all__ = ["save_config", "load_config", "config_to_dict", "ConfigCheck", "is_number", "option",
           "val_every_option", "ckpt_every_option"]


PathLike = str | os.PathLike


def atomic_write_json(path: PathLike, obj: Any, what: str) -> Path:
    return write_bytes(path, to_json(obj, what).encode())


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------

def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           type: str | None = None, metavar: str | None = None, choices: tuple | None = None,
           flag: bool = False, negate: str | None = None, nargs: str | None = None,
           name: str | None = None) -> Any:
    """A config dataclass field that is also a command-line option: the hyperparameter is declared once.

    ``help`` is a :meth:`str.format` template: ``{default}`` is the field's default and every other field
    of the config is available by name (``{mixed_min}``). ``type`` names an argument type of the command
    line (``"positive_int"``, ``"nonneg_float"``, ``"float"``, ...; the CLI maps names to parsers, so the
    library does not import it); ``flag=True`` makes a boolean a store-true switch, ``negate="--no-x"`` a
    store-false switch of that name; ``nargs="+"`` a list (a tuple in the config); ``name="--x"`` the
    option's name where it is not ``--field-name`` (a list field ``dts`` given as ``--dt``). The command line
    builds its options from this metadata (:func:`pdeflow.cli._arguments.add_config_options`).

    Examples
    --------
    >>> import dataclasses
    >>> from pdeflow.training import option
    >>> @dataclasses.dataclass
    ... class Config:
    ...     steps: int = option(1000, "training steps (default {default})", type="positive_int", metavar="N")
    >>> field = dataclasses.fields(Config)[0]
    >>> Config().steps, field.metadata["cli"]["type"], field.metadata["cli"]["help"].format(default=field.default)
    (1000, 'positive_int', 'training steps (default 1000)')
    """
    meta = {"help": help, "type": type, "metavar": metavar, "choices": choices, "flag": flag, "negate": negate,
            "nargs": nargs, "name": name}
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"cli": meta})


def val_every_option(default: int) -> Any:
    """The ``val_every`` field every trainer has: validation period in steps (and after the last step).

    Examples
    --------
    >>> import dataclasses
    >>> from pdeflow.training import val_every_option
    >>> @dataclasses.dataclass
    ... class Config:
    ...     val_every: int = val_every_option(500)
    >>> Config().val_every, dataclasses.fields(Config)[0].metadata["cli"]["metavar"]
    (500, 'N')
    """
    return option(default, "validate every N steps and after the last (default {default})", type="positive_int",
                  metavar="N")


def ckpt_every_option(default: int) -> Any:
    """The ``ckpt_every`` field every trainer has: the period of :class:`~pdeflow.training.Run`'s resume
    checkpoint in steps.

    Examples
    --------
    >>> import dataclasses
    >>> from pdeflow.training import ckpt_every_option
    >>> @dataclasses.dataclass
    ... class Config:
    ...     ckpt_every: int = ckpt_every_option(200)
    >>> Config().ckpt_every, dataclasses.fields(Config)[0].metadata["cli"]["type"]
    (200, 'positive_int')
    """
    return option(default, "write the resume checkpoint every N steps (default {default})", type="positive_int",
                  metavar="N")


def config_to_dict(config: Any) -> dict:
    """A dataclass instance (or a dict) as a plain JSON-ready dict (tuples become lists).

    Examples
    --------
    >>> import dataclasses
    >>> from pdeflow.training import config_to_dict
    >>> @dataclasses.dataclass
    ... class Config:
    ...     lr: float = 1e-3
    ...     widths: tuple = (16, 32)
    >>> config_to_dict(Config())
    {'lr': 0.001, 'widths': [16, 32]}
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        d = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        d = dict(config)
    else:
        raise TypeError(f"config: expected a dataclass instance or a dict, got {type(config).__name__}")
    return json.loads(to_json(d, "config"))


def save_config(config: Any, path: PathLike) -> Path:
    """Write a dataclass config (or dict) to ``path`` as JSON, atomically.

    Examples
    --------
    >>> import dataclasses, tempfile
    >>> from pathlib import Path
    >>> from pdeflow.training import load_config, save_config
    >>> @dataclasses.dataclass
    ... class Config:
    ...     lr: float = 1e-3
    ...     widths: tuple = (16, 32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_config(Config(lr=0.01), Path(d) / "config.json")
    ...     print(path.name, load_config(Config, path))
    config.json Config(lr=0.01, widths=(16, 32))
    """
    return atomic_write_json(path, config_to_dict(config), "config")


def load_config(cls: type, path: PathLike) -> Any:
    """Read a JSON config written by :func:`save_config` back into dataclass ``cls``.

    Missing fields take their defaults; unknown fields are an error (a typo or a
    config from another trainer). Lists are turned back into tuples for fields
    annotated as tuples.

    Examples
    --------
    >>> import dataclasses, json, tempfile
    >>> from pathlib import Path
    >>> from pdeflow.training import load_config
    >>> @dataclasses.dataclass
    ... class Config:
    ...     lr: float = 1e-3
    ...     widths: tuple = (16, 32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "config.json").write_text(json.dumps({"widths": [8, 8]}))
    ...     print(load_config(Config, Path(d) / "config.json"))  # lists back to tuples, lr its default
    Config(lr=0.001, widths=(8, 8))
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"load_config: cls must be a dataclass type, got {cls!r}")
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UserInputError(f"load_config: {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"load_config: {path} does not hold a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserInputError(f"load_config: {path} has fields unknown to {cls.__name__}: {unknown}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:   # unresolvable annotations: leave lists as lists
        hints = {}
    for name, value in data.items():
        origin = typing.get_origin(hints.get(name))
        if isinstance(value, list) and (hints.get(name) is tuple or origin is tuple):
            data[name] = tuple(value)
    return cls(**data)


def config_defaults(cls: Any) -> dict:
    """The defaults of the fields of dataclass ``cls`` (a class or an instance) that have one."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def field_defaults(config: Any) -> dict:
    """JSON-ready defaults of a dataclass config's fields (empty for a dict config)."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return {}
    return json.loads(to_json(config_defaults(config), "config"))


def config_diff(saved: dict, given: dict, ignore: tuple[str, ...] = (), defaults: dict | None = None) -> list[str]:
    """Lines naming the fields in which two configs differ. A field absent from ``saved``
    (added to the config class after that run started) counts as its value in ``defaults``."""
    missing = object()
    saved = {**(defaults or {}), **saved}
    lines = []
    for key in sorted(set(saved) | set(given)):
        if key in ignore:
            continue
        a, b = saved.get(key, missing), given.get(key, missing)
        if a != b:
            fmt = lambda v: "<absent>" if v is missing else json.dumps(v)  # noqa: E731
            lines.append(f"  {key}: saved {fmt(a)}, given {fmt(b)}")
    return lines



# --------------------------------------------------------------------------------------
# Range checks
# --------------------------------------------------------------------------------------

def is_number(v: Any) -> bool:
    """Whether ``v`` is a finite int or float (a bool is not a number here).

    Examples
    --------
    >>> from pdeflow.training import is_number
    >>> is_number(3), is_number(0.5), is_number(True), is_number(float("nan")), is_number("3")
    (True, True, False, False, False)
    """
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class ConfigCheck:
    """Range checks of a config dataclass that raise ValueError naming the field.

    ``need = ConfigCheck(cfg)``; ``need(ok, "name", "what was expected")``, or the
    common cases ``need.ints("steps", "batch_size")`` (ints >= 1),
    ``need.numbers("lr", positive=True)`` (finite numbers > 0, or >= 0),
    ``need.fractions("density")`` (numbers in (0, 1)), ``need.flags("quiet")``
    (booleans), ``need.tuple_of("widths", "a positive int", ...)`` (non-empty
    tuples) and ``need.trainer()`` (the fields every pdeflow trainer has).

    Examples
    --------
    >>> import dataclasses
    >>> from pdeflow.training import ConfigCheck
    >>> @dataclasses.dataclass
    ... class Config:
    ...     steps: int = 100
    ...     lr: float = -1.0
    >>> need = ConfigCheck(Config())
    >>> need.ints("steps")
    >>> try:
    ...     need.numbers("lr", positive=True)
    ... except ValueError as err:
    ...     print("rejected:", "lr" in str(err))
    rejected: True
    """

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def __call__(self, ok: bool, name: str, what: str) -> None:
        if not ok:
            raise UserInputError(f"{type(self.cfg).__name__}.{name}: expected {what}, got {getattr(self.cfg, name)!r}")

    def _each(self, names: tuple[str, ...], ok, what: str, optional: bool) -> None:
        for name in names:
            v = getattr(self.cfg, name)
            self((optional and v is None) or ok(v), name, ("None or " if optional else "") + what)

    def ints(self, *names: str, minimum: int = 1) -> None:
        self._each(names, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum,
                   f"an int >= {minimum}", False)

    def numbers(self, *names: str, positive: bool = True, optional: bool = False) -> None:
        self._each(names, lambda v: is_number(v) and (v > 0 if positive else v >= 0),
                   f"a finite number {'>' if positive else '>='} 0", optional)

    def fractions(self, *names: str, optional: bool = False) -> None:
        """Numbers in the open interval (0, 1) (densities, held-out fractions)."""
        self._each(names, lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)", optional)

    def flags(self, *names: str) -> None:
        self._each(names, lambda v: isinstance(v, bool), "True or False", False)

    def tuple_of(self, name: str, what: str, ok, *, empty: bool = False) -> None:
        """A tuple (or list) of items that pass ``ok``; non-empty unless ``empty``."""
        v = getattr(self.cfg, name)
        self(isinstance(v, (tuple, list)) and (empty or len(v) >= 1) and all(ok(x) for x in v), name,
             f"a {'' if empty else 'non-empty '}tuple of {what}")

    def trainer(self) -> None:
        """The fields every pdeflow trainer has: steps, batch and validation sizes, periods and seeds."""
        self.ints("steps", "batch_size", "val_crops", "val_every", "ckpt_every")
        self.ints("seed", "val_seed", minimum=0)
        self.flags("deterministic")
