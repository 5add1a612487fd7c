"""What a grid search cannot do: the two showcase sections of ``python -m skfarho``.

After the one-strength comparison, the main job (:mod:`skfarho._cli`) runs two
problems where skfarho learns many hyperparameters at once, against what a
scikit-learn user would run, every model behind a ``StandardScaler``:

- **features** (:func:`feature_data`: a logistic model on a known subset of
  Gaussian features): ``HOLogisticRegression(learn="feature_alpha")``, one L2
  strength per feature, against one L2 strength searched over the main
  comparison's grid and an L1 ``LogisticRegressionCV``; the table adds the
  features each model keeps and how many of them are true;
- **label noise** (:func:`noisy_digits`: digits, 30% of the training labels
  flipped): ``HOLogisticRegression(learn="sample_weight")``, one weight per
  training row, against the L2 grid on the noisy labels and cleanlab when it
  is installed (:class:`CleanlabLogistic`); the table adds the rows each
  method flags and their precision and recall against the flipped rows.

Every printed number is measured on the run; test labels are clean. Each
section draws a figure (:func:`plot_features`, :func:`plot_label_noise`). The
L2 grid is :data:`~skfarho._comparison.GRID` (30 ``C``, 5 folds, log-loss,
``n_jobs=-1``) searched by ``LogisticRegressionCV``: the same folds, scores and
selection as ``GridSearchCV`` over it, with warm starts along the path (3-5x
faster on digits).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from skfarho._comparison import (
    GRID,
    GRID_CV,
    evaluate,
    fit_timed,
    in_pipeline,
    render_table,
)

GRID_NAME = f"L2 grid: LogisticRegressionCV, {len(GRID)} C x {GRID_CV}"
L1_CS = np.logspace(-3, 1, 20)


class Outcome(NamedTuple):
    """One method's outcome: description, fit wall time (s), test log-loss,
    test accuracy, the section's own cells (:data:`FEATURE_COLUMNS` or
    :data:`NOISE_COLUMNS`) and the fitted model."""

    method: str
    seconds: float
    loss: float
    accuracy: float
    extra: tuple
    model: object


FEATURE_COLUMNS = ("features kept", "true features kept", "selected")
NOISE_COLUMNS = ("rows flagged", "precision", "recall")


# ---- data -------------------------------------------------------------------
def feature_data(n_train=600, n_test=2000, n_features=100, n_relevant=8,
                 random_state=0):
    """A logistic model on the first ``n_relevant`` of ``n_features`` features.

    Rows are standard Gaussian; the true coefficients have random signs and
    magnitudes from 1.5 down to 0.5; labels are drawn from the model.

    Parameters
    ----------
    n_train, n_test : int, default=600, 2000
        Rows of the training and test sets.
    n_features, n_relevant : int, default=100, 8
        Features, and how many of them (the first) the labels depend on.
    random_state : int, default=0
        Seed.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
    relevant : ndarray of bool of shape (n_features,)
        The true support.

    Examples
    --------
    >>> X_train, X_test, y_train, y_test, relevant = feature_data(60, 40, 10, 2)
    >>> X_train.shape, X_test.shape, int(relevant.sum())
    ((60, 10), (40, 10), 2)
    """
    rng = np.random.default_rng(random_state)
    X = rng.normal(size=(n_train + n_test, n_features))
    coef = np.zeros(n_features)
    coef[:n_relevant] = (rng.choice([-1.0, 1.0], n_relevant)
                         * np.linspace(1.5, 0.5, n_relevant))
    y = (rng.random(len(X)) < 1.0 / (1.0 + np.exp(-X @ coef))).astype(int)
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:], coef != 0


def noisy_digits(noise=0.3, train_size=0.75, random_state=0):
    """Digits with a fraction of the training labels flipped to another class.

    Parameters
    ----------
    noise : float, default=0.3
        Fraction of the training rows (exactly ``round(noise * n)``, drawn at
        random) whose label moves to one of the 9 other classes, uniformly.
    train_size : float or int, default=0.75
        Training rows (stratified split); the test rows keep their true labels.
    random_state : int, default=0
        Seed of the split and of the noise.

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        ``y_train`` holds the noisy labels.
    flipped : ndarray of bool of shape (n_train,)
        The rows whose label was flipped.

    Examples
    --------
    >>> X_train, X_test, y_train, y_test, flipped = noisy_digits(0.2)
    >>> len(y_train), len(y_test), int(flipped.sum())
    (1347, 450, 269)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=train_size, stratify=y, random_state=random_state)
    rng = np.random.default_rng(random_state)
    n = len(y_train)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.permutation(n)[:round(noise * n)]] = True
    noisy = y_train.copy()
    noisy[flipped] = (y_train[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return X_train, X_test, noisy, y_test, flipped


# ---- competitors --------------------------------------------------------------
class CleanlabLogistic:
    """cleanlab's documented use around a scaled ``LogisticRegression(C=C)``.

    ``fit`` takes 5-fold out-of-fold probabilities (``cross_val_predict``),
    flags rows with ``cleanlab.filter.find_label_issues(y, proba, n_jobs=1)``
    (one process: forking after JAX started threads can deadlock) and refits
    on the other rows; ``label_issues_`` holds the flags. With ``C_from`` (a
    fitted pipeline ending in a ``LogisticRegressionCV``), ``C`` is the one it
    selected.
    """

    def __init__(self, C=1.0, C_from=None):
        self.C = C
        self.C_from = C_from

    def fit(self, X, y):
        from cleanlab.filter import find_label_issues
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict

        C = (self.C if self.C_from is None
             else float(np.ravel(final_step(self.C_from).C_)[0]))
        model = in_pipeline(LogisticRegression(C=C, max_iter=1000))
        proba = cross_val_predict(model, X, y, cv=5, method="predict_proba")
        self.label_issues_ = find_label_issues(y, proba, n_jobs=1)
        self.model_ = model.fit(X[~self.label_issues_], y[~self.label_issues_])
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


def searched_logistic(l1_ratio, Cs):
    """``LogisticRegressionCV`` over ``Cs``, 5 folds, log-loss, ``n_jobs=-1``
    (``l1_ratio`` 0: L2 with lbfgs; 1: L1 with liblinear)."""
    from sklearn.linear_model import LogisticRegressionCV

    solver = "liblinear" if l1_ratio else "lbfgs"
    return in_pipeline(LogisticRegressionCV(
        Cs=Cs, l1_ratios=(l1_ratio,), solver=solver, cv=GRID_CV, max_iter=5000,
        scoring="neg_log_loss", n_jobs=-1, use_legacy_attributes=False))


def feature_competitors(random_state=0):
    """``(name, unfitted model)`` of the features section, in running order."""
    from skfarho.linear_model import HOLogisticRegression

    ours = HOLogisticRegression(learn=("feature_alpha",), random_state=random_state)
    return [(GRID_NAME, searched_logistic(0.0, GRID)),
            (f"L1: LogisticRegressionCV, {len(L1_CS)} C x {GRID_CV}",
             searched_logistic(1.0, L1_CS)),
            ("skfarho HOLogisticRegression(learn=feature_alpha)", in_pipeline(ours))]


def noise_competitors(random_state=0, cleanlab=True):
    """``(name, unfitted model)`` of the label-noise section, cleanlab's when
    ``cleanlab`` (pass :func:`cleanlab_installed`): with scikit-learn's default
    ``C=1``, and with the ``C`` the L2 grid (fitted first) selects on the noisy
    labels (that search's time is the grid's row)."""
    from skfarho.linear_model import HOLogisticRegression

    grid = searched_logistic(0.0, GRID)
    competitors = [(f"no cleaning, {GRID_NAME}", grid)]
    if cleanlab:
        competitors += [
            ("cleanlab C=1: find_label_issues, LogisticRegression",
             CleanlabLogistic()),
            ("cleanlab grid C: the same, C of the L2 grid",
             CleanlabLogistic(C_from=grid))]
    ours = HOLogisticRegression(learn=("sample_weight",), random_state=random_state)
    competitors.append(("skfarho HOLogisticRegression(learn=sample_weight)",
                        in_pipeline(ours)))
    return competitors


def cleanlab_installed():
    """Whether ``import cleanlab`` works."""
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        return False
    return True


# ---- measuring ----------------------------------------------------------------
def final_step(model):
    """The fitted estimator inside a pipeline or a search."""
    step = model[-1] if hasattr(model, "steps") else model
    return getattr(step, "best_estimator_", step)


def support_cells(model, relevant):
    """Features kept (nonzero coefficients), true ones among them, selection."""
    step = final_step(model)
    kept = np.any(np.abs(np.atleast_2d(step.coef_)) > 1e-12, axis=0)
    if hasattr(step, "setting_"):
        selected = f"setting {step.setting_}"
    else:
        selected = f"C={float(np.ravel(step.C_)[0]):.3g}"
    true_kept = f"{int((kept & relevant).sum())}/{int(relevant.sum())}"
    return str(int(kept.sum())), true_kept, selected


def flag_cells(model, flipped):
    """Rows flagged, their precision and recall against the flipped rows."""
    step = final_step(model)
    issues = getattr(step, "label_issues_", getattr(model, "label_issues_", None))
    if issues is None:
        return ("-", "-", "-")
    hits = int((issues & flipped).sum())
    precision = hits / issues.sum() if issues.any() else float("nan")
    return (str(int(issues.sum())), f"{precision:.3f}", f"{hits / flipped.sum():.3f}")


def run_section(competitors, data, cells, progress=None):
    """Fit each ``(name, model)`` on the training rows, score it on the test rows.

    ``data`` is ``(X_train, X_test, y_train, y_test, truth)``; ``cells(model,
    truth)`` gives the section's own cells; ``progress`` (optional) is called
    with each line of progress. Returns the outcomes (one per competitor) and
    the warnings raised while fitting (scikit-learn's FutureWarnings aside).
    """
    X_train, X_test, y_train, y_test, truth = data
    outcomes, notes = [], []
    for index, (name, model) in enumerate(competitors, start=1):
        if progress:
            progress(f"==> [{index}/{len(competitors)}] {name}: fitting on "
                     f"{len(y_train)} rows x {X_train.shape[1]} features ...")
        seconds, caught = fit_timed(model, X_train, y_train, max_chars=200)
        notes.extend(f"{name}: {note}" for note in caught
                     if not note.startswith("FutureWarning"))
        loss, accuracy = evaluate(model, X_test, y_test, "classification")
        outcomes.append(Outcome(name, seconds, loss, accuracy, cells(model, truth),
                                model))
        if progress:
            progress(f"    done in {seconds:.2f}s")
    return outcomes, notes


def format_section(outcomes, columns):
    """The outcomes as a plain-text table.

    Examples
    --------
    >>> row = Outcome("grid", 1.5, 0.25, 0.9, ("100", "8/8", "C=1"), None)
    >>> print(format_section([row], FEATURE_COLUMNS))
    method  fit time (s)  test log-loss  test accuracy  features kept  true features kept  selected
    ------  ------------  -------------  -------------  -------------  ------------------  --------
    grid            1.50         0.2500         0.9000            100                 8/8  C=1
    """  # noqa: E501
    header = ["method", "fit time (s)", "test log-loss", "test accuracy", *columns]
    rows = [[o.method, f"{o.seconds:.2f}", f"{o.loss:.4f}", f"{o.accuracy:.4f}",
             *o.extra] for o in outcomes]
    numeric = set(range(1, len(header))) - {len(header) - 1} \
        if columns[-1] == "selected" else set(range(1, len(header)))
    return render_table(header, rows, numeric=numeric)


def ranking(outcomes, metric):
    """The methods (short names) from best to worst by ``"loss"`` or ``"accuracy"``.

    Examples
    --------
    >>> rows = [Outcome("a", 1.0, 0.3, 0.9, (), None),
    ...         Outcome("b: c", 2.0, 0.2, 0.8, (), None)]
    >>> print(ranking(rows, "loss"))
    test log-loss, best first: b 0.2000, a 0.3000
    >>> print(ranking(rows, "accuracy"))
    test accuracy, best first: a 0.9000, b 0.8000
    """
    ranked = sorted(outcomes, key=lambda o: (o.loss if metric == "loss"
                                             else -o.accuracy))
    name = "test log-loss" if metric == "loss" else "test accuracy"
    return f"{name}, best first: " + ", ".join(
        f"{short_name(o.method)} {getattr(o, metric):.4f}" for o in ranked)


TIMES = "fit times: one fit each in this process, JAX's compilation included"


# ---- the sections ---------------------------------------------------------------
SIZES = {"default": ({"n_train": 600, "n_test": 2000, "n_features": 100,
                      "n_relevant": 8}, {"noise": 0.3, "train_size": 0.75}),
         "small": ({"n_train": 200, "n_test": 400, "n_features": 30,
                    "n_relevant": 4}, {"noise": 0.3, "train_size": 400})}
"""Problem sizes: ``(feature_data kwargs, noisy_digits kwargs)``; ``"small"``
for tests."""


class Section(NamedTuple):
    """A section's printed report and what it measured.

    Attributes
    ----------
    title : str
        The problem, printed above the table.
    table : str
        See :func:`format_section`.
    lines : list of str
        Measured findings printed under the table.
    notes : list of str
        Warnings raised while fitting.
    outcomes : list of Outcome
        One per method.
    truth : ndarray of bool
        The true support (features) or the flipped rows (label noise).
    """

    title: str
    table: str
    lines: list
    notes: list
    outcomes: list
    truth: np.ndarray


def feature_section(random_state=0, size="default", progress=None):
    """Per-feature strengths against one L2 strength and L1 (see the module)."""
    sizes = SIZES[size][0]
    data = feature_data(**sizes, random_state=random_state)
    outcomes, notes = run_section(feature_competitors(random_state), data,
                                  support_cells, progress)
    ours = final_step(outcomes[-1].model)
    cv = ", ".join(f"{name} {loss:.4f}" for name, loss in zip(
        ours.cv_results_["setting"], ours.cv_results_["mean_test_loss"],
        strict=True))
    title = (f"features: logistic model on {sizes['n_relevant']} of "
             f"{sizes['n_features']} Gaussian features, {sizes['n_train']} "
             f"training rows, {sizes['n_test']} test rows "
             f"(random_state={random_state})")
    lines = [ranking(outcomes, "loss"), ranking(outcomes, "accuracy"), TIMES,
             f"skfarho's setting {ours.setting_!r} was chosen by 5-fold CV "
             f"(mean held-out log-loss: {cv})"]
    return Section(title, format_section(outcomes, FEATURE_COLUMNS), lines, notes,
                   outcomes, data[-1])


def noise_section(random_state=0, size="default", progress=None):
    """Learned example weights against no cleaning and cleanlab (see the module)."""
    sizes = SIZES[size][1]
    data = noisy_digits(**sizes, random_state=random_state)
    cleanlab = cleanlab_installed()
    outcomes, notes = run_section(noise_competitors(random_state, cleanlab), data,
                                  flag_cells, progress)
    flipped = data[-1]
    title = (f"label noise: digits, {flipped.sum()} of {flipped.size} training "
             f"labels ({flipped.mean():.0%}) flipped to another class, "
             f"{len(data[3])} test rows with true labels "
             f"(random_state={random_state})")
    lines = [ranking(outcomes, "loss"), ranking(outcomes, "accuracy"), TIMES]
    if not cleanlab:
        lines.append("cleanlab is not installed (pip install cleanlab): its rows "
                     "are skipped")
    return Section(title, format_section(outcomes, NOISE_COLUMNS), lines, notes,
                   outcomes, flipped)


def short_name(method):
    """The leading words of a method's description.

    Examples
    --------
    >>> short_name("L2 grid: LogisticRegressionCV, 30 C x 5")
    'L2 grid'
    >>> short_name("skfarho HOLogisticRegression(learn=sample_weight)")
    'skfarho'
    """
    return method.split(":")[0].split(",")[0].split(" HO")[0]
