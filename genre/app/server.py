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

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != CLASSIFY:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        message = (f"the upload is larger than the {self.limit / 2 ** 20:.0f} MB this app takes (max_upload_mb=...): "
                   f"send a shorter or compressed file")
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


def create_app(service: AppModel, limits: Limits | None = None) -> FastAPI:
    """The FastAPI application around a loaded run (``service``)."""
    limits = limits or Limits()
    app = FastAPI(title="genre", docs_url=None, redoc_url=None, openapi_url=None)   # the docs pages need a CDN
    app.add_middleware(UploadLimit, limit=limits.max_upload_bytes)
    # at most `workers` songs decoded and analysed at once (memory stays that of `workers` songs); the requests
    # waiting for a turn (each in a thread of the pool) are counted, and beyond `queue` of them answered 503
    gate, counting, waiting = threading.BoundedSemaphore(limits.workers), threading.Lock(), [0]
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
            with counting:
                if waiting[0] >= limits.workers + limits.queue:
                    raise Refused(503, "every worker is busy and the queue is full: try again in a moment")
                waiting[0] += 1
            try:
                return await run_in_threadpool(_gated, gate, service, upload, shown, limits)
            finally:
                with counting:
                    waiting[0] -= 1
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
