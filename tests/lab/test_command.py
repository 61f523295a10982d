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
