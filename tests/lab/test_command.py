import json

import pytest

from deepfit import lab
from deepfit.cli import main


def test_cli_writes_the_three_files(tmp_path, capsys):
    assert main(["lab", "ewa", "--quick", "--out", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["name"] == "ewa" and payload["quick"] is True
    assert {p.name for p in tmp_path.iterdir()} == {"ewa.png", "ewa.md", "ewa.json"}
    assert "| quantity | ours | published | notes |" in (tmp_path / "ewa.md").read_text()


def test_unknown_experiment_is_one_line_error(tmp_path, capsys):
    assert main(["lab", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown lab experiment 'nope'" in capsys.readouterr().err


def test_registry_names_every_module():
    assert set(lab.available()) <= set(lab.EXPERIMENTS)
    for name in lab.available():
        module = lab.get(name)
        assert module.NAME == name and callable(module.run)
    with pytest.raises(Exception, match="unknown lab experiment"):
        lab.get("nope")


def _fake_result(name, ok):
    from deepfit.lab import LabResult

    return LabResult(name, name, "claim", "source", rows=[], checks={"holds": ok})


@pytest.mark.parametrize(("outcomes", "code"), [((True, True), 0), ((True, False), 1)])
def test_lab_all_exits_0_only_when_every_claim_holds(tmp_path, monkeypatch, outcomes, code):
    results = dict(zip(("one", "two"), outcomes, strict=True))
    monkeypatch.setattr(lab, "available", lambda: list(results))
    monkeypatch.setattr(
        lab, "run", lambda name, out, quick=False: _fake_result(name, results[name])
    )
    assert main(["lab", "all", "--quick", "--out", str(tmp_path), "--json"]) == code


def test_every_registered_experiment_exists_and_has_a_committed_table():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs"
    assert lab.available() == list(lab.EXPERIMENTS)
    notes = (docs / "notes.md").read_text(encoding="utf-8")
    for name in lab.EXPERIMENTS:
        for ext in ("png", "md", "json"):
            assert (docs / "lab" / f"{name}.{ext}").exists(), (name, ext)
        assert f"lab/{name}.png" in notes, name
        committed = json.loads((docs / "lab" / f"{name}.json").read_text(encoding="utf-8"))
        # the committed tables come from full runs whose every claim check holds
        assert committed["quick"] is False and all(committed["checks"].values()), name


def test_missing_mnist_is_one_line_naming_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPFIT_MNIST10K", str(tmp_path / "nowhere"))
    assert main(["lab", "minibatch", "--quick", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "nowhere: the MNIST subset is missing" in err and "'minibatch'" in err
    assert len(err.splitlines()) == 1
