"""genre.check: whether a machine reproduces a reference run, and what to expect where it does not."""
from __future__ import annotations

import json

import pytest

from conftest import run_cli, tiny_overrides
from genre.check import REFERENCE, compare


def test_the_same_conditions_and_metrics_are_same_and_a_lone_metric_difference_is_flagged():
    rows, same = compare(REFERENCE, dict(REFERENCE))
    assert same and all(verdict.startswith("same") for *_, verdict in rows)
    assert [row[0] for row in rows] == ["features_digest", "cpu_kernels", "torch_threads", "library_versions",
                                        "split_protocol", "test/track_acc", "test/acc"]
    rows, same = compare(REFERENCE, {**REFERENCE, "test/track_acc": 0.8})
    assert not same
    assert dict((r[0], r[3]) for r in rows)["test/track_acc"].startswith("DIFFERS although every condition is the same")


def test_another_kernel_level_says_what_follows_and_how_to_pin_it():
    rows, same = compare(REFERENCE, {**REFERENCE, "cpu_kernels": "AVX2", "test/track_acc": 0.8})
    verdicts = {r[0]: r[3] for r in rows}
    assert not same and "ATEN_CPU_CAPABILITY=avx2" in verdicts["cpu_kernels"]
    assert verdicts["test/track_acc"] == "differs, as the conditions above that differ make expected"
    assert dict((r[0], r[1:3]) for r in rows)["test/track_acc"] == ("81.7%", "80.0%")


def test_settings_without_a_reference_of_their_own_are_refused(tmp_path):
    out = run_cli("-m", "genre.check", "seed=1", "--root", str(tmp_path), timeout=120)
    assert out.returncode == 2 and "the built-in reference is the default command's" in out.stderr


@pytest.mark.slow
def test_a_reference_written_on_one_root_is_reproduced_on_another_and_a_changed_one_is_not(tmp_path):
    settings = tiny_overrides()
    reference = tmp_path / "ours.json"
    first = run_cli("-m", "genre.check", "--train", "--root", str(tmp_path / "a"), "--write-reference", str(reference),
                    *settings)
    assert first.returncode == 0, first.stderr[-3000:]
    written = json.loads(reference.read_text())
    assert written["overrides"] == settings and len(written["features_digest"]) == 20 and 0 <= written["test/acc"] <= 1
    again = run_cli("-m", "genre.check", "--train", "--root", str(tmp_path / "b"), "--reference", str(reference), *settings)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "this machine reproduces the reference bit for bit" in again.stdout
    reference.write_text(json.dumps({**written, "torch_threads": "64"}))
    changed = run_cli("-m", "genre.check", "--root", str(tmp_path / "b"), "--reference", str(reference), *settings)
    assert changed.returncode == 1
    assert "another thread count sums in another order" in changed.stdout
