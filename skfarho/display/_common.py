"""What the displays share: matplotlib imported lazily, panels, row masks, and the
fitted step of an estimator or pipeline."""

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline


def import_pyplot(caller):
    """``matplotlib.pyplot``, imported when a display draws.

    Parameters
    ----------
    caller : str
        Name of the drawing function, for the error message.

    Returns
    -------
    module
        ``matplotlib.pyplot``.

    Raises
    ------
    ImportError
        When matplotlib is not installed; names the ``plot`` extra.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"{caller} requires matplotlib: pip install 'skfarho[plot]' "
            "(or pip install matplotlib).") from error
    return plt


def panel_axes(plt, ax, n_panels, *, vertical, panel_size):
    """The figure and ``n_panels`` axes to draw on.

    ``ax=None`` makes a new figure; one Axes is used as is for one panel, or, as
    scikit-learn's ``PartialDependenceDisplay`` does, turned off and its area
    split into the panels; a sequence of Axes must hold one per panel.

    Parameters
    ----------
    plt : module
        ``matplotlib.pyplot``.
    ax : matplotlib Axes, array-like of Axes or None
        Where to draw.
    n_panels : int
        Number of panels.
    vertical : bool
        Stack panels vertically (sharing the x axis) rather than side by side.
    panel_size : tuple of float
        (width, height) in inches of one panel of a new figure.

    Returns
    -------
    figure : matplotlib Figure
    axes : ndarray of Axes of shape (n_panels,)
    """
    shape = (n_panels, 1) if vertical else (1, n_panels)
    if ax is None:
        width, height = panel_size
        figure, axes = plt.subplots(*shape, squeeze=False, sharex=vertical,
                                    figsize=(width * shape[1], height * shape[0]),
                                    layout="constrained")
        return figure, axes.ravel()
    if isinstance(ax, plt.Axes):
        if n_panels == 1:
            return ax.figure, np.array([ax], dtype=object)
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError(f"This display draws {n_panels} panels: pass an Axes "
                             "from a subplot grid (its area is split), or "
                             f"{n_panels} Axes.")
        ax.set_axis_off()
        axes = [ax.figure.add_subplot(cell) for cell in spec.subgridspec(*shape)]
        return ax.figure, np.array(axes, dtype=object)
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.size != n_panels:
        raise ValueError(f"This display draws {n_panels} panels; ax holds "
                         f"{axes.size} Axes.")
    return axes[0].figure, axes


def row_mask(indices, n, name):
    """A boolean mask of length ``n`` from a mask or integer indices.

    Parameters
    ----------
    indices : array-like of bool of shape (n,) or of int, or None
        Mask or indices (``None`` is passed through).
    n : int
        Length of the mask.
    name : str
        Name of the argument, for error messages.

    Returns
    -------
    mask : ndarray of bool of shape (n,) or None

    Examples
    --------
    >>> row_mask([0, 2], 4, "relevant")
    array([ True, False,  True, False])
    """
    if indices is None:
        return None
    indices = np.asarray(indices)
    if indices.dtype == bool:
        if indices.shape != (n,):
            raise ValueError(f"{name} as a boolean mask must have shape ({n},), "
                             f"got {indices.shape}.")
        return indices
    if indices.size and not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{name} must be a boolean mask or integer indices, got "
                         f"dtype {indices.dtype}.")
    mask = np.zeros(n, dtype=bool)
    mask[indices.astype(np.intp)] = True
    return mask


def fitted_step(estimator, attributes):
    """The estimator (or a pipeline's final step), checked to be fitted.

    Parameters
    ----------
    estimator : object or Pipeline
        A fitted estimator (any object with the fitted attributes), or a
        pipeline ending in one.
    attributes : list of str
        Fitted attributes of which at least one must be present.

    Returns
    -------
    step : object
        The estimator that holds the fitted attributes.

    Raises
    ------
    NotFittedError
        When the step has none of ``attributes``.
    """
    step = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if not any(hasattr(step, name) for name in attributes):
        raise NotFittedError(
            f"This {type(step).__name__} instance has no {' or '.join(attributes)}: "
            "fit it before drawing what it learned.")
    return step


def input_feature_names(estimator, step):
    """Names of the features ``step`` was fitted on, or None.

    ``feature_names_in_`` of the step; for a pipeline without it, the names that
    the preceding steps output (``get_feature_names_out``) when they tell them.
    """
    names = getattr(step, "feature_names_in_", None)
    if names is None and step is not estimator:
        try:
            names = estimator[:-1].get_feature_names_out()
        except AttributeError:  # a step that does not tell its output names
            names = None
    return names
