"""GradientHOEstimator: the scikit-learn façade over the JAX core."""

from __future__ import annotations

import functools
import time
import warnings
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skfarho._data import bucket, cv_splits, holdout_split, stack_all_rows, stack_folds
from skfarho._problem import model_problem
from skfarho.core import (
    CG,
    RTHO,
    TRHO,
    Batched,
    DivergenceError,
    Forward,
    HostImplicit,
    Implicit,
    ImplicitWarmStart,
    Reverse,
    float64_scope,
    minimize_hyperparameters,
    tolerance_schedule,
)
from skfarho.core.outer import bind_fixed, compiled_outer_step, compiled_solve_inner

LEARNABLE = ("alpha", "feature_alpha", "sample_weight", "learning_rate")
_OUTER_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "rmsprop": optax.rmsprop,
                     "rprop": optax.rprop}


@functools.lru_cache(maxsize=32)
def _named_optimizer(name: str):
    # cached, with the step size in the optimizer state (inject_hyperparams): the
    # same object for every fit and step size, so the compiled step is reused
    return optax.inject_hyperparams(_OUTER_OPTIMIZERS[name])(learning_rate=0.1)


ONLINE = ("rtho", "trho")


def _implicit_method():
    """HostImplicit on CPU, the traced Implicit on accelerators.

    Measured with ``benchmarks/bench_host_vs_traced.py``: on CPU, compiling the
    traced program dominates a fit (first fit 9.8 s against 4.2 s on the
    500-feature problem); on an H200 GPU the host round trips dominate (warm
    digits fit 0.33 s host against 0.13 s traced), while both compile in a few
    seconds.
    """
    if jax.default_backend() == "cpu":
        return HostImplicit()
    return Implicit(CG(maxiter=200))


@functools.lru_cache(maxsize=32)
def _method(name: str, hyper_interval: int = 10):
    """The hypergradient method, batched over folds (a holdout is one fold)."""
    method = {"implicit": _implicit_method, "reverse": Reverse,
              "forward": Forward, "rtho": lambda: RTHO(hyper_interval),
              "trho": lambda: TRHO(hyper_interval)}[name]()
    return Batched(method)


class GradientHOEstimator(BaseEstimator):
    """Base of the estimators that learn their hyperparameters by hypergradients.

    A subclass supplies the model as pure JAX functions and a few hooks:

    - ``_scores(params, X)``: decision values (a ``staticmethod`` or a property
      returning a pure function);
    - ``_sample_loss``: per-sample loss of ``(scores, y)``;
    - ``_feature_squares(params)``: per input feature, the squared weights its L2
      strength multiplies (a ``staticmethod``);
    - ``_init_params(n_features, n_outputs, random_state)``: a dict of arrays;
    - ``_encode_targets(y, reset)``, ``_n_outputs`` and
      ``_set_model_attributes(params)`` (the NumPy fitted attributes);
    - ``_curvature``: a bound on the loss's second derivative in the scores,
      used by ``learning_rate="auto"`` (override ``_initial_learning_rate``
      for non-linear models).

    - ``_max_learning_rate_factor``: a learned inner learning rate stays below
      this factor times the automatic rate (2: gradient descent's stability
      limit on a quadratic with the curvature bound).

    This class validates, splits, builds the bilevel problem, runs the outer
    loop and sets the hyperparameter attributes. See
    :mod:`skfarho.linear_model` for two complete subclasses.

    See :class:`~skfarho.HOLogisticRegression` for the parameters.
    """

    _max_learning_rate_factor = 2.0

    _parameter_constraints: dict = {
        "learn": ["array-like", str],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "hypergradient": [StrOptions({"implicit", "reverse", "forward", *ONLINE})],
        "hyper_interval": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "cv": [None, Interval(Integral, 2, None, closed="left"), "cv_object"],
        "outer_steps": [Interval(Integral, 1, None, closed="left")],
        "outer_optimizer": [StrOptions({"auto", *_OUTER_OPTIMIZERS}), object],
        "outer_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "hyper_penalty": [Interval(Real, 0, None, closed="left")],
        "inner_steps": [Interval(Integral, 1, None, closed="left")],
        "inner_optimizer": [StrOptions({"gd", "momentum", "adam"})],
        "learning_rate": [StrOptions({"auto"}), Interval(Real, 0, None,
                                                         closed="neither")],
        "inner_tol": [Interval(Real, 0, None, closed="neither")],
        "refit": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, *, learn=("alpha",), alpha=1.0, fit_intercept=True,
                 hypergradient="implicit", hyper_interval=10,
                 validation_fraction=0.25, cv=None,
                 outer_steps=50, outer_optimizer="auto", outer_learning_rate=0.2,
                 tol=1e-4, n_iter_no_change=5, hyper_penalty=0.0, inner_steps=200,
                 inner_optimizer="gd", learning_rate="auto", inner_tol=1e-6,
                 refit=True, random_state=None, verbose=0):
        self.learn = learn
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.hypergradient = hypergradient
        self.hyper_interval = hyper_interval
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.outer_steps = outer_steps
        self.outer_optimizer = outer_optimizer
        self.outer_learning_rate = outer_learning_rate
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.hyper_penalty = hyper_penalty
        self.inner_steps = inner_steps
        self.inner_optimizer = inner_optimizer
        self.learning_rate = learning_rate
        self.inner_tol = inner_tol
        self.refit = refit
        self.random_state = random_state
        self.verbose = verbose

    # ---- validation ---------------------------------------------------------
    def _check_learn(self):
        learn = (self.learn,) if isinstance(self.learn, str) else tuple(self.learn)
        unknown = sorted(set(learn) - set(LEARNABLE))
        if unknown:
            raise ValueError(f"Unknown names in learn: {unknown}; choose among "
                             f"{list(LEARNABLE)}.")
        if "learning_rate" in learn and self.hypergradient == "implicit":
            raise ValueError(
                'learn="learning_rate" needs an unrolled hypergradient: the implicit '
                "method differentiates the exact minimizer, which does not depend "
                'on the learning rate. Use hypergradient="reverse" or "forward".')
        return frozenset(learn)

    def _outer_name(self, learned):
        """The named outer optimizer ("auto" resolved), or None for an object.

        "auto" is rprop when every learned hyperparameter is a scalar: the
        hypergradient is deterministic, and rprop's sign-based step sizes grow
        while the sign holds (crossing orders of magnitude of ``alpha`` in a few
        steps) and halve when it flips. With vectors of hyperparameters (one per
        feature or per example), Adam: rprop's steps grow without regard to the
        gradient's size and drive weakly determined entries to extremes.
        """
        if not isinstance(self.outer_optimizer, str):
            return None
        if self.outer_optimizer != "auto":
            return self.outer_optimizer
        scalars = all(np.ndim(leaf) == 0 for leaf in jax.tree_util.tree_leaves(learned))
        return "rprop" if scalars else "adam"

    def _outer_optimizer(self, learned):
        name = self._outer_name(learned)
        if name is not None:
            return _named_optimizer(name)
        if not isinstance(self.outer_optimizer, optax.GradientTransformation):
            raise TypeError("outer_optimizer must be a name or an "
                            "optax.GradientTransformation, got "
                            f"{type(self.outer_optimizer).__name__}.")
        return self.outer_optimizer

    def _outer_state(self, optimizer, learned):
        """The outer optimizer's initial state, with ``outer_learning_rate`` set.

        Built by an optimizer of the same structure initialized with this step
        size (rprop keeps its initial step sizes in its state), so the cached
        optimizer, whose update reads the step size from the state, is reused.
        """
        name = self._outer_name(learned)
        if name is None:
            return optimizer.init(learned)
        dtype = jnp.asarray(jax.tree_util.tree_leaves(learned)[0]).dtype
        return optax.inject_hyperparams(_OUTER_OPTIMIZERS[name])(
            learning_rate=jnp.asarray(self.outer_learning_rate, dtype)).init(learned)

    def _splits(self, y, X_val, y_val, seed):
        if X_val is not None:
            return [(np.arange(len(y)), np.arange(len(y_val)))]
        stratify = is_classifier(self)
        if self.cv is None:
            return holdout_split(y, self.validation_fraction, seed, stratify)
        return cv_splits(y, self.cv, seed, stratify)

    def _validate_validation_data(self, X_val, y_val):
        if (X_val is None) != (y_val is None):
            raise ValueError("Pass both X_val and y_val, or neither.")
        if X_val is None:
            return None, None
        X_val, y_val = validate_data(self, X_val, y_val, reset=False,
                                     accept_sparse="csr", dtype=np.float64)
        return _dense(X_val), self._encode_targets(y_val, reset=False)

    # ---- hyperparameters ----------------------------------------------------
    def _problem(self):
        return model_problem(self._scores, self._sample_loss, self._feature_squares,
                             self.inner_optimizer, self.inner_steps,
                             float(self.hyper_penalty))

    def _initial_hparams(self, learn, X, n_rows, n_features, n_outputs, seed=0):
        log_alpha = np.log(self.alpha)
        learned, fixed = {}, {}
        if "feature_alpha" in learn:
            learned["log_alpha"] = np.full(n_features, log_alpha)
        elif "alpha" in learn:
            learned["log_alpha"] = np.asarray(log_alpha)
        else:
            fixed["log_alpha"] = np.asarray(log_alpha)
        if "sample_weight" in learn:
            learned["sw_logit"] = np.zeros(bucket(n_rows))
        # the learning rate lr_max * sigmoid(lr_logit) starts at the given (or
        # automatic) rate and stays below twice the larger of it and the auto rate
        if self.hypergradient == "implicit":
            auto = lr0 = 1.0  # no inner learning rate: skip the spectral norm
        else:
            auto = self._initial_learning_rate(X, auto=True)
            lr0 = auto if self.learning_rate == "auto" else float(self.learning_rate)
        lr_max = max(2.0 * lr0, self._max_learning_rate_factor * auto)
        lr_logit = np.log(lr0) - np.log(lr_max - lr0)
        (learned if "learning_rate" in learn else fixed)["lr_logit"] = np.asarray(
            lr_logit)
        fixed["lr_max"] = np.asarray(lr_max)
        fixed["w0"] = self._init_params(n_features, n_outputs,
                                        np.random.RandomState(seed))
        return learned, fixed

    def _initial_learning_rate(self, X, auto):
        if not auto:
            return float(self.learning_rate)
        # 1 / L with L a bound on the data term's curvature (intercept included)
        spectral = _largest_singular_value(X) ** 2 / X.shape[0] if X.size else 1.0
        curvature = self._curvature * (spectral + float(self.fit_intercept))
        curvature += self.alpha / max(X.shape[0], 1)
        scale = 1.0 if self.inner_optimizer != "adam" else 0.02 * curvature
        return scale / curvature

    # ---- fit ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Learn the hyperparameters on validation data, then fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (sparse input is densified for the JAX core).
        y : array-like of shape (n_samples,)
            Targets.
        X_val, y_val : array-like, optional
            Explicit validation data; otherwise a split of ``X`` (``cv`` or
            ``validation_fraction``).

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, accept_sparse="csr",
                             dtype=[np.float64, np.float32], y_numeric=False)
        X = _dense(X).astype(np.float64, copy=False)
        y_encoded = self._encode_targets(y, reset=True)
        learn = self._check_learn()
        X_val, y_val = self._validate_validation_data(X_val, y_val)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        n_samples, n_features = X.shape
        with float64_scope():
            if learn:
                params, hparams, trained = self._learn_hyperparameters(
                    learn, X, y_encoded, X_val, y_val, seed)
            else:
                learned, fixed = self._initial_hparams(
                    learn, X, n_samples, n_features, self._n_outputs, seed)
                hparams, trained = {**learned, **fixed}, np.ones(n_samples, bool)
                self.validation_loss_curve_, self.n_iter_ = np.empty(0), 0
                params = self._solve(learned, fixed, X, y_encoded)
        self._set_fitted(params, hparams, trained, n_samples, n_features)
        return self

    def _learn_hyperparameters(self, learn, X, y, X_val, y_val, seed):
        splits = self._splits(y, X_val, y_val, seed)
        train_X = X[splits[0][0]]
        learned, fixed = self._initial_hparams(learn, train_X, len(y), X.shape[1],
                                               self._n_outputs, seed)
        folds = stack_folds(X, y, splits, X_val, y_val)
        method = _method(self.hypergradient, self.hyper_interval)
        problem = self._problem()
        schedule = (tolerance_schedule("exponential", 1e-4, self.inner_tol)
                    if self.hypergradient == "implicit" else None)
        learned = jax.tree_util.tree_map(jnp.asarray, learned)
        optimizer = self._outer_optimizer(learned)
        try:
            result = minimize_hyperparameters(
                problem, learned, folds.inner, folds.outer, method=method,
                optimizer=optimizer, opt_state=self._outer_state(optimizer, learned),
                num_steps=self.outer_steps,
                tol_schedule=schedule, patience=self.n_iter_no_change,
                keep="last" if self.hypergradient in ONLINE else "best",
                min_delta=self.tol, callback=self._progress(), fixed=fixed)
        except DivergenceError as error:
            raise DivergenceError(self._divergence_advice(str(error))) from None
        self.validation_loss_curve_ = result.history["value"]
        self.n_iter_ = result.n_steps
        if not result.converged:
            warnings.warn(
                f"The outer loop used all outer_steps={self.outer_steps} before the "
                "validation loss stopped improving; raise outer_steps or "
                "outer_learning_rate.", ConvergenceWarning, stacklevel=4)
        trained = np.zeros(len(y), dtype=bool)
        for train, _ in splits:
            trained[train] = True
        weights = _refit_weights(result.hparams, trained, len(y))
        if self.refit and self.hypergradient in ONLINE:
            # the online state ran with changing hyperparameters: train afresh
            learned = dict(result.hparams)
            if weights is not None:
                learned["sw_logit"] = jnp.asarray(_logit(weights))
            params = self._solve(learned, fixed, X, y)
        elif self.refit and method.on_host:
            learned = dict(result.hparams)
            if weights is not None:
                learned["sw_logit"] = _logit(weights)
            # warm start from the folds' mean solution
            start = jax.tree_util.tree_map(
                lambda p: np.mean(p, axis=0, keepdims=True), result.params)
            params = self._solve(learned, fixed, X, y, ImplicitWarmStart(start, start))
        elif self.refit:
            params = self._refit(problem, method, result.hparams, fixed,
                                 stack_all_rows(X, y, len(splits)), folds.outer,
                                 weights, schedule)
        else:
            params = jax.tree_util.tree_map(lambda p: np.mean(p, axis=0),
                                            result.params)
        hparams = {**jax.tree_util.tree_map(np.asarray, result.hparams), **fixed}
        return params, hparams, trained

    def _refit(self, problem, method, learned, fixed, inner, outer, weights,
               schedule):
        """Fit on all rows with the learned hyperparameters.

        Runs the compiled outer step once on ``len(splits)`` copies of all rows
        (same shapes as the folds), so that a fit compiles a single program; the
        extra hypergradient costs about one inner solve.
        """
        learned = dict(learned)
        if weights is not None:
            learned["sw_logit"] = jnp.asarray(_logit(weights))
        optimizer = self._outer_optimizer(learned)
        step = compiled_outer_step(problem, method, optimizer, None)
        warm = method.init_warm_start(bind_fixed(problem, fixed), learned, inner)
        tol = None if schedule is None else jnp.asarray(self.inner_tol)
        _, _, result, _ = step(learned, self._outer_state(optimizer, learned), warm,
                               tol, inner, outer, fixed)
        return self._checked_params(jax.tree_util.tree_map(lambda p: p[0],
                                                           result.params))

    def _solve(self, learned, fixed, X, y, warm_start=None):
        """Fit on all rows with the given hyperparameters, by ``solve_inner``."""
        if self.hypergradient == "implicit":
            method = Batched(HostImplicit(tol=self.inner_tol, max_inner_iter=2000))
        else:
            method = _method(self.hypergradient, self.hyper_interval)
        params = compiled_solve_inner(self._problem(), method)(
            learned, stack_all_rows(X, y), fixed, warm_start, None)
        return self._checked_params(jax.tree_util.tree_map(lambda p: p[0], params))

    def _checked_params(self, params):
        params = jax.tree_util.tree_map(np.asarray, params)
        if not all(np.all(np.isfinite(p)) for p in jax.tree_util.tree_leaves(params)):
            raise DivergenceError(self._divergence_advice(
                "The final fit produced non-finite coefficients"))
        return params

    def _divergence_advice(self, message):
        if self.hypergradient == "implicit":
            knob = ("raise alpha, scale the features (StandardScaler), or lower "
                    "outer_learning_rate")
        else:
            knob = (f"lower learning_rate (now {self.learning_rate!r}), use "
                    "inner_optimizer='gd', or lower outer_learning_rate")
        return f"{message} ({type(self).__name__}: {knob})."

    def _progress(self):
        if not self.verbose:
            return None
        start = time.perf_counter()

        def report(step, hparams, result):
            print(f"[{type(self).__name__}] outer step {step + 1:3d}/"
                  f"{self.outer_steps}  validation loss {float(result.value):.5f}  "
                  f"elapsed {time.perf_counter() - start:.2f}s", flush=True)

        return report

    def _set_fitted(self, params, hparams, trained, n_samples, n_features):
        log_alpha = np.asarray(hparams["log_alpha"], dtype=np.float64)
        self.alpha_ = np.broadcast_to(np.exp(log_alpha), (n_features,)).copy()
        if "sw_logit" in hparams:
            weights = 1.0 / (1.0 + np.exp(-np.asarray(hparams["sw_logit"])))
        else:
            weights = np.ones(n_samples)
        self.sample_weight_ = np.where(trained, weights[:n_samples], np.nan)
        lr_logit = float(hparams["lr_logit"])
        self.learning_rate_ = (float(hparams["lr_max"]) / (1.0 + np.exp(-lr_logit))
                               if self.hypergradient != "implicit" else np.nan)
        self._set_model_attributes(
            jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64), params))

    def _validate_for_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", reset=False,
                             dtype=[np.float64, np.float32])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _largest_singular_value(X, iterations=30):
    """Power iteration on ``X^T X`` (cheaper than a full SVD), with 5% margin."""
    vector = np.random.RandomState(0).normal(size=X.shape[1])
    value = 0.0
    for _ in range(iterations):
        product = X.T @ (X @ vector)
        value = np.linalg.norm(product)
        if value == 0.0:
            return 0.0
        vector = product / value
    return 1.05 * np.sqrt(value)


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)


def _logit(weights):
    clipped = np.clip(weights, 1e-12, 1 - 1e-12)
    return np.log(clipped) - np.log1p(-clipped)


def _refit_weights(hparams, trained, n_samples):
    """Learned weights for trained rows, their mean for validation-only rows;
    padded to the bucket of ``sw_logit``."""
    if "sw_logit" not in hparams:
        return None
    weights = 1.0 / (1.0 + np.exp(-np.asarray(hparams["sw_logit"])))
    fill = weights[:n_samples][trained].mean()
    weights[:n_samples] = np.where(trained, weights[:n_samples], fill)
    return weights
