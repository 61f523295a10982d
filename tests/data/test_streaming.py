"""Training from a table streamed from disk: the shuffle buffer, the hash split, the streamed
statistics against the in-memory ones, training from the stream against training in memory,
and a table larger than a ``ulimit -v`` bound."""

import json
import math
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pacsv = pytest.importorskip("pyarrow.csv")

from deepfit import config as configuration  # noqa: E402
from deepfit.data.columns import infer_roles  # noqa: E402
from deepfit.data.preprocess import TablePreprocessor  # noqa: E402
from deepfit.data.streaming import (  # noqa: E402
    NpyChunks,
    ShuffleBuffer,
    StreamRows,
    first_pass,
    hash_split,
    open_chunked,
    prepare_stream,
    row_uniform,
    should_stream,
)
from deepfit.data.tables import read_table  # noqa: E402
from deepfit.errors import DataError, DeepfitError  # noqa: E402
from deepfit.experiment import prepare, run  # noqa: E402

TABLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tables"


def shipped(name: str) -> Path:
    path = TABLES / name
    if not path.is_file():
        pytest.skip(f"shared table {path} not found")
    return path


def to_parquet(csv: Path, out: Path, row_group_size: int) -> Path:
    pq.write_table(pacsv.read_csv(csv), out, row_group_size=row_group_size)
    return out


def data_cfg(path: Path, target: str, **data) -> dict:
    return configuration.validate(
        {"data": {"source": "parquet", "path": str(path), "target": target, **data}}
    )["data"]


def train_rows(cfg: dict, n: int, seed: int) -> np.ndarray:
    return np.flatnonzero(hash_split(cfg, n, seed, ()).assign(np.arange(n)) == 0)


# -- the shuffle buffer --------------------------------------------------------------------------
def chunks_of(sizes, width=3):
    """Chunks whose first column is the row number, ``y`` the row, ``w`` twice the row."""
    start = 0
    for m in sizes:
        rows = np.arange(start, start + m)
        X = np.repeat(rows[:, None], width, axis=1).astype(np.float32)
        yield X, rows.astype(np.int64), 2.0 * rows
        start += m


def epoch(capacity, batch, sizes, seed):
    gen = np.random.default_rng(seed)
    return [
        tuple(a.copy() for a in b)
        for b in ShuffleBuffer(capacity, batch).batches(chunks_of(sizes), gen)
    ]


@pytest.mark.parametrize(
    "capacity, batch, sizes",
    [(64, 16, [100, 0, 37, 5, 200]), (16, 16, [1, 2, 3, 40]), (1000, 7, [50, 50]), (33, 32, [70])],
)
def test_every_row_exactly_once_and_only_the_last_batch_short(capacity, batch, sizes):
    n = sum(sizes)
    batches = epoch(capacity, batch, sizes, seed=0)
    rows = np.concatenate([y for _, y, _ in batches])
    assert np.array_equal(np.sort(rows), np.arange(n))
    assert [len(y) for _, y, _ in batches] == [batch] * (n // batch) + (
        [n % batch] if n % batch else []
    )
    for X, y, w in batches:  # features and weights travel with their rows
        assert (
            np.array_equal(X[:, 0], y) and np.array_equal(X[:, 2], y) and np.array_equal(w, 2 * y)
        )


def test_same_seed_same_batches_and_another_seed_others():
    a, b, c = (epoch(64, 16, [100, 37, 200], seed) for seed in (3, 3, 4))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


def test_a_buffer_holding_the_stream_is_one_uniform_permutation():
    (expected,) = [np.random.default_rng(5).permutation(137)]
    got = np.concatenate([y for _, y, _ in epoch(1000, 10, [50, 87], seed=5)])
    assert np.array_equal(got, expected)


def test_a_batch_is_drawn_from_the_rows_in_the_buffer():
    batches = epoch(32, 8, [500], seed=1)
    assert batches[0][1].max() < 32  # the first batch: from the first 32 rows
    assert batches[1][1].max() < 32 + 8  # then 8 more rows came in


def test_a_buffer_smaller_than_a_batch_is_refused_naming_the_key():
    with pytest.raises(DataError, match="data.shuffle_buffer"):
        ShuffleBuffer(8, 16)


# -- the hash split ------------------------------------------------------------------------------
def test_hash_split_is_deterministic_disjoint_and_sized_near_its_fractions():
    cfg = {"split": [0.6, 0.2, 0.2], "max_examples": 0}
    rows = np.arange(200_000)
    part = hash_split(cfg, len(rows), 7, ()).assign(rows)
    assert np.array_equal(part, hash_split(cfg, len(rows), 7, ()).assign(rows))
    assert not np.array_equal(part, hash_split(cfg, len(rows), 8, ()).assign(rows))
    counts = np.bincount(part, minlength=3) / len(rows)
    assert np.allclose(counts, [0.6, 0.2, 0.2], atol=5 * math.sqrt(0.25 / len(rows)))
    u = row_uniform(7, rows)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.005


def test_hash_split_auto_uses_the_in_memory_rule_and_separate_files_take_their_part():
    cfg = {"split": "auto", "max_examples": 0}
    assert hash_split(cfg, 1_000_000, 0, ()).bounds == pytest.approx((0.98, 0.99))
    assert hash_split(cfg, 1_000_000, 0, ("dev",)).bounds == pytest.approx((0.99, 0.99))
    kept = hash_split({**cfg, "max_examples": 1000}, 100_000, 0, ()).assign(np.arange(100_000))
    assert abs(int((kept >= 0).sum()) - 1000) < 5 * math.sqrt(1000)


# -- streamed statistics against the in-memory fit -------------------------------------------------
@pytest.fixture(scope="module")
def diamonds_with_holes(tmp_path_factory):
    """diamonds.csv as Parquet in 4000-row groups, with missing cells in a number and a category."""
    table = pacsv.read_csv(shipped("diamonds.csv"))
    rng = np.random.default_rng(0)
    n = table.num_rows
    depth = table.column("depth").to_numpy().copy()
    cut = np.array(table.column("cut").to_pylist(), dtype=object)
    depth[rng.random(n) < 0.05] = np.nan
    cut[rng.random(n) < 0.01] = None
    table = table.set_column(4, "depth", pa.array(depth, from_pandas=True))
    table = table.set_column(1, "cut", pa.array(cut.tolist(), pa.string()))
    path = tmp_path_factory.mktemp("stream") / "diamonds.parquet"
    pq.write_table(table, path, row_group_size=4000)
    return path


@pytest.mark.parametrize("scaling", ["standardize", "robust", "quantile"])
def test_streamed_statistics_equal_the_in_memory_fit_on_the_same_rows(diamonds_with_holes, scaling):
    cfg = data_cfg(diamonds_with_holes, "price", normalize=scaling)
    file = open_chunked(diamonds_with_holes)
    assert file.n_chunks == 14
    split = hash_split(cfg, file.n_rows, 11, ())
    # a sample larger than the training split: it is the split, so even medians are exact
    stats = first_pass(cfg, file, split, sample_rows=10**6, rng=0)
    whole = read_table(diamonds_with_holes)
    roles = infer_roles(whole, "price")
    assert stats.roles.roles == roles.roles and stats.task == "regression"
    train = whole.take(train_rows(cfg, file.n_rows, 11))
    ref = TablePreprocessor(roles, scaling=scaling).fit(train)
    arrays, meta = stats.preprocessor.state()
    ref_arrays, ref_meta = ref.state()
    assert meta == ref_meta  # vocabularies, indicators, modes: exact
    assert set(arrays) == set(ref_arrays)
    for key in arrays:
        np.testing.assert_allclose(arrays[key], ref_arrays[key], rtol=1e-12, atol=1e-12)
    y = train["price"]
    assert float(stats.target.mean) == pytest.approx(y.mean(), rel=1e-13)
    assert float(stats.target.std) == pytest.approx(y.std(), rel=1e-13)
    X, _ = stats.preprocessor.transform(train)
    np.testing.assert_allclose(X, ref.transform(train)[0], rtol=1e-6, atol=1e-6)


def test_means_and_stds_stay_exact_and_medians_are_within_the_sample_tolerance(diamonds_with_holes):
    cfg = data_cfg(diamonds_with_holes, "price")
    file = open_chunked(diamonds_with_holes)
    k = 4096
    stats = first_pass(cfg, file, hash_split(cfg, file.n_rows, 11, ()), sample_rows=k, rng=3)
    train = read_table(diamonds_with_holes).take(train_rows(cfg, file.n_rows, 11))
    pre = stats.preprocessor
    ref = TablePreprocessor(stats.roles).fit(train)
    # the standardizer's mean and std include the imputed medians: compare on present values
    # by standardizing the training block with the streamed medians
    for j, name in enumerate(pre.numeric):
        col = train[name]
        present = col[~np.isnan(col)]
        # a sample median's rank lies within 3 sqrt(1/4 / k) of 1/2 (99.7%); with ties (whole
        # numbers) the rank is an interval [P(x < m), P(x <= m)] that must meet that band
        tol = 3 * math.sqrt(0.25 / k)
        m = pre.medians[j]
        assert np.mean(present < m) <= 0.5 + tol and np.mean(present <= m) >= 0.5 - tol, name
        imputed = np.where(np.isnan(col), pre.medians[j], col)
        mean, std = imputed.mean(), imputed.std()
        assert pre.scaler.mean_[j] == pytest.approx(mean, rel=1e-12)
        assert pre.scaler.std_[j] == pytest.approx(std, rel=1e-12)
    assert pre.vocab == ref.vocab and pre.indicators == ref.indicators


def test_classification_labels_weights_and_roles_from_the_stream(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    label = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
    table = pa.table(
        {
            "": np.arange(1, n + 1),  # row numbers, dropped
            "id": [f"r{i}" for i in range(n)],  # ID-like text, dropped
            "serial": rng.permutation(n) + 100,  # ID-like numbers, dropped
            "const": np.full(n, 3.0),  # constant, dropped
            "x": rng.normal(size=n),
            "code": [str(v) for v in rng.integers(0, 5, n)],  # text that is numbers
            "w": rng.random(n) + 0.5,
            "label": label,
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=256)
    cfg = data_cfg(path, "label", weight="w", class_weight="balanced")
    file = open_chunked(path)
    assert file.kinds["code"] == "string"
    stats = first_pass(cfg, file, hash_split(cfg, n, 2, ()), rng=0)
    whole = read_table(path)
    roles = infer_roles(whole, "label", weight="w")
    assert stats.roles.roles == roles.roles
    assert stats.roles.reasons == {
        "": "row numbers",
        "id": "ID-like",
        "serial": "ID-like",
        "const": "constant",
    }
    assert stats.kinds["code"] == "numeric" and stats.target.class_names == ["a", "b", "c"]
    rows = train_rows(cfg, n, 2)
    counts = np.bincount(np.searchsorted(["a", "b", "c"], label[rows]), minlength=3)
    np.testing.assert_allclose(stats.class_weights, len(rows) / (3 * counts))
    stream = prepare_stream(cfg, seed=2).train
    assert stream.weighted and stream.n_rows == len(rows)
    _, y, w = (np.concatenate(a) for a in zip(*stream.chunks(), strict=True))
    np.testing.assert_allclose(w, whole["w"][rows] * stats.class_weights[y])
    assert np.array_equal(np.array(["a", "b", "c"])[y], label[rows])


def test_a_stream_epoch_covers_the_training_rows_once_in_a_new_order(diamonds_with_holes):
    cfg = data_cfg(diamonds_with_holes, "price", shuffle_buffer=5000)
    stream = prepare_stream(cfg, seed=4).train
    file_order = np.concatenate([y for _, y in stream.chunks()])
    gen = np.random.default_rng(0)
    epochs = [np.concatenate([y.copy() for _, y, _ in stream.batches(256, gen)]) for _ in range(2)]
    for e in epochs:
        assert len(e) == stream.n_rows
        assert np.array_equal(np.sort(e), np.sort(file_order))
    assert not np.array_equal(epochs[0], epochs[1])
    again = np.concatenate([y.copy() for _, y, _ in stream.batches(256, np.random.default_rng(0))])
    assert np.array_equal(again, epochs[0])
    rows = StreamRows(stream)  # sliceable in file order, across chunk edges
    X = np.concatenate([x for x, _ in stream.chunks()])
    assert np.array_equal(rows[3990:4010], X[3990:4010]) and len(rows) == len(X)


# -- training from the stream -------------------------------------------------------------------
def run_config(path: Path, target: str, stream: bool, **train) -> dict:
    return configuration.validate(
        {
            "data": {"source": "parquet", "path": str(path), "target": target, "stream": stream},
            "model": {"hidden": [64]},
            "train": {
                "batch_size": 128,
                "refit": False,
                "early_stopping": {"enabled": False},
                **train,
            },
        }
    )


@pytest.mark.parametrize(
    "table, target, metric, epochs, tolerance",
    [("penguins.csv", "species", "accuracy", 40, 0.03), ("diamonds.csv", "price", "r2", 2, 0.01)],
)
def test_a_model_trained_from_the_stream_matches_one_trained_in_memory(
    tmp_path, table, target, metric, epochs, tolerance
):
    path = to_parquet(shipped(table), tmp_path / "t.parquet", row_group_size=2000)
    scores = {}
    for stream in (False, True):
        summary = run(
            run_config(path, target, stream, epochs=epochs),
            tmp_path / f"run{stream}",
            progress=False,
        )
        scores[stream] = summary
        # the model file scores the whole table through `deepfit evaluate`'s path
        from deepfit.cli import main

        out = tmp_path / f"eval{stream}.json"
        with open(out, "w") as fh:
            old, sys.stdout = sys.stdout, fh
            try:
                assert (
                    main(
                        [
                            "evaluate",
                            str(tmp_path / f"run{stream}" / "model.npz"),
                            str(path),
                            "--json",
                        ]
                    )
                    == 0
                )
            finally:
                sys.stdout = old
        scores[stream] = json.loads(out.read_text())[str(path)]
    a, b = scores[False][metric], scores[True][metric]
    assert abs(a - b) <= tolerance, (a, b)
    assert b > (0.9 if metric == "accuracy" else 0.95)


def test_a_streamed_run_resumes_exactly(tmp_path):
    path = to_parquet(shipped("penguins.csv"), tmp_path / "p.parquet", row_group_size=50)
    cfg = run_config(path, "species", True, epochs=4)
    straight = run(cfg, tmp_path / "straight", progress=False)
    short = {**cfg, "train": {**cfg["train"], "epochs": 2}}
    run(short, tmp_path / "resumed", progress=False)
    resumed = run(cfg, tmp_path / "resumed", progress=False, resume=True)
    for key, value in straight["model"].state_dict().items():
        np.testing.assert_array_equal(resumed["model"].state_dict()[key], value)


def test_npy_tables_stream_and_read_alike(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.float64)
    path = tmp_path / "t.npy"
    np.save(path, np.column_stack([X, y]))
    assert isinstance(open_chunked(path), NpyChunks)
    cfgs = {
        s: configuration.validate(
            {"data": {"source": "npy", "path": str(path), "target": "x4", "stream": s}}
        )
        for s in (False, True)
    }
    streamed, in_memory = prepare(cfgs[True]), prepare(cfgs[False])
    assert streamed.task == in_memory.task == "classification"
    assert streamed.feature_names == in_memory.feature_names == ["x0", "x1", "x2", "x3"]
    chunked = NpyChunks(path, chunk_rows=512)
    assert chunked.n_chunks == 10 and chunked.chunk_sizes[-1] == 5000 - 9 * 512
    records = np.zeros(300, dtype=[("a", "f8"), ("kind", "U3"), ("ok", "?")])
    records["a"], records["kind"] = np.arange(300), np.where(np.arange(300) % 2, "x", "y")
    np.save(tmp_path / "r.npy", records)
    f = open_chunked(tmp_path / "r.npy")
    assert f.names == ["a", "kind", "ok"] and f.kinds == {
        "a": "numeric",
        "kind": "text",
        "ok": "text",
    }


# -- refusals ----------------------------------------------------------------------------------
def test_refusals_name_the_culprit(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match=r"t\.csv: only Parquet .* data\.stream"):
        open_chunked(csv)
    path = to_parquet(shipped("penguins.csv"), tmp_path / "p.parquet", row_group_size=50)
    with pytest.raises(
        DataError, match="'data.target' names column 'specie'.*did you mean 'species'"
    ):
        prepare_stream(data_cfg(path, "specie"), seed=0)
    cfg = run_config(path, "species", True)
    cfg["data"]["shuffle_buffer"] = 64
    with pytest.raises(DeepfitError, match="data.shuffle_buffer.*train.batch_size = 128"):
        prepare(cfg)
    with pytest.raises(DeepfitError, match="data.stream"):
        prepare(configuration.validate({"data": {"stream": True}}))
    with pytest.raises(configuration.ConfigError, match="data.stream"):
        configuration.validate({"data": {"stream": "yes"}})


def test_auto_streams_a_table_larger_than_a_share_of_memory(tmp_path, monkeypatch):
    path = to_parquet(shipped("penguins.csv"), tmp_path / "p.parquet", row_group_size=50)
    cfg = data_cfg(path, "species", stream="auto")
    monkeypatch.setenv("DEEPFIT_MAX_BYTES", str(10**12))
    assert not should_stream(cfg)
    monkeypatch.setenv("DEEPFIT_MAX_BYTES", "1000")
    assert should_stream(cfg)
    assert not should_stream({**cfg, "stream": False})


# -- beyond memory -------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import json, sys
    from deepfit import config, experiment
    path, stream, epochs = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    cfg = config.validate({
        "data": {"source": "parquet", "path": path, "target": "y", "stream": stream,
                 "shuffle_buffer": 8192},
        "model": {"hidden": [16]},
        "train": {"batch_size": 512, "epochs": epochs, "refit": False,
                  "early_stopping": {"enabled": False}},
    })
    summary = experiment.run(cfg, None, progress=False)
    status = open("/proc/self/status").read().split("\\n")
    peak = next(int(s.split()[1]) * 1024 for s in status if s.startswith("VmPeak"))
    print(json.dumps({"test": summary["test"], "n_train": summary["n_train"], "vm_peak": peak}))
    """
)


def write_big_table(path: Path, rows: int, group: int = 100_000) -> None:
    """``rows`` rows of 8 low-cardinality number columns and a class: a few MB of Parquet,
    ``rows * 8 * 8`` bytes of float64 in memory, and as much again for each copy."""
    schema = pa.schema([*(pa.field(f"x{j}", pa.float64()) for j in range(8)), ("y", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, group):
            rng = np.random.default_rng(start)
            X = rng.integers(0, 16, size=(min(group, rows - start), 8)).astype(np.float64)
            y = (X[:, 0] + X[:, 1] > 15).astype(np.int64)
            writer.write_table(pa.table({**{f"x{j}": X[:, j] for j in range(8)}, "y": y}, schema))


def child(path: Path, stream: bool, epochs: int, limit: int | None):
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "DEEPFIT_JIT": "0",
    }

    def bound() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "1" if stream else "0", str(epochs)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=bound,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc: Linux")
def test_a_table_larger_than_the_address_space_bound_trains_from_the_stream(tmp_path):
    small, big = tmp_path / "small.parquet", tmp_path / "big.parquet"
    write_big_table(small, 20_000)
    write_big_table(big, 3_000_000)
    assert big.stat().st_size < 20 * 2**20  # small on disk
    # the baseline: the address space of a process that streams a small table
    probe = child(small, True, 1, None)
    assert probe.returncode == 0, probe.stderr[-2000:]
    baseline = json.loads(probe.stdout.strip().splitlines()[-1])["vm_peak"]
    # the big table's columns alone are 3e6 * 9 * 8 = 216 MB of float64 in memory
    limit = baseline + 160 * 2**20
    in_memory = child(big, False, 1, limit)
    assert in_memory.returncode != 0
    assert "MemoryError" in in_memory.stderr or "memory" in in_memory.stderr.lower()
    streamed = child(big, True, 1, limit)
    assert streamed.returncode == 0, streamed.stderr[-2000:]
    result = json.loads(streamed.stdout.strip().splitlines()[-1])
    assert result["n_train"] > 2_900_000 and result["vm_peak"] <= limit
    assert result["test"]["accuracy"] > 0.97


# -- the prefetching thread, weight averaging, bad cells ----------------------------------------
def test_prefetched_keeps_order_raises_where_the_source_failed_and_stops_when_closed():
    from deepfit.data.streaming import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise DataError("chunk 2 is damaged")

    got = prefetched(failing())
    assert next(got) == 1
    with pytest.raises(DataError, match="chunk 2 is damaged"):
        next(got)
    produced = []

    def endless():
        for i in range(10**9):
            produced.append(i)
            yield i

    stream = prefetched(endless(), depth=2)
    assert next(stream) == 0
    stream.close()  # joins the thread: it stopped producing
    assert len(produced) <= 5


def test_swa_with_batch_norm_recomputes_its_statistics_from_the_stream(tmp_path):
    path = to_parquet(shipped("penguins.csv"), tmp_path / "p.parquet", row_group_size=40)
    cfg = run_config(path, "species", True, epochs=4)
    cfg["model"]["batchnorm"] = True
    cfg["train"]["averaging"] = {**cfg["train"]["averaging"], "kind": "swa", "start": 1}
    cfg = configuration.validate(cfg)
    summary = run(cfg, None, progress=False)
    bn = next(layer for layer in summary["model"].layers if type(layer).__name__ == "BatchNorm")
    stream = prepare(cfg).train[0]
    X = np.concatenate([x for x, _ in stream.chunks()])
    z = summary["model"].layers[0].forward(X, training=False)  # the dense layer before it
    # update_bn's running mean: the mean of its batches' means over the rows in file order
    means = [z[i : i + 128].mean(axis=0) for i in range(0, len(z), 128)]
    np.testing.assert_allclose(
        bn.buffers["running_mean"], np.mean(means, axis=0), rtol=1e-4, atol=1e-5
    )
    assert math.isfinite(summary["test"]["loss"])


def test_missing_and_infinite_cells_are_refused_naming_the_row(tmp_path):
    x = np.arange(100.0)
    x[57] = np.nan
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"x": x, "z": np.arange(100) % 7, "y": np.arange(100) % 2}),
        path,
        row_group_size=16,
    )
    with pytest.raises(DataError, match=r"t\.parquet: row 58, column 'x': missing cell"):
        prepare_stream(data_cfg(path, "y", missing="error"), seed=0)
    x[57] = np.inf
    pq.write_table(
        pa.table({"x": x, "z": np.arange(100) % 7, "y": np.arange(100) % 2}),
        path,
        row_group_size=16,
    )
    with pytest.raises(DataError, match=r"row 58, column 'x': infinite value inf"):
        prepare_stream(data_cfg(path, "y"), seed=0)


def test_the_chunk_cache_gives_the_same_batches_and_goes_away(diamonds_with_holes):
    plain = prepare_stream(data_cfg(diamonds_with_holes, "price"), seed=4).train
    cached = prepare_stream(data_cfg(diamonds_with_holes, "price", stream_cache=True), seed=4).train
    folder = cached.cache.path
    for _ in range(2):  # the first epoch writes the cache, the second reads it
        a, b = np.random.default_rng(1), np.random.default_rng(1)
        for (xa, ya, _), (xb, yb, _) in zip(
            plain.batches(500, a), cached.batches(500, b), strict=True
        ):
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        assert len(list(folder.glob("*.done"))) == 14
    refit = cached.with_dev(
        np.zeros((3, cached.n_features), np.float32), np.zeros(3, np.float32), None
    )
    assert refit.cache is cached.cache and refit.n_rows == cached.n_rows + 3
    del cached, refit
    import gc

    gc.collect()
    assert not folder.exists()


def test_running_out_of_memory_is_one_line_pointing_at_the_stream(tmp_path, monkeypatch, capsys):
    from deepfit import experiment
    from deepfit.cli import main

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 22.9 MiB for an array with shape (3000000,)")

    monkeypatch.setattr(experiment, "run", exhausted)
    path = to_parquet(shipped("penguins.csv"), tmp_path / "p.parquet", row_group_size=50)
    assert (
        main(["train", "--data", str(path), "--target", "species", "-o", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0] and "--stream" in err[0]
