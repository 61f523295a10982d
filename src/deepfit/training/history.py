"""What a training run records, one row per epoch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """Per-epoch records of a training run.

    Each record is a dict with ``epoch`` (1-based count of finished epochs), ``lr``,
    ``train_loss``, ``train_accuracy`` (classification), ``dev_loss``, ``dev_accuracy`` (with
    validation data) and ``seconds``. ``history["dev_loss"]`` gives one column as a list, as
    Keras' ``History.history`` does.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str | None = None

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list[Any]:
        if self.records and key not in self.records[-1]:
            raise KeyError(f"no metric {key!r}; recorded: {', '.join(self.records[-1])}")
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def columns(self) -> list[str]:
        """Metric names in recording order."""
        return list(self.records[0]) if self.records else []

    @property
    def history(self) -> dict[str, list[Any]]:
        """Column view: metric name -> list of values per epoch."""
        return {key: self[key] for key in self.columns}

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": [dict(r) for r in self.records],
            "best_epoch": self.best_epoch,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(
            records=[dict(r) for r in data.get("records", [])],
            best_epoch=data.get("best_epoch"),
            stop_reason=data.get("stop_reason"),
        )
