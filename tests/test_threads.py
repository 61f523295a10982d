"""BLAS threads while training (deepfit.threads, train.threads)."""

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

import deepfit as df  # noqa: E402
from deepfit import threads  # noqa: E402
from deepfit.build import build_trainer_options  # noqa: E402
from deepfit.config import ConfigError, validate  # noqa: E402
from deepfit.errors import DeepfitError  # noqa: E402
from deepfit.training.callbacks import Callback  # noqa: E402


def blas_limits() -> set[int]:
    """Thread counts of NumPy's own BLAS (SciPy, loaded on the way, brings its own)."""
    return {
        info["num_threads"]
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas" and "numpy" in info["filepath"]
    }


class RecordThreads(Callback):
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        self.seen |= blas_limits()


def test_largest_product_is_the_widest_dense_layer_times_the_batch():
    assert threads.largest_product(df.mlp(12, [128], 2, rng=0), 128) == 128 * 12 * 128
    assert threads.largest_product(df.mlp(784, [512, 512], 10, rng=0), 128) == 128 * 784 * 512
    residual = df.mlp(12, [64, 64], 2, rng=0, residual=True)
    assert threads.largest_product(residual, 32) == 32 * 64 * 64  # the blocks' inner layers
    packed = df.mlp(12, [64, 64], 2, rng=0, ensemble=4)  # one BLAS call per member
    assert threads.largest_product(packed, 32) == 32 * 64 * 64


def test_automatic_threads_one_for_small_products_blas_alone_for_large():
    small, large = df.mlp(12, [128], 2, rng=0), df.mlp(784, [512, 512], 10, rng=0)
    assert threads.blas_threads(0, small, 128) == 1
    assert threads.blas_threads(0, large, 128) is None
    assert threads.blas_threads(3, small, 128) == 3


def test_fit_runs_under_the_cap_and_puts_blas_back():
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_limits()
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((64, 5)).astype(np.float32), rng.integers(0, 2, 64)
        record = RecordThreads()
        trainer = df.Trainer(df.mlp(5, [8], 2, rng=0), batch_size=16, callbacks=[record])
        trainer.fit(X, y, epochs=2)
        assert record.seen == {1}
        assert blas_limits() == before
        explicit = RecordThreads()
        trainer = df.Trainer(
            df.mlp(5, [8], 2, rng=0), batch_size=16, callbacks=[explicit], threads=2
        )
        trainer.fit(X, y, epochs=1)
        assert explicit.seen == {2} or explicit.seen == before  # a 1-core BLAS stays at 1


def test_the_cap_changes_no_number():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((96, 6)), rng.integers(0, 3, 96)
    weights = []
    for n in (0, 1, 2):
        model = df.mlp(6, [16], 3, rng=0, dtype="float64")
        df.Trainer(model, batch_size=32, threads=n).fit(X, y, epochs=3)
        weights.append(np.concatenate([p.ravel() for p in model.params.values()]))
    np.testing.assert_array_equal(weights[0], weights[1])
    np.testing.assert_allclose(weights[0], weights[2], rtol=1e-12, atol=1e-14)


def test_bad_threads_are_one_line():
    model = df.mlp(3, [4], 2, rng=0)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(DeepfitError, match="threads must be an integer >= 0"):
            df.Trainer(model, threads=bad)
    with pytest.raises(ConfigError, match="config key 'train.threads' must be an integer >= 0"):
        validate({"train": {"threads": -2}})
    assert build_trainer_options(validate({"train": {"threads": 2}}))["threads"] == 2
    assert build_trainer_options(validate({}))["threads"] == 0


def test_without_threadpoolctl_auto_trains_and_an_explicit_cap_is_one_line(monkeypatch):
    monkeypatch.setattr(threads, "_CONTROLLER", [None])
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 3)).astype(np.float32), rng.integers(0, 2, 32)
    df.Trainer(df.mlp(3, [4], 2, rng=0), batch_size=16).fit(X, y, epochs=1)
    trainer = df.Trainer(df.mlp(3, [4], 2, rng=0), batch_size=16, threads=1)
    with pytest.raises(DeepfitError, match=r"threads = 1 needs threadpoolctl: pip install"):
        trainer.fit(X, y, epochs=1)
