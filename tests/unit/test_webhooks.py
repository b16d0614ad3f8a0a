"""The webhook client (arclight.clients.webhooks) against HTTP servers on 127.0.0.1."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from arclight.clients import webhooks
from arclight.metering.notifications import SIGNATURE_HEADER, signature

pytestmark = pytest.mark.unit
TOKEN = "tok-5ecret"


class Handler(BaseHTTPRequestHandler):
    """Answers with the status the path names (``/200``, ``/302``...); keeps what it got."""

    got: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((self.path, dict(self.headers), body))
        self.send_response(int(self.path.split("?")[0].strip("/")))
        self.send_header("Location", "/200")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"no!")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.got = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_signed_post_answered_2xx(server: str) -> None:
    assert webhooks.post(f"{server}/204?token={TOKEN}", b'{"a":1}', "key", 1700000000) is None
    ((path, headers, body),) = Handler.got
    assert (path, body) == (f"/204?token={TOKEN}", b'{"a":1}')
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "arclight"
    assert headers[SIGNATURE_HEADER] == signature("key", 1700000000, b'{"a":1}')
    assert webhooks.post(f"{server}/200", b"{}", None, 1) is None
    assert SIGNATURE_HEADER not in Handler.got[1][1]


def test_other_answers_fail_and_redirects_are_not_followed(server: str) -> None:
    assert webhooks.post(f"{server}/500?token={TOKEN}", b"{}", None, 1) == "HTTP 500"
    assert webhooks.post(f"{server}/302", b"{}", None, 1) == "HTTP 302"
    assert [p for p, _, _ in Handler.got] == [f"/500?token={TOKEN}", "/302"]


def test_connection_errors_never_show_the_url_secrets() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://me:{TOKEN}@127.0.0.1:{port}/services/{TOKEN}?token={TOKEN}#{TOKEN}"
    error = webhooks.post(url, b"{}", None, 1)
    assert error == "cannot connect: Connection refused"
    assert webhooks.post(f"http://[{TOKEN}/x?token={TOKEN}", b"{}", None, 1) == (
        "not a valid URL")
