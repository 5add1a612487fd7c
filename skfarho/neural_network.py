"""HOMLPClassifier: a one-hidden-layer network that learns its hyperparameters.

The deep-learning side of FAR-HO: weight decay (one strength, or one per input
feature), per-example weights and the learning rate of ``inner_steps`` steps of
gradient descent, learned by reverse- (or forward-) mode hypergradients through
the unrolled training. The training loss of a network is not convex, so the
implicit method (which differentiates an exact minimizer) does not apply.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.special import expit
from sklearn.utils._param_validation import Interval, StrOptions

from skfarho._base import GradientHOEstimator
from skfarho._classifier import HOClassifierMixin
from skfarho.core.models import ACTIVATIONS, mlp

# the predictions' NumPy twins of core.models.ACTIVATIONS
_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "logistic": expit,
    "identity": lambda z: z,
}
# bound on the activation's derivative, for learning_rate="auto"
_SLOPE = {"tanh": 1.0, "relu": 1.0, "logistic": 0.25, "identity": 1.0}


class HOMLPClassifier(HOClassifierMixin, GradientHOEstimator):
    """One-hidden-layer neural network classifier that learns its weight decay,
    example weights or learning rate by hypergradient descent.

    The inner problem trains the network ``act(X W1 + b1) W2 + b2`` (logistic
    output for two classes, softmax otherwise) by ``inner_steps`` steps of
    ``inner_optimizer`` on the (weighted) mean log-loss plus
    ``alpha / (2 n) (||W1||^2 + ||W2||^2)`` (``MLPClassifier``'s objective),
    from a Glorot initialization drawn with ``random_state``. The outer problem
    minimizes the validation log-loss of the trained network over the
    hyperparameters in ``learn``, differentiating through the unrolled training
    (``hypergradient="reverse"``, FAR-HO's ``ReverseHG``, or ``"forward"``) or
    online (``"rtho"``, ``"trho"``).

    Parameters
    ----------
    hidden_layer_size : int, default=32
        Number of hidden units.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        Hidden-layer non-linearity.
    learn : tuple of str, default=("alpha",)
        Hyperparameters learned by hypergradient descent, among ``"alpha"`` (the
        weight decay), ``"feature_alpha"`` (one weight decay per input feature
        on its first-layer weights; the output layer gets their mean),
        ``"sample_weight"`` (one weight in ``(0, 1)`` per training row) and
        ``"learning_rate"`` (the inner learning rate) and ``"momentum"`` (with
        ``inner_optimizer="momentum"``). ``()`` trains the network with the
        given hyperparameters.
    alpha : float, default=1.0
        Initial (or fixed) weight decay: the inner objective is the mean loss
        plus ``alpha / (2 n)`` times the squared weights (biases excluded).
    fit_intercept : bool, default=True
        Give both layers biases (never decayed).
    hypergradient : {"reverse", "forward", "rtho", "trho"}, default="reverse"
        How the hypergradient is computed: backpropagation through the
        ``inner_steps`` steps (memory grows with ``inner_steps``); forward
        mode (memory independent of ``inner_steps``, time proportional to the
        number of scalar hyperparameters: keep it for ``"alpha"`` and
        ``"learning_rate"``); or the online ``"rtho"`` / ``"trho"``, which keep
        training across outer steps and update the hyperparameters every
        ``hyper_interval`` inner steps. ``"implicit"`` is rejected: the training
        loss of a network is not convex.
    hyper_interval : int, default=10
        Inner steps per outer step of the online methods.
    validation_fraction : float, default=0.25
        Fraction of the rows held out (stratified) for the outer objective when
        ``cv`` is None and no ``X_val`` is given. When that would hold out
        fewer than 500 rows, 5-fold CV is used instead (the mean loss of fewer
        rows is too noisy to tune on).
    cv : int, cross-validation generator or iterable, default=None
        If set, the outer objective is the mean validation loss over these
        folds, trained ``vmap``-ed in one compiled program.
    outer_steps : int, default=50
        Budget of outer (hyperparameter) steps.
    outer_optimizer : {"auto", "rprop_secant", "rprop", "adam", "sgd", \
"rmsprop"} or \
optax.GradientTransformation, default="auto"
        Optimizer of the hyperparameters (log space for weight decays, logit
        space for example weights, the learning rate and the momentum).
        ``"auto"``: :func:`skfarho.core.rprop_secant` for one scalar,
        ``optax.rprop`` for several, Adam for per-feature or per-example ones.
    outer_learning_rate : float, default=0.2
        Step size (rprop: initial step size) of a named ``outer_optimizer``.
    tol : float, default=1e-4
        Relative improvement of the validation loss below which an outer step
        counts as no improvement.
    n_iter_no_change : int, default=5
        Stop after this many outer steps without improvement; the
        hyperparameters with the lowest validation loss are kept. With
        ``rprop_secant`` (``"auto"`` for one scalar), the outer loop also
        stops when a step would move it by less than 0.01 in log space.
    hyper_penalty : float, default=0.0
        Adds ``hyper_penalty * var(log alpha)`` to the outer objective.
    inner_steps : int, default=200
        Training steps of the network (in every hypergradient and in the final
        fit).
    inner_optimizer : {"gd", "momentum", "adam"}, default="gd"
        Training dynamics (Adam's epsilon inside the square root, so that it
        stays differentiable).
    learning_rate : "auto" or float, default="auto"
        Initial inner learning rate. ``"auto"``: for ``"gd"`` and
        ``"momentum"``, ``1 / L`` with ``L`` a Gauss-Newton bound on the
        curvature of the loss at a Glorot initialization; for ``"adam"``, 0.01.
        A learned rate stays below the larger of twice the initial rate and 4
        times the automatic one.
    inner_tol : float, default=1e-6
        Unused by the unrolled methods; kept for the common interface.
    refit : bool, default=True
        Retrain on all rows with the learned hyperparameters, starting from the
        network trained on the training split (averaged over folds); otherwise
        keep that network.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split and the initial weights.
    verbose : int, default=0
        Print outer-loop progress.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coefs_ : list of ndarray
        ``[W1 (n_features, hidden_layer_size), W2 (hidden_layer_size,
        n_outputs_)]``, as in ``MLPClassifier``.
    intercepts_ : list of ndarray
        ``[b1 (hidden_layer_size,), b2 (n_outputs_,)]``.
    n_layers_ : int
        Number of layers (3: input, hidden, output).
    n_outputs_ : int
        1 for two classes, otherwise the number of classes.
    out_activation_ : str
        ``"logistic"`` or ``"softmax"``.
    alpha_ : ndarray of shape (n_features,)
        Learned weight decays (constant when only ``"alpha"`` is learned).
    sample_weight_ : ndarray of shape (n_samples,)
        Learned example weights aligned with the rows given to ``fit``; NaN for
        rows never used for training; ones when not learned.
    learning_rate_ : float
        The (learned) inner learning rate.
    objective_curve_ : ndarray of shape ``(n_iter_,)``
        Outer objective at each outer step.
    n_iter_ : int
        Number of outer steps taken.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape ``(n_features_in_,)``
        Names of features seen during fit, when ``X`` has string column names.

    See Also
    --------
    skfarho.HOLogisticRegression : The linear model, with the implicit method.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skfarho.neural_network import HOMLPClassifier
    >>> X, y = make_moons(200, noise=0.2, random_state=0)
    >>> model = make_pipeline(
    ...     StandardScaler(),
    ...     HOMLPClassifier(learn=("alpha", "learning_rate"), outer_steps=15,
    ...                     random_state=0)).fit(X, y)
    >>> model.score(X, y) > 0.9
    True
    >>> [w.shape for w in model[-1].coefs_]
    [(2, 32), (32, 1)]
    """

    # the Gauss-Newton bound behind learning_rate="auto" sums the two layers'
    # bounds at the initialization: a learned rate may go up to 4 times it
    _max_learning_rate_factor = 4.0

    _parameter_constraints: dict = {
        **GradientHOEstimator._parameter_constraints,
        "hidden_layer_size": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
    }

    def __init__(self, *, hidden_layer_size=32, activation="tanh", learn=("alpha",),
                 alpha=1.0, fit_intercept=True, hypergradient="reverse",
                 hyper_interval=10, validation_fraction=0.25, cv=None, outer_steps=50,
                 outer_optimizer="auto", outer_learning_rate=0.2, tol=1e-4,
                 n_iter_no_change=5, hyper_penalty=0.0, inner_steps=200,
                 inner_optimizer="gd", learning_rate="auto", inner_tol=1e-6,
                 refit=True, random_state=None, verbose=0):
        super().__init__(
            learn=learn, alpha=alpha, fit_intercept=fit_intercept,
            hypergradient=hypergradient, hyper_interval=hyper_interval,
            validation_fraction=validation_fraction,
            cv=cv, outer_steps=outer_steps, outer_optimizer=outer_optimizer,
            outer_learning_rate=outer_learning_rate, tol=tol,
            n_iter_no_change=n_iter_no_change, hyper_penalty=hyper_penalty,
            inner_steps=inner_steps, inner_optimizer=inner_optimizer,
            learning_rate=learning_rate, inner_tol=inner_tol, refit=refit,
            random_state=random_state, verbose=verbose)
        self.hidden_layer_size = hidden_layer_size
        self.activation = activation

    # ---- model hooks --------------------------------------------------------
    _convex = False  # no implicit method: a network's training loss is not convex
    objective = "validation"  # the evidence needs the implicit method: not a parameter

    def _model(self):
        # Glorot-uniform weights and biases, as MLPClassifier draws them; equal
        # models share the cached problem and its compiled programs
        return mlp(self.hidden_layer_size, self.activation, self._sample_loss,
                   self.fit_intercept)

    def _initial_learning_rate(self, X, auto):
        if not auto:
            return float(self.learning_rate)
        if self.inner_optimizer == "adam":
            return 0.01
        # Gauss-Newton bound: curvature <= c * (||[H, 1]||^2 + ||[X, 1]||^2 *
        # max_i ||W2 * act'(a_i)||^2) / n at a Glorot initialization
        n_samples = max(X.shape[0], 1)
        params = self._model().init(X.shape[1], self._n_outputs,
                                    np.random.RandomState(0))
        hidden = _NUMPY_ACTIVATIONS[self.activation](X @ params["W1"]
                                                     + params.get("b1", 0.0))
        ones = np.ones((X.shape[0], 1))
        output_block = np.linalg.norm(np.hstack([hidden, ones]), 2) ** 2
        W2 = params["W2"].reshape(self.hidden_layer_size, -1)
        slope = _SLOPE[self.activation] * np.linalg.norm(W2, 2)
        hidden_block = np.linalg.norm(np.hstack([X, ones]), 2) ** 2 * slope**2
        curvature = self._curvature * (output_block + hidden_block) / n_samples
        curvature += self.alpha / n_samples
        return 1.0 / curvature

    def _set_model_attributes(self, params):
        W1, W2 = params["W1"], params["W2"]
        n_outputs = 1 if W2.ndim == 1 else W2.shape[1]
        self.coefs_ = [W1, W2.reshape(-1, n_outputs)]
        self.intercepts_ = [params.get("b1", np.zeros(W1.shape[1])),
                            np.atleast_1d(params.get("b2", np.zeros(n_outputs)))]
        self.n_layers_ = 3
        self.n_outputs_ = n_outputs
        self.out_activation_ = "logistic" if n_outputs == 1 else "softmax"

    # ---- predictions (NumPy) ------------------------------------------------
    def _decision(self, X):
        X = self._validate_for_predict(X)
        act = _NUMPY_ACTIVATIONS[self.activation]
        hidden = act(np.asarray(X @ self.coefs_[0]) + self.intercepts_[0])
        return hidden @ self.coefs_[1] + self.intercepts_[1]
