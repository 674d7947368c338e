#!/usr/bin/env python3
"""STAND-IN for a vLLM server (unified, prefill, decode) or the disaggregation proxy.

Used only by examples/local-demo.nixl so a campaign runs on one machine with no GPU:
it listens after a start-up delay and answers GET /health with 200, like vLLM.
"""
import argparse
import http.server
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--role", default="unified")
parser.add_argument("--delay", type=float, default=0.5, help="seconds before the port opens (model loading)")
args = parser.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok", "role": "%s"}' % args.role.encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


time.sleep(args.delay)
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
