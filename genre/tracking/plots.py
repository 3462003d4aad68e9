"""Figures logged to MLflow: confusion matrices and t-SNE maps coloured by genre."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # runs on headless machines and in DataLoader-free subprocesses alike
import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from genre.tracking.separation import standardized


def confusion_figure(matrix: np.ndarray, genres: list[str], title: str) -> plt.Figure:
    """Counts with row-normalised shading: rows are true genres, columns predicted ones."""
    size = 2.5 + 0.55 * len(genres)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    ax.set_yticks(range(len(genres)), genres)
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    for i in range(len(genres)):
        for j in range(len(genres)):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                    color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="share of the true genre's tracks")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


EXACT_TSNE_BELOW = 500  # points


def tsne_embedding(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of ``points`` ``(n, dims)``, standardised and reduced by PCA first (see ``standardized``)."""
    points = standardized(points, seed)
    if points.shape[1] == 0 or len(points) < 3:  # identical points, or too few to map: nothing to separate
        return np.zeros((len(points), 2))
    perplexity = float(min(30.0, max(1.0, (len(points) - 1) / 3)))
    # Barnes-Hut crashes (segfault, sklearn 1.9) on a handful of points; exact is cheap below a few hundred
    method = "exact" if len(points) < EXACT_TSNE_BELOW else "barnes_hut"
    return TSNE(n_components=2, perplexity=perplexity, init="pca", method=method,
                random_state=seed).fit_transform(points)


def _scatter_by_genre(coords: np.ndarray, labels: np.ndarray, genres: list[str], title: str) -> tuple:
    fig, ax = plt.subplots(figsize=(8.5, 6))
    colours = plt.get_cmap("tab10" if len(genres) <= 10 else "tab20")
    for k, genre in enumerate(genres):
        chosen = labels == k
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=18, color=colours(k % colours.N), label=genre)
    # beside the axes, not over the points
    ax.legend(fontsize=8, markerscale=1.2, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, ax


def tsne_figure(points: np.ndarray, labels: np.ndarray, genres: list[str], title: str,
                seed: int = 0) -> plt.Figure:
    """Scatter of the t-SNE map of ``points``, one colour per genre."""
    fig, ax = _scatter_by_genre(tsne_embedding(points, seed), labels, genres, title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def pca_projection(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of ``points`` ``(n, dims)`` (centred, not scaled) and the share
    of the variance each explains."""
    points = np.asarray(points)
    centred = points - points.mean(axis=0)
    # identical points (a model that embeds every track alike) leave nothing to explain; their float32
    # mean may be off by rounding, so "identical" is spread at rounding level, not exactly zero
    if len(points) < 2 or np.abs(centred).max() <= 1e-6 * max(float(np.abs(points).max()), 1e-30):
        return np.zeros((len(points), 2)), np.zeros(2)
    pca = PCA(n_components=min(2, *centred.shape)).fit(centred)
    coords, ratio = pca.transform(centred), pca.explained_variance_ratio_
    if coords.shape[1] < 2:  # a single dimension: the second axis explains nothing
        coords, ratio = np.pad(coords, ((0, 0), (0, 1))), np.pad(ratio, (0, 1))
    return coords, ratio


def pca_figure(points: np.ndarray, labels: np.ndarray, genres: list[str], title: str) -> plt.Figure:
    """Scatter of ``points`` on their first two principal components, one colour per genre, with the
    variance each component explains on its axis (the Vink project's picture of MFCC images)."""
    coords, ratio = pca_projection(points)
    fig, ax = _scatter_by_genre(coords, labels, genres, title)
    ax.set_xlabel(f"PC 1 ({ratio[0]:.1%} of the variance)")
    ax.set_ylabel(f"PC 2 ({ratio[1]:.1%} of the variance)")
    fig.tight_layout()
    return fig
