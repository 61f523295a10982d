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
to Optuna distributions (and define-by-run sampling, :func:`suggest`) is at the end.

**Conditional dimensions.** An expression may end with ``if CONDITION``: the key is searched
only when the condition holds, as Optuna's define-by-run samples a parameter only on the
branch that needs it::

    [tune.space.train.mixup]
    kind = "choice(['none', 'mixup', 'cutmix'])"
    alpha = "loguniform(0.05, 1) if train.mixup.kind != 'none'"

    [tune.space.use]                    # switches: searched, but no config key
    dropout = "choice([false, true])"

    [tune.space.model]
    keep_prob = "uniform(0.5, 0.95) if use.dropout"

A condition reads dotted keys (searched ones, ``use.*`` switches, or any key of the base
config, whose value is then fixed) and combines them with ``== != < <= > >= in, not in``,
``and``, ``or``, ``not``, literals (numbers, strings, ``true``/``false``, lists) and a bare key
(true when the value is truthy). An inactive key is absent from the trial (an empty cell in
``trials.csv``, no Optuna parameter) and keeps its base-config value; a key whose condition
reads an inactive key is inactive too. Dimensions are ordered so that each comes after the
keys its condition reads (otherwise as written); cycles, unknown keys, options a choice does
not have, and conditions that can never hold are refused before any training.
"""

from __future__ import annotations

import ast
import copy
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfit import config as C
from deepfit.errors import DeepfitError


class SpaceError(C.ConfigError):
    """A ``[tune.space]`` entry is malformed or names a key the config does not have."""


SWITCH_PREFIX = C.SWITCHES + "."


def is_switch(key: str) -> bool:
    """``use.*``: a searched switch read by conditions, not a config key."""
    return key.startswith(SWITCH_PREFIX)


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


# -- conditions --------------------------------------------------------------------------------
_COMPARE = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _dotted(node: ast.AST) -> str | None:
    """``train.mixup.kind`` written in a condition (a Name or an Attribute chain)."""
    if isinstance(node, ast.Name):
        return None if node.id in _NAMES else node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


@dataclass(frozen=True)
class Condition:
    """The ``if ...`` part of a conditional expression: ``text`` as written, ``reads`` the
    dotted keys it reads, in order."""

    text: str
    tree: ast.expr
    reads: tuple[str, ...]

    def holds(self, values: Mapping[str, Any]) -> bool:
        """The condition evaluated on ``values`` (every key of :attr:`reads` present)."""
        return bool(self._eval(self.tree, values))

    def _eval(self, node: ast.AST, values: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.BoolOp):
            results = (self._eval(v, values) for v in node.values)
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.UnaryOp):
            return not self._eval(node.operand, values)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self._eval(right_node, values)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    return False
                left = right
            return True
        name = _dotted(node)
        if name is not None:
            return values[name]
        return _literal(node, self.text)


def parse_condition(key: str, text: str) -> Condition:
    """The condition ``text`` of ``tune.space.key`` (syntax only; the keys it reads are
    checked by :func:`parse`)."""
    where = f"tune.space.{key}: condition {text!r}"
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise SpaceError(f"{where} is not an expression") from None
    reads: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                visit(v)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            visit(node.operand)
        elif isinstance(node, ast.Compare):
            if type(node.ops[0]) not in _COMPARE or any(type(o) not in _COMPARE for o in node.ops):
                raise SpaceError(f"{where}: compare with == != < <= > >= in or not in")
            for n in (node.left, *node.comparators):
                visit(n)
        elif (name := _dotted(node)) is not None:
            if name not in reads:
                reads.append(name)
        elif isinstance(node, ast.Constant | ast.List | ast.Tuple) or (
            isinstance(node, ast.Name) and node.id in _NAMES
        ):
            _literal(node, where)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            _literal(node, where)
        else:
            raise SpaceError(
                f"{where}: {ast.unparse(node)!r} is neither a dotted key, a literal nor a "
                "comparison (and, or, not, == != < <= > >= in, not in)"
            )

    visit(tree)
    if not reads:
        raise SpaceError(f"{where} reads no key (write e.g. train.mixup.kind != 'none')")
    return Condition(text.strip(), tree, tuple(reads))


def split_condition(key: str, expression: str) -> tuple[str, str | None]:
    """``("uniform(0, 1)", "use.x")`` from ``"uniform(0, 1) if use.x"``; no ``if``: None."""
    import io
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expression.strip()).readline))
    except (tokenize.TokenError, SyntaxError):
        return expression, None
    depth = 0
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.NAME and tok.string == "if" and depth == 0:
            line = expression.strip()
            cut = tok.start[1]
            head, cond = line[:cut].strip(), line[tok.end[1] :].strip()
            if not cond:
                raise SpaceError(f"tune.space.{key} = {expression!r}: nothing after 'if'")
            if re.search(r"\belse\b", cond):
                raise SpaceError(
                    f"tune.space.{key} = {expression!r}: no 'else': an inactive key keeps its "
                    "base-config value"
                )
            return head, cond
    return expression, None


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
    """The searched dimensions, each after the keys its condition reads (otherwise in the
    order written), their conditions, and how to apply a point to a config.

    ``conditions`` maps a key to its :class:`Condition`; ``fixed`` holds the base-config
    values of the unsearched keys the conditions read."""

    def __init__(
        self,
        dimensions: Sequence[Dimension],
        conditions: Mapping[str, Condition] | None = None,
        fixed: Mapping[str, Any] | None = None,
    ) -> None:
        if not dimensions:
            raise SpaceError(
                "[tune.space] is empty: add tables such as [tune.space.train] with "
                'lr = "loguniform(1e-4, 1)"'
            )
        self.conditions = dict(conditions or {})
        self.fixed = dict(fixed or {})
        self.dimensions = _ordered(list(dimensions), self.conditions)
        self.keys = [d.key for d in self.dimensions]
        self._by_key = {d.key: d for d in self.dimensions}

    def __len__(self) -> int:
        return len(self.dimensions)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={e}" for k, e in self.describe().items())
        return f"Space({inner})"

    def dimension(self, key: str) -> Dimension:
        return self._by_key[key]

    def describe(self) -> dict[str, str]:
        """``{key: expression as written}`` (with its ``if`` condition)."""
        return {
            d.key: d.expression
            + (f" if {self.conditions[d.key].text}" if d.key in self.conditions else "")
            for d in self.dimensions
        }

    @classmethod
    def from_description(
        cls, described: Mapping[str, str], fixed: Mapping[str, Any] | None = None
    ) -> Space:
        """The space :meth:`describe` wrote (a study's identity), without a config check."""
        dims, conditions = [], {}
        for key, text in described.items():
            head, cond = split_condition(key, text)
            dims.append(parse_expression(key, head))
            if cond is not None:
                conditions[key] = parse_condition(key, cond)
        return cls(dims, conditions, fixed)

    # -- conditions --------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return bool(self.conditions)

    def is_active(self, key: str, values: Mapping[str, Any]) -> bool:
        """Whether ``key`` is searched given the values of the keys before it: no condition,
        or every searched key it reads is active (in ``values``) and the condition holds."""
        condition = self.conditions.get(key)
        if condition is None:
            return True
        known: dict[str, Any] = {}
        for name in condition.reads:
            if name in self._by_key:
                if name not in values:
                    return False
                known[name] = values[name]
            elif name in self.fixed:
                known[name] = self.fixed[name]
            else:
                return False
        return condition.holds(known)

    def restrict(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """``point`` without its inactive keys (and without keys the space does not have)."""
        out: dict[str, Any] = {}
        for d in self.dimensions:
            if d.key in point and self.is_active(d.key, out):
                out[d.key] = point[d.key]
        return out

    def complete(self, point: Mapping[str, Any]) -> bool:
        """Every active key present and no inactive one (a trial that was fully sampled)."""
        seen: dict[str, Any] = {}
        for d in self.dimensions:
            active = self.is_active(d.key, seen)
            if active != (d.key in point):
                return False
            if active:
                seen[d.key] = point[d.key]
        return len(seen) == len(point)

    def ancestors(self, key: str) -> list[str]:
        """The searched keys ``key``'s condition reads, directly or through theirs, in order."""
        found: set[str] = set()
        stack = [key]
        while stack:
            condition = self.conditions.get(stack.pop())
            for name in condition.reads if condition else ():
                if name in self._by_key and name not in found:
                    found.add(name)
                    stack.append(name)
        return [k for k in self.keys if k in found]

    # -- points ----------------------------------------------------------------------------
    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        values = {d.key: d.from_unit(float(x)) for d, x in zip(self.dimensions, u, strict=True)}
        return self.restrict(values)

    def to_unit(self, point: Mapping[str, Any]) -> np.ndarray:
        """Unit coordinates of ``point``; ``nan`` where a key is inactive (absent)."""
        return np.array(
            [d.to_unit(point[d.key]) if d.key in point else math.nan for d in self.dimensions]
        )

    def sample(self, rng: np.random.Generator, box: Box | None = None) -> dict[str, Any]:
        """One point, uniform in the unit coordinates (inside ``box`` when given). Every
        dimension takes its draw, active or not, so a condition never shifts another key's
        value; the inactive keys are then dropped."""
        box = box or Box.full(self)
        values = {}
        for i, d in enumerate(self.dimensions):
            if isinstance(d, Choice):
                allowed = box.options[i]
                values[d.key] = copy.deepcopy(d.options[allowed[int(rng.integers(len(allowed)))]])
            else:
                lo, hi = box.lo[i], box.hi[i]
                values[d.key] = d.from_unit(lo + (hi - lo) * float(rng.random()))
        return self.restrict(values)

    # -- configs -----------------------------------------------------------------------------
    def apply(self, config: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
        """A validated copy of ``config`` (without ``[tune]``) with the point's values set
        (``use.*`` switches set nothing)."""
        raw = {k: copy.deepcopy(v) for k, v in config.items() if k != "tune"}
        for dotted, value in point.items():
            if not is_switch(dotted):
                C.set_value(raw, dotted, copy.deepcopy(value))
        return C.validate(raw)


def _ordered(dims: list[Dimension], conditions: Mapping[str, Condition]) -> list[Dimension]:
    """``dims`` with each after the searched keys its condition reads (stable otherwise);
    a cycle is refused naming its keys."""
    keys = {d.key for d in dims}
    out: list[Dimension] = []
    placed: set[str] = set()
    pending = list(dims)
    while pending:
        for d in pending:
            needs = [k for k in conditions[d.key].reads if k in keys] if d.key in conditions else []
            if all(k in placed for k in needs):
                out.append(d)
                placed.add(d.key)
                pending.remove(d)
                break
        else:
            cycle = ", ".join(f"tune.space.{d.key}" for d in pending)
            raise SpaceError(f"the conditions of {cycle} read each other in a cycle")
    return out


_WITNESSES = 512  # combinations of the ancestors' values tried to show a condition can hold


def _witnesses(space: Space, key: str) -> list[dict[str, Any]]:
    """Points of ``key``'s ancestors (their ends or options) under which ``key`` is active."""
    names = space.ancestors(key)
    options = [space.dimension(k).bounds() for k in names]
    out = []
    for combo in itertools.islice(itertools.product(*options), _WITNESSES):
        point = space.restrict(dict(zip(names, combo, strict=True)))
        if space.is_active(key, point) and point not in out:
            out.append(point)
    return out


def _check_condition(space: Space, config: Mapping[str, Any], key: str) -> None:
    condition = space.conditions[key]
    where = f"tune.space.{key}: condition {condition.text!r}"
    for name in condition.reads:
        if name == key:
            raise SpaceError(f"{where} reads the key itself")
        if name in space.keys:
            continue
        if is_switch(name):
            raise SpaceError(f"{where} reads {name}, which [tune.space.use] does not define")
        try:
            space.fixed[name] = C.get(config, name)
        except C.ConfigError:
            raise SpaceError(
                f"{where} reads {name!r}, which is neither searched nor a config key"
            ) from None
    # a choice compared with a literal: the literal must be one of its options
    for node in ast.walk(condition.tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for a, op, b in zip(operands, node.ops, operands[1:], strict=False):
            name, other = (_dotted(a), b) if _dotted(a) else (_dotted(b), a)
            if name is None or name not in space.keys or _dotted(other) is not None:
                continue
            d = space.dimension(name)
            if not isinstance(d, Choice):
                continue
            literal = _literal(other, where)
            wanted = literal if isinstance(op, ast.In | ast.NotIn) else [literal]
            for value in wanted if isinstance(wanted, list) else [wanted]:
                if not any(value == o for o in d.options):
                    raise SpaceError(
                        f"{where}: {value!r} is not an option of {name} = {d.expression}"
                    )
    if not _witnesses(space, key):
        raise SpaceError(f"{where} never holds for the values the space can take")


def parse(config: Mapping[str, Any]) -> Space:
    """The space of ``config["tune"]["space"]``, every expression parsed and every key checked
    against the config's schema (its ends, or every option, must be valid values of the key on
    top of ``config``; a conditional key's under some values of the keys its condition reads
    that make it active). Conditions are checked too (see the module docstring). Errors name
    the ``tune.space`` key."""
    table = (config.get("tune") or {}).get("space") or {}
    dims, conditions = [], {}
    for dotted, expression in C.flatten(table):
        where = f"tune.space.{dotted}"
        if not isinstance(expression, str):
            raise SpaceError(f"{where} must be a search expression such as 'loguniform(1e-4, 1)'")
        if dotted.split(".", 1)[0] == "tune":
            raise SpaceError(f"{where}: the [tune] table itself cannot be searched")
        if not is_switch(dotted):
            probe: dict[str, Any] = {}
            try:
                C.set_value(probe, dotted, None)
            except C.ConfigError as exc:
                raise SpaceError(f"{where}: {exc}") from None
        head, cond = split_condition(dotted, expression)
        dims.append(parse_expression(dotted, head))
        if cond is not None:
            conditions[dotted] = parse_condition(dotted, cond)
            if dotted in conditions[dotted].reads:
                raise SpaceError(f"{where}: condition {cond!r} reads the key itself")
    space = Space(dims, conditions)
    for key in space.conditions:
        _check_condition(space, config, key)
    for d in space.dimensions:
        contexts = _witnesses(space, d.key) if d.key in space.conditions else [{}]
        for value in d.bounds():
            error = None
            for context in contexts:
                try:
                    space.apply(config, {**context, d.key: value})
                    break
                except C.ConfigError as exc:
                    error = error or exc
            else:
                raise SpaceError(
                    f"tune.space.{d.key} = {d.expression!r} gives {value!r}, which the config "
                    f"refuses: {error}"
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
    options the best points use. A conditional key is judged by the best points where it is
    active; where it is active in none, its part of the box stays as it was.
    """
    if not best:
        return box
    U = np.array([space.to_unit(p) for p in best])
    lo, hi = box.lo.copy(), box.hi.copy()
    options: list[list[int] | None] = []
    for i, d in enumerate(space.dimensions):
        if isinstance(d, Choice):
            used = sorted({d.index(p[d.key]) for p in best if d.key in p})
            options.append(used or box.options[i])
            continue
        options.append(None)
        column = U[:, i][np.isfinite(U[:, i])]
        if column.size == 0:
            continue
        a, b = float(column.min()), float(column.max())
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
    need more); each numeric dimension evenly spaced in its coordinate, ends included. With
    conditions, the inactive keys are dropped from each point and the repeats that leaves
    are kept once (in the first one's place); the numeric levels then grow while the grid
    that remains fits in ``budget``."""
    levels = grid_levels(space, budget)
    points = _grid(space, levels)
    if not space.conditional:
        return points
    numeric = [not isinstance(d, Choice) for d in space.dimensions]
    while any(numeric):
        more = [n + 1 if is_numeric else n for n, is_numeric in zip(levels, numeric, strict=True)]
        bigger = _grid(space, more)
        if len(bigger) > budget or len(bigger) == len(points):
            break
        levels, points = more, bigger
    return points


def _grid(space: Space, levels: Sequence[int]) -> list[dict[str, Any]]:
    per_dim = [d.levels(k) for d, k in zip(space.dimensions, levels, strict=True)]
    points, seen = [], set()
    for combo in itertools.product(*per_dim):
        point = space.restrict(
            {d.key: copy.deepcopy(v) for d, v in zip(space.dimensions, combo, strict=True)}
        )
        signature = json.dumps(point, sort_keys=True)
        if signature not in seen:
            seen.add(signature)
            points.append(point)
    return points


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
    """The Optuna parameters of ``point`` (its active keys)."""
    out: dict[str, Any] = {}
    for d in space.dimensions:
        if d.key not in point:
            continue
        v = point[d.key]
        if isinstance(d, Choice):
            out[optuna_name(d)] = _encode(v)
        elif isinstance(d, OneMinusLogUniform):
            out[optuna_name(d)] = min(max(1.0 - v, 1 - d.hi), 1 - d.lo)
        else:
            out[optuna_name(d)] = v
    return out


def from_optuna(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """The point of a trial's Optuna parameters (only the keys it has: the active ones)."""
    out: dict[str, Any] = {}
    for d in space.dimensions:
        if optuna_name(d) in params:
            out[d.key] = _value(d, params[optuna_name(d)])
    return out


def _value(d: Dimension, raw: Any) -> Any:
    """The deepfit value of ``d`` from its Optuna parameter's value."""
    if isinstance(d, Choice):
        return copy.deepcopy(next(o for o in d.options if _encode(o) == raw))
    if isinstance(d, OneMinusLogUniform):
        return 1.0 - float(raw)
    if isinstance(d, Int):
        return int(raw)
    return float(raw)


def complete_params(space: Space, params: Mapping[str, Any]) -> bool:
    """Whether a trial's Optuna parameters are a whole point (every active key sampled)."""
    point = from_optuna(space, params)
    return len(point) == len(params) and space.complete(point)


def suggest(space: Space, trial) -> dict[str, Any]:
    """The point of an Optuna ``trial``, define-by-run: each key, in order, is suggested only
    when it is active given the keys before it (:meth:`Space.is_active`). Values enqueued for
    the trial (a strategy's point, a retry's values) come back as they were."""
    distributions = optuna_distributions(space)
    values: dict[str, Any] = {}
    for d in space.dimensions:
        if not space.is_active(d.key, values):
            continue
        name = optuna_name(d)
        dist = distributions[name]
        if isinstance(d, Choice):
            raw = trial.suggest_categorical(name, dist.choices)
        elif isinstance(d, Int):
            raw = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        else:
            raw = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        values[d.key] = _value(d, raw)
    return values
