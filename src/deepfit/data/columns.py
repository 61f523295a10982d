"""Column roles of a table: numeric, categorical, or dropped, inferred and overridable.

Rules, in order (config keys ``data.numeric``, ``data.categorical`` and ``data.drop`` come
first and always win):

- the target and the weight column are not features;
- a leading column with no name (or pandas' ``Unnamed: 0``) holding the row numbers
  ``1..n`` or ``0..n-1``, as R and pandas write them, is dropped;
- a column with one value (and no missing cell) is dropped: it carries no information;
- an *ID-like* column is dropped with a warning naming it: text whose every value is distinct,
  or whole numbers that are a permutation of a run of consecutive integers (``1..n``). Name
  it in ``data.numeric`` or ``data.categorical`` to use it anyway;
- text columns (booleans spelled ``TRUE``/``FALSE`` or ``yes``/``no`` included) are categorical;
- everything else is numeric.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from deepfit.data.tables import Table
from deepfit.errors import DataError

ROLES = ("numeric", "categorical", "drop")
_ROW_NUMBER_NAMES = ("", "Unnamed: 0", "...1", "X", "rownames")


@dataclass
class ColumnRoles:
    """What each column of a table is for.

    Attributes
    ----------
    roles : dict of str to str
        Every feature candidate's role: ``"numeric"``, ``"categorical"`` or ``"drop"``.
    reasons : dict of str to str
        Why a column was dropped (``"constant"``, ``"row numbers"``, ``"ID-like"``,
        ``"data.drop"``).
    warnings : list of str
        One line each, for the run output and ``summary.json``.
    """

    roles: dict[str, str]
    reasons: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of(self, role: str) -> list[str]:
        return [n for n, r in self.roles.items() if r == role]

    def to_dict(self) -> dict[str, object]:
        return {
            "numeric": self.of("numeric"),
            "categorical": self.of("categorical"),
            "dropped": {n: self.reasons.get(n, "") for n in self.of("drop")},
            "warnings": list(self.warnings),
        }


def _check_names(table: Table, names: Iterable[str], key: str) -> list[str]:
    names = list(names)
    for name in names:
        if name not in table:
            close = difflib.get_close_matches(name, table.names, n=1, cutoff=0.0)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"config key '{key}' names column {name!r}, which {table.source} does not "
                f"have{hint}"
            )
    return names


def _is_row_numbers(values: np.ndarray) -> bool:
    if values.dtype.kind != "f" or np.isnan(values).any():
        return False
    n = len(values)
    steps = np.arange(n, dtype=np.float64)
    return bool(np.array_equal(values, steps) or np.array_equal(values, steps + 1))


def _is_constant(values: np.ndarray) -> bool:
    """One value and no missing cell (a column that is all missing counts as constant too)."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.all():
            return True
        return not missing.any() and bool(np.nanmin(values) == np.nanmax(values))
    present = set(values.tolist())
    return present == {None} or (len(present) == 1 and None not in present)


def _is_id_like(values: np.ndarray) -> bool:
    n = len(values)
    if n < 20:
        return False
    if values.dtype.kind != "f":
        present = set(values.tolist())
        return None not in present and len(present) == n
    if np.isnan(values).any() or float(values.max() - values.min()) != n - 1:
        return False
    return bool(np.all(values == np.round(values))) and np.unique(values).size == n


def id_warning(name: str, n: int) -> str:
    """The warning for column ``name`` dropped as an identifier (``n`` distinct values)."""
    return (
        f"column {name!r} looks like an identifier (all {n} values distinct) and is not used; "
        "name it in data.numeric or data.categorical to use it"
    )


def infer_roles(
    table: Table,
    target: str | Iterable[str] | None,
    *,
    numeric: Iterable[str] = (),
    categorical: Iterable[str] = (),
    drop: Iterable[str] = (),
    weight: str | None = None,
) -> ColumnRoles:
    """Decide each column's role (see the module docstring for the rules)."""
    targets = [target] if isinstance(target, str) else list(target or [])
    numeric = _check_names(table, numeric, "data.numeric")
    categorical = _check_names(table, categorical, "data.categorical")
    drop = _check_names(table, drop, "data.drop")
    for a, b, name_a, name_b in (
        (numeric, categorical, "data.numeric", "data.categorical"),
        (numeric, drop, "data.numeric", "data.drop"),
        (categorical, drop, "data.categorical", "data.drop"),
    ):
        both = set(a) & set(b)
        if both:
            raise DataError(f"column {sorted(both)[0]!r} is in both {name_a} and {name_b}")
    excluded = {*targets, *([weight] if weight else [])}
    for name in excluded & (set(numeric) | set(categorical)):
        raise DataError(f"column {name!r} is the target or weight column; it cannot be a feature")
    roles: dict[str, str] = {}
    reasons: dict[str, str] = {}
    warnings: list[str] = []
    for j, name in enumerate(table.names):
        if name in excluded:
            continue
        values = table[name]
        if name in drop:
            roles[name], reasons[name] = "drop", "data.drop"
        elif name in numeric:
            if values.dtype.kind != "f":
                bad = next(v for v in values if v is not None and not _number(v))
                raise DataError(
                    f"config key 'data.numeric': column {name!r} holds text ({bad!r}); it "
                    "cannot be numeric"
                )
            roles[name] = "numeric"
        elif name in categorical:
            roles[name] = "categorical"
        elif j == 0 and name in _ROW_NUMBER_NAMES and _is_row_numbers(values):
            roles[name], reasons[name] = "drop", "row numbers"
        elif _is_constant(values):
            roles[name], reasons[name] = "drop", "constant"
        elif _is_id_like(values):
            roles[name], reasons[name] = "drop", "ID-like"
            warnings.append(id_warning(name, len(values)))
        else:
            roles[name] = "numeric" if values.dtype.kind == "f" else "categorical"
    if not any(r != "drop" for r in roles.values()):
        raise DataError(f"{table.source}: no feature columns left besides the target")
    return ColumnRoles(roles, reasons, warnings)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
