"""Where an epoch of workload 2 goes: py-spy's samples of deepfit's training, by function.

Runs ``--epochs`` epochs of the MNIST-sized workload (784-512-512-10, batch 128, Adam, 12,800
synthetic examples; ``--bn`` adds batch norm and dropout 0.8; ``--small`` takes workload 1,
30-64-64-2, batch 32, 20,000 examples, instead) under ``py-spy record`` and
prints the share of samples whose innermost deepfit-or-NumPy frame is each function, so the
time beyond the matrix products can be read off. Needs ``pip install py-spy``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/profile_epoch.py [--bn]

The first line after the sample count is the share of the samples outside the matrix
products (everything deepfit could still make faster; ``OPENBLAS_NUM_THREADS=1`` shows it on
one core, where it does not depend on how busy the other core is).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def py_spy() -> str:
    """py-spy beside this interpreter (a virtual environment's bin/), else on the PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


def train(epochs: int, bn: bool, small: bool, raw: Path) -> None:
    """Warm up (import numba, load the compiled kernels), then train under py-spy, which
    attaches to this process so that none of the start-up is sampled."""
    import numpy as np

    import deepfit as df

    rng = np.random.default_rng(0)
    widths, n, batch = (
        ([30, 64, 64, 2], 20_000, 32) if small else ([784, 512, 512, 10], 12_800, 128)
    )
    X = rng.standard_normal((n, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], n)
    model = df.mlp(
        widths[0], widths[1:-1], widths[-1], batchnorm=bn, keep_prob=0.8 if bn else 1.0, rng=0
    )
    trainer = df.Trainer(model, optimizer=df.Adam(1e-3), batch_size=batch, seed=0)
    trainer.fit(X[:1024], y[:1024], epochs=1)
    spy = subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(os.getpid()),
            "--format",
            "raw",
            "--rate",
            "500",
            "--native",
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # let py-spy attach
    trainer.fit(X, y, epochs=epochs)
    spy.send_signal(signal.SIGINT)
    spy.wait()


def leaf(stack: str) -> str:
    """What a sample was doing: ``BLAS`` inside OpenBLAS (the matrix products), else the
    innermost frame of deepfit's or NumPy's own code (the kernels' machine code included)."""
    frames = stack.split(";")
    if any("openblas" in frame.lower() or "gemm" in frame.lower() for frame in frames):
        return "BLAS (matrix products)"
    for frame in reversed(frames):
        if "deepfit" in frame or "numpy" in frame:
            name = frame.split(" (")[0]
            where = frame.split(" (")[-1].rstrip(")")
            module = where.split("/")[-1].split(":")[0]
            return f"{module}:{name}"
    return frames[-1].split(" (")[0]


def callers(stack: str) -> set[str]:
    """Every deepfit function on the stack (``--inclusive``: the time spent inside each,
    callees included), BLAS counted as its own entry."""
    names = set()
    for frame in stack.split(";"):
        if "openblas" in frame.lower() or "gemm" in frame.lower():
            names.add("BLAS (matrix products)")
        elif "deepfit" in frame and "site-packages" not in frame:
            where = frame.split(" (")[-1].rstrip(")")
            names.add(f"{where.split('/')[-1].split(':')[0]}:{frame.split(' (')[0]}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--bn", action="store_true")
    parser.add_argument("--small", action="store_true", help="workload 1: 30-64-64-2, b32")
    parser.add_argument(
        "--inclusive", action="store_true", help="share of samples inside each deepfit function"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        train(args.epochs, args.bn, args.small, raw)
        counts: collections.Counter[str] = collections.Counter()
        for line in raw.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if "fit (deepfit" in stack:
                if args.inclusive:
                    counts["(all of fit)"] += int(n)
                    for caller in callers(stack):
                        counts[caller] += int(n)
                else:
                    counts[leaf(stack)] += int(n)
    total = counts["(all of fit)"] if args.inclusive else sum(counts.values())
    name = "workload 1 (small)" if args.small else "workload 2"
    print(f"{name}{' + batch norm + dropout' if args.bn else ''}: {total} samples in fit")
    if total:
        blas = counts["BLAS (matrix products)"]
        print(f"non-BLAS share of fit: {100 * (total - blas) / total:.1f}%")
    for name, n in counts.most_common(30 if args.inclusive else 18):
        print(f"{100 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
