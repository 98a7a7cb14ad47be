"""mywebapp: the lab's web application. /health reports the version read at start, so a host
that was upgraded but not restarted keeps reporting the old one, as a real app would.

Lab fault injection: while /etc/mywebapp/fault-delay-ms holds a number, every /health answer
waits that many milliseconds first (`python -m orchestrator_lib.lab slow web3 40`; 0 ends it).
Read on each request, so a running app slows down and recovers without a restart."""
import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(HERE, "VERSION")).read().strip()
BROKEN = os.path.exists(os.path.join(HERE, "BROKEN"))
HOST = socket.gethostname()
PORT = int(os.environ.get("MYWEBAPP_PORT", "8080"))
FAULT_DELAY = "/etc/mywebapp/fault-delay-ms"


def injected_delay() -> float:
    """Seconds the lab asked this host's answers to wait (0 when no fault is injected)."""
    try:
        with open(FAULT_DELAY) as f:
            return max(0.0, min(float(f.read().strip() or 0), 10000.0)) / 1000
    except (OSError, ValueError):
        return 0.0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/health"):
            delay = injected_delay()
            if delay:
                time.sleep(delay)
            healthy = not BROKEN
            body = {"status": "ok" if healthy else "failing", "version": VERSION, "host": HOST}
            self._send(200 if healthy else 500, json.dumps(body) + "\n", "application/json")
        else:
            self._send(200, f"mywebapp {VERSION} on {HOST}\n", "text/plain")

    def _send(self, code: int, text: str, ctype: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:  # keep the runit log quiet
        pass


ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
