"""``deepfit report DIR``: one self-contained HTML page for a run or a tune directory.

A *run* directory (written by ``deepfit train``) gives the summary, the bias/variance
diagnosis with its remedies, the learning curves and the learning-rate schedule (drawn again
from ``metrics.csv``), statistics of every parameter tensor of ``model.npz``, the figures that
``deepfit diagnose --learning-curve`` and ``deepfit inspect --out`` left there, the per-epoch
metrics and the resolved config. A *tune* directory (written by ``deepfit tune``) gives the
study's settings, a trials table sortable by any column, the metric against each
hyperparameter, the per-epoch dev metric of every trial, the rounds, the hyperparameter
importances (Optuna's PED-ANOVA evaluator, fANOVA when it cannot judge) and the best config.

The page needs no network: CSS and the sorting script are inline, figures are PNG data URIs,
and a Content-Security-Policy forbids loading anything else. Every text taken from the
directory is HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from deepfit.errors import DeepfitError
from deepfit.io import atomic_write_text

REPORT_FILE = "report.html"

# -- HTML pieces --------------------------------------------------------------------------------
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:18px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:1.6em;margin:.3em 0 .1em}h2{font-size:1.2em;margin:1.6em 0 .5em;
border-bottom:1px solid #d8dce1;padding-bottom:.2em}
.sub{color:#59636e;margin:0 0 1em}
table{border-collapse:collapse;margin:.4em 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8dce1;padding:3px 9px;text-align:right;vertical-align:top;
white-space:nowrap}
td.text{white-space:normal}
th{background:#eef1f4;font-weight:600}td.text,th.text{text-align:left}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
tr.best td{background:#e7f6e9;font-weight:600}
td.state-pruned{color:#8a6d00}td.state-failed,td.state-interrupted{color:#b42318}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:.8em 0}figure img{max-width:100%;height:auto;border:1px solid #e3e6ea}
figcaption{color:#59636e;font-size:.9em}
pre{background:#f3f4f6;padding:10px 12px;overflow-x:auto;font-size:13px;line-height:1.35}
.verdict{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;
background:#e7f6e9;color:#1a7f37}.verdict.warn{background:#fff4d6;color:#8a5a00}
.bar{display:inline-block;height:.8em;background:#4c8bf5;vertical-align:middle;margin-right:6px}
.note{color:#59636e}
.row{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
"""

_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.setAttribute("title", "sort by " + th.textContent);
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var key = function (row) {
        var cell = row.cells[col];
        var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value")
                                                  : cell.textContent;
        var number = parseFloat(raw);
        return raw === "" ? null : (isNaN(number) ? raw : number);
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
                                          : (typeof x === "number" ? -1 : 1);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

# Nothing but what the page carries inline may load: a stray external reference fails loudly
# (a console error) instead of silently needing the network.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"


def _cell(value: Any, cls: str = "") -> str:
    """A table cell: numbers right-aligned with their full value in ``data-value`` (what the
    sort compares), text left-aligned."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        attrs = f' data-value="{esc(repr(float(value)))}"' if isinstance(value, float) else ""
        return f'<td class="{esc(cls)}"{attrs}>{esc(_number(value))}</td>'
    if isinstance(value, list | dict):
        value = json.dumps(value)
    return f'<td class="text {esc(cls)}">{esc("" if value is None else value)}</td>'


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    sortable: bool = False,
    row_classes: Sequence[str] | None = None,
    cell_classes: Callable[[int, Any], str] | None = None,
) -> str:
    """An HTML table; ``sortable`` tables sort by a column when its header is clicked. A
    header is left-aligned over a column of text, right-aligned over numbers."""
    rows = [list(row) for row in rows]

    def numeric(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    head = "".join(
        f'<th class="{"" if any(numeric(row[i]) for row in rows) else "text"}">{esc(h)}</th>'
        for i, h in enumerate(header)
    )
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{esc(row_classes[r])}"' if row_classes and row_classes[r] else ""
        cells = "".join(
            _cell(v, cell_classes(c, v) if cell_classes else "") for c, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    kind = ' class="sortable"' if sortable else ""
    return (
        f'<div class="scroll"><table{kind}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def figure(png: bytes, caption: str) -> str:
    """A PNG embedded as a data URI, with its caption (also its alt text)."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, subtitle: str, sections: Iterable[tuple[str, str]]) -> str:
    """The whole document: ``sections`` are ``(heading, inner HTML)`` pairs."""
    body = "".join(f"<section><h2>{esc(h)}</h2>{inner}</section>" for h, inner in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f'<body><main><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>{body}'
        f"</main><script>{_SORT_JS}</script></body></html>\n"
    )


def _pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def _paragraph(text: str, cls: str = "") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


# -- figures ------------------------------------------------------------------------------------
def _have_matplotlib() -> bool:
    try:
        from deepfit.plots import pyplot

        pyplot()
    except (DeepfitError, ImportError):
        return False
    return True


def render(draw: Callable[[Path], Any]) -> bytes | None:
    """The PNG that ``draw(path)`` writes (one of :mod:`deepfit.plots`' functions), or None
    when it draws nothing."""
    with tempfile.TemporaryDirectory(prefix="deepfit-report-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes() if path.exists() else None


_NO_MATPLOTLIB = _paragraph("figures need matplotlib: pip install 'deepfit[plot]'", "note")


# -- run directories ----------------------------------------------------------------------------
def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of ``metrics.csv`` as numbers (empty cells dropped)."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            record: dict[str, float] = {}
            for k, v in row.items():
                if v not in ("", None):
                    try:
                        record[k] = float(v)
                    except ValueError:
                        raise DeepfitError(
                            f"{path}: column {k!r} holds {v!r}, not a number"
                        ) from None
            if "epoch" in record:
                record["epoch"] = int(record["epoch"])
            rows.append(record)
    return rows


def _summary_section(s: Mapping[str, Any]) -> str:
    metrics = sorted({k for split in ("train", "dev", "test") for k in (s.get(split) or {})})
    rows = [
        [split, *[(s.get(split) or {}).get(m) for m in metrics]]
        for split in ("train", "dev", "test")
        if s.get(split)
    ]
    facts = [
        ("data", s.get("data")),
        ("task", s.get("task")),
        (
            "examples (train / dev / test)",
            f"{s.get('n_train')} / {s.get('n_dev')} / {s.get('n_test')}",
        ),
        ("parameters", s.get("n_params")),
        ("loss function", s.get("loss_function")),
        ("best epoch", f"{s.get('best_epoch')} of {s.get('epochs_run')}"),
        ("stopped", s.get("stop_reason")),
        ("seconds", s.get("seconds")),
    ]
    out = '<div class="row">' + table(["split", *metrics], rows)
    out += table(["", "value"], [[k, _number(v)] for k, v in facts if v is not None]) + "</div>"
    notes = s.get("notes") or []
    if notes:
        out += "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
    return out


def _diagnosis_section(d: Mapping[str, Any] | None) -> str:
    if not d:
        return _paragraph("no dev set: nothing to diagnose against", "note")
    kind = d.get("error_kind", "error")
    verdict = str(d.get("verdict", ""))
    cls = "verdict" if verdict == "fine" else "verdict warn"
    rows = [
        [f"train {kind}", d.get("train_error")],
        [f"dev {kind}", d.get("dev_error")],
        [
            "Bayes error estimate" + (" (assumed)" if d.get("bayes_assumed") else ""),
            d.get("bayes_error"),
        ],
        ["avoidable bias (train - Bayes)", d.get("avoidable_bias")],
        ["variance (dev - train)", d.get("variance")],
        ["tolerance", d.get("tolerance")],
    ]
    out = f'<p>verdict: <span class="{cls}">{esc(verdict)}</span></p>'
    out += table(["quantity", "value"], [r for r in rows if r[1] is not None])
    remedies = d.get("remedies") or []
    if remedies:
        out += "<p>remedies:</p><ul>" + "".join(f"<li>{esc(r)}</li>" for r in remedies) + "</ul>"
    if d.get("note"):
        out += _paragraph(f"note: {d['note']}", "note")
    return out


def layer_rows(model_path: Path) -> list[list[Any]]:
    """One row per parameter tensor of a model file: name, layer, shape, mean, std, min, max,
    root mean square and the fraction of exact zeros.

    ``rms = sqrt(mean(w^2))``; with ``std`` it shows a layer whose weights collapsed (both
    tiny) or blew up (both large) during training.
    """
    from deepfit import io

    model = io.load(model_path).model
    rows = []
    for name, value in model.params.items():
        w = np.asarray(value, dtype=np.float64)
        index = name.split(".", 1)[0]
        layer = model.layers[int(index)] if index.isdigit() else None
        rows.append(
            [
                name,
                type(layer).__name__ if layer is not None else "",
                " x ".join(str(n) for n in w.shape),
                float(w.mean()),
                float(w.std()),
                float(w.min()),
                float(w.max()),
                float(np.sqrt(np.mean(w * w))),
                float(np.mean(w == 0)),
            ]
        )
    return rows


_RUN_EXTRA_FIGURES = {
    "learning_curve.png": "learning curve: train and dev error against training examples "
    "(deepfit diagnose --learning-curve)",
    "init_activation_std.png": "activation std per hidden layer at initialization "
    "(deepfit inspect)",
    "init_grad_std.png": "std of dW per hidden layer at initialization (deepfit inspect)",
}


def run_report(directory: Path) -> str:
    """The HTML of a run directory's report."""
    from deepfit import experiment, plots

    summary = experiment.load_summary(directory)
    records = read_metrics(directory / experiment.METRICS_FILE)
    sections = [
        ("Summary", _summary_section(summary)),
        ("Diagnosis and remedies", _diagnosis_section(summary.get("diagnosis"))),
    ]
    figures = []
    if _have_matplotlib():
        history = SimpleNamespace(records=records, best_epoch=summary.get("best_epoch"))
        for draw, caption in (
            (
                lambda p: plots.learning_curves(history, p),
                "loss and accuracy per epoch, train and dev (thin: raw, thick: smoothed)",
            ),
            (lambda p: plots.learning_rate(records, p), "learning rate per epoch"),
        ):
            png = render(draw) if records else None
            if png is not None:
                figures.append(figure(png, caption))
    else:
        figures.append(_NO_MATPLOTLIB)
    for name, caption in _RUN_EXTRA_FIGURES.items():
        if (directory / name).exists():
            figures.append(figure((directory / name).read_bytes(), caption))
    if not records:
        figures.append(_paragraph(f"no {experiment.METRICS_FILE}: no curves to draw", "note"))
    sections.append(("Learning curves and learning rate", "".join(figures)))
    model_path = directory / experiment.MODEL_FILE
    if model_path.exists():
        header = ["tensor", "layer", "shape", "mean", "std", "min", "max", "rms", "zeros"]
        sections.append(
            (
                "Per-layer statistics (trained weights)",
                table(header, layer_rows(model_path), sortable=True),
            )
        )
    if records:
        columns = list(records[0])
        sections.append(
            (
                "Metrics per epoch",
                "<details><summary>"
                f"{len(records)} epochs</summary>"
                + table(columns, [[r.get(c) for c in columns] for r in records], sortable=True)
                + "</details>",
            )
        )
    config_path = directory / experiment.CONFIG_FILE
    if config_path.exists():
        sections.append(
            ("Config (resolved, every default written out)", _pre(config_path.read_text()))
        )
    subtitle = f"run directory {directory}"
    return page(f"deepfit run: {directory.resolve().name}", subtitle, sections)


# -- tune directories ---------------------------------------------------------------------------
def open_study(directory: Path, storage: str | None = None, study: str | None = None):
    """The Optuna study of a tune directory (``study.db`` there, or ``storage``): one study in
    the storage, or the one named ``study``."""
    import optuna

    from deepfit.tuning.study import DB_FILE

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None:
        db = directory / DB_FILE
        if not db.exists():
            raise DeepfitError(
                f"{directory}: neither summary.json (a run) nor {DB_FILE} (a study); for a study "
                "kept in a database server give --storage URL"
            )
        storage = f"sqlite:///{db.resolve()}"
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as exc:  # unreachable server, bad URL, missing driver
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DeepfitError(f"--storage {storage}: {first}") from None
    if study is None:
        if len(names) != 1:
            raise DeepfitError(
                f"{storage} holds {len(names)} studies ({', '.join(names) or 'none'}); name one "
                "with --study"
            )
        study = names[0]
    elif study not in names:
        raise DeepfitError(f"{storage} has no study {study!r} (it has: {', '.join(names)})")
    return optuna.load_study(study_name=study, storage=storage)


def _intermediate_figure(trials, metric: str, path: Path) -> Path | None:
    """The dev metric of each epoch, one line per trial: complete solid, pruned dashed (to
    the epoch it was stopped), the best trial thick."""
    from optuna.trial import TrialState

    from deepfit.plots import pyplot, save_figure

    drawn = [t for t in trials if t.intermediate_values]
    if not drawn:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    done = [t for t in drawn if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if done:
        pick = min if metric == "dev_loss" else max
        best = pick(done, key=lambda t: t.value).number
    labelled: set[str] = set()
    for t in drawn:
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        kind = "pruned" if t.state == TrialState.PRUNED else "complete"
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            kind = "other"
        label = None if kind in labelled else kind
        labelled.add(kind)
        ax.plot(
            steps,
            values,
            linestyle="--" if kind == "pruned" else "-",
            color={"complete": "tab:blue", "pruned": "tab:orange"}.get(kind, "tab:grey"),
            alpha=0.55,
            linewidth=1,
            label=label,
        )
        if t.number == best:
            ax.plot(steps, values, color="tab:red", linewidth=2.5, label=f"best (trial {best})")
    finite = [v for t in drawn for v in t.intermediate_values.values() if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch of every trial (what the pruner saw)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _rounds_rows(rows: Sequence[Mapping[str, Any]], metric: str, minimize: bool) -> list[list[Any]]:
    out = []
    for rnd in sorted({r["round"] for r in rows}):
        mine = [r for r in rows if r["round"] == rnd]
        values = [r[metric] for r in mine if r["state"] == "complete" and r[metric] != ""]
        best = (min if minimize else max)(values) if values else None
        count = {s: sum(r["state"] == s for r in mine) for s in ("complete", "pruned", "failed")}
        out.append([rnd, len(mine), count["complete"], count["pruned"], count["failed"], best])
    return out


def tune_report(directory: Path, storage: str | None = None, study: str | None = None) -> str:
    """The HTML of a tune directory's report."""
    from deepfit.tuning import importance as tune_importance
    from deepfit.tuning import plots as tune_plots
    from deepfit.tuning import space as _space
    from deepfit.tuning.study import BEST_FILE, Settings, format_point, trial_rows

    st = open_study(directory, storage, study)
    identity = st.user_attrs.get("deepfit")
    if not identity:
        raise DeepfitError(f"study {st.study_name!r} was not made by deepfit tune")
    space = _space.Space.from_description(identity["space"], identity.get("base"))
    metric = identity["metric"]
    settings = Settings(
        strategy=identity["strategy"], metric=metric, direction=identity["direction"]
    )
    trials = st.get_trials(deepcopy=False)
    rows = trial_rows(trials, space, metric)
    columns = [
        "number",
        "state",
        "round",
        "attempt",
        *space.keys,
        metric,
        "epochs",
        "seconds",
        "error",
    ]
    done = [r for r in rows if r["state"] == "complete" and r[metric] != ""]
    best = (min if settings.minimize else max)(done, key=lambda r: r[metric]) if done else None
    counts = {
        s: sum(r["state"] == s for r in rows)
        for s in ("complete", "pruned", "failed", "interrupted", "running")
    }
    facts = [
        ["study", st.study_name],
        ["strategy", identity["strategy"]],
        ["metric", f"{metric} ({identity['direction']})"],
        ["trials", ", ".join(f"{n} {s}" for s, n in counts.items() if n)],
        *(
            [["rounds", identity["rounds"]], ["keep", identity["keep"]]]
            if identity.get("rounds")
            else []
        ),
        *[[f"space: {k}", e] for k, e in identity["space"].items()],
    ]
    if best is not None:
        point = {k: best[k] for k in space.keys if best[k] != ""}
        facts.insert(
            4,
            [
                "best",
                f"trial {best['number']}: {metric} {_number(best[metric])}  {format_point(point)}",
            ],
        )
    sections = [("Study", table(["", "value"], [[k, _number(v)] for k, v in facts]))]
    state_col = columns.index("state")
    sections.append(
        (
            "Trials (click a column to sort)",
            table(
                columns,
                [[r[c] for c in columns] for r in rows],
                sortable=True,
                row_classes=[
                    "best" if best is not None and r["number"] == best["number"] else ""
                    for r in rows
                ],
                cell_classes=lambda c, v: f"state-{v}" if c == state_col else "",
            ),
        )
    )
    figures = []
    if _have_matplotlib():
        collected = tune_plots._collect(trials, space)
        if collected:
            figures.append(
                figure(
                    render(lambda p: tune_plots.params(collected, space, metric, p)),
                    f"{metric} against each hyperparameter (log axes where sampled on a log "
                    "scale; crosses: pruned trials at their last report)",
                )
            )
        png = render(lambda p: _intermediate_figure(trials, metric, p))
        if png is not None:
            figures.append(figure(png, f"{metric} per epoch of every trial"))
        rounds_png = (
            render(lambda p: tune_plots.rounds(collected, space, settings, p))
            if collected
            else None
        )
    else:
        figures.append(_NO_MATPLOTLIB)
        rounds_png = None
    if not rows:
        figures.append(_paragraph("no trial has ended yet", "note"))
    sections.append(("The metric against each hyperparameter", "".join(figures)))
    rounds_html = table(
        ["round", "trials", "complete", "pruned", "failed", f"best {metric}"],
        _rounds_rows(rows, metric, settings.minimize),
    )
    if rounds_png is not None:
        rounds_html += figure(rounds_png, "trials in order with the best so far; rounds coloured")
    sections.append(("Rounds", rounds_html))
    try:
        found, evaluator = tune_importance.importances(st, space)
        top = max(found.values()) or 1.0
        bars = [[k, f"{v:.3f}", v] for k, v in sorted(found.items(), key=lambda kv: -kv[1])]
        body = "".join(
            f'<tr><td class="text">{esc(k)}</td><td class="text"><span class="bar" '
            f'style="width:{200 * v / top:.0f}px"></span>{esc(text)}</td></tr>'
            for k, text, v in bars
        )
        importance_html = (
            f'<table><thead><tr><th class="text">hyperparameter</th><th class="text">'
            f"importance ({esc(evaluator)})</th></tr></thead><tbody>{body}</tbody></table>"
        )
    except DeepfitError as exc:
        importance_html = _paragraph(f"not available: {exc}", "note")
    sections.append(("Hyperparameter importance", importance_html))
    best_file = directory / BEST_FILE
    if best_file.exists():
        sections.append((f"Best config ({BEST_FILE})", _pre(best_file.read_text())))
    subtitle = f"tune directory {directory}"
    return page(f"deepfit study: {st.study_name}", subtitle, sections)


# -- entry point --------------------------------------------------------------------------------
def write_report(
    directory: str | Path,
    output: str | Path | None = None,
    *,
    storage: str | None = None,
    study: str | None = None,
) -> Path:
    """Write the report of a run or tune ``directory`` to ``output`` (default
    ``directory/report.html``) and return its path.

    A directory with ``summary.json`` is a run; one with ``study.db`` (or any directory when
    ``storage`` names the study's database) is a study.
    """
    from deepfit.experiment import SUMMARY_FILE

    d = Path(directory)
    if not d.is_dir():
        raise DeepfitError(f"{d}: no such directory")
    if (d / SUMMARY_FILE).exists() and storage is None:
        text = run_report(d)
    else:
        text = tune_report(d, storage, study)
    return atomic_write_text(Path(output) if output is not None else d / REPORT_FILE, text)
