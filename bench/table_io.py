"""Reading and preprocessing a large table: deepfit's table path against pandas.read_csv plus
scikit-learn's ColumnTransformer, in one process, on the same file.

The file is ``diamonds.csv`` repeated to about ``--rows`` rows (1,000,000 by default), written
once to a temporary folder. deepfit: ``read_table`` -> ``infer_roles`` -> ``TablePreprocessor``
``fit`` + ``transform`` (median imputation with indicators, one-hot categories, standardized
numbers, a float32 matrix). The peer: ``pandas.read_csv`` -> ``ColumnTransformer`` (median
imputation + ``StandardScaler`` for numbers, most-frequent imputation + dense
``OneHotEncoder`` for text) ``fit_transform``. Median of ``--reps`` alternating repetitions.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/table_io.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from deepfit.data.columns import infer_roles
from deepfit.data.preprocess import TablePreprocessor
from deepfit.data.tables import read_table

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "data" / "tables" / "diamonds.csv"


def make_file(folder: Path, rows: int) -> Path:
    lines = SOURCE.read_text().splitlines()
    body = "\n".join(lines[1:]) + "\n"
    path = folder / "big.csv"
    with path.open("w") as fh:
        fh.write(lines[0] + "\n")
        for _ in range(max(1, round(rows / (len(lines) - 1)))):
            fh.write(body)
    return path


def run_deepfit(path: Path) -> tuple[float, tuple[int, int]]:
    start = time.perf_counter()
    table = read_table(path)
    pre = TablePreprocessor(infer_roles(table, "price")).fit(table)
    X, _ = pre.transform(table)
    return time.perf_counter() - start, X.shape


def run_pandas(path: Path) -> tuple[float, tuple[int, int]]:
    start = time.perf_counter()
    frame = pd.read_csv(path).drop(columns=["price"])
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numbers = [c for c in frame.columns if c not in text]
    encode = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    transformer = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
            ("cat", encode, text),
        ]
    )
    X = transformer.fit_transform(frame)
    return time.perf_counter() - start, X.shape


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "table_io.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_file(Path(tmp), args.rows)
        times: dict[str, list[float]] = {"deepfit": [], "pandas + ColumnTransformer": []}
        shapes = {}
        for rep in range(args.reps):
            order = list(times) if rep % 2 == 0 else list(reversed(times))
            for name in order:
                fn = run_deepfit if name == "deepfit" else run_pandas
                seconds, shapes[name] = fn(path)
                times[name].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["pandas + ColumnTransformer"] / med["deepfit"]
    load = os.getloadavg()[0]
    lines = [
        f"Reading + preprocessing {shapes['deepfit'][0]:,} rows of diamonds.csv (repeated), "
        f"median of {args.reps}; Python {platform.python_version()}, load average {load:.1f} "
        f"on {os.cpu_count()} CPUs.",
        "",
        "| contender | seconds | output shape |",
        "| --- | ---: | --- |",
        *(f"| {k} | {med[k]:.2f} | {shapes[k]} |" for k in med),
        "",
        f"pandas + ColumnTransformer / deepfit = {ratio:.2f} (> 1: deepfit is faster; the "
        "matrices differ by deepfit's missing-indicator columns, none here).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
