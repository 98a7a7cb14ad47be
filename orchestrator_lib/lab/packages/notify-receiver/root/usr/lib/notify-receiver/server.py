"""The lab's notification receiver (a stand-in for a push or chat webhook): POST /notify stores a
JSON message, GET /messages returns all of them, so tests can see what the deployer sent."""
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STORE = "/var/lib/notify-receiver/messages.jsonl"
HOST = socket.gethostname()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if not self.path.startswith("/notify"):
            return self._send(404, {"error": "not found"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
            message = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, {"error": "expected a JSON body"})
        if not isinstance(message, dict) or "message" not in message:
            return self._send(400, {"error": "expected a JSON object with a message"})
        with LOCK, open(STORE, "a") as out:
            out.write(json.dumps(message) + "\n")
        self._send(202, {"status": "accepted", "host": HOST})

    def do_GET(self) -> None:
        if self.path.startswith("/messages"):
            with LOCK:
                lines = open(STORE).read().splitlines() if os.path.exists(STORE) else []
            return self._send(200, [json.loads(line) for line in lines])
        self._send(200, {"status": "ok", "host": HOST})

    def _send(self, code: int, body: object) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        pass


os.makedirs(os.path.dirname(STORE), exist_ok=True)
ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", 8025), Handler).serve_forever()
