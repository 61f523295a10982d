import numpy as np
import pytest

from deepfit.data import Standardizer, train_dev_test_split
from deepfit.errors import DataError


def test_formula_and_population_std():
    X = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 60.0]])
    s = Standardizer().fit(X)
    np.testing.assert_allclose(s.mean_, [3.0, 30.0])
    np.testing.assert_allclose(s.std_, X.std(axis=0, ddof=0))
    Z = s.transform(X)
    np.testing.assert_allclose(Z, (X - X.mean(0)) / X.std(0))
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0), 1)
    np.testing.assert_allclose(s.inverse_transform(Z), X)


def test_constant_column_maps_to_zero():
    X = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0]], np.float32)
    Z = Standardizer().fit_transform(X)
    assert np.all(Z[:, 0] == 0) and np.all(np.isfinite(Z))
    assert Z.dtype == np.float32


def test_statistics_come_from_training_split_only():
    rng = np.random.default_rng(0)
    X = rng.normal(5, 2, (400, 3)).astype(np.float32)
    X[300:] += 100  # a distribution shift that fitting on all data would leak
    y = np.zeros(400)
    split = train_dev_test_split(X, y, (0.5, 0.25, 0.25), rng=0, stratify=False)
    X_train = split.train[0]
    s = Standardizer().fit(X_train)
    np.testing.assert_allclose(s.mean_, X_train.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.std_, X_train.astype(np.float64).std(0), rtol=1e-12)
    assert not np.allclose(s.mean_, X.astype(np.float64).mean(0))
    # transforming the test set uses the training statistics, not its own
    X_test = split.test[0]
    Z = s.transform(X_test)
    np.testing.assert_allclose(Z, (X_test - s.mean_) / s.std_, rtol=1e-5)


def test_state_dict_roundtrip_is_plain_arrays():
    X = np.random.default_rng(1).normal(size=(20, 4))
    s = Standardizer().fit(X)
    state = s.state_dict()
    assert set(state) == {"mean", "std"}
    assert all(type(v) is np.ndarray for v in state.values())
    state["mean"][0] = 99.0  # a copy: the fitted standardizer is unaffected
    assert s.mean_[0] != 99.0
    t = Standardizer().load_state_dict(s.state_dict())
    np.testing.assert_array_equal(t.transform(X), s.transform(X))
    with pytest.raises(DataError, match="missing key 'std'"):
        Standardizer().load_state_dict({"mean": np.zeros(2)})
    with pytest.raises(DataError, match="equal"):
        Standardizer().load_state_dict({"mean": np.zeros(2), "std": np.ones(3)})
    with pytest.raises(DataError, match="positive"):
        Standardizer().load_state_dict({"mean": np.zeros(2), "std": np.zeros(2)})


def test_refusals():
    s = Standardizer()
    with pytest.raises(DataError, match="transform called before fit"):
        s.transform(np.zeros((2, 2)))
    with pytest.raises(DataError, match="before fit"):
        s.state_dict()
    s.fit(np.arange(6.0).reshape(3, 2))
    with pytest.raises(
        DataError,
        match=r"X has shape \(4, 3\) but the standardizer was fitted "
        r"on 2 columns",
    ):
        s.transform(np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"2-D"):
        s.transform(np.zeros(2))
    with pytest.raises(DataError, match="no rows"):
        Standardizer().fit(np.zeros((0, 2)))
    with pytest.raises(DataError, match="row 2, column 1 is nan"):
        Standardizer().fit(np.array([[1.0, 2.0], [3.0, np.nan]]))
    assert "n_features=2" in repr(s) and "unfitted" in repr(Standardizer())


def test_integer_input_gives_float32():
    s = Standardizer().fit(np.array([[0, 2], [2, 4]]))
    assert s.transform(np.array([[1, 3]])).dtype == np.float32
    np.testing.assert_array_equal(s.transform(np.array([[1, 3]])), [[0, 0]])
