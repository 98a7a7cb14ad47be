"""The lab's stand-in for nginx. It reports the openssl-lab version loaded at its start, the way a
real nginx keeps the old libssl mapped until restarted after a patch."""
import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(HERE, "VERSION")).read().strip()
OPENSSL = open("/usr/lib/openssl-lab/VERSION").read().strip()
HOST = socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = {"status": "ok", "version": VERSION, "openssl": OPENSSL, "host": HOST}
        data = (json.dumps(body) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        pass


ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer(("0.0.0.0", 80), Handler).serve_forever()
