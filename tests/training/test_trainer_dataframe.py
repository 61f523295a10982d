"""Trainer with pandas DataFrames: columns matched by name, text refused (issue 14, Also)."""

from __future__ import annotations

import numpy as np
import pytest

import deepfit as df
from deepfit.errors import DataError

pd = pytest.importorskip("pandas")


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    y = (a + 2 * b - c > 0).astype(int)
    return pd.DataFrame({"a": a, "b": b, "c": c}), y


def test_columns_are_matched_by_name():
    X, y = _frame()
    trainer = df.Trainer(df.mlp(3, [8], 2, rng=0), optimizer=df.Adam(0.01), seed=0)
    trainer.fit(X, y, epochs=5)
    shuffled = X[["c", "a", "b"]]
    np.testing.assert_array_equal(trainer.predict(shuffled), trainer.predict(X))
    assert trainer.evaluate(shuffled, y) == trainer.evaluate(X, y)
    with pytest.raises(DataError, match="no column 'b'; the model was fitted on columns a, b, c"):
        trainer.predict(X[["a", "c"]].assign(d=1.0))


def test_text_columns_are_refused_with_a_pointer():
    X, y = _frame()
    X["city"] = "Paris"
    trainer = df.Trainer(df.mlp(4, [8], 2, rng=0))
    with pytest.raises(DataError, match="column 'city' holds text.*deepfit train --data"):
        trainer.fit(X, y, epochs=1)
