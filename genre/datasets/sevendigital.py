"""Fetch the 30-s 7digital preview of each MSD track: ``python -m genre.datasets.sevendigital --help``.

Requests are signed with two-legged OAuth 1.0 (HMAC-SHA1, signature in the query string); the
consumer key and secret come from ``SEVENDIGITAL_CONSUMER_KEY`` and ``SEVENDIGITAL_CONSUMER_SECRET``
and never reach a log, a report or a file name. Downloads run with bounded concurrency and rate,
time out, are retried with exponential backoff (server errors, time-outs, truncated bodies), and are
written under a temporary name that is renamed only when the body is complete, so a re-run resumes:
complete previews are kept, partial ones never look complete.
"""
from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import hmac
import http.client
import logging
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from genre.data.containers import HEAD_BYTES, check_signature, shown_bytes
from genre.datasets.msd import MSD_TRACK_ID, read_genre_labels, read_msd_metadata, select_tracks
from genre.runtime.errors import AudioDecodeError, DatasetError, GenreError, exit_on_user_error

log = logging.getLogger(__name__)
DEFAULT_BASE_URL = "http://previews.7digital.com"
KEY_VARIABLE, SECRET_VARIABLE = "SEVENDIGITAL_CONSUMER_KEY", "SEVENDIGITAL_CONSUMER_SECRET"
DEFAULT_MAX_BYTES = 4_000_000   # a 30-s preview is under about 2 MB: a body past this is not one


class SignatureRejected(GenreError):
    """The server refused the credentials (401/403): retrying cannot help."""


def _percent(text: str) -> str:
    return urllib.parse.quote(str(text), safe="~")  # RFC 3986 unreserved characters stay


def oauth_signature(method: str, url: str, params: dict[str, str], consumer_secret: str) -> str:
    """HMAC-SHA1 signature of a request (RFC 5849 section 3.4) with no token secret (two-legged).

    Seven lines of the standard library rather than ``oauthlib``, which is not otherwise installed; the
    test checks them against a signature computed independently."""
    parts = urllib.parse.urlsplit(url)
    base_url = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_percent(k), _percent(v)) for k, v in params.items()))
    base_string = "&".join([method.upper(), _percent(base_url), _percent(normalized)])
    digest = hmac.new(f"{_percent(consumer_secret)}&".encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_url(url: str, params: dict[str, str], consumer_key: str, consumer_secret: str) -> str:
    """``url`` with ``params`` and the OAuth 1.0 parameters, signature included, in its query string."""
    oauth = {"oauth_consumer_key": consumer_key, "oauth_nonce": secrets.token_hex(16),
             "oauth_signature_method": "HMAC-SHA1", "oauth_timestamp": str(int(time.time())),
             "oauth_version": "1.0"}
    query = {**params, **oauth}
    query["oauth_signature"] = oauth_signature("GET", url, query, consumer_secret)
    return f"{url}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


class RateLimiter:
    """At most ``per_second`` request starts per second, across threads."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.lock = threading.Lock()
        self.next_start = time.monotonic()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        time.sleep(max(0.0, start - now))


@dataclass
class DownloadReport:
    """Outcome per track id: fetched now, already present, missing (no preview), or failed (why)."""

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{len(self.fetched)} fetched, {len(self.present)} already present, "
                f"{len(self.missing)} missing, {len(self.failed)} failed")

    def write_csv(self, path: Path) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["track_id", "status", "reason"])
            writer.writerows([t, "fetched", ""] for t in self.fetched)
            writer.writerows([t, "present", ""] for t in self.present)
            writer.writerows([t, "missing", r] for t, r in self.missing.items())
            writer.writerows([t, "failed", r] for t, r in self.failed.items())


@dataclass
class Downloader:
    out_dir: Path
    consumer_key: str
    consumer_secret: str
    base_url: str = DEFAULT_BASE_URL
    country: str = "ww"
    timeout_s: float = 30.0          # the whole request, headers and body, not each socket read
    retries: int = 4
    backoff_s: float = 1.0
    rate_per_s: float = 5.0
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self):
        self.limiter = RateLimiter(self.rate_per_s)
        self.report = DownloadReport()

    def _fetch_once(self, digital_id: int, partial: Path) -> None:
        url = signed_url(f"{self.base_url.rstrip('/')}/clip/{digital_id}", {"country": self.country},
                         self.consumer_key, self.consumer_secret)
        self.limiter.wait()
        deadline = time.monotonic() + self.timeout_s
        # the deadline covers the whole request: a server that drips its status line and headers is cut off
        # too (urlopen's timeout is per read, and headers a byte a second never meet it)
        watch = _Deadline(self.timeout_s)
        try:
            body, expected = self._read(watch.opener().open(url, timeout=self.timeout_s), deadline)
        except (OSError, http.client.HTTPException):   # a connection shut at the deadline ends either way
            if watch.expired:
                raise TimeoutError(f"the request took longer than {self.timeout_s:g} s") from None
            raise
        finally:
            watch.cancel()
        if watch.expired:   # the socket was shut mid-body: what was read is cut short by the deadline
            raise TimeoutError(f"the request took longer than {self.timeout_s:g} s")
        if expected is not None and len(body) != expected:
            raise http.client.IncompleteRead(bytes(body), expected - len(body))
        if not body:
            raise http.client.IncompleteRead(b"")
        try:   # an error page sent with status 200 must not be kept as an .mp3
            check_signature(partial.with_name("preview.mp3"), bytes(body[:HEAD_BYTES]))
        except AudioDecodeError:
            raise BadPreview(f"the body is not MP3 audio (it starts with {shown_bytes(bytes(body[:16]))})") from None
        if len(body) < MIN_PREVIEW_BYTES:   # a Content-Length shorter than the body cuts it short
            raise BadPreview(f"the body is {len(body)} bytes, too short for a preview (at least {MIN_PREVIEW_BYTES})")
        partial.write_bytes(body)

    def _read(self, opened, deadline: float) -> tuple[bytearray, int | None]:
        """The body of a response and the length it declared, within the deadline and the size cap."""
        with opened as response:
            lengths = {value.strip() for value in response.headers.get_all("Content-Length") or []}
            if len(lengths) > 1:
                raise BadPreview(f"the server declared {len(lengths)} different Content-Lengths "
                                 f"({', '.join(sorted(lengths))[:60]}): the body cannot be trusted")
            declared = response.headers.get("Content-Length")
            expected = int(declared) if declared is not None and declared.strip().isdigit() else None
            if declared is not None and expected is None:
                raise BadPreview(f"the server declared Content-Length {declared[:20]!r}, not a number")
            if expected is not None and expected > self.max_bytes:
                raise BadPreview(f"the server declared {expected} bytes, over the cap of {self.max_bytes} "
                                 f"(--max-mb; previews are under about 2 MB)")
            body = bytearray()
            while True:   # read1: whatever has arrived, so that a server dripping bytes meets the deadline
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the request took longer than {self.timeout_s:g} s")
                chunk = response.read1(65536)
                if not chunk:
                    break
                body += chunk
                if len(body) > self.max_bytes:
                    raise BadPreview(f"the body is over the cap of {self.max_bytes} bytes (--max-mb; previews "
                                     f"are under about 2 MB)")
        return body, expected

    def fetch(self, track_id: str, digital_id: int) -> tuple[str, str]:
        """Download one preview; returns ``(status, reason)``, status one of fetched/missing/failed.

        The retries are this loop rather than urllib3's ``Retry``: each failure is sorted into what the
        report says of it (no preview, a refused key, a body that is not MP3, failed after N attempts)."""
        target = self.out_dir / f"{track_id}.mp3"
        partial = self.out_dir / f".{track_id}.mp3.part"
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                self._fetch_once(digital_id, partial)
                os.replace(partial, target)
                return "fetched", ""
            except urllib.error.HTTPError as error:
                if error.code in (401, 403):
                    raise SignatureRejected(f"the server answered {error.code} {error.reason}: check "
                                            f"{KEY_VARIABLE} and {SECRET_VARIABLE}") from None
                if error.code == 404:
                    return "missing", "no preview (404)"
                last_error = f"HTTP {error.code}"
                if error.code < 500 and error.code != 429:
                    break
            except BadPreview as error:   # retrying fetches the same body again
                last_error = str(error)
                break
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
                    OSError) as error:
                last_error = _describe(error)
            finally:
                partial.unlink(missing_ok=True)
        return "failed", f"{last_error} after {attempt + 1} attempts"

    def run(self, jobs: dict[str, int], concurrency: int = 4) -> DownloadReport:
        """Fetch every ``track id -> 7digital id`` not already on disk."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob(".*.mp3.part"):
            stale.unlink()
        report = self.report = DownloadReport()   # kept here: main writes it whatever happens
        todo: dict[str, int] = {}
        for track_id, digital_id in sorted(jobs.items()):
            if not MSD_TRACK_ID.match(track_id):
                report.failed[track_id] = "not an MSD track id (TR + 16 capitals or digits)"
            elif digital_id <= 0:
                report.missing[track_id] = "no 7digital id in the MSD metadata"
            elif _is_audio(self.out_dir / f"{track_id}.mp3"):
                report.present.append(track_id)
            else:
                (self.out_dir / f"{track_id}.mp3").unlink(missing_ok=True)   # an error page kept by an older run
                todo[track_id] = digital_id
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(self.fetch, t, d): t for t, d in todo.items()}
            try:
                for future in tqdm(as_completed(futures), total=len(futures), desc="7digital previews",
                                   unit="track"):
                    track_id = futures[future]
                    try:
                        status, reason = future.result()
                    except SignatureRejected:
                        raise
                    except Exception as error:   # whatever a hostile server provokes: this track failed
                        status, reason = "failed", f"{type(error).__name__}: {str(error)[:200]}"
                    if status == "fetched":
                        report.fetched.append(track_id)
                    else:
                        (report.missing if status == "missing" else report.failed)[track_id] = reason
            except SignatureRejected:
                for future in futures:
                    future.cancel()
                raise
        return report


class BadPreview(Exception):
    """A body that must not be kept: over the size cap, not audio, or with a malformed length."""


MIN_PREVIEW_BYTES = 8192   # a second of MP3 at 64 kbps; a 30-s preview is hundreds of kB


class _Deadline:
    """An opener whose connections are shut when ``seconds`` have passed, whatever they are waiting for (the
    status line, headers or body)."""

    def __init__(self, seconds: float):
        self.sockets: list = []
        self.expired = False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        import socket

        self.expired = True
        for sock in list(self.sockets):   # the sockets themselves: a connection drops its own after the headers
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cancel(self) -> None:
        self.timer.cancel()

    def opener(self) -> urllib.request.OpenerDirector:
        watched = self

        def recorded(base):
            class Connection(base):
                def connect(self):
                    super().connect()
                    watched.sockets.append(self.sock)
            return Connection

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(recorded(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(recorded(http.client.HTTPSConnection), req, context=self._context)

        return urllib.request.build_opener(HTTP, HTTPS)


def _is_audio(path: Path) -> bool:
    """A preview on disk that is an MP3 file of a preview's size (not an error page an older version kept, nor a
    body cut short by a lying Content-Length)."""
    try:
        if path.stat().st_size < MIN_PREVIEW_BYTES:
            return False
        with open(path, "rb") as f:
            check_signature(path, f.read(HEAD_BYTES))
        return True
    except (OSError, AudioDecodeError):
        return False


def _describe(error: Exception) -> str:
    """A reason for the report that holds no URL (the query string carries the key and signature)."""
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, Exception) else error
    if isinstance(error, http.client.IncompleteRead):
        return "truncated body"
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return "timed out"
    return type(error).__name__


def credentials_from_environment() -> tuple[str, str]:
    key, secret = os.environ.get(KEY_VARIABLE), os.environ.get(SECRET_VARIABLE)
    if not key or not secret:
        raise DatasetError(f"set {KEY_VARIABLE} and {SECRET_VARIABLE} in the environment (7digital API "
                           f"credentials); they are read from there only, never from the command line")
    return key, secret


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genre.datasets.sevendigital", description=__doc__.split("\n")[0])
    parser.add_argument("--msd", required=True, help="MSD metadata: a summary .h5 file or the data/ folder")
    parser.add_argument("--labels", required=True, help="tagtraum-format .cls genre labels")
    parser.add_argument("--out", required=True, help="folder for <TRACKID>.mp3 (dataset.previews)")
    parser.add_argument("--genres", nargs="*", default=None, help="keep these genres only")
    parser.add_argument("--fraction", type=float, default=1.0, help="seeded fraction of the tracks to keep")
    parser.add_argument("--seed", type=int, default=0, help="seed of that fraction (dataset.sample_seed)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    parser.add_argument("--country", default="ww")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--rate", type=float, default=5.0, help="request starts per second at most")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request, body included")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_BYTES / 1e6,
                        help="largest body kept, MB (previews are under about 2 MB)")
    parser.add_argument("--retries", type=int, default=4)
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry delay, s (doubles)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    key, secret = credentials_from_environment()
    chosen = select_tracks(read_genre_labels(args.labels), args.genres, args.fraction, args.seed)
    metadata = read_msd_metadata(args.msd, list(chosen))
    jobs = {t: metadata[t].track_7digitalid if t in metadata else 0 for t in chosen}
    downloader = Downloader(Path(args.out), key, secret, args.base_url, args.country, args.timeout,
                            args.retries, args.backoff, args.rate, int(args.max_mb * 1e6))
    report_path = Path(args.out) / "download_report.csv"
    try:
        downloader.run(jobs, args.concurrency)
    finally:   # what was done is reported, whatever stopped the rest
        if Path(args.out).is_dir():
            downloader.report.write_csv(report_path)
    print(f"{downloader.report.summary()}; per-track report in {report_path}")
    return 0 if not downloader.report.failed else 1


if __name__ == "__main__":
    sys.exit(main())
