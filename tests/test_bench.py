import json

import pytest

from genre import bench

pytestmark = pytest.mark.slow

FIGURES = {
    "1_cache_build": {"one_process_tracks_per_s", "parallel_tracks_per_s", "speedup"},
    "2_epoch_data_cost": {"cache_s", "seeds_way_s", "speedup"},
    "3_feature_extraction": {"torchaudio_s", "numpy_one_process_s", "numpy_parallel_s",
                             "numpy_parallel_speedup_over_torchaudio"},
    "4_pipeline_overhead": {"dataloader_epoch_s", "in_memory_epoch_s", "ratio"},
    "5_memory": {"peak_rss_mib", "ratio"},
    "6_main_command": {"first_run_s", "second_run_s"},
}


def test_benchmark_at_a_tiny_size_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--tracks-per-genre", "4", "--seconds", "12", "--clips", "8", "--cache-tracks", "60",
                       "--smoke", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["machine"]["cpus"] >= 1 and results["corpus"]["tracks"] == 40
    assert results["figures"]["1_cache_build"]["tracks"] == 60  # the 40 files, 20 of them twice
    for name, keys in FIGURES.items():
        figure = results["figures"][name]
        assert keys <= set(figure), name
        for key in keys:
            values = figure[key] if isinstance(figure[key], list) else [figure[key]]
            assert all(isinstance(v, float) and v > 0 for v in values), (name, key)
    assert 0 <= results["figures"]["3_feature_extraction"]["max_abs_diff_db"] < 0.01
    printed = capsys.readouterr().out
    assert all(name in printed for name in FIGURES)
