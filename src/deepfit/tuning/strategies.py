"""Where the next trial goes: random, grid and coarse-to-fine, as pure functions of the history.

A strategy numbers its points by *slot* (0, 1, 2, ...). :meth:`Strategy.propose` gets the slot
to fill and the finished trials so far and answers a :class:`Proposal` (a point and its
round), :data:`WAIT` (coarse-to-fine: the round before is still running) or ``None`` (nothing
left: a grid is exhausted). Points depend only on the seed, the slot and the finished trials,
so a resumed study proposes exactly what the interrupted one would have. ``tpe`` is Optuna's
sampler and has no proposals of its own (see :mod:`deepfit.tuning.study`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfit.tuning.space import Box, Space, grid, shrink


@dataclass(frozen=True)
class Finished:
    """A finished trial as a strategy sees it: ``value`` is None unless it completed."""

    slot: int
    round: int
    point: Mapping[str, Any]
    value: float | None


@dataclass(frozen=True)
class Proposal:
    point: dict[str, Any]
    round: int = 0


WAIT = "wait"


def _rng(seed: int, slot: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, slot]))


class Strategy:
    name = ""

    def __init__(self, space: Space, trials: int, seed: int = 0) -> None:
        self.space, self.trials, self.seed = space, trials, seed

    def propose(self, slot: int, finished: Sequence[Finished], minimize: bool = True):
        raise NotImplementedError

    def preview(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` points proposed before any result is known (for ``--dry-run``)."""
        out = []
        for slot in range(n):
            p = self.propose(slot, ())
            if not isinstance(p, Proposal):
                break
            out.append(p.point)
        return out


class RandomSearch(Strategy):
    """Points uniform in the unit coordinates: log-uniform for log parameters. With few
    parameters that matter, every trial tries a new value of each (Bergstra and Bengio)."""

    name = "random"

    def propose(self, slot, finished, minimize=True):
        return Proposal(self.space.sample(_rng(self.seed, slot)))


class GridSearch(Strategy):
    """The same space discretized: :func:`deepfit.tuning.space.grid` with the trial budget.
    For comparison; the slots beyond the grid get ``None``."""

    name = "grid"

    def __init__(self, space: Space, trials: int, seed: int = 0) -> None:
        super().__init__(space, trials, seed)
        self.points = grid(space, trials)

    def propose(self, slot, finished, minimize=True):
        return Proposal(self.points[slot]) if slot < len(self.points) else None


def round_sizes(trials: int, rounds: int) -> list[int]:
    """``trials`` split into ``rounds`` near-equal rounds (the earlier ones larger), each of at
    least 2 trials where possible."""
    rounds = max(1, min(rounds, trials // 2 or 1))
    base, extra = divmod(trials, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


class CoarseToFine(Strategy):
    """Rounds of random search, each in a smaller box.

    Round 0 samples the whole space. Before round ``r`` starts, every trial of rounds
    ``< r`` must have finished; the best ``keep`` fraction of all completed trials (at least
    2) defines the next box with :func:`deepfit.tuning.space.shrink`, in unit coordinates,
    i.e. log space for log parameters.
    """

    name = "coarse-to-fine"

    def __init__(
        self, space: Space, trials: int, seed: int = 0, *, rounds: int = 3, keep: float = 0.25
    ) -> None:
        super().__init__(space, trials, seed)
        self.sizes = round_sizes(trials, rounds)
        self.starts = [sum(self.sizes[:r]) for r in range(len(self.sizes))]
        self.keep = keep

    def round_of(self, slot: int) -> int:
        r = 0
        for i, start in enumerate(self.starts):
            if slot >= start:
                r = i
        return r

    def box(self, round_: int, finished: Sequence[Finished], minimize: bool = True) -> Box:
        """The box of ``round_``, rebuilt from the finished trials of the rounds before."""
        box = Box.full(self.space)
        for r in range(1, round_ + 1):
            done = [
                f
                for f in finished
                if f.round < r and f.value is not None and math.isfinite(f.value)
            ]
            if not done:
                continue
            done.sort(key=lambda f: f.value if minimize else -f.value)
            n = max(2, math.ceil(self.keep * len(done)))
            box = shrink(self.space, box, [f.point for f in done[:n]])
        return box

    def propose(self, slot, finished, minimize=True):
        r = self.round_of(slot)
        if r > 0:
            finished_slots = {f.slot for f in finished}
            if any(s not in finished_slots for s in range(self.starts[r])):
                return WAIT
        return Proposal(
            self.space.sample(_rng(self.seed, slot), self.box(r, finished, minimize)), r
        )


def make(name: str, space: Space, trials: int, seed: int = 0, **options: Any) -> Strategy | None:
    """The strategy called ``name``; ``None`` for ``tpe`` (Optuna samples)."""
    if name == "random":
        return RandomSearch(space, trials, seed)
    if name == "grid":
        return GridSearch(space, trials, seed)
    if name == "coarse-to-fine":
        return CoarseToFine(
            space, trials, seed, rounds=options.get("rounds", 3), keep=options.get("keep", 0.25)
        )
    if name == "tpe":
        return None
    raise ValueError(f"unknown strategy {name!r}")


def simulate(
    strategy: Strategy, objective, *, minimize: bool = True
) -> tuple[float, list[Finished]]:
    """Run ``strategy`` sequentially on a plain ``objective(point) -> float`` (for tests and
    comparisons without training); returns the best value and the history."""
    history: list[Finished] = []
    for slot in range(strategy.trials):
        p = strategy.propose(slot, history, minimize)
        if p is None:
            break
        assert isinstance(p, Proposal)
        history.append(Finished(slot, p.round, p.point, float(objective(p.point))))
    values = [f.value for f in history if f.value is not None]
    return (min(values) if minimize else max(values)), history
