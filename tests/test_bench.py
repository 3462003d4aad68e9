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
    "8_cpu_clip_paths": {"cache_epoch_s", "resident_epoch_s", "cache_samples_per_s", "resident_samples_per_s",
                         "resident_speedup"},
    "9_command_line": {"bare_import_s", "refusal_s", "train_exit_after_last_line_s", "evaluate_audio_s", "evaluate_over_bare_import",
                       "checkpoint_answer_30s_song_s", "pyfunc_load_s", "pyfunc_answer_30s_song_s"},
    "10_encoders": {f"{encoder}_{key}" for encoder in ("tiny_mert", "tiny_ast", "tiny_clap", "mert_v1_95m_size")
                    for key in ("tracks_per_s", "real_time_factor", "cache_kb_per_track", "probe_epoch_s",
                                "cache_saves_per_epoch")},
    "11_app": {"song_s", "load_s", "answer_mp3_s", "answer_wav_s", "answer_over_1s_budget"},
}


def test_benchmark_at_a_tiny_size_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--tracks-per-genre", "4", "--seconds", "12", "--clips", "8", "--cache-tracks", "60", "--paths-tracks", "50",
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
    # the first run's stages, as its log reports them, and the rest: together the whole first run
    main = results["figures"]["6_main_command"]
    stages = main["first_run_stages_s"]
    assert {"synthetic corpus", "audio cache", "feature cache"} < set(stages)
    assert all(seconds > 0 for seconds in stages.values())
    assert sum(stages.values()) == pytest.approx(main["first_run_s"])
    printed = capsys.readouterr().out
    assert all(name in printed for name in FIGURES)


def test_clip_paths_figure_trains_an_epoch_through_both_paths(tmp_path):
    # figure 8 (and on a GPU figure 7): one epoch through the HDF5 path and the resident path
    from conftest import write_tone
    from genre.assembly.build import build_frontend
    from genre.data.cache import build_audio_cache, build_feature_cache
    from genre.data.index import Track

    tracks = [Track(f"t{i}", write_tone(tmp_path / f"t{i}.wav", 12.0, bench.SAMPLE_RATE, 200 + 50 * i), "blues")
              for i in range(3)]
    n_samples = 12 * bench.SAMPLE_RATE
    audio = build_audio_cache(tracks, bench.SAMPLE_RATE, n_samples, tmp_path / "cache", num_workers=1)
    extractor = build_frontend(bench.DEFAULTS.features)
    features = build_feature_cache(audio, extractor, tmp_path / "cache", num_workers=1)
    n_frames = extractor.n_frames(n_samples)
    clip_frames = extractor.n_frames(int(bench.CLIP_SECONDS * bench.SAMPLE_RATE))
    figure = bench.figure_clip_paths(features, n_frames, clip_frames, device="cpu", n_tracks=40, batch_size=16)
    assert figure["device"] == "cpu" and figure["tracks"] == 40
    assert figure["resident_gb"] == pytest.approx(40 * bench.N_MELS * n_frames * 4 / 1e9)
    for path in ("cache", "resident"):
        assert figure[f"{path}_samples_per_s"] == pytest.approx(40 / figure[f"{path}_epoch_s"])
        assert 0 < figure[f"{path}_data_only_s"] and figure[f"{path}_held_back_by"]
    assert figure["resident_speedup"] == pytest.approx(figure["cache_epoch_s"] / figure["resident_epoch_s"])
