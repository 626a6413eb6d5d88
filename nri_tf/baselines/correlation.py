"""Corr. (path) and Corr. (LSTM): edges from thresholded correlations (paper appendix D.1.1).

For every system, R_ij = C_ij / sqrt(C_ii C_jj) with C_ij the covariance between the
feature vectors of nodes i and j (the whole flattened trajectory for Corr. (path), the
LSTM's last output for Corr. (LSTM)). An edge (of any type) is predicted where R_ij > theta,
or, in the absolute variant, where |R_ij| > theta'. Both thresholds are fitted for
accuracy on the training and validation systems, the better variant is kept, and it is
scored on the test systems.

Labels are reduced to "interacting" (label > 0) versus not, so for springs with 3 edge
types the baseline is scored on edge presence.

Building blocks (plain NumPy):
  correlation_scores     [systems, nodes, features] -> R per edge [systems, edges]
  best_threshold         the threshold with the highest accuracy on given scores/labels
  fit_threshold_rule     raw or absolute correlations, whichever fits better
  ThresholdRule          the fitted rule; ``predict(scores)``, ``accuracy(scores, labels)``
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.contract import edge_labels_from_matrix


def correlation_scores(features: np.ndarray) -> np.ndarray:
    """Pearson correlation between the feature vectors of every ordered node pair.

    Args:
      features: [systems, nodes, features] (e.g. trajectories [systems, nodes, frames,
        dims] flattened over frames and dims).
    Returns:
      [systems, nodes * (nodes - 1)] float64 R_ij in the receiver-major edge order; 0
      where a node's features are constant.
    """
    features = np.asarray(features, np.float64)
    if features.ndim != 3 or features.shape[2] < 2:
        raise ValueError(f"features must be [systems, nodes, features >= 2], got {features.shape}")
    centred = features - features.mean(axis=2, keepdims=True)
    covariance = centred @ centred.transpose(0, 2, 1)                   # [systems, nodes, nodes]
    scale = np.sqrt(np.einsum("sii->si", covariance))
    denominator = scale[:, :, None] * scale[:, None, :]
    correlation = np.divide(covariance, denominator, out=np.zeros_like(covariance),
                            where=denominator > 0)
    return edge_labels_from_matrix(correlation)


def best_threshold(scores: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """The threshold theta maximising the accuracy of "edge iff score > theta".

    Every distinct split of the sorted scores is tried (thresholds halfway between
    neighbouring scores, and below / above all of them).

    Args:
      scores: [n] any shape, flattened.
      targets: same shape, booleans (edge present).
    Returns:
      (theta, accuracy on these scores).
    """
    scores = np.ravel(scores).astype(np.float64)
    targets = np.ravel(targets).astype(bool)
    if scores.size == 0 or scores.size != targets.size:
        raise ValueError(f"need as many targets as scores (> 0), got {scores.size} and {targets.size}")
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_targets = scores[order], targets[order]
    # Threshold after the first k sorted scores (k = 0..n): those k are predicted "no edge".
    negatives_below = np.concatenate([[0], np.cumsum(~sorted_targets)])
    positives_above = targets.sum() - np.concatenate([[0], np.cumsum(sorted_targets)])
    correct = negatives_below + positives_above
    # Only splits between different scores are realisable.
    valid = np.ones(scores.size + 1, bool)
    valid[1:-1] = sorted_scores[1:] > sorted_scores[:-1]
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        theta = sorted_scores[0] - 1.0
    elif k == scores.size:
        theta = sorted_scores[-1]
    else:
        theta = 0.5 * (sorted_scores[k - 1] + sorted_scores[k])
    return float(theta), float(correct[k] / scores.size)


@dataclasses.dataclass(frozen=True)
class ThresholdRule:
    """Edge iff (|score| if ``absolute`` else score) > ``threshold``.

    fit_accuracy: its accuracy on the systems it was fitted on.
    """
    absolute: bool
    threshold: float
    fit_accuracy: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """[..., edges] scores -> int32 0/1 edge presence."""
        values = np.abs(scores) if self.absolute else scores
        return (values > self.threshold).astype(np.int32)

    def accuracy(self, scores: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of edges whose presence (label > 0) the rule gets right."""
        return float(np.mean(self.predict(scores) == (np.asarray(labels) > 0)))


def fit_threshold_rule(scores: np.ndarray, labels: np.ndarray) -> ThresholdRule:
    """Fits theta on raw and theta' on absolute correlations and keeps the better rule.

    Args:
      scores: [systems, edges] from `correlation_scores`.
      labels: [systems, edges] integer edge types (> 0 = interacting).
    """
    targets = np.asarray(labels) > 0
    rules = [ThresholdRule(absolute, *best_threshold(np.abs(scores) if absolute else scores, targets))
             for absolute in (False, True)]
    return max(rules, key=lambda rule: rule.fit_accuracy)
