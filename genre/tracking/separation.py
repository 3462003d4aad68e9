"""How well genres separate in a feature space, as numbers: the mel-vs-MFCC claim made measurable."""
from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.neighbors import NearestNeighbors


def standardized(points: np.ndarray, seed: int = 0, max_dims: int = 50) -> np.ndarray:
    """Flattened, per-dimension standardised points (constant dimensions dropped), PCA to ``max_dims``."""
    points = points.reshape(len(points), -1).astype(np.float64)
    spread = points.std(0)
    varying = spread > 1e-8
    points = (points[:, varying] - points.mean(0)[varying]) / spread[varying]
    if points.shape[1] > max_dims and len(points) > max_dims:
        points = PCA(n_components=max_dims, random_state=seed).fit_transform(points)
    return points


def separation_scores(points: np.ndarray, labels: np.ndarray, k: int = 5) -> dict[str, float]:
    """``silhouette`` (-1..1, by genre), ``knn_acc`` (leave-one-out k-NN accuracy) and ``knn_k`` (the k
    used: ``k``, or less when the smallest genre has ``k`` points or fewer) of ``points``.

    Both are computed on :func:`standardized` points; NaN when there are too few points or genres.
    """
    labels = np.asarray(labels)
    points = standardized(points)
    if len(np.unique(labels)) < 2 or len(points) <= len(np.unique(labels)) or points.shape[1] == 0:
        return {"silhouette": float("nan"), "knn_acc": float("nan"), "knn_k": float("nan")}
    # k is capped below the smallest genre's size, or a vote can never go to a point's own genre
    neighbours = max(1, min(k, int(np.bincount(np.unique(labels, return_inverse=True)[1]).min()) - 1))
    _, index = NearestNeighbors(n_neighbors=neighbours + 1).fit(points).kneighbors(points)
    votes = labels[index[:, 1:]]  # column 0 is the point itself
    predicted = np.array([np.bincount(row).argmax() for row in votes])
    return {"silhouette": float(silhouette_score(points, labels)), "knn_acc": float((predicted == labels).mean()),
            "knn_k": float(neighbours)}
