"""One run from one config: data -> model -> trainer -> evaluation, diagnosis, run directory.

The command line, every tuning trial and every lab experiment call :func:`run`; none of them
rebuilds the pipeline. A run directory holds ``config.toml`` (the resolved config, every
default written out), ``metrics.csv``, ``checkpoint.npz``, ``model.npz``, ``summary.json`` and
the plots.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepfit import data as datasets
from deepfit import metrics
from deepfit.build import (
    build_averaging,
    build_callbacks,
    build_early_stopping,
    build_loss,
    build_model,
    build_optimizer,
    build_schedule,
    build_snapshots,
    build_trainer_options,
    loss_name,
    streams,
)
from deepfit.bundle import ModelBundle
from deepfit.checks.biasvariance import LearningCurve, diagnose, diagnose_metrics
from deepfit.config import ConfigError, dumps
from deepfit.data.batches import BatchSource
from deepfit.data.preprocess import TargetEncoder
from deepfit.errors import DataError, DeepfitError
from deepfit.io import FileLock, atomic_write_text, save
from deepfit.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    claim,
    discard,
    entries,
)
from deepfit.training.callbacks import Callback, Checkpoint, MetricsLog, Progress
from deepfit.training.trainer import Trainer, TrainingDiverged


# -- data -------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    """Splits ready for training (normalized), and what the model file needs to know."""

    train: tuple[np.ndarray, np.ndarray]
    dev: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    task: str
    n_outputs: int
    standardizer: dict[str, Any] | None
    class_names: list[str] | None
    feature_names: list[str] | None
    image_shape: tuple[int, ...] | None
    name: str = ""
    augment: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    train_weight: np.ndarray | None = None
    dev_weight: np.ndarray | None = None
    preprocessor: Any = None  # a fitted data.preprocess.TablePreprocessor (tables only)
    target: Any = None  # a fitted data.preprocess.TargetEncoder (tables only)
    notes: list[str] = field(default_factory=list)


def is_table_source(cfg: dict[str, Any]) -> bool:
    """Whether ``[data]`` names a table (CSV or Parquet) read through the tabular path."""
    if cfg["source"] in ("parquet", "npy"):
        return True
    return cfg["source"] == "csv" and not cfg["path"].endswith(".npz")


def prepare_table_data(
    config: dict[str, Any], table: Any = None, *, fold: tuple[int, int] | None = None
) -> PreparedData:
    """The tabular path (:mod:`deepfit.data.pipeline`) as :class:`PreparedData`; ``fold`` as
    in :func:`prepare`."""
    from deepfit.data.pipeline import prepare_table

    seed = streams(config["train"]["seed"])["data"]
    t = prepare_table(config["data"], seed=seed, table=table, fold=fold)
    if t.task == "classification":
        n_outputs = len(t.target.class_names)
    else:
        n_outputs = 1 if t.train[1].ndim == 1 else t.train[1].shape[1]
    return PreparedData(
        train=t.train,
        dev=t.dev,
        test=t.test,
        task=t.task,
        n_outputs=n_outputs,
        standardizer=None,
        class_names=t.target.class_names,
        feature_names=t.preprocessor.input_columns,
        image_shape=None,
        name=t.name,
        extra={"columns": t.roles.to_dict(), "data_report": t.reports},
        train_weight=t.train_weight,
        dev_weight=t.dev_weight,
        preprocessor=t.preprocessor,
        target=t.target,
        notes=t.notes,
    )


def prepare_stream_data(config: dict[str, Any]) -> PreparedData:
    """The tabular path streamed from disk (:mod:`deepfit.data.streaming`): ``train`` is
    ``(TableStream, None)``, the dev and test splits arrays."""
    from deepfit.data.streaming import prepare_stream

    cfg, batch = config["data"], config["train"]["batch_size"]
    if cfg["shuffle_buffer"] < batch:
        raise ConfigError(
            f"config key 'data.shuffle_buffer' = {cfg['shuffle_buffer']} must hold at least one "
            f"batch (train.batch_size = {batch})"
        )
    t = prepare_stream(cfg, seed=streams(config["train"]["seed"])["data"])
    classes = t.target.class_names
    return PreparedData(
        train=(t.train, None),
        dev=t.dev,
        test=t.test,
        task=t.task,
        n_outputs=len(classes) if t.task == "classification" else 1,
        standardizer=None,
        class_names=classes,
        feature_names=t.preprocessor.input_columns,
        image_shape=None,
        name=t.name,
        extra={"columns": t.roles.to_dict(), "data_report": t.reports},
        dev_weight=t.dev_weight,
        preprocessor=t.preprocessor,
        target=t.target,
        notes=t.notes,
    )


def _load_file(path: str, cfg: dict[str, Any], task: str | None = None) -> datasets.Dataset:
    """A data file of the config's source; ``task`` (the training data's, for a separate dev
    or test file) wins over ``data.task`` and over any guess from this file's values."""
    task = task or (None if cfg["task"] == "auto" else cfg["task"])
    if cfg["source"] == "images":
        return datasets.images(path, cfg["image_size"], cfg["color"])
    if path.endswith(".npz"):
        return datasets.npz(path, task=task)
    return datasets.csv(path, target=cfg["target"], task=task)


def load_source(cfg: dict[str, Any], seed: int) -> tuple[datasets.Dataset, datasets.Dataset | None]:
    """The dataset named by ``[data]`` and, for sources with an official test split, that."""
    source = cfg["source"]
    if source in ("digits", "breast_cancer", "wine", "iris"):
        return getattr(datasets, source)(), None
    if source in ("circles", "moons"):
        return getattr(datasets, source)(
            n_samples=cfg["n_samples"], noise=cfg["noise"], rng=seed
        ), None
    if source == "idx":
        return datasets.idx(cfg["images"], cfg["labels"]), None
    if source in ("mnist", "fashion_mnist"):
        train, test = getattr(datasets, source)(cfg["cache_dir"] or None)
        return train, test
    if source in ("csv", "npz"):
        return _load_file(cfg["path"], cfg), None
    if source == "images":
        return datasets.images(cfg["path"], cfg["image_size"], cfg["color"]), None
    raise ConfigError(f"config key 'data.source' has no loader for {source!r}")


def _relabel(extra: datasets.Dataset, main: datasets.Dataset, where: str) -> np.ndarray:
    """Labels of a separate dev/test file as indices of the training file's classes."""
    if main.class_names is None:
        return extra.y
    raw = np.asarray(extra.class_names, dtype=object)[extra.y]
    return datasets.encode_labels(raw, main.class_names, source=where)


def prepare(config: dict[str, Any], *, fold: tuple[int, int] | None = None) -> PreparedData:
    """Load, subsample, split, normalize (fitted on train only) and set up augmentation.

    ``fold = (i, k)``: cross-validation fold ``i`` of ``k`` (``tune.cv``): the test split is
    the usual one, the dev set is fold ``i`` of the other rows and the training set the rest
    (:func:`deepfit.data.split.train_dev_test_split`); every scaler, category level and
    imputed value is fitted on that training set alone."""
    cfg = config["data"]
    if is_table_source(cfg):
        from deepfit.data.streaming import read_npy_table, should_stream

        if should_stream(cfg):
            if fold is not None:
                raise ConfigError(
                    "config key 'tune.cv' trains on folds of a table in memory; this table "
                    "is streamed from disk (data.stream): set data.stream = false or tune.cv = 1"
                )
            return prepare_stream_data(config)
        if cfg["source"] == "npy":
            return prepare_table_data(
                config, read_npy_table(cfg["path"], cfg["na_values"]), fold=fold
            )
        return prepare_table_data(config, fold=fold)
    if cfg.get("stream") is True:
        raise ConfigError(
            f"config key 'data.stream' applies to tables (parquet, npy); source "
            f"{cfg['source']!r} is read into memory"
        )
    if cfg["normalize"] in ("robust", "quantile"):
        raise ConfigError(
            f"config key 'data.normalize' = {cfg['normalize']!r} applies to tables (csv, "
            f"parquet); source {cfg['source']!r} takes 'standardize', 'scale' or 'none'"
        )
    seed = streams(config["train"]["seed"])["data"]
    main, official_test = load_source(cfg, seed)
    X, y = main.X, main.y
    if cfg["max_examples"] and X.shape[0] > cfg["max_examples"]:
        keep = np.sort(np.random.default_rng(seed).permutation(X.shape[0])[: cfg["max_examples"]])
        X, y = X[keep], y[keep]
    dev = test = None
    if official_test is not None:
        test = (official_test.X, _relabel(official_test, main, "test set"))
    for field_name in ("dev_path", "test_path"):
        if cfg[field_name]:
            extra = _load_file(cfg[field_name], cfg, task=main.task)
            if extra.n_features != main.n_features:
                raise DataError(
                    f"{cfg[field_name]}: {extra.n_features} features, the training data has "
                    f"{main.n_features}"
                )
            pair = (extra.X, _relabel(extra, main, cfg[field_name]))
            if field_name == "dev_path":
                dev = pair
            else:
                test = pair
    fractions = cfg["split"]
    if fractions != "auto":
        fractions = list(fractions)
        if dev is not None:
            fractions = [fractions[0] + fractions[1], 0.0, fractions[2]]
        if test is not None:
            fractions = [fractions[0] + fractions[2], fractions[1], 0.0]
    split = datasets.train_dev_test_split(X, y, fractions, rng=seed, dev=dev, test=test, fold=fold)
    (Xtr, ytr), (Xd, yd), (Xte, yte) = split
    standardizer = None
    if cfg["normalize"] in ("standardize", "auto"):
        scaler = datasets.Standardizer().fit(Xtr)
        standardizer = scaler.state_dict()
    elif cfg["normalize"] == "scale":
        peak = float(np.abs(Xtr).max()) or 1.0
        standardizer = {"mean": np.zeros(Xtr.shape[1]), "std": np.full(Xtr.shape[1], peak)}

    def normalized(A: np.ndarray) -> np.ndarray:
        if standardizer is None:
            return A.astype(np.float32, copy=False)
        return ((A - standardizer["mean"]) / standardizer["std"]).astype(np.float32)

    augment = None
    if cfg["augment"]:
        if main.image_shape is None:
            raise ConfigError(
                f"config key 'data.augment' needs image-shaped data; source {cfg['source']!r} "
                f"is tabular"
            )
        parts = {
            "flip": lambda: datasets.HorizontalFlip(main.image_shape),
            "crop": lambda: datasets.RandomCrop(main.image_shape, padding=2),
            "shift": lambda: datasets.RandomShift(main.image_shape, max_shift=2),
        }
        augment = datasets.Compose(*(parts[name]() for name in cfg["augment"]))
    target = None
    if main.task == "classification":
        n_outputs = len(main.class_names)
        if n_outputs < 2:
            raise DataError(f"{main.name}: a single class; classification needs at least two")
    else:
        n_outputs = 1 if ytr.ndim == 1 else ytr.shape[1]
        # targets standardized on the training split; the model file maps predictions back
        target = TargetEncoder("regression").fit(ytr, where=f"{main.name}: y")
        ytr, yd, yte = (target.encode(v) if len(v) else v for v in (ytr, yd, yte))
    return PreparedData(
        train=(normalized(Xtr), ytr),
        dev=(normalized(Xd), yd),
        test=(normalized(Xte), yte),
        target=target,
        task=main.task,
        n_outputs=n_outputs,
        standardizer=standardizer,
        class_names=list(main.class_names) if main.class_names is not None else None,
        feature_names=list(main.feature_names) if main.feature_names is not None else None,
        image_shape=main.image_shape,
        name=main.name,
        augment=augment,
    )


# -- evaluation ------------------------------------------------------------------------------------
def evaluate(trainer: Trainer, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Loss, and accuracy (classification) or R^2 (regression, scikit-learn's: averaged
    uniformly over the outputs, see :func:`deepfit.metrics.r2_score`), with dropout off."""
    if X.shape[0] == 0:
        return {}
    if isinstance(X, BatchSource):
        from deepfit.data.streaming import evaluate_stream

        return evaluate_stream(trainer, X)
    result = trainer.evaluate(X, y)
    if trainer.task == "regression":
        result["r2"] = metrics.r2_score(y, trainer.predict(X))
    return result


# -- the run ---------------------------------------------------------------------------------
def run(
    config: dict[str, Any],
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
    write_plots: bool = True,
    prepared: PreparedData | None = None,
) -> dict[str, Any]:
    """Train and evaluate the model of ``config`` (a resolved config, see
    :func:`deepfit.config.load`); returns the summary and, with ``out_dir``, writes the run
    directory. ``resume`` continues from ``out_dir/checkpoint.npz`` when it exists.

    Everything (config values, data, the model's memory) is checked before anything is
    written; then the run directory is locked and claimed by :func:`deepfit.rundir.claim`:
    a directory holding anything but a finished run of the same config is refused unless
    ``resume`` continues it or ``overwrite`` replaces it. A run that diverges before any
    epoch ends with finite weights raises :class:`TrainingDiverged` and leaves nothing
    behind (:func:`deepfit.rundir.discard`: the files it wrote, the directory if it made it)."""
    locks: list[FileLock] = []
    found: dict[str, Any] = {}  # what the run directory held once claimed
    try:
        return _run(
            config,
            out_dir,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
            callbacks=callbacks,
            write_plots=write_plots,
            prepared=prepared,
            locks=locks,
            found=found,
        )
    except TrainingDiverged as exc:
        if "out" not in found:
            raise
        for lock in locks:
            lock.release()
        discard(found["out"], found["before"])
        left = "removed" if found["before"] is None else "holds nothing of this run"
        raise TrainingDiverged(f"{exc}; {found['out']} {left}") from None
    finally:
        for lock in locks:
            lock.release()


def _run(
    config: dict[str, Any],
    out_dir: str | Path | None,
    *,
    resume: bool,
    overwrite: bool,
    progress: bool | None,
    callbacks: Sequence[Callback],
    write_plots: bool,
    prepared: PreparedData | None,
    locks: list[FileLock],
    found: dict[str, Any],
) -> dict[str, Any]:
    start = time.perf_counter()
    data = prepared if prepared is not None else prepare(config)
    loss = loss_name(config, data.task, data.n_outputs)
    Xtr, ytr = data.train
    pre = data.preprocessor
    embed, names = (pre.embed_spec(), pre.feature_names) if pre is not None else (None, None)
    model = build_model(config, Xtr.shape[1], data.n_outputs, loss, embed, names)
    if config["train"]["device"] == "gpu":
        to = getattr(model, "to", None)
        if to is None:
            raise ConfigError("config key 'train.device' = 'gpu' is not supported by this build")
        to("cupy")
    cbs: list[Callback] = list(callbacks)
    stopper = build_early_stopping(config)
    has_dev = data.dev[0].shape[0] > 0
    if stopper is not None:
        if stopper.monitor.startswith("dev") and not has_dev:
            raise ConfigError(
                "config key 'train.early_stopping.monitor' needs a dev set; data.split gives "
                "it no examples"
            )
        cbs.append(stopper)
    check_diagnose(config)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        cbs += [MetricsLog(out / METRICS_FILE), Checkpoint(out / CHECKPOINT_FILE)]
    cbs.append(Progress(enabled=progress))
    trainer = _trainer(config, model, loss, data, cbs + build_callbacks(config, has_dev=has_dev))
    if out is not None:  # everything is checked: now the run directory is claimed and written
        existed = out.is_dir()
        locks.append(claim(out, config, resume=resume, overwrite=overwrite))
        found.update(out=out, before=entries(out) if existed else None)
        atomic_write_text(out / CONFIG_FILE, dumps(config))
    history = trainer.fit(
        Xtr,
        ytr,
        epochs=config["train"]["epochs"],
        validation_data=data.dev if has_dev else None,
        resume=resume and out is not None,
        **({"sample_weight": data.train_weight} if data.train_weight is not None else {}),
    )
    results = {
        "train": evaluate(trainer, *data.train),
        "dev": evaluate(trainer, *data.dev),
        "test": evaluate(trainer, *data.test),
    }
    refit_info = None
    if config["train"]["refit"] and has_dev:
        epochs = history.best_epoch or len(history)
        trainer = _refit(config, loss, data, epochs, progress)
        model = trainer.model
        results["test"] = evaluate(trainer, *data.test)
        refit_info = {"epochs": epochs, "n_rows": int(Xtr.shape[0] + data.dev[0].shape[0])}
    summary: dict[str, Any] = {
        **results,
        "best_epoch": history.best_epoch,
        "epochs_run": len(history),
        "stop_reason": history.stop_reason,
        "seconds": time.perf_counter() - start,
        "task": data.task,
        "data": data.name,
        "n_train": int(Xtr.shape[0]),
        "n_dev": int(data.dev[0].shape[0]),
        "n_test": int(data.test[0].shape[0]),
        "n_params": model.n_params,
        "loss_function": loss,
    }
    if refit_info is not None:
        summary["refit"] = refit_info
    if data.preprocessor is not None:
        summary["columns"] = data.extra.get("columns")
        summary["data_report"] = data.extra.get("data_report")
        summary["notes"] = list(data.notes)
    if results["dev"]:
        d = config["diagnose"]
        diagnosis = diagnose_metrics(
            results["train"], results["dev"], d["bayes_error"], d["tolerance"]
        )
        summary["diagnosis"] = diagnosis.to_dict()
    else:
        summary["diagnosis"] = None
    summary["trainer"] = trainer
    summary["history"] = history
    summary["model"] = model
    summary["bundle"] = bundle = ModelBundle(
        model=model,
        loss=loss,
        standardizer=data.standardizer,
        class_names=data.class_names,
        feature_names=data.feature_names,
        config=model_config(config),
        image_shape=data.image_shape,
        preprocessor=data.preprocessor,
        target=data.target,
    )
    if out is not None:
        save(bundle, out / MODEL_FILE)
        if write_plots:
            summary["plots"] = _plots(history, out)
        atomic_write_text(out / SUMMARY_FILE, json.dumps(public_summary(summary), indent=2) + "\n")
    return summary


def _trainer(
    config: dict[str, Any], model: Any, loss: str, data: PreparedData, callbacks: list[Callback]
) -> Trainer:
    """The Trainer of ``config`` for ``model``, with a fresh optimizer and schedule."""
    return Trainer(
        model,
        loss=build_loss(config, loss),
        optimizer=build_optimizer(config),
        batch_size=config["train"]["batch_size"],
        l2=config["model"]["l2"],
        l1=config["model"]["l1"],
        schedule=build_schedule(config),
        callbacks=callbacks,
        seed=streams(config["train"]["seed"])["train"],
        augment=data.augment,
        **build_trainer_options(config),
    )


def _refit(
    config: dict[str, Any], loss: str, data: PreparedData, epochs: int, progress: bool | None
) -> Trainer:
    """Train the config's model again, from the same initial weights, on train + dev for the
    ``epochs`` the early-stopped run found best (``train.refit``): the selection used the dev
    set, the final model learns from it too. Test metrics then come from this model; train
    and dev metrics (and the diagnosis) stay those of the selection run."""
    weights = None
    if isinstance(data.train[0], BatchSource):  # the dev rows join the stream
        X, y = data.train[0].with_dev(*data.dev, data.dev_weight), None
    else:
        X = np.concatenate([data.train[0], data.dev[0]])
        y = np.concatenate([data.train[1], data.dev[1]])
    if data.train_weight is not None:
        dev_weight = data.dev_weight if data.dev_weight is not None else np.ones(len(data.dev[1]))
        weights = np.concatenate([data.train_weight, dev_weight])
    pre = data.preprocessor
    embed, names = (pre.embed_spec(), pre.feature_names) if pre is not None else (None, None)
    model = build_model(config, X.shape[1], data.n_outputs, loss, embed, names)
    if config["train"]["device"] == "gpu":
        model.to("cupy")
    # a plateau schedule reacts to the dev set, which is now training data: not replayed
    extras = (build_averaging(config), build_snapshots(config))
    callbacks = [Progress(enabled=progress), *(cb for cb in extras if cb is not None)]
    trainer = _trainer(config, model, loss, data, callbacks)
    trainer.fit(X, y, epochs=epochs, sample_weight=weights)
    return trainer


def check_diagnose(config: dict[str, Any]) -> None:
    """Refuse ``[diagnose]`` values the diagnosis would refuse after training, naming the key."""
    d = config["diagnose"]
    try:
        diagnose(0.0, 0.0, d["bayes_error"], d["tolerance"])
    except DeepfitError as exc:
        raise ConfigError(f"config table 'diagnose': {exc}") from None


DATA_PATH_KEYS = ("path", "images", "labels", "dev_path", "test_path", "cache_dir")


def model_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config stored in ``model.npz``: the resolved config with the data files named by
    their file names only (an absolute path tells whoever gets the model file where the
    training data lives; prediction needs none of them)."""
    data = dict(config.get("data", {}))
    for key in DATA_PATH_KEYS:
        if isinstance(data.get(key), str) and data[key]:
            data[key] = Path(data[key]).name
    return {**config, "data": data}


def public_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready part of a summary (no live objects)."""
    live = ("trainer", "history", "model", "bundle")
    return {k: v for k, v in summary.items() if k not in live}


def _plots(history, out: Path) -> list[str]:
    from deepfit import plots

    if not plots.available():
        return []
    written = []
    for path in (
        plots.learning_curves(history, out / "learning_curves.png"),
        plots.learning_rate(history, out / "learning_rate.png"),
    ):
        if path is not None:
            written.append(path.name)
    return written


def load_summary(run_dir: str | Path) -> dict[str, Any]:
    """Read ``summary.json`` of a run directory, with a clear error when it is missing."""
    path = Path(run_dir) / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeepfitError(f"{run_dir}: not a run directory (no {SUMMARY_FILE})") from None
    except IsADirectoryError:
        raise DeepfitError(f"{path}: is a directory, not a summary") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DeepfitError(f"{path}: damaged summary ({exc})") from None
    if not isinstance(summary, dict):
        raise DeepfitError(
            f"{path}: damaged summary (a JSON {type(summary).__name__}, not a table)"
        )
    for split in ("train", "dev", "test"):
        metrics = summary.get(split)
        if metrics is None:
            continue
        if not isinstance(metrics, dict):
            raise DeepfitError(f"{path}: damaged summary ({split!r} is not a table of metrics)")
        for name, value in metrics.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise DeepfitError(
                    f"{path}: damaged summary ({split}.{name} is {value!r}, not a number)"
                )
    return summary


def _error(result: dict[str, float]) -> float:
    if "accuracy" in result:
        return 1.0 - result["accuracy"]
    return min(max(1.0 - result.get("r2", 0.0), 0.0), 1.0)


def learning_curve(
    config: dict[str, Any],
    fractions: Sequence[float] = (0.1, 0.2, 0.4, 0.7, 1.0),
) -> LearningCurve:
    """Retrain the config's model on growing fractions of its training split (same dev set)
    and record train and dev error (``1 - accuracy``, or ``1 - R^2`` for regression).

    A fraction ``f`` trains for ``epochs / f`` epochs (at most ten times as many), so every
    point gets about the same number of optimizer steps: otherwise small subsets would look
    worse for lack of training rather than lack of data.
    """
    from deepfit.checks.biasvariance import more_data_verdict

    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise DeepfitError(f"learning-curve fractions must lie in (0, 1], got {list(fractions)}")
    data = prepare(config)
    Xtr, ytr = data.train
    if isinstance(Xtr, BatchSource):
        raise DeepfitError(
            "the learning curve retrains on subsets of the training split in memory; "
            "set data.stream = false"
        )
    order = np.random.default_rng(streams(config["train"]["seed"])["data"]).permutation(len(Xtr))
    sizes, train_errors, dev_errors = [], [], []
    for f in sorted(fractions):
        n = max(round(f * len(Xtr)), 2)
        keep = order[:n]
        subset = PreparedData(**{**data.__dict__, "train": (Xtr[keep], ytr[keep])})
        epochs = config["train"]["epochs"]
        scaled = {
            **config,
            "train": {**config["train"], "epochs": min(math.ceil(epochs / f), 10 * epochs)},
        }
        summary = run(scaled, None, progress=False, prepared=subset)
        sizes.append(n)
        train_errors.append(_error(summary["train"]))
        dev_errors.append(_error(summary["dev"]))
    tolerance = config["diagnose"]["tolerance"]
    return LearningCurve(
        sizes,
        train_errors,
        dev_errors,
        more_data_verdict(sizes, train_errors, dev_errors, tolerance),
    )
