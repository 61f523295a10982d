"""Learning-rate schedules: plain callables ``epoch -> learning rate``.

Epochs count from 0, as in PyTorch and Keras: the first epoch trains at ``lr0``. (The notes
count ``epoch_num`` from 1; their ``alpha = alpha0 / (1 + rate * epoch_num)`` is
``inverse_time(alpha0, rate)(epoch_num)``.) A schedule is a pure function of the epoch, so
resuming training only needs the epoch number. Each schedule has a readable ``repr`` and a
``config()`` dict for run files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from deepfit.errors import DeepfitError


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise DeepfitError(f"schedule {name} must be a positive number, got {value!r}")
    return float(value)


def _check_epoch(epoch: int) -> int:
    if epoch < 0:
        raise DeepfitError(f"schedule epoch must be >= 0, got {epoch}")
    return epoch


@dataclass(frozen=True)
class Schedule:
    """Base class: ``schedule(epoch) -> lr``."""

    def __call__(self, epoch: int) -> float:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The schedule as plain data: ``{"kind": ..., parameters...}``."""
        return {"kind": KIND_OF[type(self)], **asdict(self)}


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr = lr0``."""

    lr0: float

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)

    def __call__(self, epoch: int) -> float:
        _check_epoch(epoch)
        return self.lr0


@dataclass(frozen=True)
class InverseTime(Schedule):
    """The notes' decay, continuous or as a staircase::

        lr = lr0 / (1 + rate * floor(epoch / interval))

    ``interval = 1`` (the default) is the notes' ``lr0 / (1 + rate * epoch)``; a larger
    ``interval`` holds the rate for ``interval`` epochs between drops (the discrete
    "staircase" form, as Keras' ``InverseTimeDecay(staircase=True)`` with ``decay_steps =
    interval``).
    """

    lr0: float
    rate: float
    interval: int = 1

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)
        if self.rate < 0:
            raise DeepfitError(f"inverse_time rate must be >= 0, got {self.rate}")
        if (
            isinstance(self.interval, bool)
            or not isinstance(self.interval, int)
            or (self.interval < 1)
        ):
            raise DeepfitError(
                f"inverse_time interval must be a positive integer, got {self.interval!r}"
            )

    def __call__(self, epoch: int) -> float:
        return self.lr0 / (1.0 + self.rate * (_check_epoch(epoch) // self.interval))


@dataclass(frozen=True)
class Exponential(Schedule):
    """Exponential decay: ``lr = lr0 * k^epoch`` with ``0 < k <= 1`` (e.g. 0.95)."""

    lr0: float
    k: float

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)
        if not 0 < self.k <= 1:
            raise DeepfitError(f"exponential k must be in (0, 1], got {self.k}")

    def __call__(self, epoch: int) -> float:
        return self.lr0 * self.k ** _check_epoch(epoch)


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """``lr = lr0 / sqrt(1 + rate * epoch)``: the notes' ``k / sqrt(epoch_num) * lr0``,
    shifted so that epoch 0 trains at ``lr0``."""

    lr0: float
    rate: float = 1.0

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)
        if self.rate < 0:
            raise DeepfitError(f"inverse_sqrt rate must be >= 0, got {self.rate}")

    def __call__(self, epoch: int) -> float:
        return self.lr0 / math.sqrt(1.0 + self.rate * _check_epoch(epoch))


@dataclass(frozen=True)
class Step(Schedule):
    """Staircase decay: ``lr = lr0 * factor^(epoch // every)`` (the notes' discrete staircase,
    PyTorch's ``StepLR``)."""

    lr0: float
    every: int
    factor: float = 0.5

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)
        if not isinstance(self.every, int) or self.every < 1:
            raise DeepfitError(f"step every must be a positive integer, got {self.every!r}")
        if not 0 < self.factor <= 1:
            raise DeepfitError(f"step factor must be in (0, 1], got {self.factor}")

    def __call__(self, epoch: int) -> float:
        return self.lr0 * self.factor ** (_check_epoch(epoch) // self.every)


@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing from ``lr0`` to ``lr_min`` over ``total`` epochs, then ``lr_min``::

        lr = lr_min + (lr0 - lr_min) * (1 + cos(pi * min(epoch, total) / total)) / 2

    References
    ----------
    Loshchilov and Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR 2017.
    """

    lr0: float
    total: int
    lr_min: float = 0.0

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)
        if not isinstance(self.total, int) or self.total < 1:
            raise DeepfitError(f"cosine total must be a positive integer, got {self.total!r}")
        if not 0 <= self.lr_min <= self.lr0:
            raise DeepfitError(f"cosine lr_min must be in [0, lr0], got {self.lr_min}")

    def __call__(self, epoch: int) -> float:
        progress = min(_check_epoch(epoch), self.total) / self.total
        return self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class WarmRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR), one step per epoch::

        T_i = period * mult^i              (length of cycle i = 0, 1, ...)
        lr  = lr_min + (lr0 - lr_min) * (1 + cos(pi * T_cur / T_i)) / 2

    where ``T_cur`` counts the epochs since the last restart. The first cycle covers epochs
    ``0..period-1``; each restart jumps back to ``lr0``. The same numbers as PyTorch's
    ``CosineAnnealingWarmRestarts(T_0=period, T_mult=mult, eta_min=lr_min)`` stepped once per
    epoch. :meth:`cycle_end` tells whether an epoch is the last of its cycle (where snapshot
    ensembles take their snapshots).

    References
    ----------
    Loshchilov and Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR 2017.
    """

    lr0: float
    period: int
    mult: int = 1
    lr_min: float = 0.0

    def __post_init__(self) -> None:
        _positive("lr0", self.lr0)
        for name in ("period", "mult"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DeepfitError(f"sgdr {name} must be a positive integer, got {value!r}")
        if not 0 <= self.lr_min <= self.lr0:
            raise DeepfitError(f"sgdr lr_min must be in [0, lr0], got {self.lr_min}")

    def position(self, epoch: int) -> tuple[int, int]:
        """``(T_cur, T_i)``: the epoch's place in its cycle and that cycle's length."""
        t, length = _check_epoch(epoch), self.period
        if self.mult == 1:
            return t % length, length
        while t >= length:
            t -= length
            length *= self.mult
        return t, length

    def cycle_end(self, epoch: int) -> bool:
        """True when ``epoch`` is the last epoch of a cycle (the next one restarts)."""
        t, length = self.position(epoch)
        return t == length - 1

    def __call__(self, epoch: int) -> float:
        t, length = self.position(epoch)
        return self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * t / length))


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up for ``epochs`` epochs, then ``after`` (shifted to start at 0)::

        lr = after(0) * (start + (1 - start) * epoch / epochs)    for epoch < epochs
        lr = after(epoch - epochs)                                 afterwards

    As PyTorch's ``LinearLR(start_factor=start, total_iters=epochs)`` followed by ``after``.
    """

    after: Schedule
    epochs: int
    start: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.after, Schedule):
            raise DeepfitError("warmup needs a schedule to hand over to (e.g. constant(lr0))")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise DeepfitError(f"warmup epochs must be a positive integer, got {self.epochs!r}")
        if not 0 < self.start <= 1:
            raise DeepfitError(f"warmup start must be in (0, 1], got {self.start}")

    def __call__(self, epoch: int) -> float:
        if _check_epoch(epoch) < self.epochs:
            return self.after(0) * (self.start + (1.0 - self.start) * epoch / self.epochs)
        return self.after(epoch - self.epochs)

    def cycle_end(self, epoch: int) -> bool:
        """The cycle ends of ``after`` (shifted by the warm-up), when it has cycles."""
        ends = getattr(self.after, "cycle_end", None)
        return ends is not None and epoch >= self.epochs and ends(epoch - self.epochs)

    def config(self) -> dict[str, Any]:
        return {
            "kind": "warmup",
            "epochs": self.epochs,
            "start": self.start,
            "after": self.after.config(),
        }


KIND_OF: dict[type, str] = {
    Constant: "constant",
    InverseTime: "inverse_time",
    Exponential: "exponential",
    InverseSqrt: "inverse_sqrt",
    Step: "step",
    Cosine: "cosine",
    WarmRestarts: "sgdr",
    Warmup: "warmup",
}

# Lower-case constructors, the names used in configs and the notes.
constant = Constant
inverse_time = InverseTime
exponential = Exponential
inverse_sqrt = InverseSqrt
step = Step
cosine = Cosine
sgdr = WarmRestarts


def warmup(after: Schedule | float, epochs: int, start: float = 0.1) -> Warmup:
    """Linear warm-up over ``epochs`` epochs into ``after`` (a schedule or a constant lr)."""
    if isinstance(after, (int, float)):
        after = Constant(float(after))
    return Warmup(after, epochs, start)


def from_config(config: dict[str, Any]) -> Schedule:
    """Build a schedule from ``{"kind": name, **parameters}`` (the inverse of ``config()``)."""
    params = dict(config)
    kind = params.pop("kind", None)
    classes = {name: cls for cls, name in KIND_OF.items()}
    if kind not in classes:
        raise DeepfitError(f"unknown schedule kind {kind!r}; choose one of {', '.join(classes)}")
    if kind == "warmup":
        after = params.pop("after", None)
        if not isinstance(after, dict):
            raise DeepfitError("warmup schedule needs an 'after' table (the schedule it leads to)")
        return warmup(from_config(after), **params)
    try:
        return classes[kind](**params)
    except TypeError as exc:
        raise DeepfitError(f"schedule {kind!r}: {exc}") from None
