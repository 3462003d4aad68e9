"""The app (genre.app): its API through FastAPI's test client on the session's tiny trained run, its command line,
and the page itself in headless Chromium (Debian's chromium and chromedriver, as .ci/run installs them)."""
from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, compose_config, free_port, run_cli
from genre.app.main import check_port, is_loopback
from genre.app.server import shown_name
from genre.app.service import Limits, _pooled
from genre.runtime.errors import ConfigError

LIMITS = Limits(max_upload_mb=2, max_seconds=20, workers=2, queue=4)


def song(path: Path, genre: str = "classical", seconds: float = 6.0, index: int = 900, rate: int = 22050) -> Path:
    """A song of ``genre`` from the synthetic corpus's generator (a track index the corpus does not hold)."""
    from genre.datasets.music_generator import render_track

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), render_track(genre, index, 7, seconds, rate), rate)
    return path


@pytest.fixture(scope="module")
def service(trained):
    from genre.app.service import AppModel

    root, _, metrics, _ = trained
    return AppModel(metrics["best_checkpoint"], 3, str(root / "cache"), tracking_uri=f"sqlite:///{root}/mlflow.db",
                    named=f"run {metrics['run_id']}")


@pytest.fixture(scope="module")
def client(service):
    from fastapi.testclient import TestClient

    from genre.app.server import create_app

    return TestClient(create_app(service, LIMITS), base_url="http://127.0.0.1")


def post(client, *files: tuple[str, bytes]):
    return client.post("/api/classify", files=[("file", (name, body, "application/octet-stream")) for name, body in files])


# ---------- no run needed ----------

def test_uploaded_names_are_shown_without_their_folders_or_control_characters():
    assert shown_name("../../etc/passwd") == "passwd"
    assert shown_name("C:\\Users\\me\\song.mp3") == "song.mp3"
    assert shown_name("a\x00b\nc.wav") == "abc.wav"
    assert shown_name("") == "the uploaded file"


def test_only_loopback_hosts_count_as_this_machine_alone():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.7")


def test_a_port_in_use_or_out_of_range_is_refused_by_name():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port={port} on 127.0.0.1 cannot be used"):
            check_port("127.0.0.1", port)
    with pytest.raises(ConfigError, match="port=70000"):
        check_port("127.0.0.1", 70000)


def test_another_host_is_said_to_let_other_machines_in():
    from genre.app.main import reach_line

    line = reach_line("0.0.0.0", 8050)
    assert line.startswith("host=0.0.0.0: every machine that can reach this one on port 8050 can use the app")
    assert "no login" in line and "host=127.0.0.1 keeps it to this machine" in line


def test_limits_are_checked():
    with pytest.raises(ConfigError, match="max_upload_mb=0"):
        Limits(max_upload_mb=0)
    assert Limits(max_upload_mb=1).max_upload_bytes == 2 ** 20


def test_the_front_end_picture_is_pooled_to_its_size_by_averages():
    values = np.arange(12.0).reshape(2, 6)
    assert _pooled(values, 3, axis=1).tolist() == [[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]]
    assert _pooled(values, 8, axis=1) is values


def test_the_command_refuses_a_missing_model_name_at_once(tmp_path):
    out = run_cli("-m", "genre.app", f"paths.root_dir={tmp_path}", timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "name the model with exactly one of ckpt_path=..., run_id=... or registered_model=NAME" in out.stderr
    assert "Traceback" not in out.stderr


# ---------- the API, on the session's trained run ----------

@pytest.mark.slow
def test_a_generated_song_gets_genres_windows_picture_and_tracks_like_it(client, service, tmp_path):
    path = song(tmp_path / "song.wav", seconds=10.0)
    answer = post(client, ("song.wav", path.read_bytes()))
    assert answer.status_code == 200, answer.text
    result = answer.json()
    genres = service.genres
    assert result["file"] == "song.wav" and result["seconds"] == pytest.approx(10.0, abs=1e-3)
    assert result["padded_seconds"] == 0
    ranking = result["ranking"]
    assert sorted(r["genre"] for r in ranking) == sorted(genres)
    assert [r["probability"] for r in ranking] == sorted((r["probability"] for r in ranking), reverse=True)
    assert sum(r["probability"] for r in ranking) == pytest.approx(1.0, abs=1e-5)
    windows = result["windows"]
    probabilities = np.array(windows["probabilities"])
    assert probabilities.shape == (len(windows["starts"]), len(genres))
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert windows["seconds"] == pytest.approx(3.0, abs=0.05)          # the run's 3-s clips
    assert windows["starts"][0] == 0 and windows["starts"][-1] + windows["seconds"] == pytest.approx(10.0, abs=0.05)
    mean = probabilities.mean(0)      # the run aggregates by the mean of its windows
    assert [r["probability"] for r in ranking] == pytest.approx([mean[genres.index(r["genre"])] for r in ranking],
                                                                abs=1e-5)
    picture = result["features"]
    assert picture["kind"] == "mel" and picture["bands"] == 32
    import base64

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(picture["image"].split(",", 1)[1])))
    assert image.format == "PNG" and image.size[1] == 32 and image.size[0] > 100
    similar = result["similar"]
    assert len(similar) == 3 and [s["distance"] for s in similar] == sorted(s["distance"] for s in similar)
    corpus_ids = set(service.corpus["track_id"])
    for row in similar:
        assert row["track_id"] in corpus_ids and row["available"] and row["split"] in ("train", "val", "test")
        audio = client.get("/api/audio", params={"track": row["track_id"]})
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
        waveform, rate = sf.read(io.BytesIO(audio.content))
        assert rate == 22050 and len(waveform) == pytest.approx(6.0 * rate, abs=2)   # the run's 6-s excerpt


@pytest.mark.slow
def test_the_app_agrees_with_evaluate_audio(client, trained, tmp_path):
    """The page's genres are evaluate.py audio='s, to 1e-6, and its tracks like it are evaluate.py similar='s."""
    from genre.evaluate import evaluate

    root, _, metrics, _ = trained
    path = song(tmp_path / "song.wav", genre="metal", seconds=8.0)
    page = post(client, ("song.wav", path.read_bytes())).json()
    cfg = compose_config("evaluate", [f"run_id={metrics['run_id']}", f"audio={path}"], root)
    printed = dict(evaluate(cfg)["ranking"])
    assert [r["genre"] for r in page["ranking"]] == list(printed)
    for row in page["ranking"]:
        assert abs(row["probability"] - printed[row["genre"]]) < 1e-6
    cfg = compose_config("evaluate", [f"run_id={metrics['run_id']}", f"audio={path}", "similar=3"], root)
    listed = evaluate(cfg)["similar"]
    assert [(s["track_id"], s["genre"], s["split"]) for s in page["similar"]] == [t[:3] for t in listed]
    assert [s["distance"] for s in page["similar"]] == pytest.approx([t[3] for t in listed], abs=1e-6)


def _truncated_wav(path: Path) -> bytes:
    body = path.read_bytes()
    return body[:len(body) // 3]


@pytest.mark.slow
@pytest.mark.parametrize("name, make, status, said", [
    ("empty.wav", lambda p: b"", 400, "empty (0 bytes)"),
    ("notes.wav", lambda p: b"these are my notes, not a song\n" * 40, 422, "not a WAV file"),
    ("cut.wav", lambda p: _truncated_wav(song(p / "whole.wav")), 422, "truncated"),
    ("silence.wav", lambda p: _wav(np.zeros(22050 * 4, dtype=np.float32)), 422, "silent"),
    ("long.wav", lambda p: _wav(np.full(16000 * 25, 0.1, dtype=np.float32), 16000), 413, "lasts 25 s, longer than the 20 s"),
    ("big.wav", lambda p: b"RIFF" + os.urandom(3 * 2 ** 20), 413, "larger than the 2 MB"),
])
def test_bad_input_gets_a_clear_4xx_and_the_app_stays_up(client, tmp_path, monkeypatch, name, make, status, said):
    import genre.evaluate

    decoded = []
    real_load = genre.evaluate.load_audio
    monkeypatch.setattr(genre.evaluate, "load_audio", lambda *a, **k: decoded.append(a) or real_load(*a, **k))
    answer = post(client, (name, make(tmp_path)))
    assert answer.status_code == status, answer.text
    assert said in answer.json()["detail"]
    if status in (400, 413):
        assert not decoded       # refused before it was decoded
    if status != 413 or "lasts" in said:
        assert answer.json()["detail"].startswith(name)     # the file is named as the person gave it
    assert client.get("/api/run").status_code == 200


def _wav(waveform: np.ndarray, rate: int = 22050) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.slow
def test_an_upload_sent_in_chunks_is_cut_off_at_the_size_limit(client):
    sent = []

    def chunks():
        for _ in range(64):           # 4 MB in all, no Content-Length: the limit is 2 MB
            sent.append(1)
            yield b"\x00" * 2 ** 16

    answer = client.post("/api/classify", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413 and "larger than the 2 MB" in answer.json()["detail"]
    assert client.get("/api/run").status_code == 200


@pytest.mark.slow
def test_several_files_or_none_are_refused(client, tmp_path):
    body = song(tmp_path / "a.wav").read_bytes()
    answer = post(client, ("a.wav", body), ("b.wav", body))
    assert answer.status_code == 400 and answer.json()["detail"] == "2 files at once: send one song at a time"
    answer = client.post("/api/classify", data={"note": "no file"})
    assert answer.status_code == 400 and "no file" in answer.json()["detail"]


@pytest.mark.slow
def test_a_song_shorter_than_a_clip_is_padded_as_evaluate_pads_it_and_says_so(client, service, trained, tmp_path):
    from genre.evaluate import evaluate
    from genre.models.inference import min_samples

    root, _, metrics, _ = trained
    short = tmp_path / "short.wav"
    sf.write(str(short), sf.read(str(song(tmp_path / "s.wav", seconds=2.0)))[0][:33075], 22050)   # 1.5 s
    result = post(client, ("short.wav", short.read_bytes())).json()
    assert result["seconds"] == pytest.approx(1.5, abs=1e-3)
    one_clip = min_samples(service.module.clip_frames, service.module.frontend.hop_length) / 22050   # 3-s clips
    assert one_clip == pytest.approx(3.0, abs=0.05)
    assert result["padded_seconds"] == pytest.approx(one_clip - 1.5, abs=1e-3)
    printed = dict(evaluate(compose_config("evaluate", [f"run_id={metrics['run_id']}", f"audio={short}"], root))["ranking"])
    assert {r["genre"]: r["probability"] for r in result["ranking"]} == pytest.approx(printed, abs=1e-6)


def test_a_fifth_of_a_second_is_refused_not_answered_from_its_padding(client, trained, tmp_path):
    """A 0.2-s clip padded with 9.8 s of silence was "classical 100.0 %" (issue 30)."""
    from genre.evaluate import evaluate
    from genre.runtime.errors import AudioDecodeError

    root, _, metrics, _ = trained
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), sf.read(str(song(tmp_path / "t.wav", seconds=1.0)))[0][:4410], 22050)   # 0.2 s
    answer = post(client, ("tiny.wav", tiny.read_bytes()))
    assert answer.status_code == 422
    assert "lasts 0.20 s: an answer needs at least 1.00 s of audio (the min_audio_seconds setting)" in \
        answer.json()["detail"]
    with pytest.raises(AudioDecodeError, match="an answer needs at least 1.00 s"):
        evaluate(compose_config("evaluate", [f"run_id={metrics['run_id']}", f"audio={tiny}"], root))


def test_the_page_and_evaluate_say_what_the_model_was_trained_on(client, trained, tmp_path, capsys, caplog):
    """Real songs came out confident and wrong from a model of the built-in corpus, with no word about it."""
    from genre.evaluate import evaluate

    root, _, metrics, _ = trained
    facts = client.get("/api/run").json()
    assert facts["trained_on"].startswith("trained on synthetic (random-stratified-by-track(")
    assert "built-in synthetic corpus, made-up timbres, not real music" in facts["trained_on_warning"]
    with caplog.at_level("WARNING"):
        evaluate(compose_config("evaluate", [f"run_id={metrics['run_id']}", f"audio={song(tmp_path / 'x.wav')}"],
                                root))
    assert "(trained on synthetic (random-stratified-by-track(" in capsys.readouterr().out
    assert "not real music" in caplog.text


@pytest.mark.slow
def test_only_corpus_tracks_are_served_by_id_and_a_gone_file_is_unavailable(client, service, monkeypatch, tmp_path):
    for attempt in ("../../../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "metal.00001/../../x"):
        answer = client.get("/api/audio", params={"track": attempt})
        assert answer.status_code == 404, attempt
    for path in ("/..%2F..%2Fetc%2Fpasswd", "/static/", "/genre/app/static/app.js", "/app.js/../../../etc/passwd",
                 "/docs", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    assert client.get("/app.js").status_code == 200 and client.get("/").headers["content-type"].startswith("text/html")
    # a track whose file is outside the corpus's root (a tampered index) is not served either
    track_id = next(iter(service.tracks))
    original = service.tracks[track_id]
    outside = tmp_path / "secret.wav"
    song(outside)
    tracks = dict(service.tracks)
    tracks[track_id] = dataclasses.replace(original, path=outside)
    monkeypatch.setattr(service, "tracks", tracks)
    assert client.get("/api/audio", params={"track": track_id}).status_code == 404
    # one whose file is gone since the run: listed as unavailable, and its audio is 410
    tracks[track_id] = dataclasses.replace(original, path=Path(original.path).parent / "gone-since.au")
    embedding = service.corpus["embedding"][list(service.corpus["track_id"]).index(track_id)]
    [nearest, *_] = service.nearest(embedding)
    assert nearest["track_id"] == track_id and not nearest["available"]
    assert nearest["reason"] == "its file is gone since the run"
    assert client.get("/api/audio", params={"track": track_id}).status_code == 410


@pytest.mark.slow
def test_the_run_facts_name_the_model_split_accuracy_and_the_skipped_file(client, trained):
    _, _, metrics, _ = trained
    facts = client.get("/api/run").json()
    assert (facts["model"], facts["features"], facts["dataset"]) == ("cnn3", "mel", "synthetic")
    assert facts["split_protocol"].startswith("random-stratified-by-track(")
    assert facts["test_track_acc"] == pytest.approx(metrics["test/track_acc"])
    assert facts["run_id"] == metrics["run_id"] and "mlflow ui --backend-store-uri sqlite:///" in facts["ui_command"]
    assert [p for p, _ in facts["skipped"]] == ["genres/metal/metal.00004.au"]   # the corpus's damaged file
    assert facts["limits"] == {"max_upload_mb": 2.0, "max_seconds": 20.0}
    # names, not where things live on this machine (checkpoint, venv, store)
    assert facts["checkpoint"] == Path(metrics["best_checkpoint"]).name
    assert facts["ui_command"].startswith("mlflow ui --backend-store-uri sqlite:///mlflow.db")
    assert str(Path(metrics["best_checkpoint"]).parent.parent.parent) not in str(facts)
    assert sys.prefix not in str(facts)


@pytest.mark.slow
def test_browsers_at_once_each_get_their_own_answer_and_at_most_workers_run(client, service, tmp_path, monkeypatch):
    songs = {g: song(tmp_path / f"{g}.wav", genre=g, seconds=4.0 + i).read_bytes()
             for i, g in enumerate(["classical", "disco", "metal", "reggae", "classical"][:4])}
    alone = {g: post(client, (f"{g}.wav", body)).json() for g, body in songs.items()}
    running, most = [0], [0]
    lock = threading.Lock()
    real = service.analyse

    def counted(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(service, "analyse", counted)
    answers = {}

    def ask(genre):
        answers[genre] = post(client, (f"{genre}.wav", songs[genre])).json()

    threads = [threading.Thread(target=ask, args=(g,)) for g in songs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for genre in songs:
        assert answers[genre]["file"] == f"{genre}.wav"
        assert answers[genre]["ranking"] == alone[genre]["ranking"]
        assert answers[genre]["windows"] == alone[genre]["windows"]
    assert most[0] == LIMITS.workers      # four songs, two at a time


@pytest.mark.slow
def test_a_full_queue_is_answered_503(service, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from genre.app.server import create_app

    client = TestClient(create_app(service, Limits(workers=1, queue=0)), base_url="http://127.0.0.1")
    body = song(tmp_path / "a.wav").read_bytes()
    release = threading.Event()
    real = service.analyse
    monkeypatch.setattr(service, "analyse", lambda *a, **k: release.wait(60) and real(*a, **k))
    first = {}
    thread = threading.Thread(target=lambda: first.setdefault("answer", post(client, ("a.wav", body))))
    thread.start()
    time.sleep(1.0)
    busy = post(client, ("b.wav", body))
    release.set()
    thread.join(60)
    assert busy.status_code == 503 and "try again" in busy.json()["detail"]
    assert first["answer"].status_code == 200


@pytest.mark.slow
def test_a_registered_model_is_found_by_name_and_alias(trained):
    import mlflow

    from genre.app.service import resolve_checkpoint

    root, _, metrics, _ = trained
    uri = f"sqlite:///{root}/mlflow.db"
    path, named = resolve_checkpoint(None, None, "genre-tiny", None, uri)
    assert Path(path).resolve() == Path(metrics["best_checkpoint"]).resolve() and named == "genre-tiny version 1"
    mlflow.MlflowClient(uri).set_registered_model_alias("genre-tiny", "demo", "1")
    path, named = resolve_checkpoint(None, None, "genre-tiny", "demo", uri)
    assert Path(path).resolve() == Path(metrics["best_checkpoint"]).resolve() and named.endswith("(@demo)")
    with pytest.raises(ConfigError, match="registered_model=nope: not found"):
        resolve_checkpoint(None, None, "nope", None, uri)


# ---------- the page, in a real browser ----------

def chromium(width: int = 1200, height: int = 1900):
    """Debian's headless chromium under chromedriver (the flags keep it off this machine's closed network)."""
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for program in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        assert Path(program).is_file(), f"{program} is missing: apt-get install chromium chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='genre-chromium-')}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


@pytest.mark.slow
def test_the_page_in_chromium_shows_evaluates_genre_and_plays_similar_tracks(trained, tmp_path):
    """The app starts from the command the run printed (with its own port here); a WAV goes in through the
    file input as a person picks it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from genre.evaluate import evaluate

    root, _, metrics, out = trained
    [printed] = [line.split("try it   ", 1)[1].split("   then open")[0] for line in out.stdout.splitlines()
                 if "try it   " in line]
    port = free_port()
    server = subprocess.Popen(["bash", "-c", f"{printed} port={port} similar=4"], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True,
                              env={**os.environ, "PATH": "/usr/bin:/bin"})   # the venv not activated
    path = song(tmp_path / "my song.wav", genre="reggae", seconds=9.0)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    expected = next(iter(dict(evaluate(compose_config("evaluate", [f"run_id={metrics['run_id']}", f"audio={path}"],
                                                      root))["ranking"])))
    browser = None
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/run", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stdout.read()[-3000:]
                time.sleep(0.5)
        browser = chromium()
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "test accuracy" in b.find_element(By.ID, "run-line").text)
        picker = browser.find_element(By.ID, "file")
        picker.send_keys(str(empty))                     # a bad file first: a message, and the app stays up
        wait.until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert "empty (0 bytes)" in browser.find_element(By.ID, "error").text
        picker.send_keys(str(path))
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed())
        assert browser.find_element(By.ID, "top-genre").text == expected
        assert not browser.find_element(By.ID, "error").is_displayed()
        assert len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == len(trained[1].dataset.genres)
        assert browser.find_elements(By.CSS_SELECTOR, "#timeline svg rect")
        rows = browser.find_elements(By.CSS_SELECTOR, "#similar tbody tr")
        assert len(rows) == 4
        wait.until(lambda b: b.execute_script(
            "return [...document.querySelectorAll('#similar audio')].every(a => a.readyState >= 1 && !a.error)"))
        durations = browser.execute_script("return [...document.querySelectorAll('#similar audio')].map(a => a.duration)")
        assert len(durations) == 4 and all(d == pytest.approx(6.0, abs=0.01) for d in durations)
        short = tmp_path / "short.wav"                   # 1.5 s: padded, and the page says so
        sf.write(str(short), sf.read(str(path))[0][:33075], 22050)
        picker.send_keys(str(short))
        wait.until(lambda b: b.find_element(By.ID, "padded").is_displayed())
        assert "padded with 1.4" in browser.find_element(By.ID, "padded").text
        assert "short.wav: 1.5 s" in browser.find_element(By.ID, "song-line").text
        picker.send_keys(str(path))
        wait.until(lambda b: not b.find_element(By.ID, "padded").is_displayed()
                   and b.find_element(By.ID, "result").is_displayed())
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        browser.save_screenshot(str(artifacts / "app.png"))
        assert (artifacts / "app.png").stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=30)
    assert server.returncode == 130      # Ctrl-C: stopped in order


def test_the_page_needs_nothing_from_another_host():
    static = ROOT / "genre" / "app" / "static"
    for page in static.iterdir():
        text = page.read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, page.name
    from genre.app.server import STATIC

    assert sorted(name for name, _ in STATIC.values()) == sorted(p.name for p in static.iterdir())
