"""What every lab experiment shares: the result record, the table writers, figures, data.

A lab experiment is a module with ``NAME``, ``TITLE`` and ``run(out, quick=False)``; ``run``
trains (through :func:`deepfit.experiment.run` wherever the run is a config), draws
``out/NAME.png`` and returns a :class:`LabResult`, which :func:`write` turns into
``out/NAME.md`` and ``out/NAME.json``.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfit import config as configuration
from deepfit import plots
from deepfit.errors import DataError
from deepfit.experiment import PreparedData
from deepfit.io import atomic_write_text
from deepfit.plots import pyplot  # noqa: F401  (re-exported for the experiments)

MNIST_ENV = "DEEPFIT_MNIST10K"


@dataclass
class LabResult:
    """The outcome of one lab experiment.

    ``rows`` are the table: dicts with ``quantity``, ``ours``, ``published`` (``None`` where
    the source gives no number) and ``note`` (why ours differs). ``checks`` are the claim's
    direction as booleans (what the reduced tests assert). ``data`` holds the curves behind
    the figure (JSON-ready).
    """

    name: str
    title: str
    claim: str
    source: str
    rows: list[dict[str, Any]]
    checks: dict[str, bool]
    data: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    seconds: float = 0.0
    figure: str = ""
    setup: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "claim": self.claim,
            "source": self.source,
            "setup": self.setup,
            "quick": self.quick,
            "seconds": round(self.seconds, 2),
            "figure": self.figure,
            "checks": self.checks,
            "rows": self.rows,
            "data": self.data,
        }


def row(quantity: str, ours: Any, published: Any = None, note: str = "") -> dict[str, Any]:
    return {"quantity": quantity, "ours": ours, "published": published, "note": note}


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or math.isnan(value):
            return f"{value:g}"
        if abs(value) < 1e-3 or abs(value) >= 1e5:
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown(result: LabResult) -> str:
    """The table page: title, claim, setup, one row per quantity, checks, runtime."""
    lines = [
        f"# {result.title}",
        "",
        f"**Claim.** {result.claim}",
        "",
        f"**Source.** {result.source}",
        "",
    ]
    if result.setup:
        lines += [f"**Setup.** {result.setup}", ""]
    lines += [
        "| quantity | ours | published | notes |",
        "| --- | --- | --- | --- |",
    ]
    for r in result.rows:
        lines.append(
            f"| {_cell(r['quantity'])} | {_cell(r['ours'])} | {_cell(r['published'])} "
            f"| {_cell(r['note'])} |"
        )
    lines += ["", "Claim checks (the reduced test asserts these on the `--quick` run):", ""]
    lines += [f"- {k}: {'holds' if v else '**fails**'}" for k, v in result.checks.items()]
    mode = "quick (reduced)" if result.quick else "full"
    lines += [
        "",
        f"Run: `deepfit lab {result.name}{' --quick' if result.quick else ''}` ({mode}, "
        f"{result.seconds:.1f} s). Figure: `{result.figure}`.",
        "",
    ]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write(result: LabResult, out: str | Path) -> list[Path]:
    """Write ``NAME.md`` and ``NAME.json`` into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = atomic_write_text(out / f"{result.name}.md", markdown(result))
    js = atomic_write_text(
        out / f"{result.name}.json", json.dumps(_jsonable(result.to_dict()), indent=1) + "\n"
    )
    return [Path(md), Path(js)]


# -- figures --------------------------------------------------------------------------------
def save_figure(fig, path: str | Path, dpi: int = 80) -> Path:
    """Save a PNG small enough to commit (~100 KB)."""
    return plots.save_figure(fig, path, dpi=dpi)


# -- data -----------------------------------------------------------------------------------
def mnist_dir() -> Path:
    """The 10,000 MNIST digits: ``$DEEPFIT_MNIST10K`` or ``../shared/data/mnist10k`` beside
    the repository."""
    env = os.environ.get(MNIST_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mnist10k"


def mnist_available() -> bool:
    return (mnist_dir() / "mnist10k-images-idx3-ubyte.gz").exists()


def require_mnist(experiment: str) -> None:
    """Refuse in one line, naming the folder, when the MNIST subset is missing."""
    if not mnist_available():
        raise DataError(
            f"{mnist_dir()}: the MNIST subset is missing; lab experiment {experiment!r} needs "
            f"it (set ${MNIST_ENV} to its folder)"
        )


_MNIST_CACHE: dict[str, Any] = {}


def mnist(n_train: int, n_test: int = 2000, seed: int = 0):
    """``n_train`` training and ``n_test`` test digits (disjoint), pixels scaled to [0, 1].

    The test digits are always the last ``n_test`` of the (already shuffled) file, so runs
    with different ``n_train`` share one test set; training digits are drawn from the rest.
    """
    from deepfit.data import idx

    folder = mnist_dir()
    if "ds" not in _MNIST_CACHE:
        images = folder / "mnist10k-images-idx3-ubyte.gz"
        if not images.exists():
            raise DataError(
                f"{folder}: the MNIST subset is missing (set ${MNIST_ENV} to its folder)"
            )
        _MNIST_CACHE["ds"] = idx(images, folder / "mnist10k-labels-idx1-ubyte.gz", scale=True)
    ds = _MNIST_CACHE["ds"]
    n = ds.X.shape[0]
    if n_train + n_test > n:
        raise DataError(f"asked for {n_train} + {n_test} MNIST digits; there are {n}")
    rest = np.random.default_rng(seed).permutation(n - n_test)[:n_train]
    return ds.X[rest], ds.y[rest], ds.X[n - n_test :], ds.y[n - n_test :]


def prepared(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    dev: tuple[np.ndarray, np.ndarray] | None = None,
    name: str = "",
    task: str = "classification",
) -> PreparedData:
    """Fixed splits for :func:`deepfit.experiment.run` (the lab's data are already split and
    scaled as the source did it, so the config's split/normalize are bypassed).
    ``task="regression"`` takes real targets and ``n_classes`` is the number of outputs."""
    X = train[0]
    empty = (np.zeros((0, X.shape[1]), np.float32), np.zeros(0, train[1].dtype))
    classes = task == "classification"
    return PreparedData(
        train=(np.asarray(train[0], np.float32), train[1]),
        dev=(np.asarray(dev[0], np.float32), dev[1]) if dev is not None else empty,
        test=(np.asarray(test[0], np.float32), test[1]),
        task=task,
        n_outputs=n_classes,
        standardizer=None,
        class_names=[str(k) for k in range(n_classes)] if classes else None,
        feature_names=None,
        image_shape=None,
        name=name,
    )


def config(
    hidden: Sequence[int],
    *,
    model: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    diagnose: dict[str, Any] | None = None,
    **train: Any,
) -> dict[str, Any]:
    """A validated config with early stopping off (the lab trains for a fixed budget). Every
    value goes through validation: nothing is put in afterwards."""
    return configuration.validate(
        {
            "data": dict(data or {}),
            "model": {"hidden": list(hidden), **(model or {})},
            "train": {"early_stopping": {"enabled": False}, **train},
            "diagnose": dict(diagnose or {}),
        }
    )


def run_config(
    cfg: dict[str, Any], data: PreparedData | None = None, callbacks=()
) -> dict[str, Any]:
    """One training run through :func:`deepfit.experiment.run` (no run directory); without
    ``data`` the config's own ``[data]`` is loaded, split and normalized."""
    from deepfit import experiment

    return experiment.run(
        cfg, None, progress=False, write_plots=False, prepared=data, callbacks=callbacks
    )


def run_or_none(
    cfg: dict[str, Any], data: PreparedData | None = None, callbacks=()
) -> dict[str, Any] | None:
    """:func:`run_config`, or ``None`` when training diverged before an epoch ended (a run
    that diverges later stops with its last finite weights and a ``stop_reason``). The
    divergence warning is silenced: a sweep expects some runs to diverge."""
    from deepfit.training.trainer import TrainingDiverged

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return run_config(cfg, data, callbacks)
    except TrainingDiverged:
        return None


def digits(seed: int = 0, hidden: Sequence[int] = (64,)) -> PreparedData:
    """The bundled 8x8 digits through the config pipeline: auto split (60/20/20, seeded by
    ``seed``), standardized on the training split."""
    from deepfit.experiment import prepare

    return prepare(config(list(hidden), data={"source": "digits"}, seed=seed))


def mnist_config(
    hidden: Sequence[int],
    n_train: int,
    n_dev: int,
    n_test: int = 2000,
    *,
    augment: Sequence[str] = (),
    model: dict[str, Any] | None = None,
    **train: Any,
) -> dict[str, Any]:
    """A config that reads the MNIST subset itself (source ``idx``, pixels / 255): ``n_train``
    training, ``n_dev`` dev and ``n_test`` test digits drawn from the 10,000 (``max_examples``
    and ``split``), ``augment`` on the training batches, as ``examples/mnist_subset.toml``
    does."""
    folder = mnist_dir()
    n = n_train + n_dev + n_test
    return config(
        hidden,
        model=model,
        data={
            "source": "idx",
            "images": str(folder / "mnist10k-images-idx3-ubyte.gz"),
            "labels": str(folder / "mnist10k-labels-idx1-ubyte.gz"),
            "normalize": "scale",
            "max_examples": n,
            "split": [n_train / n, n_dev / n, n_test / n],
            "augment": list(augment),
        },
        **train,
    )


def hidden_preactivations(model, X: np.ndarray) -> list[np.ndarray]:
    """The input ``z`` of every hidden activation layer, in inference mode, layer by layer."""
    from deepfit.nn.activations import LeakyReLU, ReLU, Sigmoid, Tanh

    acts = (ReLU, LeakyReLU, Tanh, Sigmoid)
    out = []
    x = np.asarray(X, dtype=model.dtype)
    for layer in model.layers:
        if isinstance(layer, acts):
            out.append(np.asarray(x, dtype=np.float64))
        x = layer.forward(x, training=False)
    return out


def sklearn_toy(kind: str, n_samples: int, noise: float, seed: int):
    """scikit-learn's ``make_circles``/``make_moons`` with ``random_state=seed``: the same
    points as the notebooks' ``np.random.seed(seed); make_...(...)``. Falls back to deepfit's
    own generators (same construction, other draws) without scikit-learn."""
    try:
        from sklearn import datasets as skd
    except ImportError:
        from deepfit import data

        ds = getattr(data, kind)(n_samples=n_samples, noise=noise, rng=seed)
        return ds.X, ds.y, False
    X, y = getattr(skd, f"make_{kind}")(n_samples=n_samples, noise=noise, random_state=seed)
    return X.astype(np.float64), y.astype(np.int64), True
