import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from genre.data.clips import window_starts
from genre.models.cnn3 import CNN3
from genre.models.module import aggregate_tracks


@pytest.mark.parametrize("input_shape", [(128, 251), (13, 251), (40, 1001), (96, 130), (5, 20), (1, 8)])
def test_cnn3_fits_any_input_shape(input_shape):
    net = CNN3(input_shape, n_classes=10, channels=(8, 16, 16), hidden=32)
    x = torch.randn(4, 1, *input_shape)
    assert net(x).shape == (4, 10)
    assert net.embed(x).shape == (4, 32)


@pytest.mark.parametrize("input_shape", [(128, 130), (13, 251), (96, 1001), (2, 9)])
def test_resnet_fits_any_input_shape_and_clip_length(input_shape):
    from genre.models.resnet import ShortChunkResNet

    net = ShortChunkResNet(input_shape, n_classes=8, channels=(8, 8, 16), hidden=24).eval()
    x = torch.randn(3, 1, *input_shape)
    assert net(x).shape == (3, 8) and net.embed(x).shape == (3, 24)
    longer = torch.randn(3, 1, input_shape[0], input_shape[1] * 2)   # global pooling: any length
    assert net(longer).shape == (3, 8)


def test_cnn3_is_three_conv_pool_blocks_then_fully_connected():
    net = CNN3((13, 251), n_classes=10)
    kinds = [type(m).__name__ for m in net.blocks]
    assert kinds == ["SameConv2d", "ReLU", "MaxPool2d"] * 3
    assert all(m.kernel_size == (4, 4) for m in net.blocks if isinstance(m, torch.nn.Conv2d))
    # 13 MFCCs pool to 6, 3, 1: the last pool leaves the 1-high map alone
    assert net.blocks(torch.zeros(1, 1, 13, 251)).shape[2] == 1


@pytest.mark.parametrize("kernel_size", [4, 3, 2])
def test_cnn3_convolutions_are_torch_same_padding(kernel_size):
    from genre.models.cnn3 import SameConv2d

    ours = SameConv2d(2, 3, kernel_size)
    torchs = torch.nn.Conv2d(2, 3, kernel_size, padding="same")
    torchs.load_state_dict(ours.state_dict())   # same parameters, so checkpoints carry over
    x = torch.randn(2, 2, 13, 20)
    out = ours(x)
    assert out.shape == x.shape[:1] + (3,) + x.shape[2:]
    torch.testing.assert_close(out, torchs(x))


def test_cnn3_training_step_prints_no_padding_warning():
    # torch warns once per process about even-kernel 'same' padding, so look at a fresh process
    code = ("import torch; from genre.models.cnn3 import CNN3; net = CNN3((128, 50), 10); "
            "net(torch.randn(2, 1, 128, 50)).sum().backward()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "padding" not in done.stderr, done.stderr


def test_mean_aggregation_averages_clip_probabilities_per_track():
    probs = torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.9, 0.1], [0.7, 0.3]])
    track = torch.tensor([5, 5, 2, 2])
    tracks, scores = aggregate_tracks(probs, track, "mean")
    assert tracks.tolist() == [2, 5]
    torch.testing.assert_close(scores, torch.tensor([[0.8, 0.2], [0.4, 0.6]]))


def test_vote_counts_clips_and_breaks_ties_by_mean_probability():
    probs = torch.tensor([
        [0.55, 0.45, 0.0], [0.55, 0.45, 0.0], [0.0, 1.0, 0.0],    # track 0: class 0 wins 2 votes to 1
        [0.9, 0.1, 0.0], [0.0, 0.6, 0.4],                         # track 1: one vote each, mean favours 0
    ])
    track = torch.tensor([0, 0, 0, 1, 1])
    _, mean_scores = aggregate_tracks(probs, track, "mean")
    _, vote_scores = aggregate_tracks(probs, track, "vote")
    assert mean_scores.argmax(1).tolist() == [1, 0]   # mean of probabilities picks class 1 for track 0
    assert vote_scores.argmax(1).tolist() == [0, 0]   # the majority of clips picks class 0
    assert vote_scores[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0], abs=1e-5)


@pytest.mark.parametrize("n_frames, clip_frames", [(751, 251), (750, 250), (251, 251), (1000, 33), (300, 299)])
def test_windows_cover_every_frame_with_whole_clips(n_frames, clip_frames):
    starts = window_starts(n_frames, clip_frames)
    covered = np.zeros(n_frames, bool)
    for start in starts:
        assert 0 <= start and start + clip_frames <= n_frames
        covered[start:start + clip_frames] = True
    assert covered.all()
    assert len(starts) == int(np.ceil(n_frames / clip_frames))


def test_tsne_maps_small_and_degenerate_sets_without_crashing():
    from genre.tracking.plots import tsne_embedding

    rng = np.random.default_rng(0)
    for points in (rng.normal(size=(3, 40)), np.ones((5, 40)), rng.normal(size=(2, 4)), rng.normal(size=(60, 300))):
        coords = tsne_embedding(points)
        assert coords.shape == (len(points), 2) and np.isfinite(coords).all()


def test_pca_axes_say_how_much_variance_they_explain():
    from genre.tracking.plots import pca_figure, pca_projection

    rng = np.random.default_rng(0)
    # variance 9 along one direction, 1 along another, nothing else: PC 1 explains 90 %, PC 2 10 %
    points = rng.normal(size=(2000, 2)) * [3.0, 1.0] @ np.linalg.qr(rng.normal(size=(5, 2)))[0].T
    coords, explained = pca_projection(points)
    assert coords.shape == (2000, 2) and explained == pytest.approx([0.9, 0.1], abs=0.02)
    for degenerate in (np.ones((5, 4)), rng.normal(size=(1, 4)), rng.normal(size=(6, 1))):
        coords, ratio = pca_projection(degenerate)
        assert coords.shape == (len(degenerate), 2) and np.isfinite(coords).all()
    # the same float32 point three times (a model after one step embeds every track alike): its mean is
    # off by rounding, so the centred points are not all zero, yet no direction explains anything, and
    # the run's console gets no warning
    same = np.tile(rng.normal(size=16).astype(np.float32), (3, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coords, ratio = pca_projection(same)
    assert np.array_equal(coords, np.zeros((3, 2))) and np.array_equal(ratio, [0.0, 0.0])
    figure = pca_figure(points, np.arange(2000) % 2, ["jazz", "rock"], "PCA")
    assert figure.axes[0].get_xlabel() == f"PC 1 ({explained[0]:.1%} of the variance)"
    assert figure.axes[0].get_ylabel() == f"PC 2 ({explained[1]:.1%} of the variance)"


def test_separation_scores_tell_separated_from_mixed_genres():
    from genre.tracking.separation import separation_scores

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    separated = rng.normal(size=(60, 8)) + 6 * np.eye(3)[labels] @ rng.normal(size=(3, 8))
    mixed = rng.normal(size=(60, 8))
    good, bad = separation_scores(separated, labels), separation_scores(mixed, labels)
    assert good["knn_acc"] > 0.95 and good["silhouette"] > 0.5
    assert bad["knn_acc"] < 0.6 and abs(bad["silhouette"]) < 0.1
    assert good["knn_k"] == 5
    few = separation_scores(separated[[0, 1, 2, 20, 21, 22, 40, 41, 42]], labels[[0, 1, 2, 20, 21, 22, 40, 41, 42]])
    assert few["knn_k"] == 2   # 3 points a genre: at most 2 neighbours of the same genre, so k is 2, and says so


def test_the_code_inside_a_logged_model_needs_nothing_of_this_package():
    import ast
    from pathlib import Path

    import genre.data.waveform
    import genre.models.inference
    import genre.tracking.audio_model
    from genre.runtime.settings import AGGREGATIONS

    # the files a logged model carries as its code (genre.tracking.report._log_model)
    for module, allowed in ((genre.data.waveform, set()), (genre.models.inference, {"genre.data.waveform"}),
                            (genre.tracking.audio_model, {"genre.models.inference", "genre.data.waveform"})):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | \
            {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert {name for name in imported if name.startswith("genre")} <= allowed, module.__name__
    assert genre.models.inference.AGGREGATION_METHODS == AGGREGATIONS   # settings checks what inference runs


def test_the_legend_of_a_scatter_plot_covers_no_point():
    """The t-SNE legend covered points."""
    from genre.tracking.plots import pca_figure

    rng = np.random.default_rng(1)
    points = rng.uniform(-1, 1, size=(3000, 2)) * [2.0, 1.0]     # points everywhere: no free corner
    figure = pca_figure(points, rng.integers(0, 4, 3000), ["blues", "jazz", "metal", "pop"], "PCA\nprotocol")
    figure.canvas.draw()
    [ax] = figure.axes
    legend = ax.get_legend().get_window_extent()
    plotted = ax.transData.transform(np.concatenate([c.get_offsets() for c in ax.collections]))
    inside = (plotted[:, 0] >= legend.x0) & (plotted[:, 0] <= legend.x1) & \
             (plotted[:, 1] >= legend.y0) & (plotted[:, 1] <= legend.y1)
    assert not inside.any()
