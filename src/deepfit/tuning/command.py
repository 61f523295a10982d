"""``deepfit tune``: registered on the command line by :mod:`deepfit.cli`; Optuna and Ray are
imported only when a study runs."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer

from deepfit.errors import DeepfitError


def tune(
    config: Annotated[Path, typer.Argument(help="TOML config file with a [tune] table.")],
    trials: Annotated[
        int | None, typer.Option(help="Trials to finish (default: tune.trials).", min=1)
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="random, grid, coarse-to-fine or tpe (default: tune.strategy)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Trials at once (local: processes; ray: default all CPUs).", min=1),
    ] = None,
    executor: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join: 'auto' on a node, or ray://HEAD:10001."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the study (default: sqlite in --out)."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the config's file name).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: runs/tune-CONFIG)."),
    ] = None,
    dry_run: Annotated[
        int,
        typer.Option(
            "--dry-run", metavar="N", min=0, help="Print N sampled settings as JSON; no training."
        ),
    ] = 0,
    prune: Annotated[
        bool | None,
        typer.Option("--prune/--no-prune", help="Prune hopeless trials (default: tune.pruning)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key: --set tune.trials=40."),
    ] = None,
    new_study: Annotated[
        bool,
        typer.Option(
            "--new-study",
            help="Discard the study of this name (its trials, trials.csv, best.toml) and start "
            "again; without it a study started with another config is refused.",
        ),
    ] = False,
    heartbeat_interval: Annotated[
        int,
        typer.Option(
            help="Shared --storage: seconds between heartbeats of each running trial.", min=1
        ),
    ] = 30,
    grace_period: Annotated[
        int,
        typer.Option(
            help="Shared --storage: a trial whose driver has not beaten for this many seconds "
            "(by the database server's clock) is retried.",
            min=1,
        ),
    ] = 120,
    json_: Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-trial table.")] = False,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Log the study and each trial (nested) to MLflow.")
    ] = False,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow store (implies --mlflow): sqlite:///mlflow.db, ...")
    ] = None,
    experiment_name: Annotated[
        str | None, typer.Option(help="MLflow experiment (default: deepfit).")
    ] = None,
) -> None:
    """Search hyperparameters of CONFIG's [tune.space] in a resumable Optuna study.

    Each trial is one training run (early stopping as configured) scored on the dev set;
    the output directory holds study.db, trials.csv, best.toml and plots. Run the same command
    again to resume after a crash; a changed config is refused unless --new-study is given.
    """
    from deepfit import config as configuration
    from deepfit.tuning import study as _study

    strategies = configuration.TUNE_STRATEGIES
    if strategy is not None and strategy not in strategies:
        raise DeepfitError(f"--strategy must be one of {', '.join(strategies)}, got {strategy!r}")
    if executor not in ("local", "ray"):
        raise DeepfitError(f"--executor must be 'local' or 'ray', got {executor!r}")
    resolved = configuration.load(config, set_ or [])
    if dry_run:
        for point in _study.preview(resolved, dry_run, strategy=strategy):
            typer.echo(json.dumps(point))
        return
    out = out if out is not None else Path("runs") / f"tune-{config.stem}"
    echo = (lambda line: None) if quiet or json_ else (lambda line: typer.echo(line, err=False))
    run = _study.tune
    if mlflow or tracking_uri or experiment_name:
        from deepfit import tracking

        track = {"tracking_uri": tracking_uri, "experiment_name": experiment_name}
        run = functools.partial(tracking.tune, **track)
    summary = run(
        resolved,
        out,
        trials=trials,
        strategy=strategy,
        pruning=prune,
        workers=workers,
        executor=executor,
        address=address,
        storage=storage,
        study=study or config.stem,
        echo=echo,
        new_study=new_study,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
    )
    if json_:
        typer.echo(json.dumps(summary, indent=2))
        return
    best = summary["best"]
    typer.echo(
        f"{summary['counted']} trials counted: {summary['complete']} complete, "
        f"{summary['pruned']} pruned, {summary['failed']} failed"
        + (f" ({summary['interrupted']} interrupted and retried)" if summary["interrupted"] else "")
    )
    if best is None:
        typer.echo("no trial completed; nothing to write to best.toml")
    else:
        typer.echo(
            f"best: trial {best['number']}, {summary['metric']} {best['value']:.4f}  "
            + _study.format_point(best["params"])
        )
    typer.echo(f"written to {out}: {', '.join(summary['files'])}")
    if best is not None:
        typer.echo(f"train it: deepfit train {out / _study.BEST_FILE}")
