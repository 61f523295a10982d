"""Training streamed from disk against training in memory, on the same table.

``diamonds.csv`` (53,940 rows) is replicated to ``--rows`` rows (2,000,000 by default: 37
copies plus a part) and written as Parquet in row groups of 65,536 rows. Each path runs in a
fresh process, one after the other, ``--reps`` times alternating (memory, stream, memory,
...), with the table recipe's model (``deepfit.recipes.TABLE_RECIPE``: one hidden layer of 128,
Adam, batches of 128) for ``--epochs`` epochs, no early stopping, no refit:

- **prepare**: seconds from the file to training-ready data (in memory: read, roles, split,
  fit and transform everything; streamed: the one statistics pass, the dev and test rows);
- **epoch**: seconds of one training epoch (the mean over the epochs, dev evaluation
  included), and the training **rows/s** it gives;
- **stream only**: rows/s of one more epoch of the stream's batches without a model, after
  training (reading the row groups, preprocessing, the shuffle buffer; with the cache, reading
  the cached rows back): the stream's own ceiling;
- **stream+cache**: streamed with ``data.stream_cache`` (the first epoch keeps the
  preprocessed chunks on disk, the later ones read them back);
- **peak RSS**: the process's maximum resident set (``getrusage``), which includes the
  interpreter and the libraries (about 150 MB by themselves).

The machine is shared: its load average is printed beside each run; read the ratios, not the
seconds. ``--out`` (default ``bench/streaming.md``; ``-``: none) receives the table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/streaming.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIAMONDS = ROOT.parent / "shared" / "data" / "tables" / "diamonds.csv"
ROW_GROUP = 65536


def write_table(rows: int, path: Path) -> None:
    """``diamonds.csv`` repeated to ``rows`` rows, as Parquet row groups of ``ROW_GROUP``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    base = pacsv.read_csv(DIAMONDS)
    copies = -(-rows // base.num_rows)
    table = pa.concat_tables([base] * copies).slice(0, rows)
    pq.write_table(table, path, row_group_size=ROW_GROUP)


def child(mode: str, path: str, epochs: int) -> dict:
    """One measured run in this process; returns what it measured."""
    import numpy as np

    from deepfit import config as configuration
    from deepfit.build import build_model, loss_name
    from deepfit.data.batches import BatchSource
    from deepfit.experiment import _trainer, prepare
    from deepfit.recipes import table_config

    cfg = table_config(
        path,
        "price",
        overrides=[
            f"data.stream={'false' if mode == 'memory' else 'true'}",
            f"data.stream_cache={'true' if mode == 'stream+cache' else 'false'}",
            f"train.epochs={epochs}",
            "train.refit=false",
            "train.early_stopping.enabled=false",
        ],
    )
    configuration.validate(cfg)
    start = time.perf_counter()
    data = prepare(cfg)
    prepare_s = time.perf_counter() - start
    X, y = data.train
    out = {"mode": mode, "prepare_s": prepare_s, "n_train": int(X.shape[0])}
    loss = loss_name(cfg, data.task, data.n_outputs)
    model = build_model(cfg, X.shape[1], data.n_outputs, loss, None)
    trainer = _trainer(cfg, model, loss, data, [])
    history = trainer.fit(X, y, epochs=epochs, validation_data=data.dev)
    seconds = history["seconds"]
    out["epoch_s"] = statistics.mean(seconds)
    out["rows_s"] = out["n_train"] / out["epoch_s"]
    out["first_rows_s"] = out["n_train"] / seconds[0]
    out["last_rows_s"] = out["n_train"] / seconds[-1]
    out["dev_loss"] = history["dev_loss"][-1]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if isinstance(X, BatchSource):  # after training: with the cache, its read-back speed
        start = time.perf_counter()
        n = sum(len(b[1]) for b in X.batches(128, np.random.default_rng(0)))
        out["stream_only_rows_s"] = n / (time.perf_counter() - start)
    return out


def run_child(mode: str, path: Path, epochs: int) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), "--epochs", str(epochs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load"] = (load, os.getloadavg()[0])
    return result


def table(results: list[dict], rows: int, epochs: int, disk_mb: float) -> str:
    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results if r["mode"] == mode)

    lines = [
        "# Training from a stream against training in memory",
        "",
        f"`bench/streaming.py --rows {rows} --epochs {epochs}`: diamonds.csv replicated to "
        f"{rows:,} rows, Parquet in row groups of {ROW_GROUP:,} rows ({disk_mb:.0f} MB on disk); "
        "the table recipe's model (128 hidden units, Adam, batches of 128), target `price`. "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; shared, so read the ratios.",
        "",
        "| run | path | load avg (before, after) | prepare s | epoch s (mean) | train rows/s "
        f"(epoch 1) | train rows/s (epoch {epochs}) | stream-only rows/s | peak RSS MB | "
        "dev loss |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(results, 1):
        only = f"{r['stream_only_rows_s']:,.0f}" if "stream_only_rows_s" in r else "-"
        lines.append(
            f"| {i} | {r['mode']} | {r['load'][0]:.1f}, {r['load'][1]:.1f} | "
            f"{r['prepare_s']:.1f} | {r['epoch_s']:.1f} | {r['first_rows_s']:,.0f} | "
            f"{r['last_rows_s']:,.0f} | {only} | "
            f"{r['peak_rss_mb']:,.0f} | {r['dev_loss']:.4f} |"
        )
    lines.append("")
    for mode in ("stream", "stream+cache"):
        ratio = med(mode, "rows_s") / med("memory", "rows_s")
        last = med(mode, "last_rows_s") / med("memory", "last_rows_s")
        rss = med(mode, "peak_rss_mb") / med("memory", "peak_rss_mb")
        prep = med(mode, "prepare_s") / med("memory", "prepare_s")
        lines.append(
            f"Medians, {mode} / in memory: training rows/s **{ratio:.2f}x** over all epochs "
            f"(**{last:.2f}x** in epoch {epochs}), peak RSS **{rss:.2f}x**, prepare time "
            f"{prep:.2f}x."
        )
        lines.append("")
    lines += [
        "With `data.stream_cache` the first epoch also writes each preprocessed row group to "
        "a temporary folder and the later epochs read those float32 rows back instead of "
        "decoding and preprocessing the Parquet file again.",
        "",
        "The streamed epoch reads every row group, preprocesses it (the same "
        "`TablePreprocessor.transform` as in memory) and passes it through the shuffle buffer "
        "(65,536 rows); in memory the epoch only gathers rows of a ready float32 matrix. Peak "
        "memory of the stream is one row group, the buffer, the dev and test rows and the "
        "statistics sample (100,000 rows), whatever the table's length; in memory it grows "
        "with the table (the raw table, its split copies and the float32 matrix).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "streaming.md"))
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.epochs)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diamonds_big.parquet"
        write_table(args.rows, path)
        disk_mb = path.stat().st_size / 2**20
        results = []
        for _ in range(args.reps):
            for mode in ("memory", "stream", "stream+cache"):
                results.append(run_child(mode, path, args.epochs))
                print(json.dumps(results[-1]), flush=True)
    text = table(results, args.rows, args.epochs, disk_mb)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
