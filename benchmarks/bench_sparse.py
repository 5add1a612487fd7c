"""Sparse text-like data: skfarho kept sparse against scikit-learn's searches.

Data (:func:`make_text_data`): ``n`` training and ``n // 4`` test documents over
a vocabulary of ``d`` words with Zipf frequencies (exponent 1.1); each
document draws about 100 tokens (log-normal length), giving ~80 distinct words
a row; counts become tf-idf (``log1p(tf) * idf``) on unit-norm rows, as
``TfidfVectorizer(sublinear_tf=True)``; labels come from a sparse logistic
model (2% of the words, among the 20% most frequent, carry a coefficient
of standard deviation 10).

Methods, each fitted on the CSR matrix in a fresh Python process that loads
the saved data, fits once and reports the fit's wall time (JAX compilation and
loky start-up included), the peak resident memory of that process
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``; loky workers are separate
processes and not counted) and the test log-loss:

- ``ho-alpha``: ``HOLogisticRegression(learn="alpha", objective="validation")``;
- ``ho-feature_alpha``: ``HOLogisticRegression(learn="feature_alpha")`` (one
  strength per word, the default objective: on sparse input the evidence
  recipe with a diagonal posterior, :mod:`skfarho._relevance_sparse`);
- ``lrcv``: ``LogisticRegressionCV(Cs=30, cv=5, n_jobs=-1)``;
- ``grid``: ``GridSearchCV(LogisticRegression(), 30 C in [1e-4, 1e4], cv=5,
  n_jobs=-1, scoring="neg_log_loss")``;
- ``grid-l1``: the same grid over ``LogisticRegression(penalty="l1",
  solver="liblinear")``, the reference for ``ho-feature_alpha``.

The table gives, per size and data seed (``--seeds``), time, peak memory, test
log-loss, the time ratio to ``grid`` and the loss gap to ``grid``; and per
method how time grows with the number of stored entries (``nnz`` ratio against
time ratio between sizes).

``OPENBLAS_NUM_THREADS=1`` (``--threads``, default 1) is set in every child:
the sparse fits use no BLAS to speak of, and on a shared or small machine a
multithreaded BLAS in the parent of the loky workers only competes with them.

Usage::

    python benchmarks/bench_sparse.py                         # 3k x 15k, 12k x 60k
    python benchmarks/bench_sparse.py --large                 # and 48k x 240k
    python benchmarks/bench_sparse.py --sizes 3000x15000 --methods ho-alpha grid
    python benchmarks/bench_sparse.py --sizes 3000x15000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_info, report_child_result
from machine import run_child as run_fresh

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 0
SIZES = ((3000, 15000), (12000, 60000))
LARGE = (48000, 240000)
METHODS = ("ho-alpha", "ho-feature_alpha", "lrcv", "grid", "grid-l1")
GRID = np.logspace(-4, 4, 30)


def make_text_data(n, d, seed=SEED, tokens=100, zipf=1.1, informative=0.02):
    """Train and test tf-idf CSR matrices and binary labels (see the module)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_total = n + n // 4
    frequency = 1.0 / np.arange(1, d + 1) ** zipf
    frequency /= frequency.sum()
    lengths = np.maximum(rng.lognormal(np.log(tokens), 0.5, n_total).astype(int), 5)
    words = rng.choice(d, size=lengths.sum(), p=frequency)
    rows = np.repeat(np.arange(n_total), lengths)
    counts = sp.csr_matrix((np.ones(len(words)), (rows, words)), shape=(n_total, d))
    counts.sum_duplicates()
    document_frequency = np.bincount(counts.indices, minlength=d)
    idf = np.log((1 + n_total) / (1 + document_frequency)) + 1
    X = counts.copy()
    X.data = np.log1p(X.data) * idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    coef = np.zeros(d)
    support = rng.choice(d // 5, size=max(int(informative * d), 1), replace=False)
    coef[support] = rng.normal(0.0, 10.0, len(support))
    logits = X @ coef
    logits -= np.median(logits)
    y = (rng.random(n_total) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    X = X.tocsr()
    return X[:n], y[:n], X[n:], y[n:]


def build(method, extra_params, seed=SEED):
    """The (unfitted) estimator of ``method``."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GridSearchCV

    if method.startswith("ho-"):
        from skfarho import HOLogisticRegression

        objective = "auto" if method == "ho-feature_alpha" else "validation"
        return HOLogisticRegression(learn=method[3:], objective=objective,
                                    random_state=seed, **extra_params)
    if method == "lrcv":
        return LogisticRegressionCV(Cs=30, cv=5, n_jobs=-1, max_iter=1000)
    base = (LogisticRegression(max_iter=1000) if method == "grid" else
            LogisticRegression(penalty="l1", solver="liblinear", max_iter=1000))
    return GridSearchCV(base, {"C": GRID}, cv=5, n_jobs=-1, scoring="neg_log_loss")


def child(spec):
    """Load the data, fit once, print wall time, peak memory and test metrics."""
    import warnings

    import scipy.sparse as sp
    from sklearn.metrics import accuracy_score, log_loss

    loaded = np.load(spec["path"] + ".npz")
    X, X_test = sp.load_npz(spec["path"] + "_X.npz"), sp.load_npz(
        spec["path"] + "_X_test.npz")
    y, y_test = loaded["y"], loaded["y_test"]
    result = {"method": spec["method"], "n": X.shape[0], "d": X.shape[1],
              "nnz": int(X.nnz)}
    model = build(spec["method"], spec["extra_params"], spec.get("seed", SEED))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            model.fit(X, y)
            result["seconds"] = time.perf_counter() - start
        result["warnings"] = sorted({str(w.message)[:160] for w in caught})
        proba = model.predict_proba(X_test)
        result["test_log_loss"] = float(log_loss(y_test, proba))
        result["test_accuracy"] = float(accuracy_score(y_test, proba.argmax(axis=1)))
        best = getattr(model, "best_estimator_", model)
        result["coef_nonzero"] = int(np.count_nonzero(best.coef_))
    except Exception as error:  # report, let the parent go on
        result["error"] = f"{type(error).__name__}: {str(error)[:500]}"
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report_child_result(result)


def run_child(spec, timeout, threads):
    """:func:`child` in a fresh interpreter (compilation cache off)."""
    return run_fresh(Path(__file__).resolve(), spec, timeout, threads)


def summarize(runs):
    """Medians over repeats of time, memory and test loss."""
    ok = [run for run in runs if "error" not in run]
    if not ok:
        return {"error": runs[-1].get("error")}
    return {key: statistics.median(run[key] for run in ok)
            for key in ("seconds", "peak_rss_mb", "test_log_loss", "test_accuracy")}


def markdown(rows, sizes, seeds=(SEED,)):
    """Per size and seed: time, memory, loss and the ratios to ``grid``."""
    lines = ["| size (n x d, nnz) | seed | method | time (s) | peak RSS (MB) "
             "| test log-loss | time / grid | loss - grid |",
             "|---|---|---|---|---|---|---|---|"]
    for size, seed in ((size, seed) for size in sizes for seed in seeds):
        here = {row["method"]: row for row in rows
                if row["size"] == size and row.get("seed", SEED) == seed}
        grid = here.get("grid", {}).get("summary", {})
        for method, row in here.items():
            s = row["summary"]
            if "error" in s:
                lines.append(f"| {size} | {seed} | {method} | error: "
                             f"{s['error'][:80]} | | | | |")
                continue
            ratio = (f"{s['seconds'] / grid['seconds']:.2f}"
                     if "seconds" in grid else "")
            gap = (f"{s['test_log_loss'] - grid['test_log_loss']:+.4f}"
                   if "test_log_loss" in grid else "")
            lines.append(f"| {size}, {row['nnz']} | {seed} | {method} | "
                         f"{s['seconds']:.1f} | {s['peak_rss_mb']:.0f} | "
                         f"{s['test_log_loss']:.4f} | {ratio} | {gap} |")
    return "\n".join(lines)


def scaling(rows, sizes):
    """Per method, time ratio against nnz ratio between consecutive sizes (the
    first seed's rows)."""
    first = min((row.get("seed", SEED) for row in rows), default=SEED)
    out = {}
    for method in {row["method"] for row in rows}:
        mine = [row for row in rows if row["method"] == method
                and row.get("seed", SEED) == first and "seconds" in row["summary"]]
        mine.sort(key=lambda row: row["nnz"])
        out[method] = [{"from": a["size"], "to": b["size"],
                        "nnz_ratio": b["nnz"] / a["nnz"],
                        "time_ratio": b["summary"]["seconds"] / a["summary"]["seconds"]}
                       for a, b in zip(mine, mine[1:], strict=False)]
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=None,
                        help="sizes as NxD (default 3000x15000 12000x60000)")
    parser.add_argument("--large", action="store_true", help="add 48000x240000")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[SEED],
                        help="data seeds (and the estimators' random_state); "
                        "each seed is a row of its own")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per (size, method); medians reported")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP/OPENBLAS/MKL_NUM_THREADS in the children "
                        "(0: leave unset)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--extra-params", type=json.loads, default={},
                        help="JSON kwargs for the skfarho estimators")
    parser.add_argument("--output", type=Path, default=RESULTS / "sparse.json")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [f"{n}x{d}" for n, d in SIZES]
        if args.large:
            args.sizes.append(f"{LARGE[0]}x{LARGE[1]}")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(json.loads(argv[1]))
        return
    args = parse_args(argv)
    import scipy.sparse as sp

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size, seed in ((size, seed) for size in args.sizes
                           for seed in args.seeds):
            n, d = (int(part) for part in size.split("x"))
            X, y, X_test, y_test = make_text_data(n, d, seed)
            path = str(Path(folder) / f"{size}-{seed}")
            sp.save_npz(path + "_X.npz", X)
            sp.save_npz(path + "_X_test.npz", X_test)
            np.savez(path + ".npz", y=y, y_test=y_test)
            print(f"{size} seed {seed}: nnz {X.nnz} ({X.nnz / n:.0f} a row), "
                  f"positive rate {y.mean():.2f}", flush=True)
            for method in args.methods:
                spec = {"path": path, "method": method, "seed": seed,
                        "extra_params": args.extra_params}
                runs = [run_child(spec, args.timeout, args.threads)
                        for _ in range(args.repeats)]
                row = {"size": size, "seed": seed, "method": method,
                       "nnz": int(X.nnz),
                       "runs": runs, "summary": summarize(runs)}
                rows.append(row)
                print(f"  {method}: {row['summary']}", flush=True)
    table = markdown(rows, args.sizes, args.seeds)
    print(table)
    report = {"machine": machine_info(), "args": {**vars(args),
                                                  "output": str(args.output)},
              "rows": rows, "scaling": scaling(rows, args.sizes), "table": table}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
