"""Mixup and CutMix for rows of a table, applied to training batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfit.errors import DeepfitError

KINDS = ("mixup", "cutmix")


class Mixup:
    """Mix each training batch with a shuffled copy of itself.

    One ``lam ~ Beta(alpha, alpha)`` and one permutation ``pi`` of the batch are drawn per
    batch (with probability ``prob``; otherwise the batch passes unchanged).

    - ``kind="mixup"`` (Zhang et al. 2018)::

          x := lam x + (1 - lam) x[pi]        t := lam t + (1 - lam) t[pi]

    - ``kind="cutmix"`` for rows (Yun et al. 2019, for tables as in Kadra et al. 2021's
      cocktail): ``c = round((1 - lam) d)`` of the ``d`` columns, chosen at random, are taken
      from the partner row ``x[pi]``; the targets mix with the share of columns kept,
      ``lam' = 1 - c / d``::

          x[:, S] := x[pi, S]                 t := lam' t + (1 - lam') t[pi]

    Targets ``t``: class indices become one-hot rows (``n_classes`` columns) and the mixture is
    a soft label for the softmax loss; 0/1 labels of a sigmoid output and regression values
    mix as numbers. Example weights mix like the targets. All draws come from the ``rng``
    passed in (the trainer's shuffling stream), so runs are reproducible and resumable.

    References
    ----------
    Zhang, Cisse, Dauphin and Lopez-Paz, "mixup: beyond empirical risk minimization", ICLR
    2018. Yun et al., "CutMix", ICCV 2019. Kadra, Lindauer, Hutter and Grabocka, "Well-tuned
    simple nets excel on tabular datasets", NeurIPS 2021.
    """

    def __init__(self, alpha: float = 0.2, kind: str = "mixup", prob: float = 1.0) -> None:
        if kind not in KINDS:
            raise DeepfitError(f"mixup kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise DeepfitError(f"mixup alpha must be a number > 0, got {alpha!r}")
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise DeepfitError(f"mixup prob must be in [0, 1], got {prob!r}")
        self.alpha, self.kind, self.prob = float(alpha), kind, float(prob)

    def __call__(
        self,
        x: Any,
        y: Any,
        rng: np.random.Generator,
        *,
        n_classes: int | None = None,
        weight: Any = None,
        discrete: Sequence[int] = (),
    ) -> tuple[Any, Any, Any]:
        """Mix one batch: returns ``(x, targets, weight)`` (new arrays; the inputs are never
        modified). ``n_classes`` one-hot encodes integer class labels (softmax losses); leave
        it ``None`` for sigmoid and regression targets. ``discrete`` columns hold category
        codes (for an embedding layer), which cannot be blended: with mixup a mixed row keeps
        the code of the row with the larger share (its own when ``lam >= 1/2``)."""
        m = x.shape[0]
        if self.prob < 1 and rng.random() >= self.prob:
            return x, y, weight
        lam = float(rng.beta(self.alpha, self.alpha))
        pi = rng.permutation(m)
        if n_classes is not None and np.ndim(y) == 1:
            y = np.eye(n_classes, dtype=x.dtype)[np.asarray(y, dtype=np.int64)]
        elif np.asarray(y).dtype.kind != "f":
            y = np.asarray(y, dtype=x.dtype)
        if self.kind == "mixup":
            mixed = lam * x + (1.0 - lam) * x[pi]
            mixed = mixed.astype(x.dtype, copy=False)
            if len(discrete):
                codes = list(discrete)
                mixed[:, codes] = (x if lam >= 0.5 else x[pi])[:, codes]
        else:
            d = x.shape[1]
            c = round((1.0 - lam) * d)
            columns = rng.choice(d, size=c, replace=False)
            mixed = x.copy()
            mixed[:, columns] = x[pi][:, columns]
            lam = 1.0 - c / d
        targets = lam * y + (1.0 - lam) * y[pi]
        if weight is not None:
            weight = lam * weight + (1.0 - lam) * weight[pi]
        return mixed, targets.astype(y.dtype, copy=False), weight

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "alpha": self.alpha, "prob": self.prob}

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha}, kind={self.kind!r}, prob={self.prob})"
