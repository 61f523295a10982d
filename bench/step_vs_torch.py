"""Time one training step of deepfit against PyTorch on the CPU, float32.

A step is forward + softmax cross-entropy + backward + Adam update, for the same ReLU MLP
in both frameworks:

    (a) 30-64-64-2,      batch 32
    (b) 784-512-512-10,  batch 128

Each repetition times a block of steps of one contender, then of the other (alternating,
and alternating who goes first, so drift in clock speed or cache state hits both); the
report gives the median milliseconds per step and the ratio torch / deepfit (> 1: deepfit
is faster). Torch gets as many intra-op threads as NumPy's BLAS pool has, the core count.

Run it from the repository root, without the BLAS overrides of the development shell (they
pin OpenBLAS to one kernel and cache size and would skew the NumPy side):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/step_vs_torch.py

Options: ``--reps N`` (default 15), ``--quick`` (fewer repetitions, for a smoke run).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import deepfit
from deepfit.nn import cost_and_gradients

CASES = [
    # name, layer widths, batch, steps per timed block
    ("(a) 30-64-64-2, batch 32", [30, 64, 64, 2], 32, 200),
    ("(b) 784-512-512-10, batch 128", [784, 512, 512, 10], 128, 10),
]


def core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def make_data(widths: list[int], batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], size=batch)
    return x, y


def deepfit_step_fn(widths: list[int], x: np.ndarray, y: np.ndarray):
    model = deepfit.mlp(widths[0], widths[1:-1], widths[-1], rng=0, dtype="float32")
    loss = deepfit.SoftmaxCrossEntropy()
    opt = deepfit.Adam(1e-3)
    params, grads = model.params, model.grads

    def step() -> None:
        cost_and_gradients(model, loss, x, y)
        opt.step(params, grads)

    return step


def torch_step_fn(widths: list[int], x: np.ndarray, y: np.ndarray):
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)  # float32, the default dtype
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        value = torch.nn.functional.cross_entropy(model(xt), yt)
        value.backward()
        opt.step()

    return step


def time_block(step, n: int) -> float:
    """Milliseconds per step over a block of ``n`` steps."""
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) * 1e3 / n


def bench_case(widths, batch, block, reps) -> tuple[float, float]:
    x, y = make_data(widths, batch)
    contenders = {"deepfit": deepfit_step_fn(widths, x, y), "torch": torch_step_fn(widths, x, y)}
    for step in contenders.values():  # warm-up: allocations, first-touch, optimizer state
        time_block(step, max(3, block // 5))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for _ in range(reps):
        for name in order:
            times[name].append(time_block(contenders[name], block))
        order.reverse()
    return statistics.median(times["deepfit"]), statistics.median(times["torch"])


def describe_threads() -> None:
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}")
    print(f"cores available: {core_count()}; torch intra-op threads: {torch.get_num_threads()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            print(f"  warning: {var}={os.environ[var]} is set (see the docstring)")
    print("threadpoolctl.threadpool_info():")
    for pool in threadpool_info():
        keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "prefix")
        print("  " + ", ".join(f"{k}={pool.get(k)}" for k in keys))
        print(f"    {pool.get('filepath')}")
    # torch links MKL statically, so threadpoolctl does not list it; ask torch itself.
    config = torch.__config__.show()
    blas = next((part.split()[-1] for part in config.split(", ") if "BLAS_INFO=" in part), "?")
    capability = next((ln.strip() for ln in config.splitlines() if "CPU capability" in ln), "")
    print(f"torch: {blas}, {capability.lstrip('- ')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps

    cores = core_count()
    torch.set_num_threads(cores)
    with threadpool_limits(limits=cores, user_api="blas"):
        describe_threads()
        print()
        print(f"{'case':34s} {'deepfit ms':>11s} {'torch ms':>10s} {'torch/deepfit':>14s}")
        for name, widths, batch, block in CASES:
            ours, theirs = bench_case(widths, batch, block, reps)
            print(f"{name:34s} {ours:11.3f} {theirs:10.3f} {theirs / ours:14.2f}")
        print(
            f"(median of {reps} blocks per contender; one step = forward + loss + backward + Adam)"
        )


if __name__ == "__main__":
    main()
