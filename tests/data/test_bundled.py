import numpy as np
import pytest

from deepfit.data import breast_cancer, circles, digits, iris, moons, wine
from deepfit.errors import DataError

pytest.importorskip("sklearn")


def test_digits():
    ds = digits()
    assert ds.X.shape == (1797, 64) and ds.X.dtype == np.float32
    assert ds.image_shape == (8, 8)
    assert ds.class_names == tuple(str(d) for d in range(10))
    assert ds.X.min() == 0 and ds.X.max() == 16
    assert ds.y.dtype == np.int64 and set(np.unique(ds.y)) == set(range(10))
    assert ds.feature_names[0] == "pixel_0_0"


@pytest.mark.parametrize(
    "loader, shape, names",
    [
        (iris, (150, 4), ("setosa", "versicolor", "virginica")),
        (wine, (178, 13), ("class_0", "class_1", "class_2")),
        (breast_cancer, (569, 30), ("malignant", "benign")),
    ],
)
def test_tabular_sets(loader, shape, names):
    ds = loader()
    assert ds.X.shape == shape and ds.X.dtype == np.float32
    assert ds.class_names == names and ds.task == "classification"
    assert ds.image_shape is None and len(ds.feature_names) == shape[1]
    assert ds.y.max() == len(names) - 1


@pytest.mark.parametrize("make", [moons, circles])
def test_toy_sets_are_deterministic_and_balanced(make):
    a, b = make(101, noise=0.1, rng=3), make(101, noise=0.1, rng=3)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, make(101, noise=0.1, rng=4).X)
    assert a.X.shape == (101, 2) and a.X.dtype == np.float32
    assert np.bincount(a.y).tolist() == [51, 50]


def test_noise_free_geometry():
    c = circles(200, noise=0.0, factor=0.3, rng=0)
    r = np.hypot(c.X[:, 0], c.X[:, 1])
    np.testing.assert_allclose(r[c.y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(r[c.y == 1], 0.3, atol=1e-6)
    m = moons(200, noise=0.0, rng=0)
    outer = m.X[m.y == 0]
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1.0, atol=1e-6)
    inner = m.X[m.y == 1]
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1.0, atol=1e-6)


def test_generator_stream_advances():
    gen = np.random.default_rng(0)
    assert not np.array_equal(moons(50, rng=gen).X, moons(50, rng=gen).X)


@pytest.mark.parametrize("kw", [dict(n_samples=1), dict(noise=-1.0), dict(n_samples=2.5)])
def test_toy_sets_validate(kw):
    with pytest.raises(DataError):
        moons(**kw)
    with pytest.raises(DataError, match="factor"):
        circles(10, factor=1.5)
