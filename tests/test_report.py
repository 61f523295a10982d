"""``deepfit report``: the page's content for a run and a study, escaping, no network, and the
page in a real headless Chromium (figures decoded, no console error, sorting, a screenshot)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepfit import config as C
from deepfit import experiment
from deepfit.cli import main
from deepfit.errors import DeepfitError
from deepfit.report import REPORT_FILE, write_report

BOWL = "tests.tuning.objectives:bowl"

RUN_CONFIG = {
    "data": {"source": "digits"},
    "model": {"hidden": [16], "batchnorm": True},
    "train": {"epochs": 3, "batch_size": 128, "schedule": {"kind": "inverse_time", "rate": 0.5}},
}

TUNE = """
[data]
source = "digits"
[model]
hidden = [16]
[train]
epochs = 3
[tune]
trials = 16
strategy = "coarse-to-fine"
rounds = 2
[tune.space.train]
lr = "loguniform(1e-5, 1)"
beta1 = "one_minus_loguniform(0.5, 0.9999)"
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    experiment.run(C.validate(RUN_CONFIG), out, progress=False)
    return out


@pytest.fixture(scope="module")
def tune_dir(tmp_path_factory) -> Path:
    pytest.importorskip("optuna")
    from deepfit.tuning.study import tune

    base = tmp_path_factory.mktemp("report")
    (base / "cfg.toml").write_text(TUNE)
    out = base / "tune"
    tune(C.load(base / "cfg.toml"), out, objective=BOWL, plots=False, study="bowl")
    return out


class Page(HTMLParser):
    """What the tests look at in a report: images, scripts, references, tables."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.scripts = 0
        self.references: list[str] = []
        self.rows: list[list[str]] = []  # rows of the sortable table(s)
        self._sortable = self._in_cell = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(a)
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a:
                self.references.append(a[key])
        if tag == "table":
            self._sortable = a.get("class") == "sortable"
        if tag == "tr" and self._sortable:
            self.rows.append([])
        if tag == "td" and self._sortable:
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        if tag == "table":
            self._sortable = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


def png_size(uri: str) -> tuple[int, int]:
    from PIL import Image

    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        image.load()
        return image.size


def self_contained(text: str, page: Page) -> None:
    assert all(ref.startswith("data:") for ref in page.references), page.references
    assert "url(" not in text and "@import" not in text
    assert "default-src 'none'" in text  # anything not inline is refused by the browser
    assert page.scripts == 1  # ours (the table sort)


# -- content ------------------------------------------------------------------------------------
def test_run_report_holds_summary_diagnosis_curves_layers_and_config(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / REPORT_FILE
    text = path.read_text()
    page = Page(text)
    self_contained(text, page)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{summary['dev']['accuracy']:.4f}" in text
    assert f"{summary['train']['loss']:.4f}" in text
    assert summary["stop_reason"] in text
    assert html.escape(summary["diagnosis"]["remedies"][0]) in text
    assert f">{summary['diagnosis']['verdict']}<" in text
    # learning curves and learning rate, decoded as real PNGs of a plausible size
    sizes = [png_size(img["src"]) for img in page.images]
    assert len(sizes) == 2 and all(w > 300 and h > 200 for w, h in sizes)
    assert {"learning rate per epoch"} <= {img["alt"] for img in page.images}
    # per-tensor statistics of the trained weights: the real numbers of model.npz
    from deepfit import io as dio

    model = dio.load(run_dir / "model.npz").model
    tensors = {row[0]: row for row in page.rows if row and row[0] in model.params}
    assert set(tensors) == set(model.params)
    w = np.asarray(model.params["0.W"], dtype=np.float64)
    assert float(tensors["0.W"][4]) == pytest.approx(w.std(), rel=1e-3)
    assert tensors["0.W"][2] == f"{w.shape[0]} x {w.shape[1]}"
    assert tensors["1.gamma"][1] == "BatchNorm"
    # the per-epoch metrics (3 epochs) and the resolved config
    epochs = [row for row in page.rows if len(row) > 5 and row[0] in ("1", "2", "3")]
    assert [row[0] for row in epochs] == ["1", "2", "3"]
    assert html.escape((run_dir / "config.toml").read_text(), quote=True) in text


def test_run_report_embeds_the_figures_other_commands_left(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(copy / "learning_curve.png")
    page = Page(write_report(copy).read_text())
    assert (40, 30) in [png_size(img["src"]) for img in page.images]


def test_text_from_the_directory_is_escaped(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    summary["data"] = evil
    summary["diagnosis"]["remedies"] = [evil]
    (copy / "summary.json").write_text(json.dumps(summary))
    with open(copy / "config.toml", "a") as f:
        f.write(f"# {evil}\n")
    text = write_report(copy).read_text()
    page = Page(text)
    assert evil not in text and html.escape(evil) in text
    assert page.scripts == 1 and all(img["src"].startswith("data:") for img in page.images)


def test_tune_report_holds_trials_figures_rounds_importance_and_best(tune_dir):
    import optuna

    text = write_report(tune_dir).read_text()
    page = Page(text)
    self_contained(text, page)
    study = optuna.load_study(study_name="bowl", storage=f"sqlite:///{tune_dir / 'study.db'}")
    trials = study.get_trials(deepcopy=False)
    rows = [r for r in page.rows if r]
    assert sorted(int(r[0]) for r in rows) == [t.number for t in trials]
    states = {int(r[0]): r[1] for r in rows}
    assert states == {t.number: t.state.name.lower().replace("fail", "failed") for t in trials}
    assert "pruned" in states.values()
    best = study.best_trial
    assert re.search(rf'<tr class="best"><td[^>]*>{best.number}</td>', text)
    assert f"{best.value:.4f}" in text
    # the metric against each hyperparameter, the per-epoch curves, the rounds
    assert len(page.images) == 3 and all(min(png_size(i["src"])) > 200 for i in page.images)
    assert "coarse-to-fine: 2 rounds" not in text  # the figure's title is in the picture
    rounds = re.search(r"<h2>Rounds</h2>(.*?)</table>", text, re.S)
    assert rounds is not None and rounds.group(1).count("<tr>") == 1 + 2  # header + 2 rounds
    # importance by deepfit key (train.beta1, not Optuna's 1-train.beta1), summing to 1
    section = re.search(r"<h2>Hyperparameter importance</h2>(.*?)</section>", text, re.S)
    assert section is not None and "PED-ANOVA" in section.group(1)
    values = [float(v) for v in re.findall(r"</span>([0-9.]+)</td>", section.group(1))]
    assert {"train.lr", "train.beta1"} <= set(re.findall(r'"text">([\w.]+)</td>', section.group(1)))
    assert sum(values) == pytest.approx(1.0, abs=2e-3)
    assert html.escape((tune_dir / "best.toml").read_text()) in text


def test_report_command_and_its_errors(run_dir, tune_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "study.db" in err and "--storage" in err
    url = f"sqlite:///{tune_dir / 'study.db'}"
    assert main(["report", str(tmp_path), "--storage", url, "--study", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--storage", url, "-o", str(out)]) == 0
    assert "deepfit study: bowl" in out.read_text()


def test_several_studies_need_a_name(tune_dir):
    import optuna

    url = f"sqlite:///{tune_dir / 'study.db'}"
    optuna.create_study(storage=url, study_name="other", load_if_exists=True)
    try:
        with pytest.raises(DeepfitError, match="2 studies .*--study"):
            write_report(tune_dir)
        assert "deepfit study: bowl" in write_report(tune_dir, study="bowl").read_text()
    finally:
        optuna.delete_study(study_name="other", storage=url)


# -- in a real browser --------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Skipped where Chromium is missing, except in CI, whose .ci/run installs it: there a missing
# browser is a failure, not a silently smaller suite.
browser = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no chromium on PATH (apt-get install chromium; .ci/run installs it)",
)


class DevTools:
    """A page of headless Chromium driven over the DevTools protocol (a websocket)."""

    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def open(self, path: Path) -> None:
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("0")  # let the load's console messages arrive

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (a refused load)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(details.get("exception", {}).get("description") or details["text"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = params.get("args", [])
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in args))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
        return found


@contextmanager
def chromium(tmp_path: Path) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile and the DevTools protocol on a free loopback
    port (Chromium picks it and writes it to DevToolsActivePort)."""
    pytest.importorskip("websocket", reason="the browser tests need websocket-client")
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    profile = tmp_path / "profile"
    process = subprocess.Popen(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (active.exists() and active.read_text().strip()):
            assert process.poll() is None, f"chromium exited with {process.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(active.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.loads(r.read())
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        try:
            yield tools
        finally:
            tools.ws.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


IMAGES = "Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight])"


@browser
@pytest.mark.slow
def test_reports_render_in_chromium_without_console_errors(run_dir, tune_dir, tmp_path):
    run_page, tune_page = write_report(run_dir), write_report(tune_dir)
    with chromium(tmp_path) as page:
        page.open(run_page)
        images = page.evaluate(IMAGES)
        assert len(images) == 2
        assert all(done and w > 300 and h > 200 for done, w, h in images), images
        assert page.evaluate("document.title") == f"deepfit run: {run_dir.name}"
        assert page.errors() == []

        page.open(tune_page)
        images = page.evaluate(IMAGES)
        assert len(images) == 3 and all(done and w > 200 for done, w, _ in images), images
        # click the metric's header: rows sorted by dev_loss, empty (failed) cells last
        column = "Array.from(document.querySelectorAll('table.sortable th'))" + (
            ".findIndex(th => th.textContent.startsWith('dev_loss'))"
        )
        values = (
            f"(() => {{ const c = {column}; return Array.from("
            "document.querySelector('table.sortable').tBodies[0].rows, "
            "r => r.cells[c].getAttribute('data-value')); })()"
        )
        header = f"document.querySelectorAll('table.sortable th')[{column}]"
        page.evaluate(f"{header}.click()")
        ascending = [float(v) for v in page.evaluate(values) if v is not None]
        assert len(ascending) >= 10 and ascending == sorted(ascending)
        assert page.evaluate(f"{header}.getAttribute('aria-sort')") == "ascending"
        page.evaluate(f"{header}.click()")
        descending = [float(v) for v in page.evaluate(values) if v is not None]
        assert descending == sorted(ascending, reverse=True)
        assert page.errors() == []

        # the check can fail: a script error and a refused external image are both caught
        broken = tmp_path / "broken.html"
        text = run_page.read_text().replace(
            "</main>", '<img src="http://127.0.0.1:9/x.png"><script>undefinedCall()</script></main>'
        )
        broken.write_text(text)
        page.open(broken)
        errors = page.errors()
        assert any("undefinedCall" in e for e in errors), errors
        assert any("Content Security Policy" in e for e in errors), errors


@browser
@pytest.mark.slow
def test_screenshot_of_the_report_is_a_real_picture(run_dir, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1500",
            f"--screenshot={shot}",
            write_report(run_dir).resolve().as_uri(),
        ],
        check=True,
        timeout=120,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1200, 1500)
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20  # not blank: text, tables and figures
    colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50  # antialiased text and the figures' lines
    # the figures are on screen: blue (train) and orange (dev) curves somewhere in the shot
    blue = np.all(np.abs(pixels - (31, 119, 180)) < 30, axis=2).sum()
    orange = np.all(np.abs(pixels - (255, 127, 14)) < 30, axis=2).sum()
    assert blue > 100 and orange > 100


def test_importance_needs_completed_trials(tmp_path):
    pytest.importorskip("optuna")
    from deepfit.tuning.study import tune

    (tmp_path / "cfg.toml").write_text(TUNE.replace("trials = 16", "trials = 1"))
    tune(C.load(tmp_path / "cfg.toml"), tmp_path / "t", objective=BOWL, plots=False)
    text = write_report(tmp_path / "t").read_text()
    assert "not available: needs at least 2 completed trials, the study has 1" in text
    assert len(Page(text).images) == 3  # the figures do not need two trials
