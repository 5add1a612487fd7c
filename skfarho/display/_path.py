"""The outer loop's path: the outer objective and the hyperparameters per step."""

import numpy as np

from skfarho.display._common import fitted_step, import_pyplot, panel_axes


class HyperparameterPathDisplay:
    """The outer loop's path: outer objective and hyperparameters per outer step.

    One panel for the outer objective, then one per hyperparameter, sharing the
    outer-step axis. A vector hyperparameter (one strength per feature, one
    weight per row) is drawn as one thin line per entry when it has at most
    ``max_lines`` entries, otherwise as a few quantile lines across entries;
    one whose entries are all equal (a shared strength broadcast to every
    feature) as a single line.
    Build it with :meth:`from_estimator`; the constructor only stores the data.

    Parameters
    ----------
    objective : array-like of shape (n_steps,)
        Outer objective at each outer step.
    hyperparameters : dict of str to array-like of shape (n_steps,) or \
(n_steps, k), default=None
        Decoded hyperparameter values at each outer step (e.g. ``"alpha"``,
        ``"sample_weight"``, ``"learning_rate"``).
    objective_name : str, default=None
        Label of the objective axis; ``"outer objective"`` when None.
    estimator_name : str, default=None
        Title of the figure's first panel.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes of the objective.
    axes_ : ndarray of matplotlib Axes
        The objective's axes, then one per hyperparameter.
    figure_ : matplotlib Figure
        Figure holding the axes.
    line_ : matplotlib Line2D
        Line of the objective.
    hyperparameter_lines_ : dict of str to list of matplotlib Line2D
        Lines of each hyperparameter.

    See Also
    --------
    FeatureStrengthDisplay : The learned per-feature strengths.
    SampleWeightDisplay : The learned example weights.

    Examples
    --------
    >>> import numpy as np
    >>> from skfarho.display import HyperparameterPathDisplay
    >>> objective = np.array([0.52, 0.41, 0.37, 0.36])
    >>> alpha = np.array([1.0, 0.3, 0.1, 0.08])
    >>> display = HyperparameterPathDisplay(
    ...     objective=objective, hyperparameters={"alpha": alpha},
    ...     objective_name="validation log-loss").plot()
    >>> display.ax_.get_ylabel(), display.axes_[1].get_yscale()
    ('validation log-loss', 'log')
    """

    def __init__(self, *, objective, hyperparameters=None, objective_name=None,
                 estimator_name=None):
        self.objective = objective
        self.hyperparameters = hyperparameters
        self.objective_name = objective_name
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, log_scale="auto", max_lines=10,
             quantiles=(0.0, 0.1, 0.5, 0.9, 1.0), **kwargs):
        """Draw the path.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            None: a new figure. One Axes: used as is when there is a single
            panel, otherwise its area is split into the panels. A sequence: one
            Axes per panel (objective first).
        log_scale : "auto" or bool, default="auto"
            Logarithmic axes for the hyperparameters; ``"auto"``: for strengths
            (names containing ``"alpha"``).
        max_lines : int, default=10
            Vector hyperparameters with more entries are drawn as quantiles.
        quantiles : tuple of float, default=(0.0, 0.1, 0.5, 0.9, 1.0)
            Quantiles across entries drawn for long vectors (the median bold).
        **kwargs : dict
            Passed to ``Axes.plot`` for the objective line.

        Returns
        -------
        display : HyperparameterPathDisplay
            This display, with ``ax_``, ``axes_``, ``figure_`` and the lines.
        """
        plt = import_pyplot(f"{type(self).__name__}.plot")
        objective = np.asarray(self.objective, dtype=float).ravel()
        if objective.size == 0:
            raise ValueError("The path has no outer steps (n_iter_ == 0: no "
                             "hyperparameter was learned).")
        hyperparameters = dict(self.hyperparameters or {})
        self.figure_, self.axes_ = panel_axes(
            plt, ax, 1 + len(hyperparameters), vertical=True, panel_size=(6.4, 2.4))
        self.ax_ = self.axes_[0]
        steps = np.arange(1, objective.size + 1)
        self.line_, = self.ax_.plot(steps, objective, **{"marker": ".", **kwargs})
        self.ax_.set_ylabel(self.objective_name or "outer objective")
        if self.estimator_name:
            self.ax_.set_title(self.estimator_name)
        self.hyperparameter_lines_ = {}
        for axes, (name, values) in zip(self.axes_[1:], hyperparameters.items(),
                                        strict=True):
            self.hyperparameter_lines_[name] = _draw_hyperparameter(
                axes, name, np.asarray(values, dtype=float), max_lines, quantiles)
            if log_scale is True or (log_scale == "auto" and "alpha" in name):
                axes.set_yscale("log")
        self.axes_[-1].set_xlabel("outer step")
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Draw the outer loop's path of a fitted estimator.

        Reads ``objective_curve_``, ``hyperparameter_path_`` and
        ``objective_name_`` when present. Rows whose ``sample_weight_`` is NaN
        (never trained on) are left out of the ``"sample_weight"`` path.

        Parameters
        ----------
        estimator : estimator or Pipeline
            A fitted skfarho estimator, or a pipeline ending in one.
        ax : matplotlib Axes or array-like of Axes, default=None
            See :meth:`plot`.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : HyperparameterPathDisplay

        Examples
        --------
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skfarho import HOLogisticRegression
        >>> from skfarho.display import HyperparameterPathDisplay
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> model = make_pipeline(StandardScaler(), HOLogisticRegression(
        ...     outer_steps=5, random_state=0)).fit(X, y)
        >>> display = HyperparameterPathDisplay.from_estimator(model)
        >>> len(display.line_.get_ydata()) == model[-1].n_iter_
        True
        """
        step = fitted_step(estimator, ["objective_curve_"])
        display = cls(objective=step.objective_curve_,
                      hyperparameters=_trained_rows_only(step),
                      objective_name=getattr(step, "objective_name_", None),
                      estimator_name=type(step).__name__)
        return display.plot(ax=ax, **kwargs)


def _trained_rows_only(step):
    """``hyperparameter_path_`` with NaN weights for the rows never trained on."""
    path = dict(getattr(step, "hyperparameter_path_", None) or {})
    weights = getattr(step, "sample_weight_", None)
    if "sample_weight" in path and weights is not None:
        values = np.array(path["sample_weight"], dtype=float)
        if values.ndim == 2 and values.shape[1] == np.size(weights):
            values[:, np.isnan(weights)] = np.nan
            path["sample_weight"] = values
    return path


def _draw_hyperparameter(axes, name, values, max_lines, quantiles):
    """Lines of one hyperparameter's path on ``axes``; returns them."""
    values = values.reshape(len(values), -1)
    steps = np.arange(1, len(values) + 1)
    axes.set_ylabel(name)
    if np.all((values == values[:, :1]) | np.isnan(values)):  # a scalar, broadcast
        return axes.plot(steps, values[:, 0], marker=".")
    if values.shape[1] <= max_lines:
        lines = axes.plot(steps, values, linewidth=0.8)
        for j, line in enumerate(lines):
            line.set_label(f"{name}[{j}]")
    else:
        lines = []
        for q in quantiles:
            line, = axes.plot(steps, np.nanquantile(values, q, axis=1),
                              color="C0", linewidth=2.0 if q == 0.5 else 1.0,
                              linestyle=_quantile_style(q))
            line.set_label(_quantile_label(q))
            lines.append(line)
        n_values = int(np.isfinite(values).sum(axis=1).max())
        axes.set_ylabel(f"{name}\n(quantiles of {n_values})")
    axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return lines


def _quantile_style(q):
    return "-" if q == 0.5 else ":" if q in (0.0, 1.0) else "--"


def _quantile_label(q):
    return {0.0: "min", 0.5: "median", 1.0: "max"}.get(q, f"{100 * q:g}%")
