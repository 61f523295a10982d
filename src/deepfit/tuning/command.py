"""``deepfit tune``: registered on the command line by :mod:`deepfit.cli`; Optuna and Ray are
imported only when a study runs."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any

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
    pack: Annotated[
        int | None,
        typer.Option(
            metavar="K",
            min=1,
            help="Train up to K trials that share the architecture and batch size as one "
            "packed network, one task per group (default: tune.pack, 1: each trial alone); "
            "each is still an Optuna trial of its own (reported, pruned and told alone).",
        ),
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
    pruner: Annotated[
        str | None,
        typer.Option(help="median, halving, hyperband or none (default: tune.pruner)."),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            help="Wall time of the search (90s, 5m, 1h; default: tune.budget), counted across "
            "reruns; without --trials (or tune.trials in the file) random and tpe search until "
            "it is spent. The winner is then trained into OUT/best.",
        ),
    ] = None,
    train_best: Annotated[
        bool | None,
        typer.Option(
            "--train-best/--no-train-best",
            help="Train the best configuration into OUT/best after the search (default: with "
            "a budget).",
        ),
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
    With --pack K, up to K trials that differ only in per-member settings (learning rate and
    schedule, L2/L1, weight decay, dropout, the optimizer's betas and eps) train together as
    one packed network; a trial that cannot be packed runs alone.
    """
    from deepfit import config as configuration
    from deepfit.tuning import study as _study

    strategies = configuration.TUNE_STRATEGIES
    if strategy is not None and strategy not in strategies:
        raise DeepfitError(f"--strategy must be one of {', '.join(strategies)}, got {strategy!r}")
    pruners = configuration.TUNE_PRUNERS
    if pruner is not None and pruner not in pruners:
        raise DeepfitError(f"--pruner must be one of {', '.join(pruners)}, got {pruner!r}")
    if budget is not None:
        from deepfit.tuning.budget import parse_duration

        parse_duration(budget)
    if executor not in ("local", "ray"):
        raise DeepfitError(f"--executor must be 'local' or 'ray', got {executor!r}")
    resolved = configuration.load(config, set_ or [])
    if dry_run:
        for point in _study.preview(resolved, dry_run, strategy=strategy):
            typer.echo(json.dumps(point))
        return
    out = out if out is not None else Path("runs") / f"tune-{config.stem}"
    if trials is None and (budget or (resolved.get("tune") or {}).get("budget")):
        chosen = strategy or (resolved.get("tune") or {}).get("strategy", "random")
        trials = _budget_trials(config, set_ or [], chosen)
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
        pruner=pruner,
        budget=budget,
        pack=pack,
        train_best=train_best,
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
    spent = summary.get("budget")
    if spent:
        from deepfit.tuning.budget import format_duration

        typer.echo(
            f"budget {format_duration(spent['seconds'])}: {format_duration(spent['spent'])} "
            f"spent ({format_duration(spent['this_run'])} in this run)"
        )
    typer.echo(f"written to {out}: {', '.join(summary['files'])}")
    if summary.get("best_run"):
        run = summary["best_run"]
        typer.echo(f"the winner's run directory: {run['out']}")
    elif best is not None:
        typer.echo(f"train it: deepfit train {out / _study.BEST_FILE}")


def _budget_trials(config: Path, assignments: list[str], strategy: str) -> int | None:
    """``trials`` of a budgeted search: unlimited for random and tpe unless the file or
    ``--set`` gives ``tune.trials`` (grid and coarse-to-fine plan their points from it)."""
    from deepfit import config as configuration
    from deepfit.tuning import study as _study

    if strategy not in ("random", "tpe"):
        return None
    if "trials" in (configuration.read_raw(config).get("tune") or {}):
        return None
    if any(a.split("=", 1)[0].strip() == "tune.trials" for a in assignments):
        return None
    return _study.UNLIMITED_TRIALS


def train_budgeted(
    resolved: dict,
    out: Path,
    budget: str,
    *,
    fixed: list[str],
    quiet: bool = False,
    json_: bool = False,
    new_search: bool = False,
    track: dict[str, Any] | None = None,
) -> None:
    """``deepfit train --data FILE --target COL --budget 5m`` (see
    :mod:`deepfit.tuning.table_search`): the search's rows as they end, then the winner's
    run summary. ``new_search`` (``--overwrite``) discards an earlier search in ``out``;
    ``track`` (``tracking_uri``, ``experiment_name``) logs the winner to MLflow
    (:func:`deepfit.tracking.search_run`)."""
    from deepfit.tuning.budget import format_duration, parse_duration
    from deepfit.tuning.study import format_point
    from deepfit.tuning.table_search import search_table

    parse_duration(budget)
    echo = (lambda line: None) if quiet or json_ else (lambda line: typer.echo(line))

    def search() -> dict[str, Any]:
        try:
            return search_table(resolved, out, budget, fixed=fixed, echo=echo, new_study=new_search)
        except DeepfitError as exc:  # deepfit train's word for tune's --new-study is --overwrite
            raise DeepfitError(str(exc).replace("--new-study", "--overwrite")) from None

    if track is None:
        summary = search()
    else:
        from deepfit import tracking

        summary = tracking.search_run(search, out, **track)
    if json_:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    spent = summary.get("budget") or {}
    typer.echo(
        f"{summary['counted']} trials ({summary['complete']} complete, {summary['pruned']} "
        f"pruned, {summary['failed']} failed) in {format_duration(spent.get('spent', 0.0))} "
        f"of {format_duration(spent.get('seconds', 0.0))}; the search is in {out}"
    )
    run = summary.get("best_run")
    if run is None:
        typer.echo("no trial completed: nothing to train")
        return
    from deepfit import cli

    best = summary["best"]
    typer.echo(f"best: trial {best['number']}  " + format_point(best["params"]))
    with open(Path(run["out"]) / "summary.json", encoding="utf-8") as f:
        cli._print_summary(json.load(f), Path(run["out"]))
