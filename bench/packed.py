"""16 random-search trials of a small tabular MLP, packed into one network against one by one.

The trials: a 2 x 64 ReLU MLP on ``../shared/data/tables/Default.csv`` (target ``default``)
through the table path (``deepfit.experiment.prepare_table_data``: the zero-config recipe's
column roles, encoding and scaling; 85/15 train/dev split, prepared once), Adam, batch 128,
``--epochs`` epochs with early stopping on the dev loss (patience ``--patience``, best weights
restored). Each trial draws its own learning rate (log-uniform 1e-4..3e-2), L2 lambda
(log-uniform 1e-4..1), AdamW weight decay (log-uniform 1e-5..1e-2), dropout keep probability
(uniform 0.7..1) and Adam beta1 (uniform 0.8..0.95); trial ``i`` is seeded ``i``.

Contenders, in one process (the same prepared arrays):

- ``one by one``: each trial is ``deepfit.experiment.run`` of its config (today's path: what
  ``deepfit tune`` runs per trial), in turn;
- ``--workers 2``: the same 16 runs in a pool of 2 processes (as ``deepfit tune --workers 2``);
- ``packed``: the 16 trials as the 16 members of one :class:`deepfit.nn.packed.PackedSequential`
  trained by :class:`deepfit.training.packed.PackedTrainer` (per-member lr, L2, weight decay,
  keep_prob, beta1 and initial weights; per-member early stopping). The members share one
  shuffling stream (a trial run alone shuffles with its own seed), so the two paths train on
  different batch orders: their accuracies agree in distribution, not number for number (the
  exact equivalence is tested in ``tests/training/test_packed_trainer.py``).

Peak memory (``tracemalloc``, which sees NumPy's allocations) is measured in separate, untimed
runs: one trial alone, and the 16 packed. BLAS runs on one thread in every contender.

    .venv/bin/python bench/packed.py [--epochs 40] [--patience 10] [--out bench/packed.md]

``--ab`` measures each lever of the packed step instead (same process, A and B alternating,
``--reps`` times each, medians): stopped members leaving the computation
(``PackedTrainer.compact``), the fused Adam kernel, the fused Dense -> ReLU -> Dropout
kernels (``PackedSequential.fuse``), all JIT kernels (``deepfit.kernels.USE_JIT``), dropout
seeds read with ``random_raw``; and the batched products of one step in isolation (stacked
``np.matmul``, a loop of 2-D products into ``out=``, ``einsum``, one product for the shared
input). It prints a Markdown table.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import copy
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from deepfit import experiment
from deepfit.build import streams
from deepfit.nn.packed import packed_mlp
from deepfit.optim.packed import PackedAdam
from deepfit.recipes import table_config
from deepfit.training.packed import PackedTrainer

HERE = Path(__file__).resolve().parent
TABLE = HERE.parent.parent / "shared" / "data" / "tables" / "Default.csv"
K = 16
HIDDEN = [64, 64]
BATCH = 128

_PREPARED = None  # the prepared data, inherited by forked workers


def trials(k: int = K) -> list[dict[str, float]]:
    """``k`` random-search draws (seeded: the same trials every run)."""
    rng = np.random.default_rng(2025)
    return [
        {
            "lr": float(np.exp(rng.uniform(np.log(1e-4), np.log(3e-2)))),
            "l2": float(np.exp(rng.uniform(np.log(1e-4), np.log(1.0)))),
            "weight_decay": float(np.exp(rng.uniform(np.log(1e-5), np.log(1e-2)))),
            "keep_prob": float(rng.uniform(0.7, 1.0)),
            "beta1": float(rng.uniform(0.8, 0.95)),
            "seed": i,
        }
        for i in range(k)
    ]


def base_overrides(epochs: int, patience: int) -> list[str]:
    return [
        "data.split=[0.85, 0.15, 0.0]",
        f"model.hidden={HIDDEN}",
        "model.init='he'",
        f"train.batch_size={BATCH}",
        f"train.epochs={epochs}",
        f"train.early_stopping.patience={patience}",
        "train.refit=false",
    ]


def trial_config(trial: dict[str, float], epochs: int, patience: int) -> dict:
    return table_config(
        str(TABLE),
        "default",
        seed=int(trial["seed"]),
        overrides=[
            *base_overrides(epochs, patience),
            f"train.lr={trial['lr']!r}",
            f"model.l2={trial['l2']!r}",
            f"train.weight_decay={trial['weight_decay']!r}",
            f"model.keep_prob={trial['keep_prob']!r}",
            f"train.beta1={trial['beta1']!r}",
        ],
    )


def run_one(args: tuple[dict[str, float], int, int]) -> tuple[float, float, int]:
    """One trial through ``experiment.run``: (dev accuracy, seconds, epochs run)."""
    trial, epochs, patience = args
    with threadpool_limits(1):
        start = time.perf_counter()
        summary = experiment.run(
            trial_config(trial, epochs, patience),
            None,
            progress=False,
            write_plots=False,
            prepared=_PREPARED,
        )
        return summary["dev"]["accuracy"], time.perf_counter() - start, summary["epochs_run"]


def run_packed(ts: list[dict[str, float]], epochs: int, patience: int):
    """The trials as one packed network: (trainer, seconds)."""
    data = _PREPARED
    Xtr, ytr = data.train
    k = len(ts)
    with threadpool_limits(1):
        start = time.perf_counter()
        model = packed_mlp(
            Xtr.shape[1],
            HIDDEN,
            data.n_outputs,
            k,
            keep_prob=[[t["keep_prob"] for t in ts]] * len(HIDDEN),
            rng=[streams(int(t["seed"]))["model"] for t in ts],
        )
        optimizer = PackedAdam(
            k,
            [t["lr"] for t in ts],
            beta1=[t["beta1"] for t in ts],
            weight_decay=[t["weight_decay"] for t in ts],
        )
        trainer = PackedTrainer(
            model,
            "softmax_cross_entropy",
            optimizer,
            batch_size=BATCH,
            l2=[t["l2"] for t in ts],
            seed=streams(0)["train"],
            patience=patience,
        )
        weight = {"sample_weight": data.train_weight} if data.train_weight is not None else {}
        trainer.fit(Xtr, ytr, epochs, validation_data=data.dev, **weight)
        trainer.evaluate(*data.dev)
        return trainer, time.perf_counter() - start


def run_packed_seconds(args: tuple[list[dict[str, float]], int, int]) -> float:
    """:func:`run_packed` in a worker process: its seconds (one packed group of a
    ``--workers N --pack K/N`` search)."""
    return run_packed(*args)[1]


def in_processes(fn, tasks: list, workers: int) -> float:
    """Seconds to run ``fn`` on every task in a pool of ``workers`` forked processes (they
    inherit the prepared data)."""
    start = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(fn, tasks))
    return time.perf_counter() - start


def _median_us(fn, number: int = 200, repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(times)


def _product_cases(k: int, m: int, a: int, b: int, dtype, rng) -> dict:
    """Each way of computing one layer's three products for ``k`` members (no loop variables
    in the closures: each size gets its own call)."""
    W = (rng.standard_normal((k, a, b)) / np.sqrt(a)).astype(dtype)
    xs = rng.standard_normal((k, m, a)).astype(dtype)
    x = xs[0].copy()
    dz = rng.standard_normal((k, m, b)).astype(dtype)
    out, gW, dx = np.empty((k, m, b), dtype), np.empty_like(W), np.empty_like(xs)
    wide = np.ascontiguousarray(W.transpose(1, 0, 2).reshape(a, k * b))
    WT = np.empty((k, b, a), dtype)

    def via_copy():
        np.copyto(WT, W.transpose(0, 2, 1))
        np.matmul(dz, WT, out=dx)

    return {
        "forward, stacked matmul": lambda: np.matmul(xs, W, out=out),
        "forward, loop of 2-D matmul out=": lambda: [
            np.matmul(xs[j], W[j], out=out[j]) for j in range(k)
        ],
        "forward, einsum": lambda: np.einsum("kmi,kio->kmo", xs, W, out=out),
        "forward, shared input broadcast": lambda: np.matmul(x, W, out=out),
        "forward, shared input as one (m, n_in) x (n_in, K n) product": lambda: x @ wide,
        "dW, stacked matmul": lambda: np.matmul(xs.transpose(0, 2, 1), dz, out=gW),
        "dW, loop of 2-D matmul out=": lambda: [
            np.matmul(xs[j].T, dz[j], out=gW[j]) for j in range(k)
        ],
        "dx, stacked matmul with W^T": lambda: np.matmul(dz, W.transpose(0, 2, 1), out=dx),
        "dx, W^T copied, then stacked matmul": via_copy,
        "dx, loop of 2-D matmul out=": lambda: [
            np.matmul(dz[j], W[j].T, out=dx[j]) for j in range(k)
        ],
    }


def products_ab(k: int = K, m: int = BATCH, dtype=np.float32) -> list[str]:
    """The batched products of one step, each way, at the bench's sizes (microseconds)."""
    rng = np.random.default_rng(0)
    n_in = _PREPARED.train[0].shape[1]
    sizes = ((n_in, HIDDEN[0]), (HIDDEN[0], HIDDEN[1]), (HIDDEN[1], _PREPARED.n_outputs))
    rows = []
    with threadpool_limits(1):
        for a, b in sizes:
            for name, fn in _product_cases(k, m, a, b, dtype, rng).items():
                rows.append(f"| {a} x {b} | {name} | {_median_us(fn):.1f} |")
    return rows


def levers_ab(ts, epochs: int, patience: int, reps: int, only: str = "") -> list[str]:
    """Each lever off (A) and on (B), alternating in this process: medians of ``reps``."""
    from deepfit import kernels
    from deepfit.nn.packed import PackedDropout, PackedSequential
    from deepfit.optim.packed import PackedScaleByAdam

    def slow_seeds(self, dropping):
        return np.array(
            [self.rngs[j].integers(0, 2**64, dtype=np.uint64) for j in dropping], dtype=np.uint64
        )

    def setter(obj, attr, off, on):
        return lambda flag: setattr(obj, attr, on if flag else off)

    fast_seeds = PackedDropout.draw_seeds
    fused_adam = PackedScaleByAdam.fused_step_
    levers = [
        ("stopped members leave the computation", setter(PackedTrainer, "compact", False, True)),
        (
            "fused packed Adam kernel",
            setter(PackedScaleByAdam, "fused_step_", lambda *a: False, fused_adam),
        ),
        ("fused Dense -> ReLU -> Dropout kernels", setter(PackedSequential, "fuse", False, True)),
        (
            "dropout seeds via random_raw",
            setter(PackedDropout, "draw_seeds", slow_seeds, fast_seeds),
        ),
        ("all JIT kernels (DEEPFIT_JIT)", setter(kernels, "USE_JIT", False, True)),
    ]
    rows = []
    for name, switch in levers:
        if only not in name:
            continue
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(reps):
            for flag in (False, True):
                switch(flag)
                times[flag].append(run_packed(ts, epochs, patience)[1])
        switch(True)
        a, b = statistics.median(times[False]), statistics.median(times[True])
        rows.append(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def tune_config(epochs: int, patience: int, k: int = K) -> dict:
    """The trials' search as a ``[tune]`` study: the same base config and distributions,
    random search of ``k`` trials, pruning off, ``pack = k`` (the members share the seed 0,
    which the driver requires of a packed group)."""
    config = copy.deepcopy(
        table_config(str(TABLE), "default", seed=0, overrides=base_overrides(epochs, patience))
    )
    config["tune"] = {
        "trials": k,
        "strategy": "random",
        "metric": "dev_loss",
        "pruning": False,
        "pack": k,
        "space": {
            "train": {
                "lr": "loguniform(1e-4, 3e-2)",
                "weight_decay": "loguniform(1e-5, 1e-2)",
                "beta1": "uniform(0.8, 0.95)",
            },
            "model": {"l2": "loguniform(1e-4, 1)", "keep_prob": "uniform(0.7, 1.0)"},
        },
    }
    return config


def run_tune_pack(epochs: int, patience: int) -> float:
    """Seconds of ``deepfit tune --pack 16`` (in process: ``deepfit.tuning.tune``, one local
    worker) of :func:`tune_config`, into a fresh directory."""
    from deepfit.tuning import tune

    with tempfile.TemporaryDirectory() as out, threadpool_limits(1):
        start = time.perf_counter()
        tune(
            tune_config(epochs, patience),
            out,
            pack=K,
            workers=1,
            plots=False,
            train_best=False,
            echo=lambda line: None,
        )
        return time.perf_counter() - start


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    global _PREPARED
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "packed.md"))
    parser.add_argument("--ab", action="store_true", help="A/B of each lever instead")
    parser.add_argument("--lever", default="", help="--ab: only the levers whose name has this")
    parser.add_argument("--reps", type=int, default=3, help="runs of the packed training (median)")
    args = parser.parse_args(argv)
    ts = trials()
    base = table_config(str(TABLE), "default", seed=0, overrides=base_overrides(1, 1))
    _PREPARED = experiment.prepare_table_data(base)
    Xtr = _PREPARED.train[0]
    print(f"Default.csv: {Xtr.shape[0]} training rows x {Xtr.shape[1]} features", flush=True)
    if args.ab:
        run_packed(ts[:2], 1, 1)  # warm-up: imports, JIT compilation
        lines = [
            f"A/B of the levers (16 packed trials, --epochs {args.epochs} --patience "
            f"{args.patience}; seconds, median of {args.reps}, A and B alternating in one "
            f"process; load average before: {os.getloadavg()[0]:.1f})",
            "",
            "| lever | off (s) | on (s) | speed-up |",
            "| --- | ---: | ---: | ---: |",
            *levers_ab(ts, args.epochs, args.patience, args.reps, args.lever),
            "",
            f"Products of one step (float32, K = {K}, batch {BATCH}; microseconds, median; "
            f"load average before: {os.getloadavg()[0]:.1f})",
            "",
            "| layer | product | us |",
            "| --- | --- | ---: |",
            *products_ab(),
            "",
            f"load average after: {os.getloadavg()[0]:.1f}",
        ]
        print("\n".join(lines))
        return 0

    # warm-up (imports, JIT compilation) outside the clocks
    load = [os.getloadavg()[0]]
    run_one((ts[0], 1, 1))
    run_packed(ts[:2], 1, 1)

    single = [run_one((t, args.epochs, args.patience)) for t in ts]
    one_by_one = sum(s for _, s, _ in single)
    one_trial = statistics.median(s for _, s, _ in single)
    single_epochs = sum(e for _, _, e in single)
    print(f"one by one: {one_by_one:.1f} s (median trial {one_trial:.2f} s)", flush=True)

    pooled = split = None
    if args.workers > 1:
        pooled = in_processes(run_one, [(t, args.epochs, args.patience) for t in ts], args.workers)
        print(f"--workers {args.workers}: {pooled:.1f} s", flush=True)
        groups = [(ts[i :: args.workers], args.epochs, args.patience) for i in range(args.workers)]
        split = in_processes(run_packed_seconds, groups, args.workers)
        print(f"{args.workers} packed groups of {K // args.workers}: {split:.1f} s", flush=True)

    packed_runs = []
    for _ in range(args.reps):  # the same training each time: the median of the clocks
        trainer, seconds = run_packed(ts, args.epochs, args.patience)
        packed_runs.append(seconds)
    packed = statistics.median(packed_runs)
    print(f"packed: {packed:.1f} s (runs: {', '.join(f'{t:.1f}' for t in packed_runs)})")
    run_tune_pack(1, 1)  # warm-up: Optuna's imports
    tuned = run_tune_pack(args.epochs, args.patience)
    print(f"tune --pack {K}: {tuned:.1f} s", flush=True)
    load.append(os.getloadavg()[0])
    result = trainer.evaluate(*_PREPARED.dev)
    packed_acc = result["accuracy"]
    epochs_packed = [int(e) for e in trainer.best_epoch]
    # the members that trained in each epoch (a stopped member leaves the computation)
    packed_epochs = sum(sum(rec["active"]) for rec in trainer.history)

    peak_one = peak_bytes(lambda: run_one((ts[0], args.epochs, args.patience)))
    peak_packed = peak_bytes(lambda: run_packed(ts, args.epochs, args.patience))
    data_bytes = sum(a.nbytes for pair in (_PREPARED.train, _PREPARED.dev) for a in pair)

    mb = 1 / 2**20
    lines = [
        "# Packed trials: 16 random-search trials as one network",
        "",
        f"`bench/packed.py --epochs {args.epochs} --patience {args.patience}`: {K} trials of a "
        f"{' x '.join(map(str, HIDDEN))} ReLU MLP on Default.csv ({Xtr.shape[0]} training rows "
        f"x {Xtr.shape[1]} features after the table path; dev 15%), Adam, batch {BATCH}, early "
        "stopping on the dev loss; each trial its own lr, L2, weight decay, keep_prob, beta1 "
        "and seed. BLAS on one thread. Python "
        f"{platform.python_version()}, {platform.processor() or platform.machine()}; "
        f"wall-clock seconds on a shared 2-core machine (load average {load[0]:.1f} at the "
        f"start, {load[1]:.1f} at the end of the timed runs: other jobs were running; ratios are "
        "what to read).",
        "",
        "| contender | seconds | vs one trial | vs 16 one by one |",
        "| --- | ---: | ---: | ---: |",
        f"| one trial (median of the 16) | {one_trial:.2f} | 1.00 | |",
        f"| 16 one by one (`experiment.run` each) | {one_by_one:.1f} | "
        f"{one_by_one / one_trial:.1f} | 1.00 |",
    ]
    if pooled is not None:
        lines.append(
            f"| 16 in `--workers {args.workers}` processes | {pooled:.1f} | "
            f"{pooled / one_trial:.1f} | {pooled / one_by_one:.2f} |"
        )
    lines += [
        f"| **16 packed** (one `PackedTrainer`, median of {args.reps} runs) | **{packed:.1f}** | "
        f"**{packed / one_trial:.1f}** | **{packed / one_by_one:.2f}** |",
    ]
    if split is not None:
        lines.append(
            f"| 16 packed as {args.workers} groups of {K // args.workers} in {args.workers} "
            f"processes (`--workers {args.workers} --pack {K // args.workers}`) | {split:.1f} | "
            f"{split / one_trial:.1f} | {split / one_by_one:.2f} |"
        )
    lines += [
        f"| 16 through `deepfit tune --pack {K}` (a random search of its own 16 points) | "
        f"{tuned:.1f} | {tuned / one_trial:.1f} | {tuned / one_by_one:.2f} |",
        "",
        f"Goal: 16 packed trials in at most 3x the time of one trial: "
        f"{'met' if packed <= 3 * one_trial else 'not met'} ({packed / one_trial:.1f}x).",
        "",
        "Dev accuracy of the 16 trials (they see different batch orders, so they agree in "
        "distribution, not number for number):",
        "",
        "| | mean | best | worst |",
        "| --- | ---: | ---: | ---: |",
        f"| one by one | {statistics.fmean(a for a, _, _ in single):.4f} | "
        f"{max(a for a, _, _ in single):.4f} | {min(a for a, _, _ in single):.4f} |",
        f"| packed | {statistics.fmean(packed_acc):.4f} | {max(packed_acc):.4f} | "
        f"{min(packed_acc):.4f} |",
        "",
        f"Packed members' best epochs: {epochs_packed}.",
        "",
        "Work done: the 16 runs one by one trained "
        f"{single_epochs} member-epochs ({1e3 * one_by_one / single_epochs:.0f} ms each); "
        f"the packed network trains each member until it stops ({len(trainer.history)} epochs "
        f"for the last one), {packed_epochs} member-epochs "
        f"({1e3 * packed / packed_epochs:.0f} ms each).",
        "",
        "Peak memory (tracemalloc, untimed runs):",
        "",
        "| run | peak MiB |",
        "| --- | ---: |",
        f"| one trial | {peak_one * mb:.1f} |",
        f"| 16 packed | {peak_packed * mb:.1f} |",
        f"| (the prepared train + dev arrays, shared) | {data_bytes * mb:.1f} |",
        "",
        "The packed network never copies the data per member: each mini-batch is gathered once "
        "and broadcast over the member axis by the first layer's batched product.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
