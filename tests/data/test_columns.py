"""Column roles: inference rules and overrides."""

from __future__ import annotations

import numpy as np
import pytest

from deepfit.data.columns import infer_roles
from deepfit.data.tables import from_arrays
from deepfit.errors import DataError


def table(**cols):
    return from_arrays({k: np.asarray(v, dtype=object) for k, v in cols.items()}, source="t.csv")


def test_inferred_roles_and_reasons():
    n = 30
    t = from_arrays(
        {
            "": np.arange(1, n + 1),  # R's row names
            "id": np.arange(100, 100 + n)[::-1],  # a permutation of a consecutive run
            "name": [f"person {i}" for i in range(n)],  # text, all distinct
            "x": np.linspace(0, 1, n),  # numeric, all distinct but not whole numbers
            "const": np.ones(n),
            "flag": ["TRUE", "FALSE"] * (n // 2),
            "city": ["a", "b", "c"] * (n // 3),
            "y": np.arange(n) % 2,
        },
        source="t.csv",
    )
    roles = infer_roles(t, "y")
    assert roles.of("numeric") == ["x"]
    assert roles.of("categorical") == ["flag", "city"]
    assert roles.reasons == {
        "": "row numbers",
        "id": "ID-like",
        "name": "ID-like",
        "const": "constant",
    }
    assert len(roles.warnings) == 2 and "'id'" in roles.warnings[0]
    assert roles.to_dict()["dropped"]["const"] == "constant"


def test_overrides_win():
    n = 30
    t = from_arrays({"id": np.arange(n), "k": np.arange(n) % 3, "y": np.arange(n)})
    roles = infer_roles(t, "y", numeric=["id"], categorical=["k"])
    assert roles.roles == {"id": "numeric", "k": "categorical"}
    assert infer_roles(t, "y", drop=["k"], numeric=["id"]).roles == {"id": "numeric", "k": "drop"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"numeric": ["nope"]}, r"data\.numeric' names column 'nope'.*did you mean"),
        ({"numeric": ["a"], "drop": ["a"]}, "in both data.numeric and data.drop"),
        ({"categorical": ["y"]}, "target or weight column"),
        ({"numeric": ["c"]}, r"column 'c' holds text \('u'\)"),
        ({"drop": ["a", "c"]}, "no feature columns left"),
    ],
)
def test_bad_overrides_are_one_line(kwargs, message):
    t = table(a=[1.0, 2.0, 3.0], c=["u", "v", "w"], y=[0, 1, 0])
    with pytest.raises(DataError, match=message):
        infer_roles(t, "y", **kwargs)
