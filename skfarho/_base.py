"""GradientHOEstimator: the scikit-learn façade over the JAX core."""

from __future__ import annotations

import dataclasses
import time
import warnings
from numbers import Integral, Real

import jax
import numpy as np
import optax
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from skfarho._cleaning import detect_label_issues
from skfarho._data import FitData, cv_splits
from skfarho._fit import checked, learn_hyperparameters, solve
from skfarho._hyperparameters import (
    Context,
    check_learn,
    decode_hyperparameters,
    initial_hyperparameters,
)
from skfarho._methods import (
    METHOD_NAMES,
    OUTER_OPTIMIZERS,
    is_implicit,
    is_online,
    optimizer_name,
    outer_optimizer,
    resolve_method,
)
from skfarho._objective import Evidence, Validation
from skfarho._problem import model_problem
from skfarho._relevance import learn_feature_strengths
from skfarho._relevance_sparse import learn_sparse_feature_strengths
from skfarho.core import (
    Cholesky,
    DivergenceError,
    HypergradientMethod,
    float64_scope,
    tolerance_schedule,
)
from skfarho.core.evidence import MAX_PARAMS

INITIAL_INNER_TOL = {"one": 1e-3, "more": 1e-4}
"""The implicit method's inner tolerance at the first outer step, tightened by
0.9 a step down to ``inner_tol`` (HOAG's schedule), for one learned scalar and
for more. One scalar (rprop_secant reads the hypergradient's sign, then
secants): 1e-3 against 1e-4 took 57% fewer inner iterations on 5-fold digits
and 36% on the 500-feature problem, with equal test losses
(bench_vs_search.py); 1e-2 moved digits' strength (test +0.003). More: Adam
scales each entry's step by its own gradient's size, so an entry with a tiny
hypergradient moves by a full step in the direction of its error; 1e-3 moved
per-feature strengths by 20%."""


LINEAR_TOL_FACTOR = {"one": 10.0, "more": 1.0}
"""The named implicit method's ``linear_tol_factor`` (its linear system solved to
this times the inner tolerance, a relative residual) for classifiers, for one
learned scalar and for more. One scalar: 10 took 30-35% less time on 5-fold
digits (the conjugate gradient ran 25-60 products a fold at 1), for the same
outer path and test loss (0.11753 -> 0.11757), and changed nothing on the
500-feature problem, binary_digits and digits_noisy; 30 changed the outer path
of the last two (benchmarks/bench_vs_search.py's splits). Regressors keep 1: the
squared loss's Hessian is constant and its conjugate gradient short, so a looser
target saves little, and on diabetes it stopped the secant steps early (alpha 22
instead of 29 on a flat validation curve, test MSE 3164 against 3152)."""


FLOAT32_TOL = 1e-4
"""The named implicit method's ``float32_tol`` on the host (times the gradient
scale), with a held-out objective: the outer steps whose inner tolerance is at
least this compute in float32 (one learned strength: its schedule's first 20
steps, 1e-3 down; the final fit, in float64). L-BFGS-B's line search on float32
values (rounding about 1e-7 of the loss) stopped short of 1e-5 on a small
softmax problem, not of 1e-4; a float32 solve that stops short of its tolerance
(a target with a large mean, unscaled features) is finished in float64
(:mod:`skfarho.core.host_implicit`)."""


NEWTON_MAX_PARAMS = 256
"""``HORidge``'s ``_newton_max_params``: its inner loss is quadratic, so one
Newton step (a Hessian: one value-and-gradient pass per parameter, then a
Cholesky solve) solves it exactly, where L-BFGS took about 18 passes a solve,
each a program call; the linear system is then solved exactly too.
Measured with bench_vs_search.py (diabetes, 11 parameters, 5 folds): warm fit
0.17 s -> 0.04-0.06 s."""


def _learned_kind(learned) -> str:
    leaves = jax.tree_util.tree_leaves(learned)
    return "one" if len(leaves) == 1 and np.size(leaves[0]) == 1 else "more"


def _initial_inner_tol(learned) -> float:
    return INITIAL_INNER_TOL[_learned_kind(learned)]

STEP_TOL = 0.01
"""With :func:`~skfarho.core.rprop_secant` (one scalar), the outer loop stops
when the hyperparameter would move by less than this in its encoded (log or
logit) space: a strength known to 1%. (Not with optax's rprop, whose updates
are zero after each sign flip.)"""


class GradientHOEstimator(BaseEstimator):
    """Base of the estimators that learn their hyperparameters by hypergradients.

    A subclass supplies:

    - ``_model()``: the model as pure JAX functions, an object with
      ``scores(params, X)``, ``sample_loss(scores, y)``,
      ``feature_squares(params)`` (per input feature, the squared weights its
      L2 strength multiplies) and ``init(n_features, n_outputs,
      random_state)`` (NumPy arrays); equal models must compare equal (the
      compiled programs are cached by it);
    - ``_encode_targets(y, reset)`` and ``_n_outputs``;
    - ``_set_model_attributes(params)``: the NumPy fitted attributes;
    - ``_curvature``: a bound on the loss's second derivative in the scores,
      for ``learning_rate="auto"`` (or override ``_initial_learning_rate``).

    Class attributes: ``_max_learning_rate_factor`` (a learned inner learning
    rate stays below this factor times the automatic rate; 2 is gradient
    descent's stability limit on a quadratic), ``_convex`` (False forbids
    the implicit method), ``_detects_label_issues`` (True: classifiers whose
    ``learn="sample_weight"`` runs :func:`skfarho._cleaning.detect_label_issues`
    instead of learning weights on the validation loss),
    ``_supports_relevance`` (True: ``learn="feature_alpha"`` may run the
    evidence recipe of :mod:`skfarho._relevance`; linear models) and
    ``_keeps_sparse_input`` (True: sparse ``X`` reaches ``_model().scores``
    as a :class:`~skfarho.core.sparse.SparseMatrix`; otherwise it is
    densified) and ``_newton_max_params`` (the named implicit method on CPU
    solves the inner problems by Newton's method, ``inner_solver="host_newton"``
    with :class:`~skfarho.core.Cholesky`, when the model has at most this many
    parameters and the data are dense; see :data:`NEWTON_MAX_PARAMS`).

    ``fit`` validates, builds the problem, the objective, the data and the
    method, and hands over to :func:`skfarho._fit.learn_hyperparameters`. See
    :mod:`skfarho.linear_model` for two complete subclasses and the docs' "Write
    your own estimator" page.

    See :class:`~skfarho.HOLogisticRegression` for the parameters.
    """

    _max_learning_rate_factor = 2.0
    _convex = True
    _detects_label_issues = False
    _supports_relevance = False
    _keeps_sparse_input = False
    _newton_max_params = 0

    _parameter_constraints: dict = {
        "learn": ["array-like", str],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "hypergradient": [StrOptions(set(METHOD_NAMES)), HypergradientMethod],
        "objective": [StrOptions({"auto", "validation", "evidence"})],
        "hyper_interval": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "cv": [None, Interval(Integral, 2, None, closed="left"), "cv_object"],
        "outer_steps": [Interval(Integral, 1, None, closed="left")],
        "outer_optimizer": [StrOptions({"auto", *OUTER_OPTIMIZERS}),
                            HasMethods(["init", "update"])],
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
                 objective="auto", hypergradient="implicit", hyper_interval=10,
                 validation_fraction=0.25, cv=None,
                 outer_steps=50, outer_optimizer="auto", outer_learning_rate=0.2,
                 tol=1e-4, n_iter_no_change=5, hyper_penalty=0.0, inner_steps=200,
                 inner_optimizer="gd", learning_rate="auto", inner_tol=1e-6,
                 refit=True, random_state=None, verbose=0):
        self.learn = learn
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.objective = objective
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

    # ---- fit ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Learn the hyperparameters, then fit the model on all rows.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse input (CSR; other formats are converted
            once) stays sparse, without a dense copy; ``objective="evidence"``
            takes it only with ``learn="feature_alpha"`` (the diagonal recipe).
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
        data = self._validate_fit_data(X, y, X_val, y_val)
        method = resolve_method(self.hypergradient, self.hyper_interval)
        learn = self._check_learn(method)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        cleaning = None
        if "sample_weight" in learn and self._detects_label_issues:
            cleaning, data, learn = self._clean_labels(data, learn, seed)
        objective = self._objective(method, learn)
        if self._runs_relevance(method, learn, data):
            self._fit_relevance(data, seed)
            if cleaning is not None:
                self._set_cleaning(cleaning)
            return self
        if learn:
            learn += objective.extra_hyperparameters(self._model())
        splits = (objective.splits(data.y, data.y_val, seed, is_classifier(self))
                  if learn else [(np.arange(data.n_rows), None)])
        context = self._context(method, data.rows(splits[0][0]), data.n_rows)
        learned, fixed = initial_hyperparameters(learn, context)
        fixed["w0"] = self._model().init(data.X.shape[1], self._n_outputs,
                                         np.random.RandomState(seed))
        if is_implicit(method) and isinstance(self.hypergradient, str):
            method = dataclasses.replace(method, method=self._named_implicit(
                method.method, learned, fixed, data, objective))
        problem = self._problem(objective)
        with float64_scope():
            try:
                if learn:
                    fitted = self._learn(problem, objective, data, method, learned,
                                         fixed, splits)
                else:
                    params = solve(problem, method, learned, fixed, data,
                                   self._inner_tol(data) if is_implicit(method)
                                   else None, self._convergence_hint(method))
                    fitted = params, fixed, None, np.ones(data.n_rows, bool)
            except DivergenceError as error:
                raise DivergenceError(self._divergence_advice(str(error))) from None
        self._set_fitted(*fitted, context)
        if cleaning is not None:
            self._set_cleaning(cleaning)
        return self

    def _set_cleaning(self, cleaning):
        self.sample_weight_ = cleaning.weights
        self.label_quality_ = cleaning.quality
        self.label_issues_ = cleaning.issues
        self.label_proba_ = cleaning.proba

    def _runs_relevance(self, method, learn, data) -> bool:
        """Whether ``learn="feature_alpha"`` runs the evidence recipe of
        :mod:`skfarho._relevance` (the default where it applies): on dense
        ``X`` of one-output models with more rows than features and at most
        ``MAX_PARAMS`` coefficients by dense Hessians, otherwise by their
        diagonal
        (:mod:`skfarho._relevance_sparse`)."""
        if set(learn) != {"feature_alpha"} or not self._supports_relevance:
            return False
        if self.objective == "evidence":
            return True
        return (self.objective == "auto" and is_implicit(method)
                and data.X_val is None)

    def _fit_relevance(self, data, seed):
        """Per-feature strengths by the evidence (dense Hessians, or their
        diagonal on sparse or wide ``X``), the pruning threshold and the
        single-or-per-feature choice by ``cv`` folds (when None, 5, or as many
        as the smallest class has rows, at least 2)."""
        cv = self.cv
        if cv is None:
            cv = 5
            if is_classifier(self):
                counts = np.unique(data.y, return_counts=True)[1]
                if counts.min() < 2:
                    raise ValueError(
                        'learn="feature_alpha" chooses its settings by '
                        "cross-validation and needs at least 2 rows of every "
                        f"class; the smallest class has {counts.min()}.")
                cv = min(cv, int(counts.min()))
        splits = cv_splits(data.y, cv, seed, is_classifier(self))
        # the dense recipe's Hessians of every coefficient, for one output (a
        # binary classifier, a regressor), where they fit and the rows outnumber
        # the features. With d >= n its evidence maximization overfit
        # (regression500, 3 seeds: test MSE 264 / 144 / 309 against the
        # diagonal recipe's 106 / 120 / 94, in a tenth of the time); softmax
        # models' (d K)^2 Hessians cost 2-5x the time for no better test loss
        # (digits, wine: equal; three synthetic 3- and 4-class problems x 3
        # seeds: mean 0.373 dense, 0.358 diagonal)
        n_rows, n_features = data.X.shape
        dense = (isinstance(data.X, np.ndarray) and self._n_outputs == 1
                 and n_rows > n_features and n_features + 1 <= MAX_PARAMS)
        learn = learn_feature_strengths if dense else learn_sparse_feature_strengths
        try:
            with float64_scope():
                found = learn(self._model(), data.X, data.y,
                              n_outputs=self._n_outputs, splits=splits)
        except FloatingPointError as error:
            raise DivergenceError(
                f"{error} while learning per-feature strengths by the evidence "
                f"({type(self).__name__}: scale the features (StandardScaler) or "
                'use objective="validation").') from None
        params = checked(found.params)
        self.alpha_ = np.exp(found.log_alpha)
        self.sample_weight_ = np.ones(data.n_rows)
        self.learning_rate_ = self.momentum_ = np.nan
        if found.log_noise_precision is not None:
            self.noise_precision_ = float(np.exp(found.log_noise_precision))
        self.objective_curve_ = found.path["value"]
        self.n_iter_ = len(self.objective_curve_)
        self.hyperparameter_path_ = ({"alpha": np.exp(found.path["log_alpha"])}
                                     if self.n_iter_ else {})
        self.setting_ = found.setting
        names = list(found.cv_loss)
        losses = np.array([found.cv_loss[name] for name in names])
        self.cv_results_ = {"setting": np.array(names),
                            "mean_test_loss": losses.mean(axis=1),
                            "std_test_loss": losses.std(axis=1)}
        self._set_model_attributes(params)

    def _clean_labels(self, data, learn, seed):
        """Detect mislabeled rows (:func:`skfarho._cleaning.detect_label_issues`),
        then learn the rest (at least ``alpha``) on the kept rows (and the
        trusted ``X_val`` rows)."""
        if data.sparse:
            raise ValueError(
                f'learn="sample_weight" on {type(self).__name__} detects label '
                "issues on dense X: pass X.toarray(), or learn other "
                "hyperparameters.")
        with float64_scope():
            cleaning = detect_label_issues(
                data.X, data.y, X_clean=data.X_val, y_clean=data.y_val,
                n_classes=len(self.classes_), random_state=seed)
        learn = tuple(name for name in learn if name != "sample_weight")
        if "feature_alpha" not in learn and "alpha" not in learn:
            learn += ("alpha",)  # the detection's strength is not the model's
        return cleaning, data.cleaned(~cleaning.issues), learn

    def _gradient_scale(self, data) -> float:
        """The scale of the training loss's gradient, which the implicit
        method's (absolute) inner tolerances multiply: 1, or for a squared
        loss the standard deviation of ``y`` (diabetes: 77)."""
        return 1.0

    def _inner_tol(self, data) -> float:
        return self.inner_tol * self._gradient_scale(data)

    def _learn(self, problem, objective, data, method, learned, fixed, splits):
        implicit = is_implicit(method)
        learned = jax.tree_util.tree_map(np.asarray, learned)
        optimizer, opt_state = outer_optimizer(self.outer_optimizer,
                                               self.outer_learning_rate, learned)
        secant = optimizer_name(self.outer_optimizer, learned) == "rprop_secant"
        result = learn_hyperparameters(
            problem, objective, data, method, optimizer, learned, fixed,
            splits=splits, refit=self.refit, hint=self._convergence_hint(method),
            inner_tol=self._inner_tol(data) if implicit else None,
            opt_state=opt_state, num_steps=self.outer_steps,
            tol_schedule=(tolerance_schedule(
                "exponential", _initial_inner_tol(learned)
                * self._gradient_scale(data), self._inner_tol(data))
                if implicit else None),
            patience=self.n_iter_no_change, min_delta=self.tol,
            step_tol=STEP_TOL if secant else 0.0,
            gain_tol=self.tol if secant else 0.0,
            keep="last" if is_online(method) else "best",
            callback=self._progress())
        if not result.converged:
            warnings.warn(
                f"The outer loop used all outer_steps={self.outer_steps} before the "
                f"{objective.name} stopped improving; raise outer_steps or "
                "outer_learning_rate.", ConvergenceWarning, stacklevel=4)
        return result.params, result.hparams, result.history, result.trained

    def _named_implicit(self, implicit, learned, fixed, data, objective):
        """The named implicit method, set for this fit: the linear tolerance
        (:data:`LINEAR_TOL_FACTOR`), and on the host Newton's method for small
        models, float32 early steps (:data:`FLOAT32_TOL`) for the others' held-out
        losses (not the evidence, whose log-determinant wants float64)."""
        factor = (LINEAR_TOL_FACTOR[_learned_kind(learned)] if is_classifier(self)
                  else 1.0)
        implicit = dataclasses.replace(implicit, linear_tol_factor=factor)
        if implicit.inner_solver != "scipy":
            return implicit
        if (not data.sparse
                and optax.tree.size(fixed["w0"]) <= self._newton_max_params):
            return dataclasses.replace(implicit, inner_solver="host_newton",
                                       linear_solver=Cholesky(), float32_tol=None)
        if objective.reads_training_rows:  # the evidence: a dense log-determinant
            return implicit
        return dataclasses.replace(
            implicit, float32_tol=FLOAT32_TOL * self._gradient_scale(data))

    # ---- pieces of fit ------------------------------------------------------
    def _validate_fit_data(self, X, y, X_val, y_val) -> FitData:
        X, y = validate_data(self, X, y, accept_sparse="csr",
                             dtype=[np.float64, np.float32], y_numeric=False)
        y = self._encode_targets(y, reset=True)
        if (X_val is None) != (y_val is None):
            raise ValueError("Pass both X_val and y_val, or neither.")
        if X_val is not None:
            X_val, y_val = validate_data(self, X_val, y_val, reset=False,
                                         accept_sparse="csr", dtype=np.float64)
            y_val = self._encode_targets(y_val, reset=False)
        return FitData.from_validated(X, y, X_val, y_val,
                                      keep_sparse=self._keeps_sparse_input)

    def _check_learn(self, method):
        implicit = is_implicit(method)
        if implicit and not self._convex:
            raise ValueError(
                f'{type(self).__name__} does not support hypergradient="implicit": '
                "the implicit method differentiates the exact minimizer of a "
                "strongly convex training loss, and this model's is not "
                'convex. Use hypergradient="reverse" (or "forward").')
        learn = check_learn(self.learn, unrolled=not implicit)
        if "momentum" in learn and self.inner_optimizer != "momentum":
            raise ValueError('learn="momentum" needs inner_optimizer="momentum" '
                             f"(heavy ball), got {self.inner_optimizer!r}.")
        return learn

    def _problem(self, objective):
        """The cached bilevel problem of this model and objective."""
        model = self._model()
        return model_problem(model, objective.outer_loss(model), self.inner_optimizer,
                             self.inner_steps)

    def _objective(self, method=None, learn=()):
        if self.objective in ("validation", "auto"):
            return Validation(self.validation_fraction, self.cv,
                              float(self.hyper_penalty))
        if method is not None and not is_implicit(method):
            raise ValueError('objective="evidence" needs hypergradient="implicit": '
                             "the evidence is evaluated at the exact minimizer.")
        if "sample_weight" in learn:
            raise ValueError('objective="evidence" does not learn sample_weight.')
        return Evidence(self._n_outputs, self._n_outputs > 1 and self.fit_intercept)

    def _context(self, method, train: FitData, n_rows) -> Context:
        # the learning rate lr_max * sigmoid(lr_logit) starts at the given (or
        # automatic) rate and stays below twice the larger of it and the auto rate
        if is_implicit(method):
            auto = lr0 = 1.0  # no inner learning rate: skip the spectral norm
        else:
            auto = self._initial_learning_rate(train.X, auto=True)
            lr0 = auto if self.learning_rate == "auto" else float(self.learning_rate)
        lr_max = max(2.0 * lr0, self._max_learning_rate_factor * auto)
        noise_precision = 1.0 / max(float(np.var(train.y)), 1e-12)
        return Context(alpha=float(self.alpha), n_features=train.X.shape[1],
                       n_rows=n_rows, learning_rate=lr0, lr_max=lr_max, momentum=0.9,
                       noise_precision=noise_precision)

    def _initial_learning_rate(self, X, auto):
        if not auto:
            return float(self.learning_rate)
        # 1 / L with L a bound on the data term's curvature (intercept included)
        spectral = _largest_singular_value(X) ** 2 / X.shape[0] if X.size else 1.0
        curvature = self._curvature * (spectral + float(self.fit_intercept))
        curvature += self.alpha / max(X.shape[0], 1)
        scale = 1.0 if self.inner_optimizer != "adam" else 0.02 * curvature
        return scale / curvature

    def _convergence_hint(self, method):
        if is_implicit(method):
            return (f" ({type(self).__name__}: raise alpha or scale the features; "
                    f"inner_tol is {self.inner_tol})")
        return (f" ({type(self).__name__}: raise inner_steps (now "
                f"{self.inner_steps}), tune learning_rate (now "
                f"{self.learning_rate!r}) or change inner_optimizer (now "
                f"{self.inner_optimizer!r}))")

    def _divergence_advice(self, message):
        if is_implicit(resolve_method(self.hypergradient, self.hyper_interval)):
            knob = ("raise alpha, scale the features (StandardScaler), or lower "
                    "outer_learning_rate")
        else:
            knob = f"lower learning_rate (now {self.learning_rate!r}), "
            if self.inner_optimizer != "gd":
                knob += "use inner_optimizer='gd', "
            knob += "or lower outer_learning_rate"
        return f"{message} ({type(self).__name__}: {knob})."

    def _progress(self):
        if not self.verbose:
            return None
        start = time.perf_counter()

        def report(step, hparams, result):
            print(f"[{type(self).__name__}] outer step {step + 1:3d}/"
                  f"{self.outer_steps}  objective {float(result.value):.5f}  "
                  f"elapsed {time.perf_counter() - start:.2f}s", flush=True)

        return report

    def _set_fitted(self, params, hparams, history, trained, context):
        for name in ("setting_", "cv_results_"):  # the evidence recipe's only
            self.__dict__.pop(name, None)
        decoded = decode_hyperparameters(hparams, context)
        self.alpha_ = decoded["alpha_"]
        weights = decoded.get("sample_weight_", np.ones(context.n_rows))
        self.sample_weight_ = np.where(trained, weights, np.nan)
        unrolled = not is_implicit(resolve_method(self.hypergradient,
                                                  self.hyper_interval))
        self.learning_rate_ = decoded["learning_rate_"] if unrolled else np.nan
        if "noise_precision_" in decoded:
            self.noise_precision_ = decoded["noise_precision_"]
        self.momentum_ = (decoded["momentum_"]
                          if unrolled and self.inner_optimizer == "momentum"
                          else np.nan)
        if history is None:
            self.objective_curve_, self.n_iter_ = np.empty(0), 0
            self.hyperparameter_path_ = {}
        else:
            self.objective_curve_ = np.asarray(history["value"])
            self.n_iter_ = len(self.objective_curve_)
            bound = {"lr_max": hparams["lr_max"]}
            path = [decode_hyperparameters({**step, **bound}, context)
                    for step in history["hparams"]]
            self.hyperparameter_path_ = {
                name[:-1]: np.stack([step[name] for step in path]) for name in path[0]}
            if "sample_weight" in self.hyperparameter_path_:
                self.hyperparameter_path_["sample_weight"][:, ~trained] = np.nan
        self._set_model_attributes(params)

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


