"""The search space: ``[tune.space.<section>]`` expressions, parsed and sampled on their scale.

Every dimension maps its values to a *unit coordinate* ``u`` in ``[0, 1]`` through the
transform the notes prescribe, and back:

=================================  ==========================================================
expression                         coordinate (``u`` is this, rescaled to [0, 1])
=================================  ==========================================================
``uniform(a, b)``                  ``x``
``loguniform(a, b)``               ``log x``            (as much mass per decade)
``one_minus_loguniform(a, b)``     ``-log(1 - x)``      (beta: 0.9 -> 0.99 as likely as
                                                         0.99 -> 0.999)
``int(a, b)`` / ``int(a, b, log=true)``  ``x`` / ``log x`` on [a - 1/2, b + 1/2], rounded
``choice([v1, v2, ...])``          the option's cell ``[i/k, (i+1)/k)``
=================================  ==========================================================

Random search samples ``u`` uniformly, a grid spaces it evenly, and coarse-to-fine shrinks a
box in ``u`` (so in log space for log parameters). Nothing here needs Optuna; the conversion
to Optuna distributions is at the end.
"""

from __future__ import annotations

import ast
import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfit import config as C
from deepfit.errors import DeepfitError


class SpaceError(C.ConfigError):
    """A ``[tune.space]`` entry is malformed or names a key the config does not have."""


# -- dimensions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One searched key: ``key`` is dotted (``"train.lr"``), ``expression`` as written."""

    key: str
    expression: str

    log = False  # plotted on a log axis (for one_minus_loguniform: the axis of 1 - x)

    def from_unit(self, u: float) -> Any:
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:
        raise NotImplementedError

    def levels(self, n: int) -> list[Any]:
        """``n`` values evenly spaced in the coordinate, ends included (the middle for 1)."""
        us = [0.5] if n == 1 else [i / (n - 1) for i in range(n)]
        out: list[Any] = []
        for u in us:
            v = self.from_unit(u)
            if v not in out:
                out.append(v)
        return out

    def bounds(self) -> list[Any]:
        """Values that must all be valid for the config key (the ends, or every option)."""
        return [self.from_unit(0.0), self.from_unit(1.0)]


@dataclass(frozen=True)
class Uniform(Dimension):
    lo: float = 0.0
    hi: float = 1.0

    def from_unit(self, u: float) -> float:
        return float(min(max(self.lo + u * (self.hi - self.lo), self.lo), self.hi))

    def to_unit(self, value: Any) -> float:
        return (float(value) - self.lo) / (self.hi - self.lo)


@dataclass(frozen=True)
class LogUniform(Dimension):
    lo: float = 1e-4
    hi: float = 1.0
    log = True

    def from_unit(self, u: float) -> float:
        if u <= 0 or u >= 1:
            return self.lo if u <= 0 else self.hi
        v = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        return float(min(max(v, self.lo), self.hi))

    def to_unit(self, value: Any) -> float:
        return (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))


@dataclass(frozen=True)
class OneMinusLogUniform(Dimension):
    """``1 - x`` log-uniform on ``[1 - hi, 1 - lo]``: the notes' way to sample an averaging
    coefficient, whose effective window ``1 / (1 - beta)`` is what matters."""

    lo: float = 0.9
    hi: float = 0.999
    log = True

    def from_unit(self, u: float) -> float:
        if u <= 0 or u >= 1:
            return self.lo if u <= 0 else self.hi
        a, b = math.log(1 - self.lo), math.log(1 - self.hi)  # a > b
        v = 1.0 - math.exp(a + u * (b - a))
        return float(min(max(v, self.lo), self.hi))

    def to_unit(self, value: Any) -> float:
        a, b = math.log(1 - self.lo), math.log(1 - self.hi)
        return (math.log(1 - float(value)) - a) / (b - a)


@dataclass(frozen=True)
class Int(Dimension):
    lo: int = 0
    hi: int = 1
    log: bool = False  # type: ignore[misc]

    def _ends(self) -> tuple[float, float]:
        lo, hi = self.lo - 0.5, self.hi + 0.5
        return (math.log(lo), math.log(hi)) if self.log else (lo, hi)

    def from_unit(self, u: float) -> int:
        a, b = self._ends()
        x = a + u * (b - a)
        x = math.exp(x) if self.log else x
        return int(min(max(round(x), self.lo), self.hi))

    def to_unit(self, value: Any) -> float:
        a, b = self._ends()
        x = math.log(value) if self.log else float(value)
        return (x - a) / (b - a)

    def levels(self, n: int) -> list[Any]:
        if n >= self.hi - self.lo + 1 and not self.log:
            return list(range(self.lo, self.hi + 1))
        if n == 1:
            return [self.from_unit(0.5)]
        # ends exactly, then evenly spaced in the coordinate between them
        a, b = (math.log(self.lo), math.log(self.hi)) if self.log else (self.lo, self.hi)
        out: list[int] = []
        for i in range(n):
            x = a + (b - a) * i / (n - 1)
            v = round(math.exp(x) if self.log else x)
            if v not in out:
                out.append(v)
        return out


@dataclass(frozen=True)
class Choice(Dimension):
    options: tuple[Any, ...] = ()

    def from_unit(self, u: float) -> Any:
        k = len(self.options)
        return copy.deepcopy(self.options[min(int(u * k), k - 1)])

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.options)

    def index(self, value: Any) -> int:
        for i, option in enumerate(self.options):
            if option == value and type(option) is type(value):
                return i
        for i, option in enumerate(self.options):
            if option == value:
                return i
        raise DeepfitError(f"{value!r} is not an option of {self.key} = {self.expression}")

    def levels(self, n: int) -> list[Any]:
        return [copy.deepcopy(o) for o in self.options]

    def bounds(self) -> list[Any]:
        return [copy.deepcopy(o) for o in self.options]


# -- parsing --------------------------------------------------------------------------------
FUNCTIONS = ("uniform", "loguniform", "one_minus_loguniform", "int", "choice")
_NAMES = {"true": True, "false": False, "True": True, "False": False}


def _literal(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e, where) for e in node.elts]
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        raise SpaceError(f"{where}: {ast.unparse(node)!r} is not a literal value") from None


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def parse_expression(key: str, expression: str) -> Dimension:
    """One dimension from ``"loguniform(1e-4, 1)"`` and the like; errors name ``tune.space.key``."""
    where = f"tune.space.{key} = {expression!r}"
    usage = (
        "expected uniform(a, b), loguniform(a, b), one_minus_loguniform(a, b), int(a, b), "
        "int(a, b, log=true) or choice([v1, v2, ...])"
    )
    try:
        tree = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise SpaceError(f"{where}: not an expression; {usage}") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise SpaceError(f"{where}: {usage}")
    name = tree.func.id
    if name not in FUNCTIONS:
        raise SpaceError(f"{where}: unknown function {name!r}; {usage}")
    args = [_literal(a, where) for a in tree.args]
    kwargs = {kw.arg: _literal(kw.value, where) for kw in tree.keywords}
    if name == "choice":
        if kwargs or len(args) != 1 or not isinstance(args[0], list) or not args[0]:
            raise SpaceError(f"{where}: choice takes one non-empty list, choice([32, 64, 128])")
        options = args[0]
        encoded = [json.dumps(o, sort_keys=True) for o in options]
        if len(set(encoded)) != len(encoded):
            raise SpaceError(f"{where}: choice lists an option twice")
        return Choice(key, expression, tuple(options))
    if set(kwargs) - ({"log"} if name == "int" else set()):
        extra = ", ".join(sorted(set(kwargs) - {"log"})) or "log"
        raise SpaceError(f"{where}: unexpected argument {extra}; {usage}")
    if len(args) != 2 or not all(_is_real(a) for a in args):
        raise SpaceError(f"{where}: {name} takes two finite numbers (low, high)")
    lo, hi = args
    if name == "int":
        log = kwargs.get("log", False)
        if not isinstance(log, bool):
            raise SpaceError(f"{where}: log must be true or false")
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
            raise SpaceError(f"{where}: int takes two integers low <= high")
        if log and lo < 1:
            raise SpaceError(f"{where}: int(..., log=true) needs low >= 1")
        return Int(key, expression, lo, hi, log)
    if not lo < hi:
        raise SpaceError(f"{where}: the low end must be below the high end")
    if name == "uniform":
        return Uniform(key, expression, float(lo), float(hi))
    if name == "loguniform":
        if lo <= 0:
            raise SpaceError(f"{where}: loguniform needs 0 < low < high")
        return LogUniform(key, expression, float(lo), float(hi))
    if not 0 <= lo < hi < 1:
        raise SpaceError(f"{where}: one_minus_loguniform needs 0 <= low < high < 1")
    return OneMinusLogUniform(key, expression, float(lo), float(hi))


# -- the space --------------------------------------------------------------------------------
class Space:
    """The searched dimensions, in the order written, and how to apply a point to a config."""

    def __init__(self, dimensions: Sequence[Dimension]) -> None:
        if not dimensions:
            raise SpaceError(
                "[tune.space] is empty: add tables such as [tune.space.train] with "
                'lr = "loguniform(1e-4, 1)"'
            )
        self.dimensions = list(dimensions)
        self.keys = [d.key for d in self.dimensions]

    def __len__(self) -> int:
        return len(self.dimensions)

    def __repr__(self) -> str:
        inner = ", ".join(f"{d.key}={d.expression}" for d in self.dimensions)
        return f"Space({inner})"

    def describe(self) -> dict[str, str]:
        return {d.key: d.expression for d in self.dimensions}

    # -- points ----------------------------------------------------------------------------
    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        return {d.key: d.from_unit(float(x)) for d, x in zip(self.dimensions, u, strict=True)}

    def to_unit(self, point: Mapping[str, Any]) -> np.ndarray:
        return np.array([d.to_unit(point[d.key]) for d in self.dimensions])

    def sample(self, rng: np.random.Generator, box: Box | None = None) -> dict[str, Any]:
        """One point, uniform in the unit coordinates (inside ``box`` when given)."""
        box = box or Box.full(self)
        values = {}
        for i, d in enumerate(self.dimensions):
            if isinstance(d, Choice):
                allowed = box.options[i]
                values[d.key] = copy.deepcopy(d.options[allowed[int(rng.integers(len(allowed)))]])
            else:
                lo, hi = box.lo[i], box.hi[i]
                values[d.key] = d.from_unit(lo + (hi - lo) * float(rng.random()))
        return values

    # -- configs -----------------------------------------------------------------------------
    def apply(self, config: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
        """A validated copy of ``config`` (without ``[tune]``) with the point's values set."""
        raw = {k: copy.deepcopy(v) for k, v in config.items() if k != "tune"}
        for dotted, value in point.items():
            C.set_value(raw, dotted, copy.deepcopy(value))
        return C.validate(raw)


def parse(config: Mapping[str, Any]) -> Space:
    """The space of ``config["tune"]["space"]``, every expression parsed and every key checked
    against the config's schema (its ends, or every option, must be valid values of the key,
    alone on top of ``config``). Errors name the ``tune.space`` key."""
    table = (config.get("tune") or {}).get("space") or {}
    dims = []
    for dotted, expression in C.flatten(table):
        where = f"tune.space.{dotted}"
        if not isinstance(expression, str):
            raise SpaceError(f"{where} must be a search expression such as 'loguniform(1e-4, 1)'")
        if dotted.split(".", 1)[0] == "tune":
            raise SpaceError(f"{where}: the [tune] table itself cannot be searched")
        probe: dict[str, Any] = {}
        try:
            C.set_value(probe, dotted, None)
        except C.ConfigError as exc:
            raise SpaceError(f"{where}: {exc}") from None
        dims.append(parse_expression(dotted, expression))
    space = Space(dims)
    for d in space.dimensions:
        for value in d.bounds():
            try:
                space.apply(config, {d.key: value})
            except C.ConfigError as exc:
                raise SpaceError(
                    f"tune.space.{d.key} = {d.expression!r} gives {value!r}, which the config "
                    f"refuses: {exc}"
                ) from None
    return space


# -- boxes (coarse-to-fine) -------------------------------------------------------------------
@dataclass
class Box:
    """A region of the unit cube: ``[lo, hi]`` per numeric dimension, the allowed option
    indices per choice (``options[i]``; numeric entries hold ``None``)."""

    lo: np.ndarray
    hi: np.ndarray
    options: list[list[int] | None]

    @classmethod
    def full(cls, space: Space) -> Box:
        n = len(space)
        return cls(
            np.zeros(n),
            np.ones(n),
            [
                list(range(len(d.options))) if isinstance(d, Choice) else None
                for d in space.dimensions
            ],
        )

    def widths(self) -> np.ndarray:
        return self.hi - self.lo

    def to_dict(self, space: Space) -> dict[str, Any]:
        """Human-readable bounds: values at the box ends, or the allowed options."""
        out: dict[str, Any] = {}
        for i, d in enumerate(space.dimensions):
            if isinstance(d, Choice):
                out[d.key] = [d.options[j] for j in self.options[i] or []]
            else:
                out[d.key] = [d.from_unit(self.lo[i]), d.from_unit(self.hi[i])]
        return out


def shrink(
    space: Space,
    box: Box,
    best: Sequence[Mapping[str, Any]],
    *,
    margin: float = 0.25,
    min_fraction: float = 0.1,
) -> Box:
    """The box around the ``best`` points for the next coarse-to-fine round.

    Per numeric dimension: the points' range in unit coordinates (log space for log
    parameters), widened by ``margin`` times that range on each side, at least
    ``min_fraction`` of the current width, and kept inside the current box. Per choice: the
    options the best points use.
    """
    if not best:
        return box
    U = np.array([space.to_unit(p) for p in best])
    lo, hi = box.lo.copy(), box.hi.copy()
    options: list[list[int] | None] = []
    for i, d in enumerate(space.dimensions):
        if isinstance(d, Choice):
            used = sorted({d.index(p[d.key]) for p in best})
            options.append(used)
            continue
        options.append(None)
        a, b = float(U[:, i].min()), float(U[:, i].max())
        width = b - a
        a, b = a - margin * width, b + margin * width
        need = min_fraction * (box.hi[i] - box.lo[i])
        if b - a < need:
            centre = (a + b) / 2
            a, b = centre - need / 2, centre + need / 2
        # keep inside the current box, sliding rather than cutting when possible
        if a < box.lo[i]:
            b, a = min(b + box.lo[i] - a, box.hi[i]), box.lo[i]
        if b > box.hi[i]:
            a, b = max(a - (b - box.hi[i]), box.lo[i]), box.hi[i]
        lo[i], hi[i] = a, b
    return Box(lo, hi, options)


# -- grid ---------------------------------------------------------------------------------------
def grid_levels(space: Space, budget: int) -> list[int]:
    """Levels per dimension: every option of each choice, and the same number ``k`` for the
    numeric dimensions, the largest with a grid of at most ``budget`` points (at least 1)."""
    fixed = math.prod(len(d.options) for d in space.dimensions if isinstance(d, Choice))
    numeric = [d for d in space.dimensions if not isinstance(d, Choice)]
    k = 1
    if numeric:
        while fixed * (k + 1) ** len(numeric) <= budget:
            k += 1
    return [len(d.options) if isinstance(d, Choice) else k for d in space.dimensions]


def grid(space: Space, budget: int) -> list[dict[str, Any]]:
    """The space discretized into at most ``budget`` points (more only when the choices alone
    need more); each numeric dimension evenly spaced in its coordinate, ends included."""
    import itertools

    per_dim = [
        d.levels(k) for d, k in zip(space.dimensions, grid_levels(space, budget), strict=True)
    ]
    return [
        {d.key: copy.deepcopy(v) for d, v in zip(space.dimensions, combo, strict=True)}
        for combo in itertools.product(*per_dim)
    ]


# -- Optuna's view ------------------------------------------------------------------------------
def optuna_name(d: Dimension) -> str:
    """The parameter's name in the Optuna study: the dotted key, or ``1-key`` for
    one_minus_loguniform, whose Optuna parameter is ``1 - x`` on a log scale (so TPE and the
    study's own plots see the coordinate the notes recommend)."""
    return f"1-{d.key}" if isinstance(d, OneMinusLogUniform) else d.key


def _encode(option: Any) -> Any:
    if option is None or isinstance(option, bool | int | float | str):
        return option
    return json.dumps(option)


def optuna_distributions(space: Space) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for d in space.dimensions:
        if isinstance(d, Choice):
            out[optuna_name(d)] = CategoricalDistribution([_encode(o) for o in d.options])
        elif isinstance(d, Int):
            out[optuna_name(d)] = IntDistribution(d.lo, d.hi, log=d.log)
        elif isinstance(d, OneMinusLogUniform):
            out[optuna_name(d)] = FloatDistribution(1 - d.hi, 1 - d.lo, log=True)
        else:
            out[optuna_name(d)] = FloatDistribution(d.lo, d.hi, log=d.log)
    return out


def to_optuna(space: Space, point: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in space.dimensions:
        v = point[d.key]
        if isinstance(d, Choice):
            out[optuna_name(d)] = _encode(v)
        elif isinstance(d, OneMinusLogUniform):
            out[optuna_name(d)] = min(max(1.0 - v, 1 - d.hi), 1 - d.lo)
        else:
            out[optuna_name(d)] = v
    return out


def from_optuna(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in space.dimensions:
        v = params[optuna_name(d)]
        if isinstance(d, Choice):
            out[d.key] = copy.deepcopy(next(o for o in d.options if _encode(o) == v))
        elif isinstance(d, OneMinusLogUniform):
            out[d.key] = 1.0 - float(v)
        elif isinstance(d, Int):
            out[d.key] = int(v)
        else:
            out[d.key] = float(v)
    return out
