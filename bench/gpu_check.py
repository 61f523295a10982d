"""GPU check, for a session with a CUDA GPU and CuPy: agreement with the CPU, then speed.

1. Agreement: the same small network (batch norm, dropout, Adam, L2), built from one seed,
   trained for a few epochs on NumPy and on CuPy (``Sequential.to("cupy")``) in float64;
   the largest relative difference of every parameter and buffer must be < 1e-9 (dropout
   masks are the same bits on both devices: :func:`deepfit.nn.dropout.mask_bits`).
2. Speed: workload 2 of ``bench/compare.py`` (784-512-512-10, batch 128, Adam, float32),
   one epoch of 12,800 examples, deepfit on CuPy against PyTorch CUDA, medians of 5.

    .venv/bin/pip install cupy-cuda12x    # once, on the GPU machine
    .venv/bin/python bench/gpu_check.py

Exits non-zero when the agreement check fails.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

import deepfit as df


def agreement() -> float:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 12))
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64) + (X[:, 3] > 1)
    states = {}
    for device in ("numpy", "cupy"):
        model = df.mlp(12, [32, 16], 3, batchnorm=True, keep_prob=0.8, rng=0, dtype="float64")
        model.to(device)
        trainer = df.Trainer(model, optimizer=df.Adam(1e-2), batch_size=32, l2=1e-3, seed=0)
        trainer.fit(X, y, epochs=3)
        states[device] = model.state_dict()
        print(f"{device}: final train loss {trainer.history[-1]['train_loss']:.6f}")
    worst = 0.0
    for k, a in states["numpy"].items():
        b = states["cupy"][k]
        worst = max(worst, float(np.max(np.abs(a - b) / (np.abs(a) + 1e-12))))
    return worst


def speed(n: int = 12_800, reps: int = 5) -> None:
    import cupy
    import torch

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = df.mlp(784, [512, 512], 10, rng=0).to("cupy")
    trainer = df.Trainer(model, optimizer=df.Adam(1e-3), batch_size=128, seed=0)

    tmodel = torch.nn.Sequential(
        torch.nn.Linear(784, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    ).cuda()
    opt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()

    def torch_epoch() -> None:
        perm = torch.randperm(n, device="cuda")
        for i in range(0, n, 128):
            idx = perm[i : i + 128]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(tmodel(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            loss.item()
        torch.cuda.synchronize()

    def deepfit_epoch() -> None:
        trainer.fit(X, y, epochs=1)
        cupy.cuda.Device().synchronize()

    times: dict[str, list[float]] = {"deepfit (cupy)": [], "torch (cuda)": []}
    fns = {"deepfit (cupy)": deepfit_epoch, "torch (cuda)": torch_epoch}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:16s} {v:9.1f} ms/epoch")
    print(f"torch/deepfit: {med['torch (cuda)'] / med['deepfit (cupy)']:.2f}")


def main() -> int:
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        print(f"no usable CuPy/CUDA here ({exc!r}); nothing to check")
        return 0
    worst = agreement()
    print(f"largest relative difference CPU vs GPU: {worst:.3e} (must be < 1e-9)")
    speed()
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
