"""MSD metadata and labels in their real formats, and the 7digital downloader against a real HTTP
server on 127.0.0.1 that checks OAuth 1.0 signatures and fails the way real servers do."""
import base64
import hashlib
import hmac
import io
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from conftest import exit_status
from genre.datasets import msd as msd_dataset
from genre.datasets import sevendigital
from genre.datasets.msd import msd_track_path, read_genre_labels, read_msd_metadata, select_tracks
from genre.datasets.music_generator import render_track
from genre.runtime.errors import DatasetError

KEY, SECRET = "test-consumer-key", "s3cret/with+odd&chars"
GENRES = {"Rock": "rock", "Jazz": "jazz", "Electronic": "disco"}   # label -> synthetic style of its audio


def track_id(n: int) -> str:
    return f"TRA{chr(65 + n % 26)}{chr(65 + n // 26 % 26)}{n:04d}128F42{n:04d}"[:18]


def write_msd_track(data_dir: Path, tid: str, digital_id: int, artist: str) -> None:
    """One per-track file as MSD ships it: one-row compound tables written by PyTables."""
    path = msd_track_path(data_dir, tid)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = np.zeros(1, dtype=[("artist_name", "S1024"), ("title", "S1024"), ("release", "S1024"),
                                  ("song_id", "S32"), ("genre", "S1024"), ("track_7digitalid", "<i4"),
                                  ("release_7digitalid", "<i4"), ("artist_7digitalid", "<i4")])
    metadata[0] = (artist.encode(), f"Song {tid}".encode(), b"An Album", b"SOABC12345678901", b"", digital_id, 7, 8)
    analysis = np.zeros(1, dtype=[("track_id", "S32"), ("duration", "<f8")])
    analysis[0] = (tid.encode(), 29.9)
    with h5py.File(path, "w") as f:
        f.create_group("metadata").create_dataset("songs", data=metadata)
        f.create_group("analysis").create_dataset("songs", data=analysis)
        f.create_group("musicbrainz").create_dataset("songs", data=np.zeros(1, dtype=[("year", "<i4")]))


@pytest.fixture
def msd_tree(tmp_path):
    data_dir = tmp_path / "MillionSongSubset" / "data"
    lines = ["# tagtraum genre annotations, cd2c", "# TRACKID\tmajority\tminority"]
    tracks = {}
    for n in range(18):
        tid, genre = track_id(n), list(GENRES)[n % 3]
        digital_id = 0 if n == 17 else 1000 + n       # one track has no 7digital id
        write_msd_track(data_dir, tid, digital_id, artist=f"Artist {n % 5}")
        lines.append(f"{tid}\t{genre}" + ("\tPop" if n % 4 == 0 else ""))
        tracks[tid] = (genre, digital_id)
    (tmp_path / "cd2c.cls").write_text("\n".join(lines) + "\n")
    return tmp_path, data_dir, tracks


def mp3_bytes(genre: str, n: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, render_track(GENRES[genre], n, 0, 4.0, 22050), 22050, format="MP3")
    return buffer.getvalue()


def reference_signature(method: str, url: str, params: dict, secret: str) -> str:
    """RFC 5849 section 3.4, written out independently of genre.datasets.sevendigital."""
    enc = lambda s: urllib.parse.quote(s, safe="~-._")  # noqa: E731
    pairs = "&".join(sorted(f"{enc(k)}={enc(v)}" for k, v in params.items()))
    base = f"{method}&{enc(url)}&{enc(pairs)}"
    return base64.b64encode(hmac.new(f"{enc(secret)}&".encode(), base.encode(), hashlib.sha1).digest()).decode()


class PreviewServer:
    """Serves /clip/<id>; the first request for some ids fails: 500, a stall past the client's
    time-out, or a body cut short. Id 1004 has no preview (404)."""

    def __init__(self, previews: dict[int, bytes]):
        self.previews = previews
        self.requests: Counter = Counter()
        self.bad_signatures = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                signature = query.pop("oauth_signature", "")
                url = f"http://{self.headers['Host']}{parts.path}"
                if query.get("oauth_consumer_key") != KEY or \
                        signature != reference_signature("GET", url, query, SECRET):
                    server.bad_signatures += 1
                    self.send_error(401, "bad signature")
                    return
                digital_id = int(parts.path.rsplit("/", 1)[-1])
                server.requests[digital_id] += 1
                first = server.requests[digital_id] == 1
                if digital_id not in server.previews:
                    self.send_error(404)
                elif first and digital_id % 3 == 1:
                    self.send_error(503, "busy")
                elif first and digital_id % 5 == 2:
                    time.sleep(1.5)   # the client gives up first (timeout 0.5 s)
                    self.send_error(503)
                else:
                    body = server.previews[digital_id]
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/mpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2] if first and digital_id % 7 == 3 else body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(msd_tree):
    _, _, tracks = msd_tree
    previews = {d: mp3_bytes(g, d) for g, d in tracks.values() if d and d != 1004}
    preview_server = PreviewServer(previews)
    yield preview_server
    preview_server.close()


def test_metadata_from_per_track_files_and_labels(msd_tree):
    root, data_dir, tracks = msd_tree
    some = sorted(tracks)[:4]
    metadata = read_msd_metadata(data_dir, some + ["TRZZZZZ128F4200000"])
    assert sorted(metadata) == some
    first = metadata[some[0]]
    assert first.track_7digitalid == tracks[some[0]][1] and first.artist.startswith("Artist")
    assert len(read_msd_metadata(data_dir)) == 18
    labels = read_genre_labels(root / "cd2c.cls")
    assert len(labels) == 18 and set(labels.values()) == set(GENRES)
    chosen = select_tracks(labels, ["Rock", "Jazz"], 0.5, seed=1)
    assert len(chosen) == 6 and set(chosen.values()) <= {"Rock", "Jazz"}
    assert chosen == select_tracks(labels, ["Rock", "Jazz"], 0.5, seed=1)


def test_malformed_label_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.cls").write_text("# header\nTRAAAAW128F429D538\tRock\nnot a track id\tJazz\n")
    with pytest.raises(DatasetError, match=r"bad.cls, line 3: .*TRACKID<TAB>genre"):
        read_genre_labels(tmp_path / "bad.cls")


def test_signature_matches_an_independent_implementation():
    params = {"country": "ww", "oauth_consumer_key": KEY, "oauth_nonce": "abc", "oauth_timestamp": "1",
              "oauth_signature_method": "HMAC-SHA1", "oauth_version": "1.0"}
    url = "http://previews.7digital.com/clip/123"
    assert sevendigital.oauth_signature("GET", url, params, SECRET) == reference_signature("GET", url, params, SECRET)
    assert sevendigital.oauth_signature("GET", url, params, "other") != reference_signature("GET", url, params, SECRET)


def test_download_retries_resumes_and_reports(msd_tree, server, monkeypatch, capsys, caplog):
    root, data_dir, tracks = msd_tree
    out = root / "previews"
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_KEY", KEY)
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_SECRET", SECRET)
    argv = ["--msd", str(data_dir), "--labels", str(root / "cd2c.cls"), "--out", str(out),
            "--base-url", server.url, "--timeout", "0.5", "--retries", "3", "--backoff", "0.05",
            "--concurrency", "4", "--rate", "50"]
    assert sevendigital.main(argv) == 0
    printed = capsys.readouterr().out
    assert "16 fetched, 0 already present, 2 missing, 0 failed" in printed
    assert server.bad_signatures == 0
    assert sorted(p.name for p in out.glob("*.mp3")) == sorted(f"{t}.mp3" for t, (_, d) in tracks.items()
                                                               if d and d != 1004)
    assert not list(out.glob(".*part*"))
    for path in out.glob("*.mp3"):   # every file complete: the truncated first answers were retried
        assert sf.info(str(path)).duration == pytest.approx(4.0, abs=0.1)
    retried = [d for d, count in server.requests.items() if count > 1]
    assert retried and all(d % 3 == 1 or d % 5 == 2 or d % 7 == 3 for d in retried)
    report = (out / "download_report.csv").read_text()
    assert "no preview (404)" in report and "no 7digital id" in report
    assert SECRET not in report + printed + caplog.text and KEY not in report + printed + caplog.text

    before = sum(server.requests.values())
    assert sevendigital.main(argv) == 0              # resume: nothing left to fetch
    assert "0 fetched, 16 already present, 2 missing" in capsys.readouterr().out
    assert sum(server.requests.values()) - before == 1   # only the 404 track is asked again


def test_wrong_secret_stops_with_a_clear_message(msd_tree, server, monkeypatch, capsys):
    root, data_dir, _ = msd_tree
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_KEY", KEY)
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_SECRET", "wrong")
    code = exit_status(sevendigital.main, ["--msd", str(data_dir), "--labels", str(root / "cd2c.cls"), "--out",
                              str(root / "p"), "--base-url", server.url, "--retries", "0"])
    error = capsys.readouterr().err
    assert code == 2 and "401" in error and "SEVENDIGITAL_CONSUMER_SECRET" in error and "wrong" not in error
    monkeypatch.delenv("SEVENDIGITAL_CONSUMER_KEY")
    assert exit_status(sevendigital.main, ["--msd", str(data_dir), "--labels", str(root / "cd2c.cls"), "--out",
                                           str(root / "p")]) == 2
    assert "set SEVENDIGITAL_CONSUMER_KEY" in capsys.readouterr().err


def test_msd_dataset_reads_previews_on_disk_and_reports_the_missing(msd_tree):
    root, _, tracks = msd_tree
    out = root / "previews"
    out.mkdir()
    present = sorted(tracks)[:12]
    for tid in present:
        (out / f"{tid}.mp3").write_bytes(b"")   # the index opens no audio
    index = msd_dataset.build(labels=str(root / "cd2c.cls"), previews=str(out), split="random",
                fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    assert sorted(t.track_id for t in index.tracks) == present
    assert index.genres == sorted(GENRES)
    assert len(index.skipped) == 6 and all(s.reason == "no preview on disk" for s in index.skipped)
    with pytest.raises(DatasetError, match="python -m genre.datasets.sevendigital"):
        msd_dataset.build(labels=str(root / "cd2c.cls"), previews=str(root / "empty"), split="random")


def test_msd_artist_split_reads_artists_from_the_metadata(msd_tree):
    root, data_dir, tracks = msd_tree
    out = root / "previews"
    out.mkdir()
    for tid in tracks:
        (out / f"{tid}.mp3").write_bytes(b"")
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    index = msd_dataset.build(labels=str(root / "cd2c.cls"), previews=str(out), split="artist", fractions=fractions,
                metadata=str(data_dir))
    sides = {}
    for t in index.tracks:
        sides.setdefault(t.artist, set()).add(t.split)
    assert set(sides) == {f"Artist {n}" for n in range(5)}     # 18 tracks of 5 artists, 3 genres each
    assert all(len(s) == 1 for s in sides.values())           # an artist's tracks stay on one side
    assert {"train", "test"} <= {s.pop() for s in sides.values()}  # 5 artists: too few for all three
    assert "by-artist" in index.split_protocol
    with pytest.raises(DatasetError, match="dataset.metadata"):
        msd_dataset.build(labels=str(root / "cd2c.cls"), previews=str(out), split="artist", fractions=fractions)


@pytest.mark.slow
def test_train_on_downloaded_previews(msd_tree, server, monkeypatch, capsys):
    from conftest import compose_config, tiny_overrides
    from genre.train import train

    root, data_dir, _ = msd_tree
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_KEY", KEY)
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_SECRET", SECRET)
    assert sevendigital.main(["--msd", str(data_dir), "--labels", str(root / "cd2c.cls"), "--out",
                              str(root / "previews"), "--base-url", server.url, "--timeout", "0.5",
                              "--backoff", "0.05", "--rate", "50"]) == 0
    overrides = [o for o in tiny_overrides(**{"trainer.max_epochs": 1, "clips.clip_seconds": 2.0})
                 if not o.startswith("dataset.")]
    metrics = train(compose_config("train", overrides + [
        "dataset=msd", f"dataset.labels={root / 'cd2c.cls'}", f"dataset.previews={root / 'previews'}",
        "dataset.track_seconds=4.0", "dataset.fractions={train: 0.5, val: 0.25, test: 0.25}"], root))
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    run = mlflow.get_run(metrics["run_id"])
    assert run.data.tags["dataset"] == "msd" and run.data.tags["skipped_files"] == "2"  # 404 and no id
    assert SECRET not in str(run.data.params) and KEY not in str(run.data.params)


class HostileServer:
    """What a broken or hostile preview server sends: an HTML page with status 200, a Content-Length that
    is not a number, a body far over any preview's size, and a body dripped a byte at a time."""

    def __init__(self, good: bytes):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                digital_id = int(urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1])
                self.send_response(200)
                if digital_id == 1000:
                    body = b"<html><body>Service temporarily unavailable</body></html>"
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif digital_id == 1001:
                    self.send_header("Content-Length", "abc")
                    self.end_headers()
                    self.wfile.write(good)
                elif digital_id == 1002:
                    self.send_header("Content-Length", str(30_000_000))
                    self.end_headers()
                    self.wfile.write(b"\xff\xfb" + b"\0" * 3_000_000)
                elif digital_id == 1003:
                    self.send_header("Content-Length", str(len(good)))
                    self.end_headers()
                    try:
                        for i in range(len(good)):
                            self.wfile.write(good[i:i + 1])
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                elif digital_id == 1105:   # a Content-Length shorter than the body
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(good)
                elif digital_id == 1106:   # two Content-Length headers
                    self.send_header("Content-Length", str(len(good)))
                    self.send_header("Content-Length", "200")
                    self.end_headers()
                    self.wfile.write(good)
                else:
                    self.send_header("Content-Length", str(len(good)))
                    self.end_headers()
                    self.wfile.write(good)

            def send_response(self, code, message=None):
                digital_id = int(urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1])
                if digital_id != 1104:
                    return super().send_response(code, message)
                try:   # the status line and headers dripped a byte a second
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nX-Slow: " + b"a" * 300:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(1.0)
                except OSError:
                    pass
                raise ConnectionAbortedError

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_the_deadline_covers_dripped_headers_and_lying_lengths_are_not_kept(tmp_path):
    """Headers a byte a second held a download with timeout_s=5 for over 212 s; a Content-Length shorter than
    the body, or two of them, kept a 100- or 200-byte file as "fetched", and a re-run counted it present."""
    hostile = HostileServer(mp3_bytes("Rock", 1))
    out = tmp_path / "previews"
    out.mkdir()
    (out / f"{track_id(7)}.mp3").write_bytes(mp3_bytes("Rock", 1)[:100])   # what such a run kept
    downloader = sevendigital.Downloader(out, KEY, SECRET, hostile.url, timeout_s=2.0, retries=0, rate_per_s=100,
                                         max_bytes=2_000_000)
    started = time.monotonic()
    report = downloader.run({track_id(4): 1104, track_id(5): 1105, track_id(6): 1106, track_id(7): 1107},
                            concurrency=4)
    assert time.monotonic() - started < 8
    assert "timed out" in report.failed[track_id(4)] or "longer than 2 s" in report.failed[track_id(4)]
    assert "too short for a preview" in report.failed[track_id(5)]
    assert "2 different Content-Lengths" in report.failed[track_id(6)]
    assert report.fetched == [track_id(7)] and report.present == []    # the 100-byte file was fetched again
    assert sorted(p.name for p in out.iterdir()) == [f"{track_id(7)}.mp3"]
    hostile.httpd.shutdown()


def test_a_hostile_server_cannot_fill_the_disk_hang_crash_or_leave_error_pages(tmp_path, monkeypatch):
    hostile = HostileServer(mp3_bytes("Rock", 1))
    out = tmp_path / "previews"
    ids = {track_id(n): 1000 + n for n in range(5)}
    out.mkdir()
    (out / f"{track_id(4)}.mp3").write_bytes(b"<html>an error page an older version kept</html>")
    downloader = sevendigital.Downloader(out, KEY, SECRET, hostile.url, timeout_s=1.0, retries=0, rate_per_s=100,
                                         max_bytes=2_000_000)
    started = time.monotonic()
    report = downloader.run(ids, concurrency=5)
    assert time.monotonic() - started < 5            # the drip is cut at the 1-s deadline, not read for minutes
    assert report.failed[track_id(0)].startswith("the body is not MP3 audio")
    assert "Content-Length 'abc'" in report.failed[track_id(1)]
    assert "over the cap of 2000000" in report.failed[track_id(2)]
    assert "timed out" in report.failed[track_id(3)]
    assert report.fetched == [track_id(4)]           # the kept error page was not counted present
    assert sorted(p.name for p in out.iterdir()) == [f"{track_id(4)}.mp3"]
    hostile.httpd.shutdown()


def test_the_download_report_is_written_whatever_stops_the_run(msd_tree, monkeypatch):
    root, data_dir, _ = msd_tree
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_KEY", KEY)
    monkeypatch.setenv("SEVENDIGITAL_CONSUMER_SECRET", SECRET)

    def breaks(self, track_id, digital_id):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(sevendigital.Downloader, "fetch", breaks)
    out = root / "previews"
    argv = ["--msd", str(data_dir), "--labels", str(root / "cd2c.cls"), "--out", str(out),
            "--base-url", "http://127.0.0.1:9", "--rate", "100"]
    assert sevendigital.main(argv) == 1
    report = (out / "download_report.csv").read_text()
    assert report.count("RuntimeError: something nobody foresaw") == 17 and "no 7digital id" in report
