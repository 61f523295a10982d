"""Claiming a run directory (issue 14, items 3, 4, 8 and 11), without training: the decision
table of :func:`deepfit.rundir.claim`."""

from __future__ import annotations

import pytest

from deepfit import rundir
from deepfit.config import defaults, dumps
from deepfit.errors import DeepfitError


def _run_dir(path, config, *, finished=True):
    path.mkdir()
    (path / "config.toml").write_text(dumps(config))
    (path / "metrics.csv").write_text("epoch,lr\n1,0.001\n")
    (path / "checkpoint.npz").write_bytes(b"checkpoint")
    if finished:
        (path / "summary.json").write_text("{}")
        (path / "model.npz").write_bytes(b"model")
    return path


def _claim(path, config, **kw):
    rundir.claim(path, config, **kw).release()


def test_missing_or_empty_directories_are_claimed_and_left_clean(tmp_path):
    config = defaults()
    _claim(tmp_path / "new", config)
    assert list((tmp_path / "new").iterdir()) == []
    with pytest.raises(DeepfitError, match="is a file, not a run directory"):
        (tmp_path / "file").write_text("x")
        _claim(tmp_path / "file", config)


def test_a_held_directory_is_refused_and_a_refusal_leaves_nothing(tmp_path):
    config = defaults()
    lock = rundir.claim(tmp_path / "run", config)
    try:
        with pytest.raises(DeepfitError, match="in use by another deepfit train"):
            _claim(tmp_path / "run", config)
    finally:
        lock.release()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DeepfitError, match=r"not empty and not a deepfit run .*notes\.txt"):
        _claim(tmp_path / "other", config)
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]


def test_the_same_finished_config_again_is_allowed_another_needs_overwrite(tmp_path):
    config = defaults()
    out = _run_dir(tmp_path / "run", config)
    _claim(out, config)
    other = defaults()
    other["train"]["lr"] = 0.5
    with pytest.raises(DeepfitError, match=r"changed: train\.lr \(0\.001 there, 0\.5 here\)"):
        _claim(out, other)
    assert (out / "model.npz").exists()
    (out / "notes.txt").write_text("mine")
    _claim(out, other, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only the run's files went


def test_overwrite_never_replaces_a_file_no_run_wrote(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.toml").write_text("answer = 42\n")
    with pytest.raises(DeepfitError, match=r"config\.toml: not written by a deepfit run"):
        _claim(out, defaults(), overwrite=True)
    assert (out / "config.toml").read_text() == "answer = 42\n"


def test_resume_refuses_changed_identity_keys_and_accepts_the_rest(tmp_path):
    config = defaults()
    out = _run_dir(tmp_path / "run", config, finished=False)
    longer = defaults()
    longer["train"]["epochs"] = 500
    longer["train"]["lr"] = 0.01
    _claim(out, longer, resume=True)
    for key, value in (("data", "split"), ("model", "hidden"), ("train", "batch_size")):
        changed = defaults()
        changed[key][value] = {"split": [0.5, 0.25, 0.25], "hidden": [3], "batch_size": 7}[value]
        with pytest.raises(
            DeepfitError, match=rf"--resume with changed config keys {key}\.{value}"
        ):
            _claim(out, changed, resume=True)
    with pytest.raises(DeepfitError, match="holds an unfinished run; --resume continues it"):
        _claim(out, config)


def test_a_run_of_an_older_deepfit_lacking_new_keys_still_resumes(tmp_path):
    config = defaults()
    out = _run_dir(tmp_path / "run", config, finished=False)
    text = (out / "config.toml").read_text().replace("max_examples = 0\n", "")
    assert "max_examples" not in text
    (out / "config.toml").write_text(text)
    _claim(out, config, resume=True)


def test_stale_temporaries_are_removed_on_claim(tmp_path):
    config = defaults()
    out = _run_dir(tmp_path / "run", config, finished=False)
    stale = [out / ".checkpoint.npz.0123abcd.tmp", out / ".metrics.csv.89abcdef.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    _claim(out, config, resume=True)
    assert not any(p.exists() for p in stale)


def test_the_initial_weights_keys_may_change_on_resume_unless_refit_draws_them_again(tmp_path):
    config = defaults()
    out = _run_dir(tmp_path / "run", config, finished=False)
    for key, value in (("init_seed", 5), ("init", "course_he"), ("init_scale", 0.5)):
        changed = defaults()
        changed["model"][key] = value
        _claim(out, changed, resume=True)  # the checkpoint's weights replace the initial ones
        changed["train"]["refit"] = True
        with pytest.raises(
            DeepfitError,
            match=rf"changed config keys model\.{key} .*\(train\.refit draws the initial weights",
        ):
            _claim(out, changed, resume=True)


def test_a_resume_with_another_init_seed_continues_the_same_run(tmp_path):
    from deepfit import experiment
    from deepfit.config import validate

    def config(epochs, init_seed):
        return validate(
            {
                "data": {"source": "iris"},
                "model": {"hidden": [8], "init": "course_he", "init_seed": init_seed},
                "train": {"epochs": epochs, "batch_size": 16, "lr": 0.01},
            }
        )

    straight = experiment.run(config(6, 3), tmp_path / "a", progress=False, write_plots=False)
    experiment.run(config(3, 3), tmp_path / "b", progress=False, write_plots=False)
    resumed = experiment.run(
        config(6, 7), tmp_path / "b", resume=True, progress=False, write_plots=False
    )
    for (name, a), b in zip(
        straight["model"].state_dict().items(),
        resumed["model"].state_dict().values(),
        strict=True,
    ):
        assert a.tobytes() == b.tobytes(), name
    assert resumed["dev"] == straight["dev"] and resumed["epochs_run"] == 6
    # and the seed does change a fresh run's weights: it is not ignored
    other = experiment.run(config(6, 7), None, progress=False)
    first, drawn = straight["model"].state_dict(), other["model"].state_dict()
    assert not (first["0.W"] == drawn["0.W"]).all()


# -- a run that diverges before its first epoch ends leaves nothing behind ----------------------
DIVERGING = (
    '[data]\nsource = "iris"\n[model]\nhidden = [8]\n'
    '[train]\nlr = 1e30\noptimizer = "sgd"\nepochs = 3\n'
)


def test_a_run_diverging_in_its_first_epoch_leaves_no_directory_and_a_rerun_needs_no_flag(
    tmp_path,
):
    import subprocess
    import sys

    (tmp_path / "cfg.toml").write_text(DIVERGING)

    def train(*args):
        return subprocess.run(
            [sys.executable, "-m", "deepfit.cli", "train", "cfg.toml", "--out", "run", "-q", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )

    failed = train()
    assert failed.returncode == 2
    (line,) = failed.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: training diverged: non-finite loss") and "no model" in line
    assert line.endswith("; run removed")
    assert not (tmp_path / "run").exists()
    fixed = train("--set", "train.lr=0.01")  # the user's next step: no --overwrite needed
    assert fixed.returncode == 0, fixed.stderr
    assert (tmp_path / "run" / "model.npz").is_file()


def test_a_diverged_run_removes_only_its_own_files(tmp_path):
    import tomllib

    from deepfit import experiment
    from deepfit.config import validate
    from deepfit.training.trainer import TrainingDiverged

    diverging = validate(tomllib.loads(DIVERGING))
    fine = validate({**tomllib.loads(DIVERGING), "train": {"epochs": 2}})
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    experiment.run(fine, out, overwrite=True, progress=False, write_plots=False)
    assert (out / "model.npz").is_file()
    # --overwrite replaces the previous run; the new one diverges: the user's file stays
    with pytest.raises(TrainingDiverged, match=r"; .*run holds nothing of this run$"):
        experiment.run(diverging, out, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    # a directory a run left unfinished (config.toml, empty metrics.csv) keeps what it held
    (out / "config.toml").write_text(dumps(diverging))
    (out / "metrics.csv").write_text("")
    with pytest.raises(TrainingDiverged):
        experiment.run(diverging, out, resume=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.toml", "metrics.csv", "notes.txt"]
    assert (out / "config.toml").read_text() == dumps(diverging)
    # without a run directory nothing changes
    with pytest.raises(TrainingDiverged, match=r"no model is kept \(try"):
        experiment.run(diverging, None, progress=False)
