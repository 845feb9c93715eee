"""A counting proxy in front of an OpenAI-compatible server, for CI: forwards every
request unchanged and sums the `usage` of the answers the server sent, so a check can
compare trace-bench's billed tokens with what the server really reported.

    python usage_proxy.py LISTEN_PORT UPSTREAM_URL   # e.g. 8801 http://127.0.0.1:8800
    GET /__usage  ->  {"requests": n, "prompt_tokens": p, "completion_tokens": c}
"""

import json
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
TOTALS = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}


class Proxy(BaseHTTPRequestHandler):
    upstream = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/__usage":
            with LOCK:
                body = json.dumps(TOTALS).encode()
            self.send_response(200)
        else:
            body = self.forward(None)
        self.reply(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.reply(self.forward(self.rfile.read(length)))

    def reply(self, body):
        """The rest of a response whose status line is sent: headers and `body`."""
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self, data):
        """Send the request upstream; send the status line back and return the body."""
        request = urllib.request.Request(self.upstream + self.path, data=data, method="POST" if data is not None else "GET")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=600) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            body, status = e.read(), e.code
        except urllib.error.URLError as e:  # the server is not up (yet)
            body, status = json.dumps({"error": str(e.reason)}).encode(), 502
        if data is not None and status == 200:
            usage = json.loads(body).get("usage") or {}
            with LOCK:
                TOTALS["requests"] += 1
                TOTALS["prompt_tokens"] += usage.get("prompt_tokens", 0)
                TOTALS["completion_tokens"] += usage.get("completion_tokens", 0)
        self.send_response(status)
        return body


def main():
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    Proxy.upstream = upstream
    ThreadingHTTPServer(("127.0.0.1", port), Proxy).serve_forever()


main()
