"""HOLogisticRegression and HORidge: the losses and predictions, nothing else."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin

from skfarho._base import NEWTON_MAX_PARAMS, GradientHOEstimator
from skfarho._classifier import HOClassifierMixin
from skfarho.core.models import linear_model, squared_loss


class _LinearModel:
    """The linear model's hooks shared by the classifier and the regressor."""

    _supports_relevance = True  # learn="feature_alpha" runs skfarho._relevance
    _keeps_sparse_input = True  # X @ coef takes a core.sparse.SparseMatrix

    def _model(self):
        return linear_model(self._sample_loss, self.fit_intercept)

    def _set_model_attributes(self, params):
        coef = params["coef"]
        self.coef_ = coef.T if coef.ndim == 2 else self._shape_coef(coef)
        intercept = params.get("intercept", np.zeros(coef.shape[1:]))
        self.intercept_ = self._shape_intercept(intercept)

    def _decision(self, X):
        X = self._validate_for_predict(X)
        return np.asarray(X @ self.coef_.T + self.intercept_)

_PARAMETERS_DOC = """
    Parameters
    ----------
    learn : tuple of str, default=("alpha",)
        Hyperparameters learned by hypergradient descent, among ``"alpha"`` (one
        L2 strength), ``"feature_alpha"`` (one L2 strength per feature),
        ``"sample_weight"`` (one weight in ``(0, 1)`` per training row; for
        :class:`HOLogisticRegression` this finds mislabeled rows: each row's
        weight is ranked by the exact hypergradient of a 5-fold cross-fitted,
        noise-tolerant outer loss (mean absolute error of the held-out
        probabilities of the given labels; ``X_val, y_val`` if given are
        trusted rows), the number of issues is estimated by the confident
        joint of the out-of-fold probabilities, and the final model learns its
        ``alpha`` on the kept rows (and ``X_val``); see
        :ref:`label-noise`) and
        ``"learning_rate"`` and ``"momentum"`` (of the inner dynamics;
        unrolled and online methods only; ``"momentum"`` with
        ``inner_optimizer="momentum"``).
        ``()`` fits the model with the given hyperparameters.
    alpha : float, default=1.0
        Initial (or fixed) L2 strength. The inner objective is the (weighted)
        mean loss plus ``alpha / (2 n) ||coef||^2``.
    fit_intercept : bool, default=True
        Fit an unpenalized intercept.
    objective : {"auto", "validation", "evidence"}, default="auto"
        What the outer loop minimizes. ``"validation"``: the mean loss of
        held-out rows (``validation_fraction``, ``cv`` or ``X_val``).
        ``"evidence"``: the negative log marginal likelihood of the model on
        the training rows (type-II maximum likelihood, as scikit-learn's
        ``ARDRegression``; Laplace's approximation for the classifier, exact
        with a learned noise precision ``noise_precision_`` for ridge), with
        the exact implicit hypergradient. With ``learn="feature_alpha"`` (and
        nothing else) the linear models run the evidence recipe of
        :ref:`validation-overfitting`: per-feature strengths maximize the
        evidence (L-BFGS-B on the implicit hypergradient, at most 64 screened
        features when ``n_samples >= n_features``), and ``cv`` folds (5 when
        None; fewer if a class has fewer rows) choose between them, the same
        with weak features dropped (``alpha_`` is ``inf`` there) and one
        strength for all; see
        ``setting_`` and ``cv_results_``. Costs a dense Hessian per
        evaluation, ``O(n p^2 + p^3)`` for ``p`` coefficients, up to 4096
        (see :mod:`skfarho.core.evidence`); on sparse or wider ``X``, with
        ``n_features >= n_samples`` and for more than two classes, the
        recipe uses the diagonal of the Hessian instead (MacKay's fixed
        point, memory ``O(nnz)``; exact posterior variances for the squared
        loss on dense ``X``: :mod:`skfarho._relevance_sparse`), and other
        ``learn`` values refuse them. ``"auto"``: that recipe
        for ``learn="feature_alpha"`` with the implicit method and no
        ``X_val``, ``"validation"`` otherwise.
    hypergradient : {"implicit", "reverse", "forward", "rtho", "trho"}, \
default="implicit"
        ``"implicit"`` (HOAG: SciPy's L-BFGS-B to a tightening tolerance, then
        conjugate gradient on small jitted JAX functions on CPU,
        :class:`~skfarho.core.HostImplicit`; the traced
        :class:`~skfarho.core.Implicit` on accelerators) differentiates the
        exact minimizer;
        ``"reverse"`` and ``"forward"`` differentiate ``inner_steps`` steps of
        ``inner_optimizer``; the online ``"rtho"`` (forward) and ``"trho"``
        (truncated reverse) keep training across outer steps and update the
        hyperparameters every ``hyper_interval`` inner steps; the final fit
        then runs ``inner_steps``. Any method object of :mod:`skfarho.core`
        (``Reverse(truncate=20)``, ``Implicit(Cholesky())``, ...) is accepted
        too; it is batched over the folds.
    hyper_interval : int, default=10
        Inner steps per outer step of the online methods.
    validation_fraction : float, default=0.25
        Fraction of the rows held out (stratified for classifiers) for the
        outer objective when ``cv`` is None and no ``X_val`` is given. When
        that would hold out fewer than 500 rows, 5-fold CV is used instead
        (the mean loss of fewer rows is too noisy to tune on; the folds are
        solved together).
    cv : int, cross-validation generator or iterable, default=None
        If set, the outer objective is the mean validation loss over these
        folds, whose inner problems are solved together. An int means
        scikit-learn's ``StratifiedKFold`` (classifiers) or ``KFold``,
        unshuffled, as in ``GridSearchCV``: the 5-fold default of small data
        sets (see ``validation_fraction``) too.
    outer_steps : int, default=50
        Budget of outer (hyperparameter) steps.
    outer_optimizer : {"auto", "rprop_secant", "rprop", "adam", "sgd", \
"rmsprop"} or \
optax.GradientTransformation, default="auto"
        Optimizer of the hyperparameters, which live in log space (strengths),
        logit space (weights, learning rate). ``"auto"``: for one scalar
        (``alpha``), :func:`skfarho.core.rprop_secant` (its step grows while
        the hypergradient's sign holds, so ``alpha`` crosses orders of
        magnitude in a few steps, then secant steps inside the bracket); for
        several scalars ``optax.rprop``; Adam for per-feature or per-example
        hyperparameters.
    outer_learning_rate : float, default=0.2
        Step size (rprop: initial step size) of a named ``outer_optimizer``.
    tol : float, default=1e-4
        Relative improvement of the validation loss below which a step counts
        as no improvement.
    n_iter_no_change : int, default=5
        Stop after this many outer steps without improvement; the
        hyperparameters with the lowest validation loss are kept. With
        ``rprop_secant`` (``"auto"`` for one scalar), the outer loop also
        stops when a step would move it by less than 0.01 in log space.
    hyper_penalty : float, default=0.0
        Adds ``hyper_penalty * var(log alpha)`` to the outer objective: shrinks
        per-feature strengths toward their mean against validation overfitting.
    inner_steps : int, default=200
        Inner steps of the unrolled methods (and of the final fit with them).
    inner_optimizer : {"gd", "momentum", "adam"}, default="gd"
        Inner dynamics of the unrolled methods.
    learning_rate : "auto" or float, default="auto"
        Initial inner learning rate; ``"auto"`` is ``1 / L`` for a bound ``L``
        on the curvature (``0.02`` for Adam). A learned rate is
        ``lr_max * sigmoid(z)``: it stays in ``(0, lr_max)``, ``lr_max`` being
        the larger of twice the initial rate and 10 (logistic regression, whose
        curvature bound is loose) or 2 (ridge: the stability limit of gradient
        descent) times the automatic rate.
    inner_tol : float, default=1e-6
        Final inner tolerance (gradient norm) of the implicit method; for
        ``HORidge``, in units of the standard deviation of ``y``.
    refit : bool, default=True
        Refit on all rows with the learned hyperparameters. Otherwise keep the
        model trained on the training split (averaged over folds).
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split.
    verbose : int, default=0
        Print outer-loop progress (step, validation loss, elapsed time).
"""

_ATTRIBUTES_DOC = """
    alpha_ : ndarray of shape (n_features,)
        Learned L2 strengths (constant when only ``"alpha"`` is learned;
        ``inf`` for a feature the evidence recipe dropped).
    sample_weight_ : ndarray of shape (n_samples,)
        Learned example weights aligned with the rows given to ``fit``; NaN for
        rows never used for training; ones when not learned.
    learning_rate_ : float
        The (learned) inner learning rate; NaN with the implicit method, which
        has none.
    momentum_ : float
        The inner heavy-ball momentum (``inner_optimizer="momentum"`` with an
        unrolled method); NaN otherwise.
    objective_curve_ : ndarray of shape ``(n_iter_,)``
        Outer objective (validation loss) at each outer step.
    hyperparameter_path_ : dict of ndarray
        For each learned hyperparameter (``"alpha"``, ``"sample_weight"``,
        ``"learning_rate"``, ``"momentum"``), its decoded value at each outer
        step, shape ``(n_iter_, ...)``.
    n_iter_ : int
        Number of outer steps taken (evidence recipe: evaluations of the final
        evidence maximization; 0 when one strength was chosen).
    setting_ : str
        Evidence recipe only (``learn="feature_alpha"``, see ``objective``):
        the candidate the folds chose, ``"single"`` (one strength for all
        features), ``"ard"`` (the evidence's per-feature strengths) or
        ``"tau=t"`` (the same, features with a posterior ``|mean| / sd`` at most
        ``t`` dropped).
    cv_results_ : dict of ndarray
        Evidence recipe only: ``"setting"``, ``"mean_test_loss"`` and
        ``"std_test_loss"`` (held-out mean loss over the folds) per candidate.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape ``(n_features_in_,)``
        Names of features seen during fit, when ``X`` has string column names.
"""


class HOLogisticRegression(HOClassifierMixin, _LinearModel, GradientHOEstimator):
    __doc__ = (
        """Logistic regression (binary or multinomial) that learns its
    regularization, example weights or learning rate by hypergradient descent.

    With ``learn=()`` it fits ``LogisticRegression(C=1/alpha)``.
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients.
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts.""" + _ATTRIBUTES_DOC + """
    label_quality_ : ndarray of shape (n_samples,)
        With ``learn="sample_weight"``: per training row, the quality of its
        label in ``[0, 1]`` (higher: more likely correct; cleanlab's
        convention). ``sample_weight_`` is a step of it, below 0.5 exactly on
        ``label_issues_``.
    label_issues_ : ndarray of shape (n_samples,), dtype bool
        With ``learn="sample_weight"``: the rows flagged as mislabeled (the
        final model is trained without them), as cleanlab's
        ``find_label_issues`` returns them.
    label_proba_ : ndarray of shape (n_samples, n_classes)
        With ``learn="sample_weight"``: out-of-fold predicted probabilities of
        the detection models (``cleanlab.filter.find_label_issues(y,
        label_proba_)`` takes them as they are).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skfarho import HOLogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(),
    ...                       HOLogisticRegression(random_state=0)).fit(X, y)
    >>> model.score(X, y) > 0.95
    True
    >>> model[-1].alpha_.shape
    (30,)
    """)

    # the logistic curvature bound (1/4) is loose away from the decision boundary
    _max_learning_rate_factor = 10.0
    _detects_label_issues = True

    def _shape_coef(self, coef):
        return coef[None, :]

    def _shape_intercept(self, intercept):
        return np.atleast_1d(intercept)


class HORidge(RegressorMixin, _LinearModel, GradientHOEstimator):
    __doc__ = (
        """Ridge regression that learns its regularization, example weights or
    learning rate by hypergradient descent.

    The inner objective ``mean(0.5 (y - X w - b)^2) + alpha / (2 n) ||w||^2`` has
    the minimizer of ``Ridge(alpha=alpha)``.
    """ + _PARAMETERS_DOC + """
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Coefficients.
    intercept_ : float
        Intercept.""" + _ATTRIBUTES_DOC + """
    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skfarho import HORidge
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = HORidge(learn=("alpha",), random_state=0).fit(X, y)
    >>> model.score(X, y) > 0.45
    True
    """)

    _sample_loss = staticmethod(squared_loss)
    _curvature = 1.0
    _n_outputs = 1
    _newton_max_params = NEWTON_MAX_PARAMS

    def _gradient_scale(self, data):
        scale = float(np.std(data.y))
        return scale if np.isfinite(scale) and scale > 0 else 1.0

    def _encode_targets(self, y, reset):
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"HORidge expects a 1-d y, got shape {y.shape}.")
        return y

    def _shape_coef(self, coef):
        return coef

    def _shape_intercept(self, intercept):
        return float(intercept)

    def predict(self, X):
        """Predicted values."""
        return self._decision(X)
