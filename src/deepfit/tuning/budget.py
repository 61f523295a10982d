"""A time budget for a search: ``--budget 5m`` (``90s``, ``1h30m``, ``1.5h``, ``300``).

The budget is the search's wall time **summed over every run of the same study**: each driver
session writes its own elapsed seconds into the study's user attributes
(``deepfit.budget:<session>``) at least every second while it works (at each trial's start and
end, and at each epoch's report), so a run killed with ``kill -9`` has lost at most about a
second of its count, and a rerun of the same command continues with what is left. With
several drivers sharing one study, each driver's time counts (a compute budget).

A trial is started only while time is left, with the deadline in its payload: a trial still
running when it passes stops at its next epoch end (:class:`deepfit.tuning.worker.StopAtDeadline`,
a packed group all its running members), scored on its best weights so far, so a search ends
within the budget plus one epoch (per worker), and after a ``kill -9`` within the budget plus
one trial (the killed trial's epochs are lost). Trials asked but still waiting for a worker at
the deadline are interrupted, not counted. The final training of the winner (``OUT/best``, for
the epochs its trial ran when the deadline stopped it) comes after the search.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from deepfit.config import ConfigError

PREFIX = "deepfit.budget:"
_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(sec|min|s|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str | float | int, where: str = "--budget") -> float:
    """Seconds of ``"90s"``, ``"5m"``, ``"1h"``, ``"1h30m"``, ``"1.5h"`` or a bare number of
    seconds; refuses anything else naming ``where``."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().replace(" ", "").lower()
        pos, seconds, parts = 0, 0.0, 0
        while pos < len(s):
            m = _PART.match(s, pos)
            if m is None or m.end() == pos:
                break
            unit = m.group(2) or ("s" if m.end() == len(s) and parts == 0 else None)
            if unit is None:
                break
            seconds += float(m.group(1)) * _UNITS[unit]
            pos, parts = m.end(), parts + 1
        if not s or pos != len(s):
            raise ConfigError(
                f"{where} = {text!r} is not a duration: write e.g. 90s, 5m, 1h or 1h30m"
            )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{where} = {text!r} must be a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """``"4m 12s"``, ``"1h 02m"``, ``"8.3s"``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


class Budget:
    """This session's share of a study's time budget (see the module docstring).

    ``seconds``: the whole budget; :meth:`open` reads what earlier sessions spent;
    :meth:`left` is what remains now; :meth:`record` writes this session's count."""

    def __init__(self, seconds: float, session: str) -> None:
        self.seconds = float(seconds)
        self.key = PREFIX + session
        self.before = 0.0
        self.start = time.monotonic()
        self._written = -math.inf
        self.study: Any = None

    @staticmethod
    def spent_in(user_attrs: dict[str, Any]) -> float:
        """Seconds recorded by every session of a study."""
        return sum(float(v) for k, v in user_attrs.items() if k.startswith(PREFIX))

    def open(self, study) -> None:
        """Start counting this session on ``study`` (after the time earlier ones spent)."""
        self.study = study
        self.before = self.spent_in(study.user_attrs)
        self.start = time.monotonic()
        self.record(force=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def spent(self) -> float:
        return self.before + self.elapsed()

    def left(self) -> float:
        return self.seconds - self.spent()

    def record(self, *, force: bool = False) -> None:
        """Write this session's elapsed seconds into the study (at most once a second)."""
        now = time.monotonic()
        if self.study is None or (not force and now - self._written < 1.0):
            return
        self._written = now
        self.study.set_user_attr(self.key, round(now - self.start, 3))
