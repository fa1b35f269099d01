"""An HTTPS app for upstream-TLS tests (Python's ssl + http.server), usable
in-process (TlsBackend) or as a supervised app:
    python3 tls_backend.py --port N --cert CHAIN.pem --key KEY.pem [--release ID]
It records what each TLS connection looked like (SNI, resumed session) so a
test can see what releasectl sent, and answers:
  GET  /up             200 "ok" (health checks)
  GET  /bytes/N        N bytes (Content-Length)
  GET  /chunked/N      N bytes, chunked
  POST /echo           the body back, with its SHA-256 in X-Body-Sha256
  GET  /ws             101 upgrade, then echoes bytes until the client closes
  GET  /poison         a response, then (as a second TLS record) an unsolicited
                       one that must never reach any client
  anything else        JSON: method, path, headers, release"""
import argparse
import hashlib
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TlsBackend:
    def __init__(self, cert, key, port=0, release="tls-app"):
        self.release = release
        self.lock = threading.Lock()
        self.connections = []  # dicts: sni, resumed, version
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = self._note_sni
        self._sni_by_socket = {}
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                self.request.do_handshake()
                with backend.lock:
                    backend.connections.append({
                        "sni": backend._sni_by_socket.pop(id(self.request), None),
                        "resumed": self.request.session_reused,
                        "version": self.request.version(),
                    })
                super().setup()

            def _send(self, status, body, content_type="text/plain", extra=()):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                if self.path == "/up":
                    return self._send(200, b"ok")
                if self.path.startswith("/bytes/"):
                    n = int(self.path.split("/")[2])
                    return self._send(200, pattern(n), "application/octet-stream")
                if self.path.startswith("/chunked/"):
                    n = int(self.path.split("/")[2])
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    data = pattern(n)
                    for i in range(0, n, 65536):
                        piece = data[i:i + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if self.path == "/poison":
                    self._send(200, b"clean")
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
                    return
                if self.path == "/ws":
                    self.send_response(101)
                    self.send_header("Upgrade", "websocket")
                    self.send_header("Connection", "Upgrade")
                    self.end_headers()
                    self.wfile.flush()
                    while True:
                        data = self.request.recv(65536)
                        if not data:
                            break
                        self.request.sendall(data)
                    self.close_connection = True
                    return
                payload = json.dumps({"method": self.command, "path": self.path, "release": backend.release,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self._send(200, payload, "application/json")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self._send(200, body, "application/octet-stream",
                           [("X-Body-Sha256", hashlib.sha256(body).hexdigest())])

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self):
                sock, address = self.socket.accept()
                # http.server writes the head and the body separately: without
                # this, Nagle holds the body for the proxy's delayed ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # The handshake runs in the connection's own thread (setup).
                return backend.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

            def handle_error(self, request, client_address):
                pass  # failed handshakes (an unverified proxy hangs up) are expected here

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]

    def _note_sni(self, ssl_socket, server_name, context):
        self._sni_by_socket[id(ssl_socket)] = server_name

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self):
        with self.lock:
            return list(self.connections)


def pattern(n):
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--release", default="tls-app")
    args = parser.parse_args()
    backend = TlsBackend(args.cert, args.key, args.port, args.release)
    backend.server.serve_forever()
