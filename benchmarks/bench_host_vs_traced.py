"""HostImplicit against the traced Implicit inside the estimator, on any backend.

``HOLogisticRegression(learn=("alpha",))`` fitted with its default
``hypergradient="implicit"`` (:class:`~skfarho.core.HostImplicit`: SciPy
L-BFGS-B and a jitted CG program) and, for comparison, with the traced
``Implicit(CG(maxiter=200))`` (one XLA program for the whole outer step) swapped
in through the estimator's private method table. Per data set: first fit
(compilation included), median of ``--repeats`` warm fits, learned ``alpha_``
and the validation loss, for both. Run it on a GPU machine to see where the
host round trips stop paying off.

Usage::

    python benchmarks/bench_host_vs_traced.py --output results/host_vs_traced.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from machine import machine_info
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression
from skfarho.core import CG, HostImplicit, Implicit

RESULTS = Path(__file__).resolve().parent / "results"


def datasets(large):
    X, y = load_digits(return_X_y=True)
    yield "digits", X, y
    X, y = make_classification(n_samples=2000, n_features=500, n_informative=20,
                               random_state=0)
    yield "synthetic_2000x500", X, y
    if large:
        X, y = make_classification(n_samples=50000, n_features=1000,
                                   n_informative=50, random_state=0)
        yield "synthetic_50000x1000", X, y


METHODS = {"host": HostImplicit(max_inner_iter=2000),
           "traced": Implicit(CG(maxiter=200), max_inner_iter=2000)}


def measure(X, y, repeats, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model = HOLogisticRegression(random_state=0, hypergradient=method).fit(X, y)
        first = time.perf_counter() - start
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            model = HOLogisticRegression(random_state=0, hypergradient=method).fit(X, y)
            runs.append(time.perf_counter() - start)
    return {"first_fit_s": first, "warm_s": statistics.median(runs), "runs": runs,
            "alpha": float(model.alpha_[0]), "n_iter": int(model.n_iter_),
            "best_validation_loss": float(np.min(model.objective_curve_))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", action="store_true",
                        help="add a 50000 x 1000 problem (for accelerators)")
    parser.add_argument("--output", type=Path, default=RESULTS / "host_vs_traced.json")
    args = parser.parse_args(argv)
    rows = []
    for name, X, y in datasets(args.large):
        X = StandardScaler().fit_transform(X)
        row = {"dataset": name, "shape": list(X.shape)}
        for label, method in METHODS.items():
            row[label] = measure(X, y, args.repeats, method)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = ["| data set | method | first fit (s) | warm fit (s) | alpha | outer steps "
             "| best validation loss |", "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for label in ("host", "traced"):
            r = row[label]
            lines.append(f"| {row['dataset']} | {label} | {r['first_fit_s']:.2f} | "
                         f"{r['warm_s']:.3f} | {r['alpha']:.4g} | {r['n_iter']} | "
                         f"{r['best_validation_loss']:.5f} |")
    table = "\n".join(lines)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"benchmark": "host_vs_traced",
                                       "machine": machine_info(), "results": rows,
                                       "markdown": table}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
