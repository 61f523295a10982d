"""Config schema: defaults, validation messages naming the key, overrides, TOML round trip."""

from __future__ import annotations

import tomllib

import pytest

from deepfit import config as C


def test_defaults_are_complete_and_round_trip_through_toml():
    defaults = C.defaults()
    assert defaults["train"]["lr"] == 0.001 and defaults["train"]["schedule"]["kind"] == "constant"
    text = C.dumps(defaults)
    assert tomllib.loads(text) == defaults
    assert C.validate(tomllib.loads(text)) == defaults


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"train": {"learning_rate": 0.1}},
            "'train.learning_rate' is unknown; did you mean 'train.lr'",
        ),
        ({"model": {"dropout": 0.5}}, "did you mean 'model.keep_prob'"),
        ({"train": {"optimiser": "adam"}}, "did you mean 'train.optimizer'"),
        ({"trian": {}}, "'trian' is unknown; did you mean 'train'"),
        ({"train": {"lr": 0}}, "'train.lr' must be a number > 0, got 0"),
        ({"train": {"lr": "fast"}}, r"'train.lr' must be a number > 0, got 'fast' \(str\)"),
        ({"train": {"epochs": 2.5}}, "'train.epochs' must be an integer >= 1"),
        ({"train": {"beta1": 1.0}}, r"'train.beta1' must be a number in \[0, 1\)"),
        ({"model": {"keep_prob": 0}}, r"'model.keep_prob' must be a number in \(0, 1\]"),
        ({"model": {"hidden": [64, -1]}}, "'model.hidden' must be a list of positive integers"),
        ({"model": {"activation": "gelu"}}, "'model.activation' must be one of 'relu'"),
        ({"model": {"batchnorm": "yes"}}, "'model.batchnorm' must be true or false"),
        ({"data": {"split": [0.5, 0.5, 0.5]}}, "'data.split' must be \"auto\" or three fractions"),
        ({"data": {"augment": ["rotate"]}}, "'data.augment' must be a list drawn from"),
        ({"data": {"source": "idx", "images": "a"}}, "'data.labels' is required"),
        ({"train": {"schedule": 3}}, "'train.schedule' must be a table"),
        ({"train": {"lr": {"x": 1}}}, "'train.lr' must be a number > 0, got a table"),
        ({"model": {"hidden": [4], "keep_prob": [0.5, 0.5]}}, "2 values for 1 hidden layers"),
    ],
)
def test_validation_messages_name_the_key(config, message):
    with pytest.raises(C.ConfigError, match=message):
        C.validate(config)


def test_load_applies_overrides_and_resolves_paths(tmp_path):
    path = tmp_path / "sub" / "c.toml"
    path.parent.mkdir()
    path.write_text('[data]\nsource = "csv"\npath = "data.csv"\n[train]\nlr = 0.1\n')
    config = C.load(path, ["train.lr=0.01", "model.hidden=[8, 4]", "data.target=label"])
    assert config["train"]["lr"] == 0.01
    assert config["model"]["hidden"] == [8, 4]
    assert config["data"]["target"] == "label"  # not TOML: read as a plain string
    assert config["data"]["path"] == str(tmp_path / "sub" / "data.csv")
    with pytest.raises(C.ConfigError, match="did you mean 'train.epochs'"):
        C.load(path, ["train.epoch=3"])
    with pytest.raises(C.ConfigError, match="expects key=value"):
        C.load(path, ["train.lr"])
    with pytest.raises(C.ConfigError, match="c.toml: config key 'train.lr' must be"):
        C.load(path, ["train.lr=-3"])


def test_file_errors(tmp_path):
    with pytest.raises(C.ConfigError, match="no such config file"):
        C.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(C.ConfigError, match="not valid TOML"):
        C.load(bad)


def test_get_and_set_dotted_keys():
    config = C.defaults()
    C.set_value(config, "train.schedule.kind", "cosine")
    assert C.get(config, "train.schedule.kind") == "cosine"
    with pytest.raises(C.ConfigError, match="is a table"):
        C.set_value(config, "train.schedule", 1)


def test_dumps_quotes_keys_that_toml_cannot_leave_bare():
    data = {"tune": {"space": {"a.b": "uniform(0, 1)", "plain": 1}}, "x y": {"k": [1, 2]}}
    assert tomllib.loads(C.dumps(data)) == data


def test_dumps_writes_what_the_hand_written_writer_could_not(monkeypatch):
    """tomli_w escapes control characters (a tab, a carriage return, U+0001 in a path), which
    the former hand-written writer left raw (invalid TOML), and refuses what TOML cannot hold
    with one line; without tomli_w the message names the extra."""
    import sys

    config = C.defaults()
    config["data"]["path"] = 'dir\twith\r"odd"\\chars\x01.csv'
    text = C.dumps(config)
    assert tomllib.loads(text) == config
    assert "[train.early_stopping]" in text and "beta2 = 0.999" in text  # every default
    with pytest.raises(C.ConfigError, match="cannot write the config as TOML"):
        C.dumps({"train": {"lr": None}})
    monkeypatch.setitem(sys.modules, "tomli_w", None)
    with pytest.raises(C.DeepfitError, match=r"pip install 'deepfit\[toml\]'"):
        C.dumps(config)
