"""The lab's event sink: where a Flux ``Provider`` of type ``generic`` POSTs its events.

In production a ``Provider`` points at Slack, Teams, an incident tool or a generic
webhook. The lab runs the smallest honest stand-in for the last one: an HTTP server on
127.0.0.1 that accepts ``POST`` with a JSON body, answers ``200``, and appends one line per
request to a JSONL file (0600) that ``homekube_lab.state.read_received_events`` reads. It
never interprets the event: what Flux sent is what the learner sees. ``/healthz`` answers
``ok``; anything else is ``404``/``405``::

    server = make_server(0, events_file)       # 127.0.0.1, any free port
    server.serve_forever()

or as a process, started by ``homekube-lab up``: ``python -m homekube_lab.embedded.eventsink
--port P --events-file FILE`` (one log line per request on stderr; exits 0 on SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ..state import append_jsonl, utc_now
from .processes import LoopbackHTTPServer, serve_until_signalled

#: Every listener of the lab binds loopback only.
HOST = "127.0.0.1"
#: Paths a Provider may post to: ``/flux/<anything>`` (the lab uses the Provider's name).
PREFIX = "/flux/"
#: A Flux event is a few KB; anything much larger is not one.
MAX_BODY = 1024 * 1024


class EventSink(LoopbackHTTPServer):
    """A :class:`LoopbackHTTPServer` that appends every accepted event to ``events_file``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], events_file: Path, *,
                 log: IO[str] | None = sys.stderr) -> None:
        self.events_file = Path(events_file)
        self.log = log
        self.lock = threading.Lock()
        super().__init__(address, _Handler)



def make_server(port: int, events_file: Path, *, log: IO[str] | None = sys.stderr) -> EventSink:
    """A sink bound to ``127.0.0.1:port`` (0 picks a free port); call ``serve_forever()``."""
    return EventSink((HOST, port), events_file, log=log)


class _Handler(BaseHTTPRequestHandler):
    server: EventSink
    protocol_version = "HTTP/1.1"
    server_version = "homekube-event-sink/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/healthz":
            self._reply(HTTPStatus.OK, b"ok\n")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if not path.startswith(PREFIX) or len(path) <= len(PREFIX):
            self._reply(HTTPStatus.NOT_FOUND, b"post events to /flux/<provider>\n")
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._reply(HTTPStatus.LENGTH_REQUIRED, b"Content-Length required\n")
            return
        if int(length) > MAX_BODY:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"too large for an event\n")
            return
        body = self.rfile.read(int(length))
        try:
            event = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._reply(HTTPStatus.BAD_REQUEST, b"the body is not JSON\n")
            return
        record = {"received": utc_now(), "path": path, "event": event,
                  "component": self.headers.get("Gotk-Component", "")}
        with self.server.lock:
            append_jsonl(self.server.events_file, record)
        self._reply(HTTPStatus.OK, b"ok\n")

    def do_PUT(self) -> None:  # noqa: N802
        self._reply(HTTPStatus.METHOD_NOT_ALLOWED, b"POST events\n")

    do_DELETE = do_PUT  # noqa: N815

    def _reply(self, status: HTTPStatus, body: bytes) -> None:
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        if self.server.log is not None:
            self.server.log.write(f"[{self.log_date_time_string()}] {self.client_address[0]} "
                                  f"{format % args}\n")
            self.server.log.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m homekube_lab.embedded.eventsink",
                                     description="Loopback sink for Flux Provider events.")
    parser.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: any free port)")
    parser.add_argument("--events-file", type=Path, required=True, help="JSONL file to append to")
    args = parser.parse_args(argv)
    server = make_server(args.port, args.events_file)

    print(f"homekube event sink on {server.url}{PREFIX}<provider> → {args.events_file}",
          file=sys.stderr, flush=True)
    return serve_until_signalled(server, "homekube event sink")


if __name__ == "__main__":
    sys.exit(main())
