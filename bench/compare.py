"""deepfit against PyTorch (CPU) and scikit-learn, one epoch at a time, side by side.

Workloads (float32, ReLU, softmax cross-entropy, Adam with lr 1e-3, synthetic data):

1. small tabular MLP: 30-64-64-2, batch 32, one epoch of 20,000 examples;
2. MNIST-sized MLP: 784-512-512-10, batch 128, one epoch of ``--mnist-examples`` examples
   (12,800 by default, 60,000 with ``--full``), plain and with batch norm + dropout
   (``Dense(no bias) -> BatchNorm -> ReLU -> Dropout(keep 0.8)`` per hidden layer);
3. the limit for workload 2: the same eight matrix products per step (three forward, three
   weight gradients, two input gradients), alone, through NumPy's BLAS into preallocated
   outputs: the time no implementation on this BLAS can beat; and the same products plus
   one fused Adam step per batch (one compiled pass over a flat buffer of the model's
   parameter count): the floor of an Adam training step, since Adam reads the parameters,
   gradients and both moments and writes three of them every step;
4. inference throughput (rows per second, 10,000 rows) and the peak memory of one training
   epoch of workload 2 (each contender in a fresh subprocess: peak resident set above the
   resident set after imports and data, from /proc's VmHWM).

Contenders: deepfit's ``Trainer.fit(X, y, epochs=1)`` (input checks, shuffling, loss and
accuracy bookkeeping, NaN guard all included); PyTorch with the idiomatic loop (``randperm``,
index the tensors, ``zero_grad``, ``cross_entropy``, ``backward``, ``step``, ``loss.item()``)
and each of its three Adam implementations: the default (on the CPU, the per-tensor
``for``-loop), ``foreach=True`` (multi-tensor: one kernel per operation over every parameter)
and ``fused=True`` (one fused kernel per step); scikit-learn's ``MLPClassifier.partial_fit``
(one epoch; no batch norm or dropout, and a single logistic output unit for two classes). In
each repetition the contenders run one after the other, in alternating order; the table shows
medians and the ratios ``other / deepfit`` (> 1: deepfit is faster) and ``deepfit / limit``.
PyTorch at its best is the fastest of its three Adams in each row (named in the table); the
default Adam's column stays for context. Inference does not depend on the optimizer, so it
is timed once for PyTorch.

Run it from the repository root, without the BLAS overrides of the development shell:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/compare.py

Options: ``--reps N`` (default 7), ``--quick`` (3 repetitions, smaller epochs),
``--full`` (60,000 MNIST-sized examples), ``--no-jit`` (deepfit's NumPy-only path),
``--out PATH`` (default ``bench/results.md``; ``--out -`` writes nothing).
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

if "--no-jit" in sys.argv:
    os.environ["DEEPFIT_JIT"] = "0"

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import deepfit
from deepfit.training.trainer import Trainer

HERE = Path(__file__).resolve().parent
SMALL = {"name": "small", "widths": [30, 64, 64, 2], "batch": 32, "n": 20_000}
MNIST = {"name": "mnist", "widths": [784, 512, 512, 10], "batch": 128, "n": 12_800}
KEEP = 0.8
INFER_ROWS = 10_000
INFER_PASSES = 5  # predictions per timed block, so that a block lasts long enough to time


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- data ------------------------------------------------------------------------------------
def make_data(widths: list[int], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features, labels from a random linear map (learnable, balanced enough)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, widths[0]), dtype=np.float32)
    w = rng.standard_normal((widths[0], widths[-1]), dtype=np.float32)
    y = (X @ w).argmax(axis=1).astype(np.int64)
    return X, y


# -- contenders: each returns (train one epoch, predict rows) ---------------------------------
def deepfit_contender(widths, batch, bn_dropout: bool):
    model = deepfit.mlp(
        widths[0],
        widths[1:-1],
        widths[-1],
        batchnorm=bn_dropout,
        keep_prob=KEEP if bn_dropout else 1.0,
        rng=0,
        dtype="float32",
    )
    trainer = Trainer(model, optimizer=deepfit.Adam(1e-3), batch_size=batch, seed=0)

    def epoch(X, y):
        trainer.fit(X, y, epochs=1)

    def predict(X):
        return model.predict(X, batch_size=4096)

    return epoch, predict


def torch_model(widths, bn_dropout: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        hidden = i < len(widths) - 2
        layers.append(torch.nn.Linear(n_in, n_out, bias=not (hidden and bn_dropout)))
        if hidden:
            if bn_dropout:
                layers.append(torch.nn.BatchNorm1d(n_out, momentum=0.1))  # ours 0.9
            layers.append(torch.nn.ReLU())
            if bn_dropout:
                layers.append(torch.nn.Dropout(p=1 - KEEP))
    return torch.nn.Sequential(*layers)


#: PyTorch's Adam implementations: the keyword arguments that choose each one
TORCH_ADAMS: dict[str, dict[str, bool]] = {
    "torch": {"foreach": False, "fused": False},  # the CPU default: the per-tensor loop
    "torch foreach": {"foreach": True},
    "torch fused": {"fused": True},
}


def torch_contender(widths, batch, bn_dropout: bool, adam: str = "torch"):
    model = torch_model(widths, bn_dropout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **TORCH_ADAMS[adam])
    gen = torch.Generator().manual_seed(0)
    loss_fn = torch.nn.functional.cross_entropy

    def epoch(X, y):
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        model.train()
        perm = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for start in range(0, len(Xt), batch):
            idx = perm[start : start + batch]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        return total / len(Xt)

    def predict(X):
        model.eval()
        Xt = torch.from_numpy(X)
        with torch.inference_mode():
            return np.concatenate(
                [model(Xt[i : i + 4096]).numpy() for i in range(0, len(Xt), 4096)]
            )

    return epoch, predict


def sklearn_contender(widths, batch, bn_dropout: bool):
    if bn_dropout:
        return None
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(widths[1:-1]),
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=batch,
        learning_rate_init=1e-3,
        shuffle=True,
        random_state=0,
    )
    classes = np.arange(widths[-1])

    def epoch(X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, y, classes=classes)

    def predict(X):
        return clf.predict_proba(X)

    return epoch, predict


CONTENDERS: dict[str, Callable] = {
    "deepfit": deepfit_contender,
    **{
        name: functools.partial(torch_contender, adam=name)
        for name in TORCH_ADAMS  # "torch" (default Adam), "torch foreach", "torch fused"
    },
    "sklearn": sklearn_contender,
}
INFERENCE_CONTENDERS = ("deepfit", "torch", "sklearn")


# -- the limit -------------------------------------------------------------------------------
def matmul_limit_step(widths: list[int], batch: int) -> Callable[[], None]:
    """The matrix products of one training step of an MLP, alone, into preallocated outputs.

    Forward ``a_l @ W_l`` for every layer; backward ``a_l^T @ dz_l`` for every layer and
    ``dz_l @ W_l^T`` for every layer but the first (nobody needs the input's gradient).
    """
    rng = np.random.default_rng(0)
    f32 = np.float32
    Ws = [
        rng.standard_normal((a, b), dtype=f32) / np.float32(np.sqrt(a))
        for a, b in itertools.pairwise(widths)
    ]
    acts = [rng.standard_normal((batch, w), dtype=f32) for w in widths]
    dWs = [np.empty_like(W) for W in Ws]
    dacts = [rng.standard_normal(a.shape, dtype=f32) for a in acts]  # finite, O(1) values

    def step() -> None:
        for layer, W in enumerate(Ws):
            np.matmul(acts[layer], W, out=acts[layer + 1])
        for layer in reversed(range(len(Ws))):
            np.matmul(acts[layer].T, dacts[layer + 1], out=dWs[layer])
            if layer:
                np.matmul(dacts[layer + 1], Ws[layer].T, out=dacts[layer])

    return step


def adam_limit_step(n_params: int) -> Callable[[], None]:
    """One Adam update of ``n_params`` float32 parameters held in one flat buffer, in a single
    fused pass on one thread (deepfit's compiled kernel with no Python around it): the
    optimizer's own pass over the parameters, gradients and both moments (7 arrays of
    ``n_params`` floats read or written), which no Adam step can skip. PyTorch's
    ``fused=True`` kernel does the same pass in the same time on one thread (342 against
    357 us for 668,426 parameters here); on its own OpenMP threads its workers keep spinning
    after the step and slow the next OpenBLAS products about threefold, so it cannot be the
    floor inside this loop."""
    from deepfit.kernels import _jit

    rng = np.random.default_rng(0)
    p, g, v = (rng.standard_normal(n_params, dtype=np.float32) for _ in range(3))
    s = np.abs(rng.standard_normal(n_params, dtype=np.float32))
    scalars = np.array([0.9, 0.1, 0.999, 0.001, 0.1, 0.001, 1e-8, 0.0, 1e-3], np.float32)
    return lambda: _jit.adam_step(p, g, v, s, scalars)


def n_params(widths: list[int], bn_dropout: bool) -> int:
    """The number of trainable parameters of deepfit's model for the workload."""
    model = deepfit.mlp(widths[0], widths[1:-1], widths[-1], batchnorm=bn_dropout, rng=0)
    return sum(int(p.size) for p in model.params.values())


# -- timing ----------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def busy_fraction(seconds: float = 0.3) -> float:
    """Fraction of the machine's CPU time used (by anyone) over ``seconds``, from /proc/stat."""
    try:

        def sample() -> tuple[int, int]:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
            idle = fields[3] + fields[4]
            return sum(fields), idle

        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
        return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
    except OSError:
        return 0.0


NOISY: list[float] = []


def wait_for_quiet(limit: float = 0.15, patience: float = 30.0) -> None:
    """Wait (up to ``patience`` seconds) until other processes leave the cores idle: with
    two BLAS threads, one busy core slows every contender many times over."""
    deadline = time.perf_counter() + patience
    busy = busy_fraction()
    while busy > limit and time.perf_counter() < deadline:
        busy = busy_fraction(1.0)
    if busy > limit:
        NOISY.append(busy)


def race(entries: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds of each entry, alternating the order every repetition."""
    for fn in entries.values():  # warm-up: first touch, JIT compilation, optimizer state
        fn()
    times: dict[str, list[float]] = {name: [] for name in entries}
    order = list(entries)
    for _ in range(reps):
        wait_for_quiet()
        for name in order:
            gc.collect()
            time.sleep(0.1)  # let the last contender's spinning OpenMP/BLAS threads go idle
            times[name].append(timed(entries[name]))
        order.reverse()
    return {name: statistics.median(ts) for name, ts in times.items()}


def train_case(workload: dict, bn_dropout: bool, reps: int) -> dict[str, float]:
    X, y = make_data(workload["widths"], workload["n"])
    entries = {}
    for name, make in CONTENDERS.items():
        built = make(workload["widths"], workload["batch"], bn_dropout)
        if built is not None:
            epoch, _ = built
            entries[name] = lambda epoch=epoch: epoch(X, y)
    if workload["name"] == "mnist":
        step = matmul_limit_step(workload["widths"], workload["batch"])
        steps = math.ceil(workload["n"] / workload["batch"])

        def limit() -> None:
            for _ in range(steps):
                step()

        entries["matmul limit"] = limit
        adam = adam_limit_step(n_params(workload["widths"], bn_dropout))

        def limit_with_adam() -> None:
            for _ in range(steps):
                step()
                adam()

        entries["matmul + Adam limit"] = limit_with_adam
    return race(entries, reps)


def inference_case(workload: dict, reps: int) -> dict[str, float]:
    """Rows per second of each contender's prediction on INFER_ROWS rows."""
    X_train, y_train = make_data(workload["widths"], 2048)
    X, _ = make_data(workload["widths"], INFER_ROWS, seed=1)
    entries = {}
    for name in INFERENCE_CONTENDERS:
        epoch, predict = CONTENDERS[name](workload["widths"], workload["batch"], False)
        epoch(X_train, y_train)  # sklearn cannot predict before it is fitted
        entries[name] = lambda predict=predict: [predict(X) for _ in range(INFER_PASSES)]
    seconds = race(entries, reps)
    return {name: INFER_ROWS * INFER_PASSES / s for name, s in seconds.items()}


# -- peak memory (one subprocess per contender) ----------------------------------------------
def _proc_status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_child(contender: str, workload_name: str, bn_dropout: bool) -> None:
    workload = {"small": SMALL, "mnist": MNIST}[workload_name]
    X, y = make_data(workload["widths"], workload["n"])
    import sklearn.neural_network  # noqa: F401  (same imports in every child)

    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
        fh.write("5")
    before = _proc_status("VmRSS")
    built = CONTENDERS[contender](workload["widths"], workload["batch"], bn_dropout)
    if built is None:
        print(json.dumps(None))
        return
    built[0](X, y)
    print(json.dumps(_proc_status("VmHWM") - before))


def memory_case(workload: dict, bn_dropout: bool, args) -> dict[str, float]:
    result = {}
    for name in CONTENDERS:
        cmd = [sys.executable, __file__, "--memory-child", name, workload["name"]]
        cmd += ["--n", str(workload["n"])]
        cmd += ["--bn-dropout"] if bn_dropout else []
        cmd += ["--no-jit"] if args.no_jit else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        value = json.loads(out.strip().splitlines()[-1])
        if value is not None:
            result[name] = value / 2**20
    return result


# -- report ----------------------------------------------------------------------------------
def machine_lines() -> list[str]:
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    import sklearn

    try:
        import numba

        jit = f"numba {numba.__version__}"
    except ImportError:
        jit = "numba not installed"
    from deepfit import kernels

    lines = [
        f"- machine: {platform.machine()} {model}, {core_count()} cores{mem}, "
        f"{platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}"
        f", scikit-learn {sklearn.__version__}, {jit}; deepfit JIT kernels "
        f"{'on' if kernels.enabled() else 'off (NumPy path)'}",
        f"- threads: BLAS {core_count()}, torch intra-op {torch.get_num_threads()}",
    ]
    for pool in threadpool_info():
        lines.append(
            f"- threadpoolctl: {pool.get('user_api')}/{pool.get('internal_api')} "
            f"{pool.get('version')}, kernel (architecture) {pool.get('architecture')}, "
            f"{pool.get('num_threads')} threads, {Path(pool.get('filepath', '')).name}"
        )
    config = torch.__config__.show()
    blas = next((p.split("=")[-1] for p in config.split(", ") if "BLAS_INFO=" in p), "?")
    cap = next((ln.strip(" -") for ln in config.splitlines() if "CPU capability" in ln), "")
    lines.append(f"- torch BLAS: {blas} (linked statically, not seen by threadpoolctl); {cap}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"- warning: {var}={os.environ[var]} is set (see the docstring)")
    return lines


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--no-jit", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bn-dropout", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    cores = core_count()
    torch.set_num_threads(cores)
    if args.full:
        MNIST["n"] = 60_000
    if args.quick:
        MNIST["n"], SMALL["n"] = 2_560, 5_000
    if args.n:
        MNIST["n"] = args.n
    reps = 3 if args.quick else args.reps

    with threadpool_limits(limits=cores, user_api="blas"):
        if args.memory_child:
            memory_child(*args.memory_child, args.bn_dropout)
            return
        header = machine_lines()
        print("\n".join(header), flush=True)
        rows: list[list[str]] = []
        notes: list[str] = []

        def add(case: str, ms: dict[str, float], per: str) -> None:
            d = ms["deepfit"]
            best = min(TORCH_ADAMS, key=lambda name: ms[name])
            row = [case, per, f"{d:.1f}", best.replace("torch", "").strip() or "default"]
            row += [f"{ms[best]:.1f}", fmt_ratio(ms[best] / d)]
            for other in TORCH_ADAMS:
                row += [f"{ms[other]:.1f}"]
            row += [fmt_ratio(ms["torch"] / d)]
            if "sklearn" in ms:
                row += [f"{ms['sklearn']:.1f}", fmt_ratio(ms["sklearn"] / d)]
            else:
                row += ["-", "-"]
            lim = ms.get("matmul limit")
            row += [f"{lim:.1f}" if lim else "-", fmt_ratio(d / lim) if lim else "-"]
            lim2 = ms.get("matmul + Adam limit")
            row += [f"{lim2:.1f}" if lim2 else "-", fmt_ratio(d / lim2) if lim2 else "-"]
            rows.append(row)
            print(" | ".join(row), flush=True)

        cases = [
            (f"1. small 30-64-64-2, b32, {SMALL['n']} ex", SMALL, False),
            (f"2. MNIST-sized 784-512-512-10, b128, {MNIST['n']} ex", MNIST, False),
            (f"2. same + batch norm + dropout {KEEP}", MNIST, True),
        ]
        for case, workload, bn in cases:
            seconds = train_case(workload, bn, reps)
            add(case, {k: v * 1e3 for k, v in seconds.items()}, "ms/epoch")

        infer = {}
        for workload in (SMALL, MNIST):
            infer[workload["name"]] = inference_case(workload, reps)
        memory = {}
        for bn in (False, True):
            memory[bn] = memory_case(MNIST, bn, args)

    table = [
        "| workload | unit | deepfit | torch best Adam | torch best | **best/deepfit** "
        "| torch default Adam | torch foreach | torch fused | default/deepfit | sklearn "
        "| sklearn/deepfit | matmul limit | deepfit/limit | matmul + Adam limit "
        "| deepfit/(matmul + Adam) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ] + ["| " + " | ".join(r) + " |" for r in rows]
    table += [
        "",
        "| inference (10,000 rows) | deepfit rows/s | torch | deepfit/torch "
        "| sklearn | deepfit/sklearn |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rate in infer.items():
        d = rate["deepfit"]
        table.append(
            f"| {name} | {d:,.0f} | {rate['torch']:,.0f} | {d / rate['torch']:.2f} "
            f"| {rate['sklearn']:,.0f} | {d / rate['sklearn']:.2f} |"
        )
    table += [
        "",
        "| peak memory, one epoch of workload 2 (MiB above imports + data) | deepfit "
        "| torch default Adam | torch foreach | torch fused | sklearn |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for bn, mem in memory.items():
        label = "with batch norm + dropout" if bn else "plain"
        cells = [f"{mem[k]:.1f}" if k in mem else "-" for k in CONTENDERS]
        table.append(f"| {label} | " + " | ".join(cells) + " |")
    notes.append(
        f"Medians of {reps} alternating repetitions. Ratios other/deepfit > 1 mean deepfit is "
        f"faster; best/deepfit compares with the fastest of PyTorch's three Adams (named in "
        f"the row), default/deepfit with its default one; deepfit/limit is deepfit's epoch "
        f"over the matrix products alone; deepfit/(matmul + Adam) over the same products "
        f"plus one fused single-pass Adam step per batch over a flat buffer of the model's "
        f"parameter count (the optimizer's own memory traffic)."
    )
    if NOISY:
        notes.append(
            f"Warning: {len(NOISY)} repetitions started while other processes kept the cores "
            f"busy (up to {max(NOISY):.0%}); rerun on a quiet machine."
        )
    print("\n".join(table))
    if args.out != "-":
        command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/compare.py"
        flags = " ".join(a for a in sys.argv[1:])
        text = [
            "# Benchmark results",
            "",
            f"Command: `{command}{' ' + flags if flags else ''}`",
            f"Date: {time.strftime('%Y-%m-%d %H:%M')}",
            "",
            *header,
            "",
            *table,
            "",
            *notes,
            "",
        ]
        Path(args.out).write_text("\n".join(text))
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
