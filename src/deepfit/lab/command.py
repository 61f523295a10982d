"""``deepfit lab NAME``: run one of the lab's experiments (registered in :mod:`deepfit.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def lab(
    name: Annotated[
        str,
        typer.Argument(
            help="experiment, in the notes' order: bias_variance, sparsity, tanh_linear, "
            "regularization, dropout_layers, augmentation, normalization, init, gradcheck, "
            "minibatch, ewa, optimizers, saddles, search, batchnorm, bn_learning_rates; or all "
            "(docs/notes.md maps each section of the notes to its experiment)"
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="folder for NAME.png, NAME.md, NAME.json")
    ] = Path("docs/lab"),
    quick: Annotated[
        bool, typer.Option("--quick", help="the reduced version (seconds), as the tests run it")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> None:
    """Reproduce a claim of the course notes as an experiment: figure plus table (markdown
    and JSON) of our numbers beside the published ones. Exit 1 when a claim check fails."""
    from deepfit import lab as lab_module
    from deepfit.lab._common import _jsonable

    names = lab_module.available() if name == "all" else [name]
    results = []
    for each in names:
        result = lab_module.run(each, out, quick=quick)
        results.append(result)
        if not json_:
            typer.echo(lab_module.markdown(result))
            typer.echo(
                f"wrote {out / (each + '.png')}, {out / (each + '.md')}, {out / (each + '.json')}"
            )
    if json_:
        payload = [_jsonable(r.to_dict()) for r in results]
        typer.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=1))
    if not all(all(r.checks.values()) for r in results):
        raise typer.Exit(1)
