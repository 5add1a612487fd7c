"""What every skfarho classifier shares: label encoding, losses and predictions."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets

from skfarho.core.models import binary_log_loss, multinomial_log_loss


class HOClassifierMixin(ClassifierMixin):
    """Binary (logistic) or multinomial (softmax) classification hooks.

    A subclass provides ``_decision(X)``: the model's scores in NumPy, shape
    ``(n_samples, 1)`` or ``(n_samples,)`` for two classes and
    ``(n_samples, n_classes)`` otherwise.
    """

    @property
    def _binary(self):
        return len(self.classes_) == 2

    @property
    def _sample_loss(self):
        return binary_log_loss if self._binary else multinomial_log_loss

    @property
    def _curvature(self):
        return 0.25 if self._binary else 0.5

    @property
    def _n_outputs(self):
        return 1 if self._binary else len(self.classes_)

    def _encode_targets(self, y, reset):
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes; "
                    f"the data contains only one class: {self.classes_[0]!r}.")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y_val has labels not seen in y: {unknown.tolist()}.")
        encoded = np.searchsorted(self.classes_, y)
        return encoded.astype(np.float64) if self._binary else encoded.astype(np.int32)

    def decision_function(self, X):
        """Decision values.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            Scores before the logistic / softmax link; 1-d for two classes.
        """
        scores = self._decision(X)
        return scores.ravel() if self._binary else scores

    def predict_log_proba(self, X):
        """Log of the class probabilities, shape (n_samples, n_classes)."""
        scores = self.decision_function(X)
        if self._binary:
            return np.column_stack([log_expit(-scores), log_expit(scores)])
        return log_softmax(scores, axis=1)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        scores = self.decision_function(X)
        if self._binary:
            positive = expit(scores)
            return np.column_stack([1.0 - positive, positive])
        return softmax(scores, axis=1)

    def predict(self, X):
        """Predicted class labels, shape (n_samples,)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if self._binary else scores.argmax(axis=1)
        return self.classes_[index]
