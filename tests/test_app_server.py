"""The app's server under hostile clients (issue 31, item 7), on a stand-in for the loaded run (the run itself is
tests/test_app.py's): another site's Host name, bodies in flight behind a full queue, headers sent a byte at a
time. Each test failed before its fix."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from conftest import free_port


class StandIn:
    """What the server needs of :class:`genre.app.service.AppModel`: facts, analyse, track audio."""

    facts = {"model": "cnn3", "genres": ["a", "b"]}

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Event()

    def analyse(self, path, shown, limits):
        self.started.set()
        self.release.wait(30)
        return {"genres": [["a", 1.0]], "file": shown}

    def track_audio(self, track):
        return b"RIFF"


def _client(service, **limits):
    from fastapi.testclient import TestClient

    from genre.app.server import create_app
    from genre.app.service import Limits

    return TestClient(create_app(service, Limits(**limits)), base_url="http://127.0.0.1")


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8050", "127.0.0.1.attacker.example"])
def test_another_sites_host_name_gets_nothing(host):
    """DNS rebinding: a page on attacker.example whose name now points to 127.0.0.1 read the facts and audio."""
    client = _client(StandIn())
    for path in ("/api/run", "/api/audio?track=x", "/"):
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 400, (path, answer.status_code)
    for own in ("127.0.0.1:8050", "localhost:8050", "[::1]:8050"):
        assert client.get("/api/run", headers={"Host": own}).status_code == 200


def test_a_full_queue_is_answered_before_the_body_is_read():
    """The 503 was decided after the whole body had been received and stored."""
    import asyncio

    from genre.app.server import CLASSIFY, create_app
    from genre.app.service import Limits

    service = StandIn()
    app = create_app(service, Limits(workers=1, queue=0))
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="http://127.0.0.1")
    first = {}
    thread = threading.Thread(target=lambda: first.setdefault(
        "answer", client.post("/api/classify", files={"file": ("a.wav", b"RIFF" + bytes(100))})))
    thread.start()
    assert service.started.wait(30)
    received, sent = [], []

    async def receive():            # the body of a second upload, as the server would read it
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": CLASSIFY, "raw_path": CLASSIFY.encode(), "query_string": b"",
             "headers": [(b"host", b"127.0.0.1:8050"), (b"content-type", b"multipart/form-data; boundary=b"),
                         (b"content-length", b"1048576")], "scheme": "http", "server": ("127.0.0.1", 8050),
             "client": ("127.0.0.1", 5000), "http_version": "1.1", "root_path": "", "asgi": {"version": "3.0"}}
    asyncio.run(app(scope, receive, send))
    service.release.set()
    thread.join(30)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 503
    assert b"try again" in b"".join(m.get("body", b"") for m in sent[1:])
    assert received == [], "the body was read before the answer"
    assert first["answer"].status_code == 200


def test_the_upload_limit_message_names_the_setting_without_dots():
    answer = _client(StandIn(), max_upload_mb=1).post("/api/classify", content=b"x" * (2 * 2 ** 20),
                                                      headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 413 and "max_upload_mb=..." not in answer.json()["detail"]
    assert "max_upload_mb setting" in answer.json()["detail"]


def test_headers_dripped_a_byte_at_a_time_are_cut_off_at_the_deadline():
    """Headers sent one byte every 0.5 s kept a connection open for 16 s."""
    import uvicorn

    from genre.app.main import server_settings
    from genre.app.server import create_app, request_deadline_protocol
    from genre.app.service import Limits

    port = free_port()
    settings = {**server_settings("127.0.0.1", port, 4), "http": request_deadline_protocol(1.5)}
    server = uvicorn.Server(uvicorn.Config(create_app(StandIn(), Limits()), **settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port)) as fast:   # a whole request still gets its answer
            fast.sendall(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert fast.recv(100).startswith(b"HTTP/1.1 200")
        drip = socket.create_connection(("127.0.0.1", port))
        started, closed = time.monotonic(), None
        for byte in b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            try:
                drip.send(bytes([byte]))
                drip.settimeout(0.2)
                if drip.recv(100) == b"":
                    closed = time.monotonic() - started
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = time.monotonic() - started
                break
        drip.close()
        assert closed is not None and closed < 5, closed
    finally:
        server.should_exit = True
        thread.join(10)
