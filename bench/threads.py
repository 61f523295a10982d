"""BLAS threads while training: deepfit's automatic cap (``train.threads = 0``) against BLAS's
own setting (every core), on the shared tables and on single products, idle and busy.

For each table deepfit's zero-config recipe is fitted on the same 80/20 split (seed 0) with
``train.threads = 0`` (automatic: one BLAS thread for a tabular MLP's small products) and with
``train.threads`` = the number of cores (what BLAS does by itself), alternating in one process;
then the same with one other process spinning on a core ("busy": a second job, a browser, a
test run; started by this script, at normal priority). The scores must agree (the cap changes
no number in float64; in float32 BLAS may split a product's sums differently). Then the three
products of one dense layer's step (forward, ``dW``, ``dx``), float32, for a few sizes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/threads.py

Options: ``--tables`` (comma-separated; default all but diamonds, whose fit takes minutes),
``--reps`` (default 2), ``--out`` (default ``bench/threads.md``; ``-`` writes nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tabular  # noqa: E402  (bench/tabular.py: the tables, the split, the metric)


def spin() -> None:  # pragma: no cover - a busy core, until terminated
    while True:
        pass


@contextlib.contextmanager
def busy(on: bool):
    """One other process spinning on a core while the block runs (when ``on``)."""
    if not on:
        yield
        return
    proc = multiprocessing.get_context("spawn").Process(target=spin, daemon=True)
    proc.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


def fit_seconds(name: str, threads: int) -> tuple[float, float]:
    X, y, task = tabular.load(name)
    Xtr, Xte, ytr, yte = tabular.split(X, y, task, 0)
    start = time.perf_counter()
    pred, _ = tabular.fit_deepfit(Xtr, ytr, Xte, task, 0, [f"train.threads={threads}"])
    return time.perf_counter() - start, tabular.score(task, yte, pred)


def product_us(m: int, a: int, b: int, threads: int, reps: int) -> float:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, a), dtype=np.float32)
    W = rng.standard_normal((a, b), dtype=np.float32)
    dz = rng.standard_normal((m, b), dtype=np.float32)
    z, dW, dx = np.empty((m, b), np.float32), np.empty_like(W), np.empty_like(x)
    with threadpool_limits(threads, user_api="blas"):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(reps):
                np.matmul(x, W, out=z)
                np.matmul(x.T, dz, out=dW)
                np.matmul(dz, W.T, out=dx)
            times.append((time.perf_counter() - start) / reps * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [n for n in tabular.TABLES if n != "diamonds"]
    parser.add_argument("--tables", default=",".join(names))
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "threads.md"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    blas = [
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, {i['num_threads']} "
        "threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    lines = [
        "# BLAS threads while training",
        "",
        "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/threads.py"
        + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
        + "`",
        "",
        f"{cores} cores; BLAS: {'; '.join(blas)}; load average at the start "
        f"{os.getloadavg()[0]:.2f}. deepfit's zero-config recipe, seed 0, 80/20 split; "
        f"seconds to fit (median of {args.reps}, alternating), automatic cap (`threads = 0`: "
        f"one BLAS thread here) against BLAS's own {cores} threads; busy: one other process "
        "spinning on a core.",
        "",
        "| table | idle: auto s | idle: BLAS s | idle: BLAS / auto | busy: auto s | busy: BLAS s "
        "| busy: BLAS / auto | score auto | score BLAS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.tables.split(","):
        fit_seconds(name, 0)  # untimed: imports, first-use compilation, the file cache
        cells, scores = [], {}
        for load in (False, True):
            times: dict[int, list[float]] = {0: [], cores: []}
            with busy(load):
                for rep in range(args.reps):
                    for threads in (0, cores) if rep % 2 == 0 else (cores, 0):
                        seconds, value = fit_seconds(name, threads)
                        times[threads].append(seconds)
                        scores[threads] = value
            auto, own = statistics.median(times[0]), statistics.median(times[cores])
            cells += [f"{auto:.1f}", f"{own:.1f}", f"{own / auto:.2f}"]
        row = f"| {name} | " + " | ".join(cells)
        row += f" | {scores[0]:.4f} | {scores[cores]:.4f} |"
        print(row, flush=True)
        lines.append(row)
    lines += [
        "",
        "One dense layer's step (forward, `dW`, `dx`; float32), microseconds, median of 3:",
        "",
        "| batch x n_in x n_out | multiply-adds | idle: 1 thread | idle: BLAS | busy: 1 thread "
        "| busy: BLAS |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m, a, b in (
        (128, 12, 128),
        (128, 64, 64),
        (128, 128, 128),
        (128, 256, 256),
        (128, 784, 512),
    ):
        reps = max(5, int(2e8 // (3 * m * a * b)))
        cells = []
        for load in (False, True):
            with busy(load):
                cells += [f"{product_us(m, a, b, t, reps):,.0f}" for t in (1, cores)]
        row = f"| {m} x {a} x {b} | {m * a * b:,} | " + " | ".join(cells) + " |"
        print(row, flush=True)
        lines.append(row)
    if args.out != "-":
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
