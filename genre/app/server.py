"""The app's web side: one page, its script and style, and a small JSON API, all served by FastAPI from this
package (no CDN, nothing else on disk: no directory is listed, no path is taken from a request).

- ``GET /``: the page; ``GET /app.js``, ``GET /app.css``: what it needs.
- ``GET /api/run``: the run's facts and the app's limits.
- ``POST /api/classify``: one audio file (multipart form, field ``file``) -> genres, windows, the front end's
  picture and the tracks like it. Bad input is a 4xx with ``{"detail": message}``: several files or none,
  an empty file (400); an upload over the size limit, refused from its declared length before it is read, or
  as soon as it passes the limit (413); a song over the duration limit, from its header (413); a file that
  does not decode, is truncated or silent (422). When every worker is busy and the queue is full: 503.
- ``GET /api/audio?track=<id>``: a corpus track, as WAV, by its id in the run's corpus only.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from genre.app.service import AppModel, Limits, Refused

STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
CLASSIFY = "/api/classify"


class _TooLarge(Exception):
    pass


class UploadLimit:
    """ASGI middleware: a body to ``/api/classify`` over ``limit`` bytes is answered 413, from its
    Content-Length before any of it is read, or (sent in chunks) as soon as the bytes read pass the limit."""

    def __init__(self, app, limit: int, admit=None, release=None):
        self.app = app
        self.limit = limit
        self.admit, self.release = admit, release   # the queue's turnstile (create_app), or None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != CLASSIFY:
            return await self.app(scope, receive, send)
        if self.admit is not None and not self.admit():
            # decided before any of the body is read: a full queue holds no bodies in flight
            busy = {"detail": "every worker is busy and the queue is full: try again in a moment"}
            return await JSONResponse(busy, status_code=503, headers={"Connection": "close"})(scope, receive, send)
        try:
            await self._limited(scope, receive, send)
        finally:
            if self.admit is not None:
                self.release()

    async def _limited(self, scope, receive, send):
        declared = dict(scope["headers"]).get(b"content-length")
        message = (f"the upload is larger than the {self.limit / 2 ** 20:.0f} MB this app takes (its max_upload_mb "
                   f"setting): send a shorter or compressed file")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)
        read, started = 0, False

        async def counted():
            nonlocal read
            incoming = await receive()
            if incoming["type"] == "http.request":
                read += len(incoming.get("body", b""))
                if read > self.limit:
                    raise _TooLarge
            return incoming

        async def sending(outgoing):
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, counted, sending)
        except _TooLarge:
            if not started:
                await JSONResponse({"detail": message}, status_code=413)(scope, receive, send)


def shown_name(filename: str | None) -> str:
    """An uploaded file's name as the page shows it: its last part, printable, at most 120 characters."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable())[:120]
    return name or "the uploaded file"


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(host: str) -> list[str]:
    """The ``Host`` headers the app answers: this machine's loopback names, and the host it was asked to serve
    (with its machine's name and addresses when that is every interface). Any other is refused 400: a page on
    another site that rebinds its own name to 127.0.0.1 (DNS rebinding) reaches no fact and no audio."""
    names = {*LOOPBACK_NAMES, host}
    if host in ("0.0.0.0", "::"):
        import socket

        try:
            name, aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
            names |= {name, *aliases, *addresses, socket.gethostname()}
        except OSError:
            pass
    return sorted(names)


def create_app(service: AppModel, limits: Limits | None = None, host: str = "127.0.0.1") -> FastAPI:
    """The FastAPI application around a loaded run (``service``), answering the ``Host`` names of
    :func:`allowed_hosts`."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    limits = limits or Limits()
    app = FastAPI(title="genre", docs_url=None, redoc_url=None, openapi_url=None)   # the docs pages need a CDN
    # at most `workers` songs decoded and analysed at once (memory stays that of `workers` songs); the requests
    # admitted beyond them wait for a turn, and beyond `queue` waiting a request is answered 503 before its
    # body is read
    gate, counting, waiting = threading.BoundedSemaphore(limits.workers), threading.Lock(), [0]

    def admit() -> bool:
        with counting:
            if waiting[0] >= limits.workers + limits.queue:
                return False
            waiting[0] += 1
            return True

    def release() -> None:
        with counting:
            waiting[0] -= 1

    app.add_middleware(UploadLimit, limit=limits.max_upload_bytes, admit=admit, release=release)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host))
    assets = resources.files("genre.app") / "static"

    def static(name: str, media_type: str):
        body = (assets / name).read_bytes()
        return lambda: Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    for route, (name, media_type) in STATIC.items():
        app.get(route, include_in_schema=False)(static(name, media_type))

    @app.exception_handler(Refused)
    async def refused(_request: Request, error: Refused):
        return JSONResponse({"detail": error.message}, status_code=error.status)

    @app.get("/api/run")
    def run_facts():
        return {**service.facts, "limits": {"max_upload_mb": limits.max_upload_mb, "max_seconds": limits.max_seconds}}

    @app.post(CLASSIFY)
    async def classify(request: Request):
        form = await request.form(max_files=8, max_fields=8)
        try:
            files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
            if not files:
                raise Refused(400, "no file: send one audio file as the form field 'file'")
            if len(files) > 1:
                raise Refused(400, f"{len(files)} files at once: send one song at a time")
            upload = files[0]
            shown = shown_name(upload.filename)
            return await run_in_threadpool(_gated, gate, service, upload, shown, limits)
        finally:
            await form.close()

    @app.get("/api/audio")
    def track_audio(track: str):
        return Response(service.track_audio(track), media_type="audio/wav")

    return app


def _gated(gate: threading.BoundedSemaphore, *args) -> dict:
    with gate:
        return _analyse_upload(*args)


def _analyse_upload(service: AppModel, upload: UploadFile, shown: str, limits: Limits) -> dict:
    """The upload written to a file of its own (its name's extension kept: the decoder checks the signature
    against it), analysed, and removed."""
    suffix = Path(shown).suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
    with tempfile.TemporaryDirectory(prefix="genre-app-") as folder:
        path = Path(folder) / f"upload{suffix}"
        upload.file.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out)
        if path.stat().st_size == 0:
            raise Refused(400, f"{shown} is empty (0 bytes): choose an audio file")
        return service.analyse(path, shown, limits)


def request_deadline_protocol(seconds: float = 10.0):
    """uvicorn's h11 protocol with a deadline on a request's headers: they must all arrive within ``seconds`` of
    the connection or of the last response, else the connection is closed. uvicorn has none (headers sent a byte
    every 0.5 s held a connection for as long as they came); its keep-alive timeout ends with the first byte."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class RequestDeadline(H11Protocol):
        _deadline = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def _arm(self):
            self._cancel()
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _cancel(self):
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def handle_events(self):
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:   # a request's headers are complete
                self._cancel()

        def on_response_complete(self):
            self._arm()                    # the next request's headers (a pipelined one cancels it at once)
            super().on_response_complete()

        def connection_lost(self, exc):
            self._cancel()
            super().connection_lost(exc)

        def _too_slow(self):
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return RequestDeadline
