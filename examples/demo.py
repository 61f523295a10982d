"""Train a small MLP on scikit-learn's bundled digits and print its accuracy.

Run from a clean clone with the README's first command. Uses only the numerical core: a
stratified train/dev/test split, standardization fitted on the training split only,
shuffled mini-batches, He initialization, batch norm, dropout, L2 and Adam with a
learning-rate schedule.
"""

from __future__ import annotations

import time

import numpy as np

import deepfit as df
from deepfit.nn import cost_and_gradients, make_penalties


def stratified_split(y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator):
    """Index arrays for each fraction, keeping every class's share in each part."""
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        cuts = np.round(np.cumsum(fractions)[:-1] * idx.size).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def main(epochs: int = 30, seed: int = 0, verbose: bool = True) -> dict[str, float]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    train, dev, test = stratified_split(y, (0.6, 0.2, 0.2), rng)
    mu, sigma = X[train].mean(axis=0), X[train].std(axis=0)
    sigma[sigma == 0] = 1.0
    X = ((X - mu) / sigma).astype(np.float32)

    model = df.mlp(64, [128, 64], 10, batchnorm=True, keep_prob=0.9, rng=seed)
    loss = df.SoftmaxCrossEntropy()
    optimizer = df.Adam(lr=0.01)
    schedule = df.schedules.inverse_time(0.01, rate=0.1)
    penalties = make_penalties(l2=0.01)

    def accuracy(idx: np.ndarray) -> float:
        return float((model.predict(X[idx]).argmax(axis=1) == y[idx]).mean())

    start = time.perf_counter()
    for epoch in range(epochs):
        optimizer.lr = schedule(epoch)
        order = rng.permutation(train)
        total = 0.0
        for i in range(0, order.size, 64):
            batch = order[i : i + 64]
            if batch.size < 2:
                continue
            total += cost_and_gradients(model, loss, X[batch], y[batch], penalties) * batch.size
            optimizer.step(model.params, model.grads)
        if verbose and (epoch % 5 == 4 or epoch == epochs - 1):
            print(
                f"epoch {epoch + 1:3d}  lr {optimizer.lr:.4f}  train loss {total / train.size:.4f}"
                f"  dev accuracy {accuracy(dev):.4f}"
            )
    result = {
        "train_accuracy": accuracy(train),
        "dev_accuracy": accuracy(dev),
        "test_accuracy": accuracy(test),
        "seconds": time.perf_counter() - start,
    }
    if verbose:
        print(
            f"digits: train {result['train_accuracy']:.4f}  dev {result['dev_accuracy']:.4f}  "
            f"test {result['test_accuracy']:.4f}  ({result['seconds']:.1f} s, "
            f"{model.n_params} parameters)"
        )
    return result


if __name__ == "__main__":
    main()
