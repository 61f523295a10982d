"""The ``deepfit`` command line: thin, it parses and delegates.

Every command prints a one-line error and exits non-zero on bad input (``--debug`` shows the
traceback); commands that report accept ``--json`` for scripts.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np

try:
    import typer
except ImportError:  # pragma: no cover - exercised only without the extra
    sys.stderr.write("error: the deepfit command needs its extra: pip install 'deepfit[cli]'\n")
    raise SystemExit(2) from None

from deepfit import config as configuration
from deepfit.errors import DeepfitError

app = typer.Typer(
    name="deepfit",
    help="Train fully connected networks well: regularization, optimization, tuning, "
    "batch norm, diagnosis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)

_state = {"debug": False}

ConfigArg = Annotated[Path, typer.Argument(help="TOML config file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: --set train.lr=0.01 (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of text.")]
MlflowOpt = Annotated[
    bool, typer.Option("--mlflow", help="Log to MLflow (MLFLOW_TRACKING_URI or its default).")
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", help="MLflow store (implies --mlflow): sqlite:///mlflow.db, http://..."
    ),
]
ExperimentNameOpt = Annotated[
    str | None,
    typer.Option("--experiment-name", help="MLflow experiment (default: deepfit)."),
]


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def _echo_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=_jsonable))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _print_summary(summary: dict[str, Any], out: Path | None) -> None:
    rows = []
    for split in ("train", "dev", "test"):
        metrics = summary.get(split) or {}
        if metrics:
            parts = [f"loss {metrics['loss']:.4f}"]
            if "accuracy" in metrics:
                parts.append(f"accuracy {metrics['accuracy']:.4f}")
            if "r2" in metrics:
                parts.append(f"R^2 {metrics['r2']:.4f}")
            rows.append(f"  {split:<5}  " + "  ".join(parts))
    typer.echo(
        f"{summary['data']}: {summary['n_train']} train / {summary['n_dev']} dev / "
        f"{summary['n_test']} test examples, {summary['n_params']} parameters"
    )
    columns = summary.get("columns")
    if columns:
        typer.echo(f"  numeric: {', '.join(columns['numeric']) or '-'}")
        typer.echo(f"  categorical: {', '.join(columns['categorical']) or '-'}")
        if columns["dropped"]:
            dropped = ", ".join(f"{k} ({v})" for k, v in columns["dropped"].items())
            typer.echo(f"  not used: {dropped}")
    missing = ((summary.get("data_report") or {}).get("train") or {}).get("missing")
    if missing:
        typer.echo("  missing cells (train): " + ", ".join(f"{k} {v}" for k, v in missing.items()))
    for note in summary.get("notes") or []:
        typer.echo(f"  note: {note}")
    typer.echo("\n".join(rows))
    typer.echo(
        f"  best epoch {summary['best_epoch']} of {summary['epochs_run']} "
        f"({summary['stop_reason']}), {summary['seconds']:.1f} s"
    )
    refit = summary.get("refit")
    if refit:
        typer.echo(
            f"  refitted on train + dev ({refit['n_rows']} rows) for {refit['epochs']} epochs: "
            "the test metrics and model.npz are the refitted model's"
        )
    if summary.get("diagnosis"):
        from deepfit.checks.biasvariance import Diagnosis

        typer.echo(Diagnosis(**summary["diagnosis"]).report())
    if out is not None:
        typer.echo(f"run directory: {out}")


# -- train --------------------------------------------------------------------------------------
@app.command()
def train(
    config: Annotated[
        Path | None, typer.Argument(help="TOML config file (optional with --data).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Train on this CSV or Parquet table, no config needed."),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="The table's column to predict.")
    ] = None,
    drop: Annotated[
        str | None, typer.Option("--drop", help="Columns not to use, comma-separated.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.", min=0)] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run directory (default runs/<config or table>)."),
    ] = None,
    set_: SetOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the run directory's checkpoint.")
    ] = False,
    json_: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a previous run in the run directory.")
    ] = False,
    mlflow: MlflowOpt = False,
    tracking_uri: TrackingUriOpt = None,
    experiment_name: ExperimentNameOpt = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="With --data: search the table recipe's regularization cocktail for this long "
            "(90s, 5m, 1h; rerun to resume, --overwrite to start again), then train the winner "
            "into OUT/best.",
        ),
    ] = None,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="Train a Parquet or .npy table from disk, chunk by chunk, for tables larger "
            "than memory (data.stream; default: the config's).",
        ),
    ] = None,
) -> None:
    """Train the model of CONFIG (or of a table: --data FILE --target COL) and write a run
    directory.

    The directory holds config.toml (every default written out: it reproduces the run),
    metrics.csv, summary.json, model.npz, checkpoint.npz and the plots. --resume continues
    from the checkpoint.
    """
    from deepfit import experiment

    if data is None and config is None:
        raise DeepfitError("give a config file, or a table with --data FILE --target COLUMN")
    if data is None and (target is not None or drop is not None):
        raise DeepfitError("--target and --drop go with --data FILE")
    if stream is not None:
        set_ = [*(set_ or []), f"data.stream={'true' if stream else 'false'}"]
    if data is not None:
        from deepfit.recipes import table_config

        if target is None:
            raise DeepfitError(f"--data {data}: name the column to predict with --target COLUMN")
        base = None
        if config is not None:
            base = configuration.read_raw(config)
        resolved = table_config(
            data,
            target,
            drop=[c.strip() for c in (drop or "").split(",") if c.strip()],
            seed=seed,
            base=base,
            overrides=set_ or [],
        )
    else:
        overrides = [*(set_ or []), *([f"train.seed={seed}"] if seed is not None else [])]
        resolved = configuration.load(config, overrides)
    stem = config.stem if config is not None else data.name.split(".")[0]
    if budget is not None:
        if data is None:
            raise DeepfitError(
                "--budget searches a table's recipe: give --data FILE --target COLUMN (for a "
                "config file with a [tune] table: deepfit tune CONFIG --budget ...)"
            )
        from deepfit.tuning.command import train_budgeted

        out = out if out is not None else Path("runs") / f"{stem}-search"
        fixed = [configuration.parse_override(s)[0] for s in set_ or []]
        tracked = mlflow or tracking_uri or experiment_name
        train_budgeted(
            resolved,
            out,
            budget,
            fixed=fixed,
            quiet=quiet,
            json_=json_,
            new_search=overwrite,
            track={"tracking_uri": tracking_uri, "experiment_name": experiment_name}
            if tracked
            else None,
        )
        return
    out = out if out is not None else Path("runs") / stem
    try:
        run = experiment.run
        if mlflow or tracking_uri or experiment_name:
            from deepfit import tracking

            track = {"tracking_uri": tracking_uri, "experiment_name": experiment_name}
            run = functools.partial(tracking.run, **track)
        summary = run(
            resolved,
            out,
            resume=resume,
            overwrite=overwrite,
            progress=None if not quiet else False,
        )
    except KeyboardInterrupt:
        _interrupted(out)
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.filename is None:  # a write deep in training: name the run directory at least
            exc.filename = str(out)
        raise
    if json_:
        _echo_json(experiment.public_summary(summary))
    else:
        _print_summary(summary, out)


def _interrupted(out: Path) -> None:
    """Ctrl-C during training: say where the run stopped and how to continue it."""
    from deepfit import io
    from deepfit.experiment import CHECKPOINT_FILE
    from deepfit.training.checkpoint import CHECKPOINT_FORMAT

    epoch = None
    try:
        epoch = io.read_meta(out / CHECKPOINT_FILE, CHECKPOINT_FORMAT).get("epoch")
    except DeepfitError:
        pass
    again = " ".join(sys.argv[1:]).replace(" --overwrite", "").replace(" --resume", "")
    where = (
        f"during epoch {epoch + 1}; {out} holds the checkpoint of epoch {epoch}"
        if isinstance(epoch, int) and epoch > 0
        else "during epoch 1, before the first checkpoint"
    )
    typer.echo(
        f"interrupted: training stopped {where}: deepfit {again} --resume continues it",
        err=True,
    )


# -- evaluate / predict -------------------------------------------------------------------------
def _is_image_input(bundle, path: Path) -> bool:
    """An image model given a folder or an image file (not a table of pixel columns)."""
    from deepfit.data.images import IMAGE_EXTENSIONS

    return bundle.image_shape is not None and (
        path.is_dir() or path.name.lower().endswith(IMAGE_EXTENSIONS)
    )


def _read_labelled(bundle, path: Path) -> tuple[np.ndarray, np.ndarray]:
    from deepfit.data import encode_labels, npz
    from deepfit.data.tabular import read_features
    from deepfit.errors import DataError

    if _is_image_input(bundle, path) and bundle.class_names is not None:
        from deepfit.data.images import labelled_image_inputs

        return labelled_image_inputs(path, bundle.image_shape, bundle.class_names)
    if path.suffix == ".npz":
        try:
            ds = npz(path, task="regression" if bundle.loss == "mse" else "classification")
        except DataError:
            one = _one_class_npz(bundle, path)  # refused for training, fine to score
            if one is None:
                raise
            return one
        y = ds.y
        if bundle.class_names is not None and ds.class_names is not None:
            y = encode_labels(
                np.asarray(ds.class_names, dtype=object)[ds.y], bundle.class_names, source=str(path)
            )
        return ds.X, y
    target = bundle.config.get("data", {}).get("target", "target")
    X, cells = read_features(path, bundle.feature_names, target=target)
    if cells is None:
        raise DeepfitError(f"{path}: no target column {target!r} to evaluate against")
    if bundle.class_names is not None:
        return X, encode_labels(cells, bundle.class_names, source=str(path))
    try:
        return X, np.asarray([float(c) for c in cells], dtype=np.float32)
    except (TypeError, ValueError):
        raise DeepfitError(f"{path}: non-numeric target values for a regression model") from None


def _one_class_npz(bundle, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The inputs and labels of an ``.npz`` whose labels are all the same, for a
    classification model: :func:`deepfit.data.npz` refuses one class (training needs two),
    but scoring one is fine, as scikit-learn's ``accuracy_score`` does. ``None`` when the file
    is not that case, so that the loader's error stands."""
    from deepfit import io
    from deepfit.data import encode_labels
    from deepfit.data.dataset import to_float32

    if bundle.class_names is None or bundle.loss == "mse":
        return None
    arrays = io.read_npz(path, only=("y", "class_names"))
    y, names = arrays.get("y"), arrays.get("class_names")
    if y is None or y.ndim != 1 or y.size == 0 or y.dtype.kind not in "biufUS":
        return None
    if (y.dtype.kind == "f" and not np.isfinite(y).all()) or np.unique(y).size != 1:
        return None
    labels = y
    if names is not None and y.dtype.kind in "iu":
        names = names.reshape(-1)
        if not 0 <= int(y[0]) < names.size:
            return None
        labels = names[y]
    X = _npz_features(bundle, path)
    if X.shape[0] != y.shape[0]:
        return None
    X = to_float32(X, f"{path}: array 'X'")
    return X, encode_labels(labels, bundle.class_names, source=f"{path}: array 'y'")


def _read_table_rows(bundle, path: Path, *, labelled: bool):
    """A table model's inputs from a raw CSV/Parquet file, columns matched by name; with
    ``labelled`` also the target column encoded as in training. Notes what was missing,
    unseen or ignored on stderr."""
    from deepfit.data.pipeline import encode_target, load_table
    from deepfit.data.tables import DEFAULT_NA_VALUES

    data_cfg = bundle.config.get("data", {})
    table = load_table(
        str(path),
        {
            "delimiter": data_cfg.get("delimiter", ""),
            "na_values": data_cfg.get("na_values", DEFAULT_NA_VALUES),
        },
    )
    X, report = bundle.table_inputs(table)
    for line in report.lines():
        typer.echo(f"{path}: {line}", err=True)
    if not labelled:
        return X, None
    target = data_cfg.get("target", "target")
    return X, encode_target(table, target, bundle.target)


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model file (model.npz of a run).")],
    data: Annotated[
        list[Path],
        typer.Argument(
            help="CSV or NPZ files with the target column; for an image model also folders "
            "with one subfolder per class."
        ),
    ],
    json_: JsonOpt = False,
) -> None:
    """Loss and accuracy (or R^2) of MODEL on labelled DATA files (raw features)."""
    from deepfit import io, metrics
    from deepfit.nn.losses import get_loss

    bundle = io.load(model)
    results = {}
    for path in data:
        if bundle.preprocessor is not None:
            X, y = _read_table_rows(bundle, path, labelled=True)
        else:
            X, y = _read_labelled(bundle, path)
            X = bundle.transform(X)
            if bundle.target is not None and bundle.loss == "mse":
                y = bundle.target.encode(y, where=str(path))  # as the model was trained
        logits = bundle.model.predict(X)
        loss = get_loss(bundle.loss)
        result: dict[str, float] = {"n": int(X.shape[0]), "loss": loss.forward(logits, y)}
        if bundle.class_names is not None:
            if bundle.loss == "sigmoid_binary_cross_entropy":
                predicted = (logits[:, 0] > 0).astype(np.int64)
            else:
                predicted = logits.argmax(axis=1)
            result["accuracy"] = metrics.accuracy(y, predicted)
        else:
            result["r2"] = metrics.r2_score(y, logits)
        results[str(path)] = result
    if json_:
        _echo_json(results)
        return
    for path, result in results.items():
        parts = "  ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
        )
        typer.echo(f"{path}: {parts}")


def _npz_features(bundle, path: Path) -> np.ndarray:
    """Raw inputs from the array ``X`` of an ``.npz`` file (rows, or images flattened)."""
    from deepfit import io

    if getattr(bundle, "preprocessor", None) is not None:
        raise DeepfitError(
            f"{path}: this model reads the named columns of a CSV or Parquet table; an .npz "
            f"archive has none"
        )
    arrays = io.read_npz(path)
    if "X" not in arrays:
        raise DeepfitError(
            f"{path}: no array 'X' of inputs; the archive holds {', '.join(arrays) or 'nothing'}"
        )
    X = arrays["X"]
    if X.ndim < 2 or X.dtype.kind not in "biuf":
        raise DeepfitError(
            f"{path}: array 'X' has shape {X.shape} and dtype {X.dtype}; "
            f"expected numbers of shape (rows, features)"
        )
    return X.reshape(X.shape[0], -1)


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="Model file (model.npz of a run).")],
    input_csv: Annotated[
        Path,
        typer.Argument(
            help="CSV of raw feature columns (with header); for an image model also an image "
            "file or a folder of images."
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write predictions here (CSV).")
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Class probabilities instead of labels.")
    ] = False,
) -> None:
    """Predict for every row of INPUT_CSV: class labels (or --proba), or values."""
    import csv
    import io as _io

    from deepfit import io
    from deepfit.data.tabular import read_features
    from deepfit.io import atomic_write_text

    bundle = io.load(model)
    if output is not None and output.is_dir():
        raise DeepfitError(f"--output {output}: is a directory; name the CSV file to write")
    files: list[str] = []
    if input_csv.suffix.lower() == ".npz":
        X = bundle.transform(_npz_features(bundle, input_csv))
    elif _is_image_input(bundle, input_csv):
        from deepfit.data.images import image_inputs

        X, paths = image_inputs(input_csv, bundle.image_shape)
        X = bundle.transform(X)
        files = [str(p) for p in paths]
    elif bundle.preprocessor is not None:
        X, _ = _read_table_rows(bundle, input_csv, labelled=False)
    else:
        target = bundle.config.get("data", {}).get("target", "target")
        X = bundle.transform(read_features(input_csv, bundle.feature_names, target=target)[0])
    if bundle.class_names is None:
        values = bundle.predict(X, prepared=True)
        header = (
            [f"prediction_{j}" for j in range(values.shape[1])]
            if values.shape[1] > 1
            else ["prediction"]
        )
        rows = [[f"{v:.6g}" for v in row] for row in values]
    elif proba:
        header = [io.spreadsheet_safe(f"p_{name}") for name in bundle.class_names]
        rows = [[f"{v:.6f}" for v in row] for row in bundle.predict_proba(X, prepared=True)]
    else:
        header = ["prediction"]
        rows = [[io.spreadsheet_safe(str(label))] for label in bundle.predict(X, prepared=True)]
    if files:  # images: the file of each row comes first
        header = ["file", *header]
        rows = [[io.spreadsheet_safe(f), *row] for f, row in zip(files, rows, strict=True)]
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if output is None:
        sys.stdout.write(buffer.getvalue())
    else:
        atomic_write_text(output, buffer.getvalue())
        typer.echo(f"wrote {X.shape[0]} predictions to {output}", err=True)


# -- gradcheck ------------------------------------------------------------------------------------
@app.command()
def gradcheck(
    config: ConfigArg,
    set_: SetOpt = None,
    examples: Annotated[int, typer.Option(help="Rows in the checked batch.", min=2)] = 16,
    max_per_tensor: Annotated[
        int, typer.Option(help="Entries checked per tensor (sampled; 0: all).", min=0)
    ] = 30,
    json_: JsonOpt = False,
) -> None:
    """Gradient-check CONFIG's model on a small batch of its data.

    Float64, dropout off, L2/L1 penalties included; prints the per-tensor table and exits 1
    when the overall relative error is 1e-5 or more.
    """
    from deepfit import experiment
    from deepfit.checks.gradcheck import LOOK
    from deepfit.checks.gradcheck import gradcheck as check
    from deepfit.nn.losses import get_loss

    resolved = configuration.load(config, set_ or [])
    data = experiment.prepare(resolved)
    loss = experiment.loss_name(resolved, data.task, data.n_outputs)
    model = experiment.build_model(resolved, data.train[0].shape[1], data.n_outputs, loss)
    X, y = data.train[0][:examples], data.train[1][:examples]
    if resolved["model"].get("ensemble", 1) > 1:  # each member's loss, summed
        from deepfit.nn.packed import PackedLoss

        objective = PackedLoss(loss)
    else:
        objective = get_loss(loss)
    result = check(
        model,
        objective,
        X,
        y,
        l2=resolved["model"]["l2"],
        l1=resolved["model"]["l1"],
        disable_dropout=True,
        max_per_tensor=max_per_tensor or None,
    )
    if json_:
        _echo_json(
            {
                "relative_error": result.relative_error,
                "per_tensor": result.per_tensor,
                "worst": result.worst,
                "verdict": result.verdict,
            }
        )
    else:
        typer.echo(result.report())
    if result.relative_error >= LOOK:
        raise typer.Exit(1)


# -- diagnose -------------------------------------------------------------------------------------
@app.command()
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by deepfit train.")],
    bayes_error: Annotated[
        float | None, typer.Option(help="Bayes (human-level) error estimate, a fraction.")
    ] = None,
    learning_curve: Annotated[
        bool, typer.Option("--learning-curve", help="Retrain on growing fractions of the data.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Bias/variance diagnosis of a run, with the notes' remedies."""
    from deepfit import experiment
    from deepfit.checks.biasvariance import diagnose_metrics

    summary = experiment.load_summary(run_dir)
    resolved = configuration.load(run_dir / experiment.CONFIG_FILE)
    if bayes_error is not None:
        if not 0 <= bayes_error <= 1:
            raise DeepfitError(f"--bayes-error must be a fraction in [0, 1], got {bayes_error}")
        resolved["diagnose"]["bayes_error"] = bayes_error
    d = resolved["diagnose"]
    if not summary.get("dev"):
        raise DeepfitError(f"{run_dir}: the run had no dev set to diagnose against")
    diagnosis = diagnose_metrics(
        summary.get("train") or {}, summary["dev"], d["bayes_error"], d["tolerance"]
    )
    payload: dict[str, Any] = {"diagnosis": diagnosis.to_dict()}
    curve = None
    if learning_curve:
        from deepfit.io import atomic_write_text

        curve = experiment.learning_curve(resolved)
        payload["learning_curve"] = curve.to_dict()
        atomic_write_text(run_dir / "learning_curve.json", json.dumps(curve.to_dict(), indent=2))
        try:
            from deepfit import plots

            plots.data_learning_curve(
                {**curve.to_dict(), "bayes_error": d["bayes_error"]}, run_dir / "learning_curve.png"
            )
        except DeepfitError:
            pass
    if json_:
        _echo_json(payload)
        return
    typer.echo(diagnosis.report())
    if curve is not None:
        typer.echo("learning curve (training examples: train error / dev error):")
        for n, tr, dv in zip(curve.sizes, curve.train_errors, curve.dev_errors, strict=True):
            typer.echo(f"  {n:>7}: {100 * tr:6.2f}% / {100 * dv:6.2f}%")
        typer.echo(curve.verdict)


# -- inspect ---------------------------------------------------------------------------------------
@app.command()
def inspect(
    config: ConfigArg,
    set_: SetOpt = None,
    steps: Annotated[
        int, typer.Option(help="Also report after this many training steps.", min=0)
    ] = 0,
    examples: Annotated[int, typer.Option(help="Rows in the inspected batch.", min=2)] = 256,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the comparison plots here.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Per-layer activation and gradient statistics: vanishing or exploding layers.

    Reports at initialization (and after --steps training steps), and compares zeros, small
    random, Xavier and He initialization side by side at the configured depth.
    """
    from deepfit import experiment
    from deepfit.checks import layerstats
    from deepfit.nn.losses import get_loss
    from deepfit.nn.objective import cost_and_gradients, make_penalties

    resolved = configuration.load(config, set_ or [])
    data = experiment.prepare(resolved)
    loss_id = experiment.loss_name(resolved, data.task, data.n_outputs)
    loss = get_loss(loss_id)
    Xtr, ytr = data.train
    X, y = Xtr[:examples], ytr[:examples]
    model = experiment.build_model(resolved, Xtr.shape[1], data.n_outputs, loss_id)
    if resolved["model"].get("ensemble", 1) > 1:  # the members share one architecture
        model = model.member(0)
    payload: dict[str, Any] = {"at_init": layerstats.layer_statistics(model, loss, X, y)}
    if steps:
        optimizer = experiment.build_optimizer(resolved)
        penalties = make_penalties(resolved["model"]["l2"], resolved["model"]["l1"])
        rng = np.random.default_rng(resolved["train"]["seed"])
        bs = resolved["train"]["batch_size"]
        for _ in range(steps):
            idx = rng.integers(0, len(Xtr), size=min(bs, len(Xtr)))
            cost_and_gradients(model, loss, Xtr[idx], ytr[idx], penalties)
            optimizer.step(model.params, model.grads)
        payload[f"after_{steps}_steps"] = layerstats.layer_statistics(model, loss, X, y)
    m = resolved["model"]
    comparison = layerstats.compare_initializers(
        Xtr.shape[1],
        m["hidden"],
        model.n_outputs,
        loss,
        X,
        y,
        activation=m["activation"],
        seed=resolved["train"]["seed"],
    )
    payload["initializers"] = comparison
    if out is not None:
        from deepfit import plots

        out.mkdir(parents=True, exist_ok=True)
        plots.layer_statistics(comparison, out / "init_activation_std.png", "activation_std")
        plots.layer_statistics(comparison, out / "init_grad_std.png", "grad_std")
    if json_:
        _echo_json(payload)
        return
    typer.echo(f"at initialization ({m['init']}, {len(m['hidden'])} hidden layers):")
    typer.echo(layerstats.report(payload["at_init"]))
    if steps:
        typer.echo(f"\nafter {steps} training steps:")
        typer.echo(layerstats.report(payload[f"after_{steps}_steps"]))
    typer.echo("\ninitializers compared (activation std of hidden layers 1 / middle / last):")
    for name, stats in comparison.items():
        stds = [s["activation_std"] for s in stats]
        flags = sorted({s["activation_flag"] for s in stats} | {s["grad_flag"] for s in stats})
        picks = [stds[0], stds[len(stds) // 2], stds[-1]] if stds else []
        typer.echo(
            f"  {name:<8} "
            + " / ".join(f"{v:.3g}" for v in picks)
            + f"   {', '.join(f for f in flags if f != 'ok') or 'ok'}"
        )
    if out is not None:
        typer.echo(f"plots: {out / 'init_activation_std.png'}, {out / 'init_grad_std.png'}")


# -- demo ------------------------------------------------------------------------------------------
DEMO_CONFIG = {
    "data": {"source": "digits"},
    "model": {"hidden": [128, 64], "batchnorm": True, "keep_prob": 0.9, "l2": 0.01},
    "train": {
        "optimizer": "adam",
        "lr": 0.003,
        "epochs": 40,
        "batch_size": 64,
        "schedule": {"kind": "inverse_time", "rate": 0.05},
        "early_stopping": {"patience": 8},
    },
}


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/demo"),
    epochs: Annotated[int, typer.Option(help="Training epochs.", min=1)] = 40,
    json_: JsonOpt = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a previous demo run of other epochs.")
    ] = False,
) -> None:
    """Train on the bundled digits in seconds: progress, summary, diagnosis, plots."""
    from deepfit import experiment

    resolved = configuration.validate(
        {**DEMO_CONFIG, "train": {**DEMO_CONFIG["train"], "epochs": epochs}}
    )
    summary = experiment.run(resolved, out, progress=None, overwrite=overwrite)
    if json_:
        _echo_json(experiment.public_summary(summary))
        return
    _print_summary(summary, out)
    plots = summary.get("plots") or []
    if plots:
        typer.echo("plots: " + ", ".join(str(out / p) for p in plots))


# -- report ----------------------------------------------------------------------------------------
@app.command()
def report(
    directory: Annotated[
        Path, typer.Argument(help="A run directory (deepfit train) or tune directory (tune).")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file (default DIR/report.html).")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="The study's database URL when it is not DIR/study.db.")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name, when the database holds several.")
    ] = None,
) -> None:
    """Write a self-contained HTML report of a run or a study (opens without network)."""
    from deepfit.report import write_report

    typer.echo(f"report: {write_report(directory, output, storage=storage, study=study)}")


from deepfit.lab.command import lab  # noqa: E402

app.command()(lab)

from deepfit.tuning.command import tune  # noqa: E402

app.command()(tune)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning deepfit errors into one line and exit code 2."""
    try:
        # outside standalone mode click *returns* the code of typer.Exit / Ctrl-C (130)
        code = app(args=argv, standalone_mode=False)
    except DeepfitError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except OSError as exc:
        if _state["debug"]:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return 2
    except MemoryError as exc:
        if _state["debug"]:
            raise
        typer.echo(
            f"error: out of memory ({exc or 'MemoryError'}); a table larger than memory trains "
            "from disk, chunk by chunk: --stream (data.stream = true) with a Parquet or .npy "
            "file",
            err=True,
        )
        return 2
    except Exception as exc:
        # usage errors (a missing argument, an unknown option) are click exceptions: from
        # typer's vendored copy of click or from click itself, depending on typer's version
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
