"""Objectives for the study tests: plain functions of the trial's config (no training), with
the worker's protocol (``report(epoch, value) -> prune?``, a result dict)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


def bowl_value(config) -> float:
    t = config["train"]
    return (math.log10(t["lr"]) + 2.5) ** 2 + (math.log10(1 - t["beta1"]) + 2) ** 2


def bowl(payload, report):
    """A smooth bowl in (log lr, log(1 - beta1)); reports a decreasing curve per epoch."""
    value = bowl_value(payload["config"])
    for epoch in range(1, 4):
        if report(epoch, value + 1.0 / epoch):
            return {"state": "pruned", "value": value + 1.0 / epoch, "epochs": epoch}
    return {"state": "complete", "value": value, "epochs": 3}


def sleepy(payload, report):
    """The bowl, slowly (0.25 s per epoch, or ``DEEPFIT_TEST_EPOCH_S``), recording the
    worker's pid beside the study."""
    pids = Path(os.environ["DEEPFIT_TEST_PIDS"])
    pids.mkdir(parents=True, exist_ok=True)
    (pids / str(os.getpid())).touch()
    start = time.time()
    value = bowl_value(payload["config"])
    for epoch in range(1, 4):
        time.sleep(float(os.environ.get("DEEPFIT_TEST_EPOCH_S", "0.25")))
        report(epoch, value + 1.0 / epoch)
    (pids / f"trial-{payload['number']}").write_text(f"{start} {time.time()}")
    return {"state": "complete", "value": value, "epochs": 3}


def crash(payload, report):
    """Kill the worker process itself on the first attempt (an out-of-memory kill, say)."""
    if payload["config"]["train"]["lr"] > 0.1 and not os.environ.get("DEEPFIT_TEST_NO_CRASH"):
        os._exit(9)
    return bowl(payload, report)


def cocktail(payload, report):
    """The bowl plus terms of the conditional keys, recording what the trial's config held
    (``DEEPFIT_TEST_CONFIGS``: one JSON line per trial) when that variable is set."""
    import json

    config = payload["config"]
    mixup, model = config["train"]["mixup"], config["model"]
    value = bowl_value(config) + (0.5 if mixup["kind"] == "none" else (mixup["alpha"] - 0.3) ** 2)
    value += (1.0 - model["keep_prob"]) ** 2
    seen = os.environ.get("DEEPFIT_TEST_CONFIGS")
    if seen:
        with open(seen, "a") as f:
            f.write(json.dumps({"number": payload["number"], "config": config}) + "\n")
    for epoch in range(1, 4):
        if report(epoch, value + 1.0 / epoch):
            return {"state": "pruned", "value": value + 1.0 / epoch, "epochs": epoch}
    return {"state": "complete", "value": value, "epochs": 3}


def curve(payload, report):
    """The bowl approached over 9 epochs (value + 2 / epoch): for the pruners."""
    value = bowl_value(payload["config"])
    for epoch in range(1, 10):
        if report(epoch, value + 2.0 / epoch):
            return {"state": "pruned", "value": value + 2.0 / epoch, "epochs": epoch}
    return {"state": "complete", "value": value, "epochs": 9}
