"""The scikit-learn contract of the estimators, and their oracles."""

import pickle
import subprocess
import sys
import warnings
from types import SimpleNamespace

import jax
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import BayesianRidge, LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, ShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skfarho import DivergenceError, HOLogisticRegression, HORidge
from skfarho._base import FLOAT32_TOL, NEWTON_MAX_PARAMS
from skfarho._objective import MIN_HOLDOUT, SMALL_DATA_FOLDS, Evidence, Validation
from skfarho.core import CG, Cholesky, Implicit, host_implicit

pytestmark = pytest.mark.no_x64


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@parametrize_with_checks(
    [HOLogisticRegression(outer_steps=5), HORidge(outer_steps=5)],
    expected_failed_checks=lambda est: {},
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("alpha", [0.1, 3.0])
def test_logistic_oracle_without_learning(cancer, iris, alpha):
    """learn=() is LogisticRegression(C=1/alpha) on the same objective."""
    for X, y in (cancer, iris):
        ours = HOLogisticRegression(learn=(), alpha=alpha, inner_tol=1e-10).fit(X, y)
        ref = LogisticRegression(C=1 / alpha, tol=1e-12, max_iter=10000).fit(X, y)
        np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
        np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-4)
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X),
                                   atol=1e-5)


def test_ridge_oracle_without_learning():
    X, y = make_regression(200, 8, noise=5.0, random_state=0)
    ours = HORidge(learn=(), alpha=7.0, inner_tol=1e-10).fit(X, y)
    ref = Ridge(alpha=7.0).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-6, atol=1e-4)
    assert ours.intercept_ == pytest.approx(ref.intercept_, abs=1e-4)


def test_named_implicit_takes_newton_for_small_dense_ridge_only():
    """The named implicit method's inner solver: Newton for dense ridge models
    of at most NEWTON_MAX_PARAMS parameters; L-BFGS-B for larger or sparse ones
    and for classifiers (whose Hessians cost more than they save), with float32
    early steps (FLOAT32_TOL times the gradient scale) on held-out losses, not
    on the evidence."""
    named, learned = Implicit(inner_solver="scipy"), {"log_alpha": np.zeros(())}

    def model(size):
        return {"w0": {"coef": np.zeros(size - 1), "intercept": np.zeros(())}}

    y = np.array([0.0, 4.0])  # standard deviation 2: HORidge's gradient scale
    dense = SimpleNamespace(sparse=False, y=y)
    sparse = SimpleNamespace(sparse=True, y=y)
    held_out, evidence = Validation(), Evidence()
    chosen = HORidge()._named_implicit(named, learned, model(NEWTON_MAX_PARAMS), dense,
                                       held_out)
    assert chosen.inner_solver == "host_newton" and chosen.float32_tol is None
    assert isinstance(chosen.linear_solver, Cholesky)
    for estimator, size, data, scale in [(HORidge(), NEWTON_MAX_PARAMS + 1, dense, 2.0),
                                         (HORidge(), 11, sparse, 2.0),
                                         (HOLogisticRegression(), 11, dense, 1.0)]:
        chosen = estimator._named_implicit(named, learned, model(size), data,
                                           held_out)
        assert chosen.inner_solver == "scipy"
        assert chosen.float32_tol == pytest.approx(FLOAT32_TOL * scale)
        chosen = estimator._named_implicit(named, learned, model(size), data,
                                           evidence)
        assert chosen.inner_solver == "scipy" and chosen.float32_tol is None


@pytest.mark.skipif(jax.default_backend() != "cpu",
                    reason="the named implicit method is traced on accelerators")
@pytest.mark.parametrize("learn", [("alpha",), ("feature_alpha",)])
def test_ridge_newton_path_matches_lbfgs(learn, monkeypatch):
    """HORidge's named implicit method solves its (quadratic) inner problems by
    Newton's method on CPU; L-BFGS-B (the path of larger models) learns the
    same model. Strengths on flat parts of the validation curve move by a few
    hundredths with L-BFGS-B's loose early solves (HOAG's schedule)."""
    X, y = make_regression(150, 40, n_informative=5, noise=40.0, random_state=0)

    class LBFGSRidge(HORidge):
        _newton_max_params = 0

    params = {"learn": learn, "random_state": 0, "inner_tol": 1e-8, "tol": 1e-9,
              "objective": "validation", "outer_steps": 30}
    newton_solves = []
    newton_minimize = host_implicit.host_newton_minimize
    monkeypatch.setattr(host_implicit, "host_newton_minimize", lambda *args, **kw: (
        newton_solves.append(1) or newton_minimize(*args, **kw)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        newton = HORidge(**params).fit(X, y)
        assert newton_solves, "HORidge did not take Newton's method"
        newton_solves.clear()
        lbfgs = LBFGSRidge(**params).fit(X, y)
        assert not newton_solves
    np.testing.assert_allclose(np.log(newton.alpha_), np.log(lbfgs.alpha_),
                               atol=0.1)
    np.testing.assert_allclose(newton.predict(X), lbfgs.predict(X),
                               rtol=1e-2, atol=1e-2 * np.std(y))
    assert newton.objective_curve_.min() <= lbfgs.objective_curve_.min() * (1 + 1e-4)


@pytest.mark.parametrize("learn", [("alpha",), ("feature_alpha",)])
def test_traced_implicit_path_matches_host(cancer, learn):
    """On accelerators the estimators run the traced Implicit (one XLA program per
    outer step) instead of HostImplicit; both must learn the same model."""
    X, y = cancer
    params = {"learn": learn, "random_state": 0, "outer_steps": 8,
              "objective": "validation"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        host = HOLogisticRegression(**params).fit(X, y)
        traced = HOLogisticRegression(
            hypergradient=Implicit(CG(maxiter=200)), **params).fit(X, y)
    # the inner solvers differ (optax L-BFGS in the program, SciPy's L-BFGS-B on
    # the host) and the early outer steps use loose tolerances (1e-3 at the
    # first): close, not equal; near the optimum the step tolerance may stop
    # one path a few steps before the other
    steps = min(len(traced.objective_curve_), len(host.objective_curve_))
    assert steps >= 4
    np.testing.assert_allclose(traced.objective_curve_[:steps],
                               host.objective_curve_[:steps], rtol=2e-2)
    np.testing.assert_allclose(traced.objective_curve_[-1],
                               host.objective_curve_[-1], rtol=1e-2)
    # the best point is kept: two points of the same path whose validation
    # losses differ by less than the early steps' solves (1.5e-4 of 0.078 on
    # this split) may swap ranks between the paths (log-alpha 0.46 and 0.60)
    # (so predictions may differ by a few hundredths on the uncertain rows)
    np.testing.assert_allclose(np.log(traced.alpha_), np.log(host.alpha_), atol=0.2)
    np.testing.assert_allclose(traced.predict_proba(X), host.predict_proba(X),
                               atol=3e-2)


def test_default_split_is_a_holdout_of_at_least_500_rows_or_5_folds():
    validation = Validation(validation_fraction=0.25)
    y = np.arange(2000) % 2
    (train, held), = validation.splits(y, None, 0, stratify=True)
    assert len(held) == MIN_HOLDOUT == 500 and len(train) == 1500
    folds = validation.splits(y[:1996], None, 0, stratify=True)
    assert len(folds) == SMALL_DATA_FOLDS == 5
    assert sorted(np.concatenate([held for _, held in folds])) == list(range(1996))


def test_learned_attributes_and_shapes(cancer):
    X, y = cancer
    holdout = ShuffleSplit(n_splits=1, test_size=0.25, random_state=0)
    model = HOLogisticRegression(learn=("feature_alpha",), random_state=0,
                                 objective="validation", outer_steps=15,
                                 cv=holdout).fit(X, y)
    assert model.alpha_.shape == (X.shape[1],) and np.ptp(model.alpha_) > 0
    assert model.objective_curve_.shape == (model.n_iter_,)
    assert model.hyperparameter_path_["alpha"].shape == (model.n_iter_, X.shape[1])
    held_out = np.isnan(model.sample_weight_)  # validation rows never trained on
    assert held_out.sum() == int(np.ceil(0.25 * len(y)))
    np.testing.assert_array_equal(model.sample_weight_[~held_out], 1.0)
    for name in ("coef_", "intercept_", "alpha_", "sample_weight_",
                 "objective_curve_"):
        assert isinstance(getattr(model, name), np.ndarray)
    assert np.all(np.isfinite(model.coef_))


def test_learned_sample_weights_flag_flipped_labels(cancer):
    """learn="sample_weight" on a classifier detects label issues (cross-fitted
    influence of each row's weight), then learns alpha on the kept rows."""
    X, y = cancer
    rng = np.random.default_rng(0)
    flipped = rng.random(len(y)) < 0.15
    noisy = np.where(flipped, 1 - y, y)
    model = HOLogisticRegression(learn=("sample_weight",), random_state=0).fit(
        X, noisy)
    assert model.sample_weight_.shape == model.label_quality_.shape == (len(y),)
    np.testing.assert_array_equal(model.label_issues_, model.sample_weight_ < 0.5)
    assert roc_auc_score(flipped, -model.label_quality_) > 0.95
    assert model.label_issues_.sum() == pytest.approx(flipped.sum(), rel=0.3)
    assert model.label_proba_.shape == (len(y), 2)
    plain = HOLogisticRegression(random_state=0).fit(X, noisy)
    assert model.score(X, y) >= plain.score(X, y)  # judged on the true labels


def test_learning_alpha_lowers_validation_loss(cancer):
    X, y = cancer
    model = HOLogisticRegression(alpha=1e3, random_state=0, outer_steps=40).fit(X, y)
    curve = model.objective_curve_
    assert curve.min() < 0.5 * curve[0]
    assert model.alpha_[0] < 1e3


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_unrolled_methods_and_learning_rate(cancer, method):
    X, y = cancer
    model = HOLogisticRegression(learn=("alpha", "learning_rate"),
                                 hypergradient=method, inner_steps=50,
                                 outer_steps=10, random_state=0).fit(X, y)
    assert model.learning_rate_ > 0 and np.isfinite(model.learning_rate_)
    assert model.score(X, y) > 0.9


def test_cv_objective_runs_folds_in_one_program(iris):
    X, y = iris
    model = HOLogisticRegression(cv=3, refit=False, outer_steps=5,
                                 random_state=0).fit(X, y)
    assert model.coef_.shape == (3, 4)
    assert not np.isnan(model.sample_weight_).any()  # every row trains in a fold


def test_explicit_validation_data(cancer):
    X, y = cancer
    model = HOLogisticRegression(outer_steps=5).fit(X[:400], y[:400],
                                                    X_val=X[400:], y_val=y[400:])
    assert not np.isnan(model.sample_weight_).any()
    with pytest.raises(ValueError, match="both X_val and y_val"):
        HOLogisticRegression().fit(X, y, X_val=X)


def test_clone_pickle_pipeline_and_search(cancer):
    X, y = cancer
    pipe = make_pipeline(StandardScaler(),
                         HOLogisticRegression(outer_steps=5, random_state=0))
    pipe.fit(X, y)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))
    assert clone(pipe[-1]).get_params() == pipe[-1].get_params()
    scores = cross_val_score(pipe, X, y, cv=3, n_jobs=2)
    assert scores.mean() > 0.9
    search = GridSearchCV(HOLogisticRegression(outer_steps=3, learn="alpha"),
                          {"outer_learning_rate": [0.1, 0.3]}, cv=2).fit(X, y)
    assert search.best_params_["outer_learning_rate"] in (0.1, 0.3)


def test_string_labels_dataframes_dtypes_and_sparse(cancer):
    pd = pytest.importorskip("pandas")
    X, y = cancer
    labels = np.array(["benign", "malignant"])[y]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = HOLogisticRegression(outer_steps=5, random_state=0).fit(frame, labels)
    assert list(model.feature_names_in_) == list(frame.columns)
    assert set(model.predict(frame)) <= set(labels)
    dense = HOLogisticRegression(outer_steps=5, random_state=0)
    for data in (X.astype(np.float32), sp.csr_matrix(X)):
        fitted = clone(dense).fit(data, y)
        assert fitted.coef_.dtype == np.float64
        np.testing.assert_allclose(fitted.coef_, dense.fit(X, y).coef_, atol=1e-4)


def test_refitting_same_shapes_does_not_recompile(cancer, compile_counter):
    X, y = cancer
    HOLogisticRegression(outer_steps=3, random_state=0).fit(X, y)
    before = compile_counter()
    HOLogisticRegression(outer_steps=3, random_state=1).fit(X, y)  # another split
    HOLogisticRegression(outer_steps=3, random_state=2).fit(X[:-3], y[:-3])
    assert compile_counter() == before


def test_outer_learning_rate_does_not_recompile(cancer, compile_counter):
    X, y = cancer
    HOLogisticRegression(outer_steps=3, outer_learning_rate=0.1).fit(X, y)
    before = compile_counter()
    HOLogisticRegression(outer_steps=3, outer_learning_rate=0.5).fit(X, y)
    assert compile_counter() == before


def test_cross_validation_compiles_once_for_all_folds(cancer, compile_counter):
    X, y = cancer
    model = HOLogisticRegression(outer_steps=3, random_state=0)
    cross_val_score(model, X, y, cv=2)  # warm up the fold shapes
    before = compile_counter()
    cross_val_score(model, X, y, cv=2)
    assert compile_counter() == before


@pytest.mark.parametrize(
    "params, match",
    [
        ({"learn": ("alpha", "bogus")}, "Unknown names in learn"),
        ({"learn": ("learning_rate",)}, "unrolled hypergradient"),
        ({"hypergradient": "sideways"}, "hypergradient"),
        ({"alpha": -1.0}, "alpha"),
    ],
)
def test_bad_parameters_raise_at_fit(cancer, params, match):
    X, y = cancer
    model = HOLogisticRegression(**params)  # __init__ validates nothing
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)


def test_bad_data_raise_clear_errors(cancer):
    X, y = cancer
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        HOLogisticRegression().fit(bad, y)
    with pytest.raises(ValueError, match="class"):
        HOLogisticRegression().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="at least 8 samples"):
        HOLogisticRegression().fit(X[:3], np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        HOLogisticRegression().fit(X, y[:-1])
    fitted = HOLogisticRegression(outer_steps=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict(X[:, :5])


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_diverging_inner_training_names_the_knob(method):
    X, y = make_regression(100, 5, random_state=0)
    model = HORidge(hypergradient=method, learning_rate=50.0, inner_steps=100,
                    outer_steps=3)
    with pytest.raises(DivergenceError, match="learning_rate"):
        model.fit(X, y)


@pytest.mark.parametrize("learn", [(), ("alpha",)])
def test_oscillating_logistic_descent_is_not_a_silent_fit(cancer, learn):
    """Logistic gradient descent with a huge step oscillates without overflowing
    in the coefficients: the training loss must flag it."""
    X, y = cancer
    model = HOLogisticRegression(hypergradient="reverse", learning_rate=1e4,
                                 learn=learn, outer_steps=3)
    with pytest.raises(DivergenceError, match="diverged.*learning_rate"):
        model.fit(X * 100, y)


def test_unconverged_inner_problem_warns_with_its_knobs(cancer):
    X, y = cancer
    with pytest.warns(ConvergenceWarning, match="did not converge.*inner_steps"):
        HOLogisticRegression(hypergradient="reverse", inner_steps=3,
                             learn=()).fit(X, y)


def test_verbose_progress_and_convergence_warning(cancer, capsys):
    X, y = cancer
    with pytest.warns(ConvergenceWarning, match="outer_steps=2"):
        HOLogisticRegression(outer_steps=2, verbose=1, alpha=1e3).fit(X, y)
    out = capsys.readouterr().out
    assert "outer step   1/2" in out and "objective" in out


def test_global_jax_config_untouched():
    code = (
        "import numpy as np, jax, jax.numpy as jnp;"
        "from skfarho import HOLogisticRegression;"
        "X = np.random.default_rng(0).normal(size=(60, 3)); y = (X[:, 0] > 0);"
        "m = HOLogisticRegression(outer_steps=2).fit(X, y);"
        "print(jax.config.jax_enable_x64, jnp.ones(1).dtype, m.coef_.dtype)"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code],
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "float32", "float64"]


@pytest.mark.parametrize("method", ["rtho", "trho"])
def test_online_hypergradients_in_the_estimator(cancer, method):
    X, y = cancer
    model = HOLogisticRegression(hypergradient=method, hyper_interval=10,
                                 learn=("alpha", "learning_rate"), inner_steps=100,
                                 outer_steps=20, random_state=0).fit(X, y)
    curve = model.objective_curve_
    assert curve.min() < 0.6 * curve[0]  # the inner run advances across steps
    assert model.score(X, y) > 0.95


def test_learning_a_too_small_learning_rate_improves_validation_loss(cancer):
    """Starting 10x below the auto rate, learning it lowers the validation loss."""
    X, y = cancer
    reference = HOLogisticRegression(learn=(), hypergradient="reverse",
                                     inner_steps=30).fit(X, y)
    small = reference.learning_rate_ / 10
    kwargs = dict(hypergradient="reverse", inner_steps=30, learning_rate=small,
                  outer_steps=30, outer_learning_rate=0.5, random_state=0)
    fixed = HOLogisticRegression(learn=("alpha",), **kwargs).fit(X, y)
    learned = HOLogisticRegression(learn=("alpha", "learning_rate"), **kwargs).fit(
        X, y)
    assert learned.learning_rate_ > 2 * small
    # bounded by the parameterization: below 10x the automatic rate (computed on
    # the training split, so compare with some slack)
    assert learned.learning_rate_ < 11 * reference.learning_rate_
    assert learned.objective_curve_.min() < fixed.objective_curve_.min()


def test_ridge_evidence_is_bayesian_ridge():
    """objective="evidence" on HORidge maximizes the exact Gaussian evidence:
    scikit-learn's BayesianRidge without hyperpriors finds the same precisions."""
    X, y = make_regression(200, 8, noise=5.0, random_state=0)
    reference = BayesianRidge(fit_intercept=False, tol=1e-10, alpha_1=0, alpha_2=0,
                              lambda_1=0, lambda_2=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = HORidge(objective="evidence", fit_intercept=False, inner_tol=1e-9,
                       tol=1e-10, n_iter_no_change=20, outer_steps=200).fit(X, y)
    assert ours.alpha_[0] == pytest.approx(reference.lambda_ / reference.alpha_,
                                           rel=1e-3)
    assert ours.noise_precision_ == pytest.approx(reference.alpha_, rel=1e-3)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-4)
    assert not np.isnan(ours.sample_weight_).any()  # no rows held out


def test_evidence_objective_refuses_what_it_cannot_do(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="no X_val"):
        HOLogisticRegression(objective="evidence").fit(X, y, X_val=X, y_val=y)
    with pytest.raises(ValueError, match="implicit"):
        HOLogisticRegression(objective="evidence", hypergradient="reverse").fit(X, y)
