"""deepfit.sklearn: scikit-learn's own estimator checks, then real learning in Pipeline,
cross_val_score and GridSearchCV, partial_fit, early stopping, determinism, bad arguments."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import log_loss
from sklearn.model_selection import (
    GridSearchCV,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from deepfit.build import (
    _ensemble_options,
    build_callbacks,
    build_early_stopping,
    build_loss,
    build_optimizer,
    build_schedule,
    build_trainer_options,
)
from deepfit.config import validate
from deepfit.nn.sequential import mlp
from deepfit.sklearn import DeepFitClassifier, DeepFitRegressor
from deepfit.training.trainer import Trainer

# Small and quick, yet above scikit-learn's accuracy (0.83) and R^2 (0.5) floors.
SMALL = dict(hidden_layer_sizes=(16,), max_epochs=30, learning_rate=0.01, batch_size=32)


@parametrize_with_checks(
    [
        DeepFitClassifier(**SMALL),
        DeepFitRegressor(**SMALL),
        DeepFitClassifier(**SMALL, ensemble=3),
        DeepFitRegressor(**SMALL, ensemble=3, ensemble_kind="batch"),
    ],
    expected_failed_checks=lambda est: {
        "check_sample_weight_equivalence_on_dense_data": (
            "float32 arithmetic: weights of 2 and repeated rows agree to 1e-7 relative, the "
            "check asks for less; test_sample_weight_equals_repeated_rows checks it in float64"
        )
    },
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("cls", [DeepFitClassifier, DeepFitRegressor])
def test_parameter_constraints_cover_every_parameter(cls):
    # scikit-learn runs this check on its own estimators only; it needs a constraint for
    # every __init__ parameter and an InvalidParameterError naming the parameter.
    check_param_validation(cls.__name__, cls(max_epochs=2))


# -- data ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)


def _blobs(n=200, seed=0):
    X, y = make_blobs(n_samples=n, centers=3, n_features=4, random_state=seed)
    return StandardScaler().fit_transform(X), y


def _smooth(n, seed=0, outputs=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    columns = [np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2, np.cos(X[:, 1]) * X[:, 0]]
    y = np.column_stack(columns[:outputs])
    return X, (y[:, 0] if outputs == 1 else y)


# -- learning in scikit-learn's tools ------------------------------------------------------
def test_digits_pipeline_reaches_95_percent_on_holdout(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(
        StandardScaler(),
        DeepFitClassifier(
            hidden_layer_sizes=(64,), max_epochs=30, learning_rate=0.003, random_state=0
        ),
    )
    pipe.fit(Xtr, ytr)
    assert pipe.score(Xte, yte) >= 0.95
    clf = pipe[-1]
    assert clf.n_iter_ == 30 == len(clf.loss_curve_) == clf.best_epoch_
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] / 5
    assert clf.validation_scores_ is None
    assert list(clf.classes_) == list(range(10)) and clf.n_features_in_ == 64
    proba = clf.predict_proba(StandardScaler().fit(Xtr).transform(Xte))
    assert proba.shape == (len(yte), 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_cross_val_score(digits):
    Xtr, _, ytr, _ = digits
    pipe = make_pipeline(
        StandardScaler(),
        DeepFitClassifier(
            hidden_layer_sizes=(32,), max_epochs=10, learning_rate=0.01, random_state=0
        ),
    )
    scores = cross_val_score(pipe, Xtr, ytr, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.85


def test_grid_search_over_l2_and_hidden_sizes():
    X, y = _blobs(150)
    grid = GridSearchCV(
        DeepFitClassifier(max_epochs=8, learning_rate=0.01, random_state=0),
        {"l2": [0.0, 1.0], "hidden_layer_sizes": [(8,), (16, 8)]},
        cv=3,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_params_["l2"] in (0.0, 1.0)
    assert grid.best_params_["hidden_layer_sizes"] in ((8,), (16, 8))
    assert grid.best_score_ > 0.9
    assert grid.best_estimator_.hidden_layer_sizes == grid.best_params_["hidden_layer_sizes"]
    assert grid.score(X, y) > 0.9


def test_regression_r2_on_a_smooth_function():
    X, y = _smooth(1000)
    reg = DeepFitRegressor(
        hidden_layer_sizes=(32, 32), max_epochs=40, learning_rate=0.01, random_state=0
    )
    reg.fit(X[:800], y[:800])
    assert reg.score(X[800:], y[800:]) > 0.9
    assert reg.predict(X[:5]).shape == (5,)


def test_regression_multi_output():
    X, Y = _smooth(800, outputs=2)
    reg = DeepFitRegressor(
        hidden_layer_sizes=(32, 32), max_epochs=40, learning_rate=0.01, random_state=0
    )
    reg.fit(X[:600], Y[:600])
    assert reg.n_outputs_ == 2 and reg.model_.n_outputs == 2
    pred = reg.predict(X[600:])
    assert pred.shape == (200, 2) and pred.dtype == np.float64
    assert reg.score(X[600:], Y[600:]) > 0.9


def test_binary_labels_of_any_type_and_probability_shape():
    X, y = _blobs(120)
    X, y = X[y < 2], np.where(y[y < 2] == 0, "no", "yes")
    clf = DeepFitClassifier(**SMALL, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    assert clf.predict_proba(X).shape == (len(y), 2)
    assert set(clf.predict(X)) <= {"no", "yes"} and clf.score(X, y) > 0.9


# -- partial_fit -------------------------------------------------------------------------------
def test_partial_fit_improves_the_loss():
    X, y = _blobs(300)
    clf = DeepFitClassifier(hidden_layer_sizes=(16,), learning_rate=0.003, random_state=0)
    for _ in range(8):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 8 == len(clf.loss_curve_)
    assert clf.loss_curve_[-1] < 0.5 * clf.loss_curve_[0]
    assert all(b < a for a, b in zip(clf.loss_curve_, clf.loss_curve_[1:], strict=False))
    assert [r["epoch"] for r in clf.history_.records] == list(range(1, 9))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam"])
def test_partial_fit_calls_continue_one_run(optimizer):
    # k one-epoch calls are the same run as fit(max_epochs=k): the optimizer's moments and
    # step count, the schedule's position and the shuffling stream all carry over.
    X, y = _blobs(150)
    params = dict(
        hidden_layer_sizes=(8,),
        optimizer=optimizer,
        learning_rate=0.01,
        schedule="exponential",
        decay_rate=0.8,
        keep_prob=0.9,
        batch_size=16,
        random_state=3,
    )
    whole = DeepFitClassifier(**params, max_epochs=4).fit(X, y)
    pieces = DeepFitClassifier(**params)
    for _ in range(4):
        pieces.partial_fit(X, y, classes=np.unique(y))
    assert pieces.loss_curve_ == whole.loss_curve_
    assert [r["lr"] for r in pieces.history_.records] == pytest.approx(
        [0.01 * 0.8**k for k in range(4)]
    )
    np.testing.assert_array_equal(pieces.predict_proba(X), whole.predict_proba(X))


def test_partial_fit_continues_lookahead_mixup_clipping_and_sgdr():
    # the techniques that live in the loss, optimizer, schedule and trainer carry over
    # partial_fit calls as the optimizer does
    X, y = _blobs(150)
    params = dict(
        hidden_layer_sizes=(8,),
        learning_rate=0.02,
        label_smoothing=0.1,
        clip_norm=0.5,
        mixup="cutmix",
        lookahead=True,
        lookahead_k=3,
        schedule="sgdr",
        decay_steps=2,
        batch_size=16,
        random_state=3,
    )
    whole = DeepFitClassifier(**params, max_epochs=5).fit(X, y)
    pieces = DeepFitClassifier(**params)
    for _ in range(5):
        pieces.partial_fit(X, y, classes=np.unique(y))
    assert pieces.loss_curve_ == whole.loss_curve_
    assert pieces.history_["lr"] == whole.history_["lr"]
    np.testing.assert_array_equal(pieces.predict_proba(X), whole.predict_proba(X))


def test_partial_fit_regressor_and_after_fit():
    X, y = _smooth(300)
    reg = DeepFitRegressor(hidden_layer_sizes=(16,), max_epochs=3, random_state=0).fit(X, y)
    reg.partial_fit(X, y)
    assert reg.n_iter_ == 4 and len(reg.loss_curve_) == 4


def test_partial_fit_needs_classes_first_and_refuses_unknown_labels():
    X, y = _blobs(60)
    clf = DeepFitClassifier(max_epochs=2)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2]
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="differs from the classes"):
        clf.partial_fit(X, y, classes=[0, 1])


# -- early stopping and validation data ------------------------------------------------------
def _noisy(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 10))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    flip = rng.random(300) < 0.3
    return X, np.where(flip, 1 - y, y)


def test_early_stopping_restores_the_best_epoch():
    X, y = _noisy()
    X_val, y_val = X[200:], y[200:]
    clf = DeepFitClassifier(
        hidden_layer_sizes=(32, 32),
        learning_rate=0.01,
        max_epochs=100,
        early_stopping=True,
        patience=5,
        random_state=0,
    ).fit(X[:200], y[:200], validation_data=(X_val, y_val))
    dev_loss = clf.history_["dev_loss"]
    assert clf.best_epoch_ < clf.n_iter_ < 100
    assert clf.n_iter_ == clf.best_epoch_ + 5 == len(dev_loss) == len(clf.validation_scores_)
    assert int(np.argmin(dev_loss)) + 1 == clf.best_epoch_
    assert "early stopping" in clf.history_.stop_reason
    # the weights in the model are the best epoch's, not the last one's
    restored = log_loss(y_val, clf.predict_proba(X_val), labels=clf.classes_)
    assert restored == pytest.approx(dev_loss[clf.best_epoch_ - 1], rel=1e-4)
    assert restored < dev_loss[-1]


def test_early_stopping_holds_out_validation_fraction():
    X, y = _noisy(1)
    clf = DeepFitClassifier(
        hidden_layer_sizes=(64,),
        learning_rate=0.01,
        max_epochs=100,
        early_stopping=True,
        validation_fraction=0.2,
        patience=3,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ < 100 and clf.best_epoch_ == clf.n_iter_ - 3
    assert all(0.0 <= s <= 1.0 for s in clf.validation_scores_)


def test_validation_data_without_early_stopping_records_r2():
    X, y = _smooth(400)
    reg = DeepFitRegressor(hidden_layer_sizes=(16,), max_epochs=5, random_state=0)
    reg.fit(X[:300], y[:300], validation_data=(X[300:], y[300:]))
    assert len(reg.validation_scores_) == 5 == reg.best_epoch_
    assert reg.validation_scores_[-1] == pytest.approx(reg.score(X[300:], y[300:]), abs=1e-4)


def test_early_stopping_with_too_little_data_says_so():
    X, y = _smooth(5)
    reg = DeepFitRegressor(early_stopping=True, validation_fraction=0.05)
    with pytest.raises(ValueError, match="validation_fraction"):
        reg.fit(X, y)
    assert not hasattr(reg, "model_")


def test_verbose_prints_one_line_per_epoch(capsys):
    X, y = _smooth(50)
    DeepFitRegressor(hidden_layer_sizes=(4,), max_epochs=3, verbose=True).fit(X, y)
    err = capsys.readouterr().err
    assert "epoch 3/3" in err and "train_loss" in err


# -- randomness --------------------------------------------------------------------------------
def test_same_random_state_same_predictions_and_fresh_randomness_otherwise():
    X, y = _blobs(100)
    params = dict(hidden_layer_sizes=(8,), max_epochs=3, keep_prob=0.8, batchnorm=True)

    def proba(random_state):
        return DeepFitClassifier(**params, random_state=random_state).fit(X, y).predict_proba(X)

    np.testing.assert_array_equal(proba(7), proba(7))
    assert not np.array_equal(proba(7), proba(8))
    assert not np.array_equal(proba(None), proba(None))
    rs = np.random.RandomState(0)
    np.testing.assert_array_equal(proba(np.random.RandomState(0)), proba(rs))


def test_warm_start_continues():
    X, y = _blobs(100)
    clf = DeepFitClassifier(hidden_layer_sizes=(8,), max_epochs=3, warm_start=True)
    clf.fit(X, y)
    first = clf.model_
    clf.fit(X, y)
    assert clf.model_ is first and clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X, y + 5)


def test_float64_and_every_option_combination_smoke():
    X, y = _blobs(80)
    clf = DeepFitClassifier(
        hidden_layer_sizes=(8, 8),
        activation="tanh",
        init="xavier",
        batchnorm=True,
        keep_prob=(0.9, 0.8),
        l2=0.1,
        l1=0.01,
        optimizer="rmsprop",
        weight_decay=0.01,
        schedule={"kind": "warmup", "epochs": 2, "after": {"kind": "cosine", "total": 3}},
        max_epochs=5,
        dtype="float64",
        random_state=0,
    ).fit(X, y)
    assert clf.model_.dtype == np.float64
    assert clf.history_["lr"][0] < clf.history_["lr"][2]
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("schedule", ["constant", "inverse_time", "inverse_sqrt", "step", "cosine"])
def test_named_schedules(schedule):
    X, y = _smooth(64)
    reg = DeepFitRegressor(
        hidden_layer_sizes=(4,),
        learning_rate=0.1,
        schedule=schedule,
        decay_steps=2,
        max_epochs=4,
        random_state=0,
    ).fit(X, y)
    lr = reg.history_["lr"]
    assert lr[0] == pytest.approx(0.1)
    if schedule == "constant":
        assert lr == pytest.approx([0.1] * 4)
    else:
        assert lr[-1] < lr[0]


def test_schedule_dict_is_a_config_table_and_reads_the_schedule_config_form():
    X, y = _smooth(64)
    table = {"kind": "cosine", "total": 4, "warmup": 2, "lr_min": 0.01}
    config = validate({"train": {"lr": 0.1, "schedule": table}})
    expected = [build_schedule(config)(epoch) for epoch in range(6)]
    kw = dict(hidden_layer_sizes=(4,), learning_rate=0.1, max_epochs=6, random_state=0)
    assert DeepFitRegressor(**kw, schedule=table).fit(X, y).history_["lr"] == expected
    legacy = {
        "kind": "warmup",
        "epochs": 2,
        "after": {"kind": "cosine", "lr0": 0.1, "total": 4, "lr_min": 0.01},
    }
    reg = DeepFitRegressor(**{**kw, "learning_rate": 0.5}, schedule=legacy).fit(X, y)
    assert reg.history_["lr"] == expected
    assert legacy["after"]["lr0"] == 0.1  # the user's dict is left as it was


# -- bad arguments -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"l2": -1.0}, "'l2' parameter"),
        ({"learning_rate": 0.0}, "'learning_rate' parameter"),
        ({"optimizer": "adamw"}, "'optimizer' parameter"),
        ({"activation": "gelu"}, "'activation' parameter"),
        ({"keep_prob": 0.0}, "'keep_prob' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"max_epochs": 1.5}, "'max_epochs' parameter"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
        ({"dtype": "float16"}, "'dtype' parameter"),
        ({"hidden_layer_sizes": (8, 0)}, r"hidden_layer_sizes\[1\]"),
        ({"hidden_layer_sizes": (8,), "keep_prob": (0.5, 0.5)}, "keep_prob has 2 values"),
        ({"keep_prob": (0.5, 1.5), "hidden_layer_sizes": (4, 4)}, r"keep_prob\[1\]"),
        (
            {"schedule": "exponential", "decay_rate": 2.0},
            r"decay_rate \(schedule='exponential'\) must be a number in \(0, 1\]",
        ),
        ({"schedule": "cosine", "min_learning_rate": 1.0}, "min_learning_rate"),
        ({"schedule": {"kind": "nope"}}, r"schedule\['kind'\] must be one of"),
        ({"schedule": {"kind": "cosine", "totl": 3}}, r"schedule\['totl'\] is unknown"),
        ({"schedule": {"kind": "warmup", "epochs": 2}}, "a warm-up is"),
        ({"label_smoothing": 1.0}, "'label_smoothing' parameter"),
        ({"clip_norm": 0.0}, "'clip_norm' parameter"),
        ({"mixup": "blend"}, "'mixup' parameter"),
        ({"mixup_alpha": 0.0}, "'mixup_alpha' parameter"),
        ({"averaging": "mean"}, "'averaging' parameter"),
        ({"averaging_decay": 1.0}, "'averaging_decay' parameter"),
        ({"lookahead_alpha": 0.0}, "'lookahead_alpha' parameter"),
        ({"plateau_factor": 1.0}, "'plateau_factor' parameter"),
        ({"norm": "groupnorm"}, "'norm' parameter"),
        ({"start_from_epoch": -1}, "'start_from_epoch' parameter"),
        ({"baseline": 0.0}, "baseline=0.0"),
        ({"batchnorm": True, "norm": "layernorm"}, "batchnorm=True and norm='layernorm'"),
        (
            {"plateau": True, "early_stopping": True, "patience": 3, "plateau_patience": 3},
            "plateau_patience = 3 must be below patience = 3",
        ),
        ({"snapshots": True}, r"snapshots needs schedule = 'sgdr'"),
        (
            {"snapshots": True, "schedule": "sgdr", "decay_steps": 20, "max_epochs": 10},
            "no warm-restart cycle",
        ),
        ({"schedule": "sgdr", "min_learning_rate": 1.0}, "min_learning_rate"),
    ],
)
def test_invalid_hyperparameters_name_the_parameter(params, match):
    X, y = _blobs(30)
    clf = DeepFitClassifier(**params)  # __init__ accepts anything; fit validates
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")


def test_one_class_is_refused_and_validation_labels_are_checked():
    X, y = _blobs(30)
    with pytest.raises(ValueError, match="at least 2 classes"):
        DeepFitClassifier().fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="validation_data y has labels"):
        DeepFitClassifier(max_epochs=1).fit(X, y, validation_data=(X, y + 3))


def test_no_warnings_in_a_normal_fit():
    X, y = _blobs(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DeepFitClassifier(hidden_layer_sizes=(8,), max_epochs=2, random_state=0).fit(X, y)


# -- tables, weights, target scaling ----------------------------------------------------------
TABLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tables"


def test_sample_weight_equals_repeated_rows():
    X, y = _blobs(40)
    kw = dict(SMALL, batch_size=1000, dtype="float64", random_state=0, max_epochs=5)
    w = np.ones(len(y))
    w[:10] = 2
    a = DeepFitClassifier(**kw).fit(X, y, sample_weight=w)
    b = DeepFitClassifier(**kw).fit(np.vstack([X, X[:10]]), np.concatenate([y, y[:10]]))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-10)


def test_class_weight_balanced_is_sample_weight():
    X, y = _blobs(60)
    y = np.where(np.arange(60) < 45, 0, 1)
    kw = dict(SMALL, random_state=0, max_epochs=5)
    a = DeepFitClassifier(class_weight="balanced", **kw).fit(X, y)
    w = np.where(y == 0, 60 / (2 * 45), 60 / (2 * 15))
    b = DeepFitClassifier(**kw).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    with pytest.raises(ValueError, match="class_weight applies to DeepFitClassifier only"):
        DeepFitRegressor(class_weight="balanced", **kw).fit(X, y.astype(float))


def test_regressor_scales_its_target():
    X, _ = _blobs(200)
    target = X @ np.array([1.0, -2.0, 0.5, 3.0])
    kw = dict(SMALL, random_state=0, dtype="float64")
    small = DeepFitRegressor(**kw).fit(X, target)
    large = DeepFitRegressor(**kw).fit(X, 5000 * target + 1e5)
    np.testing.assert_allclose(large.predict(X), 5000 * small.predict(X) + 1e5, rtol=1e-8)
    assert large.score(X, 5000 * target + 1e5) > 0.9


def _table(name):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = TABLES / f"{name}.csv"
    if not path.exists():
        pytest.skip("shared tables not found")
    return pd.read_csv(path)


def test_dataframe_with_text_columns_classifier():
    df = _table("penguins")
    X, y = df.drop(columns=["species"]), df["species"]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    clf = DeepFitClassifier(max_epochs=60, random_state=0).fit(Xtr, ytr)
    assert list(clf.feature_names_in_) == list(X.columns) and clf.n_features_in_ == 7
    assert clf.score(Xte, yte) > 0.9
    shuffled = Xte[list(reversed(Xte.columns))]
    np.testing.assert_array_equal(clf.predict_proba(shuffled), clf.predict_proba(Xte))
    new = Xte.head(2).copy()
    new["island"] = ["Atlantis", None]
    new["bill_length_mm"] = [None, 40.0]
    assert set(clf.predict(new)) <= set(clf.classes_)


def test_dataframe_regressor_on_credit():
    df = _table("Credit")
    X, y = df.drop(columns=["Balance", "ID"]), df["Balance"]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    reg = DeepFitRegressor(max_epochs=200, random_state=0).fit(Xtr, ytr)
    assert reg.score(Xte, yte) > 0.9
    assert cross_val_score(DeepFitRegressor(max_epochs=20, random_state=0), X, y, cv=2).shape == (
        2,
    )


# -- the techniques of issue 11, built by deepfit.build ------------------------------------------
# (estimator hyperparameters, the same thing as a [train] config table)
TECHNIQUES = {
    "label_smoothing": ({"label_smoothing": 0.1}, {"label_smoothing": 0.1}),
    "clip_norm": ({"clip_norm": 0.05}, {"clip_norm": 0.05}),
    "cutmix": (
        {"mixup": "cutmix", "mixup_alpha": 0.4},
        {"mixup": {"kind": "cutmix", "alpha": 0.4}},
    ),
    "mixup": (
        {"mixup": "mixup", "mixup_prob": 0.5},
        {"mixup": {"kind": "mixup", "prob": 0.5}},
    ),
    "ema": (
        {"averaging": "ema", "averaging_decay": 0.9, "averaging_start": 2},
        {"averaging": {"kind": "ema", "decay": 0.9, "start": 2}},
    ),
    "swa": ({"averaging": "swa"}, {"averaging": {"kind": "swa"}}),
    "lookahead": (
        {"lookahead": True, "lookahead_k": 3, "lookahead_alpha": 0.6},
        {"lookahead": {"enabled": True, "k": 3, "alpha": 0.6}},
    ),
    "plateau": (
        {"plateau": True, "plateau_patience": 0, "plateau_factor": 0.5, "plateau_threshold": 0.5},
        {"plateau": {"enabled": True, "patience": 0, "factor": 0.5, "threshold": 0.5}},
    ),
    "sgdr": (
        {"schedule": "sgdr", "decay_steps": 2, "restart_mult": 2, "min_learning_rate": 1e-3},
        {"schedule": {"kind": "sgdr", "period": 2, "mult": 2, "lr_min": 1e-3}},
    ),
    "early_stopping": (
        {"early_stopping": True, "patience": 1, "start_from_epoch": 2, "baseline": 0.3},
        {
            "early_stopping": {
                "enabled": True,
                "patience": 1,
                "start_from_epoch": 2,
                "baseline": 0.3,
            }
        },
    ),
}
BASE = dict(hidden_layer_sizes=(8,), learning_rate=0.03, batch_size=16, max_epochs=8)


def _trainer_run(est, train, X, y, validation_data):
    """The same run as ``est.fit`` through deepfit.build and a Trainer, from the estimator's
    own random streams; returns (model, history)."""
    init_rng, shuffle_rng, _ = est._seeds()
    table = {"lr": est.learning_rate, "epochs": est.max_epochs, "dtype": est.dtype, **train}
    table["early_stopping"] = {"enabled": False, **train.get("early_stopping", {})}
    config = validate({"train": table})
    n_out = len(np.unique(y))
    model = mlp(X.shape[1], list(est.hidden_layer_sizes), n_out, rng=init_rng, dtype=est.dtype)
    stopper = build_early_stopping(config)
    trainer = Trainer(
        model,
        loss=build_loss(config, "softmax_cross_entropy"),
        optimizer=build_optimizer(config),
        batch_size=est.batch_size,
        schedule=build_schedule(config),
        callbacks=[*([stopper] if stopper else []), *build_callbacks(config)],
        seed=shuffle_rng,
        **build_trainer_options(config),
    )
    return model, trainer.fit(X, y, est.max_epochs, validation_data=validation_data)


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_each_technique_equals_the_trainer_built_from_the_same_config(name):
    params, train = TECHNIQUES[name]
    X, y = _noisy(1)
    dev = (X[200:], y[200:])
    est = DeepFitClassifier(**BASE, **params, dtype="float64", random_state=5)
    est.fit(X[:200], y[:200], validation_data=dev)
    model, history = _trainer_run(est, train, X[:200], y[:200], dev)
    np.testing.assert_array_equal(est.model_.predict(X), model.predict(X))
    assert est.history_["lr"] == history["lr"]
    assert est.loss_curve_ == history["train_loss"]
    # and the technique changed the run
    plain = DeepFitClassifier(**BASE, dtype="float64", random_state=5)
    plain.fit(X[:200], y[:200], validation_data=dev)
    assert not np.array_equal(plain.model_.predict(X), est.model_.predict(X))


def test_label_smoothing_is_the_smoothed_cross_entropy():
    X, y = _blobs(150, seed=2)
    eps = 0.2
    clf = DeepFitClassifier(**BASE, label_smoothing=eps, dtype="float64", random_state=0)
    clf.fit(X[:100], y[:100], validation_data=(X[100:], y[100:]))
    logits = clf.model_.predict(X[100:])
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    target = (1 - eps) * np.eye(3)[y[100:]] + eps / 3
    by_hand = float(np.mean(-(target * logp).sum(axis=1)))
    assert clf.history_["dev_loss"][-1] == pytest.approx(by_hand, rel=1e-12)
    assert clf.score(X[100:], y[100:]) > 0.9
    with pytest.raises(ValueError, match="label_smoothing applies to DeepFitClassifier only"):
        DeepFitRegressor(label_smoothing=0.1).fit(X, y.astype(float))


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
@pytest.mark.parametrize("cls", [DeepFitClassifier, DeepFitRegressor])
def test_mixup_and_cutmix_learn_and_are_deterministic(cls, kind):
    X, y = _blobs(200, seed=3) if cls is DeepFitClassifier else _smooth(200, seed=3)
    kw = dict(hidden_layer_sizes=(32,), learning_rate=0.01, max_epochs=40, mixup=kind)

    def outputs(random_state, **extra):
        est = cls(**{**kw, **extra}, random_state=random_state).fit(X, y)
        return getattr(est, "predict_proba", est.predict)(X)

    first = outputs(0)
    np.testing.assert_array_equal(first, outputs(0))
    assert not np.array_equal(first, outputs(0, mixup_alpha=1.0))
    assert not np.array_equal(first, outputs(0, mixup=None))
    assert cls(**kw, random_state=0).fit(X, y).score(X, y) > 0.9


def test_swa_model_is_the_mean_of_the_epoch_end_weights():
    # partial_fit calls are the same run as fit (test_partial_fit_calls_continue_one_run) and
    # averaging only watches it: the SWA model is the mean of epochs 3..6's weights.
    X, y = _blobs(100, seed=4)
    kw = dict(hidden_layer_sizes=(8,), learning_rate=0.01, batch_size=16, dtype="float64")
    swa = DeepFitClassifier(**kw, max_epochs=6, averaging="swa", averaging_start=2)
    swa.set_params(random_state=1).fit(X, y)
    pieces = DeepFitClassifier(**kw, random_state=1)
    seen = []
    for _ in range(6):
        pieces.partial_fit(X, y, classes=[0, 1, 2])
        seen.append({k: v.copy() for k, v in pieces.model_.params.items()})
    for key, value in swa.model_.params.items():
        np.testing.assert_allclose(value, np.mean([s[key] for s in seen[2:]], axis=0), rtol=1e-12)
    assert swa.loss_curve_ == pieces.loss_curve_


def test_sgdr_schedule_and_snapshot_ensemble():
    X, y = _blobs(120, seed=5)
    clf = DeepFitClassifier(
        hidden_layer_sizes=(16,),
        learning_rate=0.02,
        schedule="sgdr",
        decay_steps=2,
        restart_mult=2,
        min_learning_rate=0.002,
        max_epochs=6,
        snapshots=True,
        dtype="float64",
        random_state=0,
    ).fit(X, y)
    # cycles of 2 and 4 epochs: lr = lr_min + (lr0 - lr_min) (1 + cos(pi t / T)) / 2
    t_and_T = [(0, 2), (1, 2), (0, 4), (1, 4), (2, 4), (3, 4)]
    expected = [0.002 + 0.018 * (1 + np.cos(np.pi * t / T)) / 2 for t, T in t_and_T]
    assert clf.history_["lr"] == pytest.approx(expected, rel=1e-12)
    ensemble = clf.snapshot_ensemble_
    assert ensemble.epochs == [2, 6] and len(ensemble.snapshots) == 2
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba, ensemble.predict_proba(X), rtol=1e-12)
    assert not np.allclose(proba, clf._trainer.loss.output(clf.model_.predict(X)))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), proba)
    kept = clf.set_params(snapshots_keep=1).fit(X, y).snapshot_ensemble_
    assert kept.epochs == [6]
    clf.partial_fit(X, y)
    assert clf.snapshot_ensemble_ is None


def test_plateau_watches_the_training_loss_without_a_validation_set():
    X, y = _noisy(2)
    clf = DeepFitClassifier(
        hidden_layer_sizes=(32,),
        learning_rate=0.05,
        max_epochs=30,
        plateau=True,
        plateau_patience=1,
        plateau_factor=0.5,
        plateau_threshold=0.05,
        random_state=0,
    ).fit(X, y)
    # PyTorch's rule: halve the rate after more than plateau_patience = 1 epochs in a row
    # that do not beat the best training loss by plateau_threshold = 5% (relative)
    expected, best, bad, lr = [], np.inf, 0, 0.05
    for loss in clf.loss_curve_:
        expected.append(lr)
        best, bad = (loss, 0) if loss < best * (1 - 0.05) else (best, bad + 1)
        if bad > 1:
            lr, bad = lr / 2, 0
    assert clf.history_["lr"] == pytest.approx(expected, rel=1e-12)
    assert expected[-1] < 0.05 / 2


def test_early_stopping_start_from_epoch_and_baseline():
    X, y = _noisy()
    kw = dict(hidden_layer_sizes=(32, 32), learning_rate=0.01, max_epochs=100, early_stopping=True)
    dev = (X[200:], y[200:])
    plain = DeepFitClassifier(**kw, patience=5, random_state=0).fit(X[:200], y[:200], dev)
    late = DeepFitClassifier(**kw, patience=5, start_from_epoch=plain.best_epoch_ + 3)
    late.set_params(random_state=0).fit(X[:200], y[:200], dev)
    assert late.best_epoch_ > plain.best_epoch_ + 3 and late.n_iter_ > plain.n_iter_
    # a baseline no epoch beats: the run ends at the first epoch from `patience` on that does
    # not improve (Keras: an improving epoch never stops a run)
    strict = DeepFitClassifier(**kw, patience=3, baseline=1e-3, random_state=0)
    strict.fit(X[:200], y[:200], dev)
    loss = strict.history_["dev_loss"]
    improving = [True] + [loss[i] < min(loss[:i]) for i in range(1, len(loss))]
    assert strict.n_iter_ == next(e for e in range(3, len(loss) + 1) if not improving[e - 1])
    patient = DeepFitClassifier(**kw, patience=3, random_state=0).fit(X[:200], y[:200], dev)
    assert strict.n_iter_ < patient.n_iter_


def test_residual_blocks_and_layernorm():
    X, y = _blobs(200, seed=6)
    clf = DeepFitClassifier(
        hidden_layer_sizes=(16, 8),
        residual=True,
        norm="layernorm",
        keep_prob=0.9,
        learning_rate=0.01,
        max_epochs=15,
        random_state=0,
    ).fit(X, y)
    names = [type(layer).__name__ for layer in clf.model_]
    assert names == ["Dense", "Residual", "Residual", "LayerNorm", "ReLU", "Dense"]
    init_rng = clf._seeds()[0]
    built = mlp(4, [16, 8], 3, keep_prob=0.9, norm="layernorm", residual=True, rng=init_rng)
    assert clf.model_.config() == built.config()
    assert clf.score(X, y) > 0.9


def test_regressor_with_every_technique_and_partial_fit():
    X, y = _smooth(400, seed=7)
    params = dict(
        hidden_layer_sizes=(32, 32),
        residual=True,
        norm="batchnorm",
        learning_rate=0.01,
        max_epochs=12,
        clip_norm=5.0,
        mixup="mixup",
        lookahead=True,
        averaging="ema",
        averaging_decay=0.9,
        schedule="sgdr",
        decay_steps=4,
        snapshots=True,
        early_stopping=True,
        patience=6,
        plateau=True,
        plateau_patience=2,
        start_from_epoch=1,
    )
    reg = DeepFitRegressor(**params, random_state=0).fit(X[:300], y[:300])
    again = DeepFitRegressor(**params, random_state=0).fit(X[:300], y[:300])
    np.testing.assert_array_equal(reg.predict(X[300:]), again.predict(X[300:]))
    assert reg.snapshot_ensemble_ is not None and reg.score(X[300:], y[300:]) > 0.8
    reg.partial_fit(X[:300], y[:300])
    assert reg.n_iter_ == again.n_iter_ + 1 and reg.snapshot_ensemble_ is None


def test_grid_search_over_new_hyperparameters():
    X, y = _blobs(150)
    grid = GridSearchCV(
        DeepFitClassifier(max_epochs=8, learning_rate=0.01, random_state=0),
        {"label_smoothing": [0.0, 0.1], "mixup": [None, "cutmix"], "averaging": [None, "swa"]},
        cv=3,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert grid.best_score_ > 0.9 and grid.score(X, y) > 0.9
    assert grid.best_estimator_.mixup == grid.best_params_["mixup"]


# -- deep ensembles and BatchEnsemble ([model] ensemble = K) ------------------------------------
def _ensemble_trainer_run(est, X, y, loss, n_out, validation_data=None):
    """``est.fit`` for ``ensemble = K`` as the experiment path builds it (``build_model``'s
    ``mlp(..., **_ensemble_options(config, loss))`` and ``build_loss``: a PackedLoss), from
    the estimator's own random streams; returns (model, history)."""
    init_rng, shuffle_rng, _ = est._seeds()
    config = validate(
        {
            "model": {"ensemble": est.ensemble, "ensemble_kind": est.ensemble_kind},
            "train": {"lr": est.learning_rate, "epochs": est.max_epochs, "dtype": est.dtype},
        }
    )
    model = mlp(
        X.shape[1],
        list(est.hidden_layer_sizes),
        n_out,
        keep_prob=est.keep_prob,
        rng=init_rng,
        dtype=est.dtype,
        **_ensemble_options(config, loss),
    )
    trainer = Trainer(
        model,
        loss=build_loss(config, loss),
        optimizer=build_optimizer(config),
        batch_size=est.batch_size,
        seed=shuffle_rng,
    )
    return model, trainer.fit(X, y, est.max_epochs, validation_data=validation_data)


def _member_probabilities(model, X):
    z = model.predict_members(X)  # (K, m, c)
    e = np.exp(z - z.max(axis=2, keepdims=True))
    return e / e.sum(axis=2, keepdims=True)


@pytest.mark.parametrize("kind", ["deep", "batch"])
def test_classifier_ensemble_equals_the_packed_run_of_the_same_config(kind):
    X, y = _blobs(240, seed=8)
    kw = dict(BASE, ensemble=4, ensemble_kind=kind, keep_prob=0.9, dtype="float64")
    clf = DeepFitClassifier(**kw, random_state=3).fit(X[:180], y[:180])
    model, history = _ensemble_trainer_run(clf, X[:180], y[:180], "softmax_cross_entropy", 3)
    assert type(clf.model_).__name__ == "PackedSequential"
    assert clf.model_.members == 4 and clf.model_.kind == kind
    np.testing.assert_array_equal(clf.model_.predict(X), model.predict(X))
    assert clf.loss_curve_ == history["train_loss"]
    # predict_proba is the mean of the members' probabilities, as deepfit train's model file
    proba = clf.predict_proba(X[180:])
    np.testing.assert_allclose(
        proba, _member_probabilities(clf.model_, X[180:]).mean(axis=0), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_array_equal(clf.predict(X[180:]), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X[180:], y[180:]) > 0.9
    # the members differ, and the ensemble is not the single network of the same seed
    members = _member_probabilities(clf.model_, X[180:])
    assert not np.allclose(members[0], members[1])
    single = DeepFitClassifier(**{**kw, "ensemble": 1}, random_state=3).fit(X[:180], y[:180])
    assert not np.allclose(single.predict_proba(X[180:]), proba)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X[180:]), proba)


def test_regressor_ensemble_predicts_the_mean_of_its_members_values():
    X, y = _smooth(300, seed=9)
    kw = dict(hidden_layer_sizes=(32,), learning_rate=0.01, max_epochs=40, batch_size=32)
    reg = DeepFitRegressor(**kw, ensemble=5, dtype="float64", random_state=0).fit(X, y)
    model, _ = _ensemble_trainer_run(reg, X, (y - y.mean()) / y.std(), "mse", 1)
    np.testing.assert_array_equal(reg.model_.predict(X), model.predict(X))
    values = reg.model_.predict_members(X)[:, :, 0] * y.std() + y.mean()  # (K, m)
    np.testing.assert_allclose(reg.predict(X), values.mean(axis=0), rtol=1e-12)
    assert reg.score(X, y) > 0.9
    # float32 by default, and reproducible
    again = DeepFitRegressor(**kw, ensemble=5, random_state=0).fit(X, y)
    assert again.model_.dtype == np.float32
    np.testing.assert_array_equal(
        again.predict(X), DeepFitRegressor(**kw, ensemble=5, random_state=0).fit(X, y).predict(X)
    )


def test_ensemble_with_early_stopping_techniques_tables_and_partial_fit():
    pd = pytest.importorskip("pandas")
    X, y = _blobs(200, seed=10)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(
        colour=np.where(X[:, 0] > 0, "red", "blue")
    )
    clf = DeepFitClassifier(
        **BASE,
        ensemble=3,
        batchnorm=True,
        early_stopping=True,
        patience=2,
        averaging="swa",
        mixup="mixup",
        random_state=0,
    ).fit(frame, y)
    assert clf.model_.members == 3 and clf.preprocessor_ is not None
    assert clf.predict_proba(frame).shape == (200, 3) and clf.score(frame, y) > 0.8
    n = clf.n_iter_
    clf.partial_fit(frame, y)
    assert clf.n_iter_ == n + 1


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"ensemble": 2, "residual": True}, "residual = True has no packed version; ensemble = 2"),
        ({"ensemble": 2, "norm": "layernorm"}, "norm = 'layernorm' has no packed version"),
        ({"ensemble": 0}, "'ensemble' parameter"),
        ({"ensemble": 2, "ensemble_kind": "snapshot"}, "'ensemble_kind' parameter"),
    ],
)
def test_ensemble_refusals_name_the_parameter(params, match):
    X, y = _blobs(60)
    with pytest.raises(ValueError, match=match):
        DeepFitClassifier(max_epochs=1, **params).fit(X, y)


def test_warm_start_and_partial_fit_refuse_a_changed_ensemble():
    X, y = _blobs(60)
    clf = DeepFitClassifier(max_epochs=1, warm_start=True, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="warm_start=True continues the fitted model_, which has"):
        clf.set_params(ensemble=3).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit continues the fitted model_"):
        clf.partial_fit(X, y)
    clf.set_params(warm_start=False).fit(X, y)  # a fresh fit takes the new ensemble
    assert clf.model_.members == 3
    with pytest.raises(ValueError, match="ensemble_kind='deep'"):
        clf.set_params(ensemble_kind="batch").partial_fit(X, y)
