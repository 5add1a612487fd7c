"""Does the default estimator reach the holdout optimum? (HOAG's own ground.)

HOAG (Pedregosa 2016) oscillates to its bound on binary digits for every seed
tried. This script checks, for the binary problems of ``bench_vs_search.py``
(breast_cancer, binary_digits, synthetic) and several seeds, whether
``HOLogisticRegression()`` (one learned L2 strength, implicit hypergradient)
reaches the minimum of the validation loss over ``alpha``:

- each seed draws a stratified 75/25 train/validation split of the data set's
  training rows (standardized with the training statistics);
- skfarho fits with ``X_val``/``y_val`` given, so it optimizes exactly that
  holdout loss; its best validation loss is ``min(objective_curve_)``;
- the reference is a fine scan: ``LogisticRegression(C=1/alpha)`` (the same
  objective) for 41 values of ``alpha`` in ``[1e-4, 1e4]``, validation
  log-loss of each, then a golden-section refinement around the best.

Reported per (data set, seed): the scan's optimum (alpha, loss), skfarho's
(alpha, loss, outer steps, warm fit time) and the gap. "Reached" means a gap
below 1e-3 relative. Prints a markdown table and writes JSON.

Usage::

    python benchmarks/bench_holdout_optimum.py            # 3 data sets x 5 seeds
    python benchmarks/bench_holdout_optimum.py --seeds 0 1 --datasets binary_digits
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from bench_vs_search import load_split
from machine import machine_info
from scipy.optimize import minimize_scalar
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("breast_cancer", "binary_digits", "synthetic")
RELATIVE_GAP = 1e-3


def holdout(name, seed):
    data = load_split(name)
    X_fit, X_val, y_fit, y_val = train_test_split(
        data["X_train"], data["y_train"], test_size=0.25, random_state=seed,
        stratify=data["y_train"])
    scaler = StandardScaler().fit(X_fit)
    return scaler.transform(X_fit), y_fit, scaler.transform(X_val), y_val


def validation_loss(log_alpha, X, y, X_val, y_val):
    model = LogisticRegression(C=float(np.exp(-log_alpha)), tol=1e-10,
                               max_iter=10000).fit(X, y)
    return log_loss(y_val, model.predict_proba(X_val))


def scan_optimum(X, y, X_val, y_val):
    grid = np.linspace(np.log(1e-4), np.log(1e4), 41)
    losses = [validation_loss(g, X, y, X_val, y_val) for g in grid]
    best = int(np.argmin(losses))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    refined = minimize_scalar(validation_loss, bounds=(low, high), method="bounded",
                              args=(X, y, X_val, y_val), options={"xatol": 1e-4})
    if refined.fun < losses[best]:
        return float(np.exp(refined.x)), float(refined.fun)
    return float(np.exp(grid[best])), float(losses[best])


def run_one(name, seed, extra_params=None):
    X, y, X_val, y_val = holdout(name, seed)
    alpha_star, loss_star = scan_optimum(X, y, X_val, y_val)
    params = {"random_state": seed, **(extra_params or {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        HOLogisticRegression(**params).fit(X, y, X_val=X_val, y_val=y_val)
        start = time.perf_counter()
        model = HOLogisticRegression(**params).fit(X, y, X_val=X_val, y_val=y_val)
        seconds = time.perf_counter() - start
    loss = float(np.min(model.objective_curve_))
    gap = (loss - loss_star) / loss_star
    return {"dataset": name, "seed": seed, "scan_alpha": alpha_star,
            "scan_loss": loss_star, "alpha": float(model.alpha_[0]),
            "loss": loss, "relative_gap": gap, "n_iter": int(model.n_iter_),
            "warm_s": seconds, "reached": bool(gap < RELATIVE_GAP)}


def markdown(rows):
    lines = ["| dataset | seed | scan alpha | scan loss | skfarho alpha | skfarho loss "
             "| relative gap | outer steps | warm fit (s) | reached |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['seed']} | {r['scan_alpha']:.4g} | "
            f"{r['scan_loss']:.5f} | {r['alpha']:.4g} | {r['loss']:.5f} | "
            f"{r['relative_gap']:+.1e} | {r['n_iter']} | {r['warm_s']:.3f} | "
            f"{'yes' if r['reached'] else 'NO'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        choices=DATASETS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--extra-params", type=json.loads, default={},
                        metavar="JSON", help="HOLogisticRegression kwargs")
    parser.add_argument("--output", type=Path,
                        default=RESULTS / "holdout_optimum.json")
    args = parser.parse_args(argv)
    rows = []
    for name in args.datasets:
        for seed in args.seeds:
            rows.append(run_one(name, seed, args.extra_params))
            print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(
        {"benchmark": "holdout_optimum", "machine": machine_info(),
         "extra_params": args.extra_params,
         "relative_gap_threshold": RELATIVE_GAP, "results": rows,
         "markdown": table}, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
