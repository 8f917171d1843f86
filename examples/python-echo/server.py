"""A model served by its own command (hangar.json "server"), Python standard library only.

Hangar runs `python3 server.py` in this folder with PORT and HANGAR_ENVIRONMENT set.
GET /health -> 200 {"status": "ok"}
POST /predict with a JSON body -> 200 {"echo": <body>, "environment": <name or null>, "pid": <pid>}
Errors are {"error": "...", "error_code": "..."}: 400 client_error, 404 not_found.
SIGTERM: stop accepting, let requests in flight finish (at most 10 s), exit 0.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENVIRONMENT = os.environ.get("HANGAR_ENVIRONMENT") or None
DRAIN_SECONDS = 10

in_flight = 0
in_flight_lock = threading.Lock()
stopping = threading.Event()


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections open: the gateway pools them.
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is dropped after this long (the socket read times out).
    timeout = 65

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/health":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": "not found", "error_code": "not_found"})

    def do_POST(self):
        global in_flight
        with in_flight_lock:
            in_flight += 1
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            if self.path.split("?", 1)[0] != "/predict":
                self.reply(404, {"error": "not found", "error_code": "not_found"})
                return
            try:
                data = json.loads(body)
            except ValueError:
                self.reply(400, {"error": "request body is not valid JSON", "error_code": "client_error"})
                return
            self.reply(200, {"echo": data, "environment": ENVIRONMENT, "pid": os.getpid()})
        finally:
            with in_flight_lock:
                in_flight -= 1

    def reply(self, status, payload):
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if stopping.is_set():
            # Draining: this connection is not reused.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        # One line per request would flood the deployment's logs.
        pass


def main():
    port = int(os.environ.get("PORT") or "8000")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def on_sigterm(signum, frame):
        stopping.set()
        # shutdown() waits for serve_forever() to return, which runs on this (the main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    print(f"python-echo listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
    server.server_close()

    deadline = time.monotonic() + DRAIN_SECONDS
    while in_flight > 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    # Handler threads are daemons: idle keep-alive connections end with the process.
    sys.exit(0 if in_flight == 0 else 1)


if __name__ == "__main__":
    main()
