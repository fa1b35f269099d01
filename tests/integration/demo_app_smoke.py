#!/usr/bin/env python3
"""Smoke test of releasectl-demo-app, the backend behind the demo, the
integration tests and the benchmark: every route, a 64 MiB streaming echo,
SSE event timing, pipelining, WebSocket echo, error/latency injection, the
Unix socket listener and graceful SIGTERM.

The binary comes from $RELEASECTL_DEMO_APP (set by meson) or argv[1].
Only loopback, only processes this file starts (killed by PID)."""

import base64
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

APP = os.path.abspath(os.environ.get("RELEASECTL_DEMO_APP") or
                      (sys.argv[1] if len(sys.argv) > 1 else "missing"))
TIMEOUT = 30.0


def pattern(offset, length):
    """The body generator's pattern: byte i is 'a' + i % 26."""
    return bytes(97 + (i % 26) for i in range(offset, offset + length))


class App:
    """One demo-app process; learns its address from the 'listening on' line."""

    def __init__(self, *args, cwd=None, env=None):
        full_env = dict(os.environ)
        for key in ("PORT", "SOCKET_PATH", "RELEASE_ID", "SLOT", "THREADS", "ERROR_RATE",
                    "EXTRA_LATENCY_MS"):
            full_env.pop(key, None)
        full_env.update(env or {})
        # stderr goes to a file: a chatty child can never block on a full pipe.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([APP, *args], cwd=cwd, env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.line = self._wait_listening_line()
        m = re.match(r"listening on (\S+)", self.line)
        assert m, self.line
        self.address = m.group(1)

    def stderr_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def _wait_listening_line(self):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            text = self.stderr_text()
            if text.startswith("listening on") and "\n" in text:
                return text.split("\n", 1)[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        text = self.stderr_text()
        self.kill()
        raise AssertionError(f"demo app did not start: {text!r}")

    def connect(self):
        if self.address.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(TIMEOUT)
            s.connect(self.address[5:])
            return s
        host, port = self.address.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self):
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Conn:
    """A raw HTTP/1.1 client connection that parses responses itself."""

    def __init__(self, app):
        self.sock = app.connect()
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        return status, headers

    def read_chunks(self, on_chunk=None):
        body = b""
        while True:
            size = int(self.read_until(b"\r\n").strip().split(b";")[0], 16)
            if size == 0:
                self.read_until(b"\r\n")
                return body
            data = self.read_exact(size)
            assert self.read_exact(2) == b"\r\n"
            if on_chunk:
                on_chunk(data)
            body += data

    def read_response(self, head_request=False):
        status, headers = self.read_head()
        if head_request or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self.read_exact(int(headers["content-length"][0]))
        if headers.get("transfer-encoding") == ["chunked"]:
            return status, headers, self.read_chunks()
        while True:  # close-delimited
            try:
                self._fill()
            except EOFError:
                body, self.buf = self.buf, b""
                return status, headers, body

    def request(self, method, target, headers=(), body=b""):
        lines = [f"{method} {target} HTTP/1.1", "Host: smoke"]
        lines += [f"{k}: {v}" for k, v in headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return self.read_response(head_request=(method == "HEAD"))

    def close(self):
        self.sock.close()


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def test_basic_routes(app):
    c = Conn(app)
    status, h, body = c.request("GET", "/up")
    check(status == 200 and body == b"ok\n", f"/up: {status} {body!r}")
    check(h["x-release"] == ["smoke-rel"] and h["x-slot"] == ["blue"], f"headers: {h}")

    status, h, body = c.request("GET", "/")
    check(status == 200 and body == b"hello from smoke-rel\n", f"/: {status} {body!r}")

    status, h, body = c.request("GET", "/bytes/100000")
    check(status == 200 and h["content-length"] == ["100000"], f"/bytes: {status} {h}")
    check(body == pattern(0, 100000), "/bytes body is the a..z pattern")

    status, h, body = c.request("HEAD", "/bytes/1234")
    check(status == 200 and h["content-length"] == ["1234"] and body == b"", "HEAD /bytes")

    # /chunked/N: 16 KiB chunks on the wire.
    c.send(b"GET /chunked/40000 HTTP/1.1\r\nHost: smoke\r\n\r\n")
    status, h = c.read_head()
    check(h.get("transfer-encoding") == ["chunked"], f"/chunked framing: {h}")
    sizes = []
    body = c.read_chunks(on_chunk=lambda d: sizes.append(len(d)))
    check(sizes == [16384, 16384, 7232], f"chunk sizes {sizes}")
    check(body == pattern(0, 40000), "/chunked body")

    status, h, body = c.request("POST", "/echo", [("Content-Type", "text/x-test")], b"hello echo")
    check(status == 200 and body == b"hello echo" and h["content-length"] == ["10"], "echo CL")
    check(h["content-type"] == ["text/x-test"], "echo keeps the content type")

    c.send(b"PUT /echo HTTP/1.1\r\nHost: smoke\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    status, h, body = c.read_response()
    check(status == 200 and h.get("transfer-encoding") == ["chunked"] and body == b"hello world",
          f"echo chunked: {status} {h} {body!r}")

    status, h, body = c.request("POST", "/consume", body=b"x" * 100)
    check(status == 200 and json.loads(body) == {"bytes": 100}, f"/consume: {body!r}")

    t0 = time.monotonic()
    status, h, body = c.request("GET", "/slow?ms=300")
    check(status == 200 and time.monotonic() - t0 >= 0.29, "/slow waits")

    status, h, body = c.request("GET", "/status/503")
    check(status == 503 and body == b"status 503\n", "/status/503")
    status, h, body = c.request("GET", "/status/204")
    check(status == 204 and "content-length" not in h, "/status/204 has no body")
    status, h, body = c.request("GET", "/status/42")
    check(status == 400, "/status/42 refused")

    status, h, body = c.request("GET", "/nope")
    check(status == 404, "unknown path is 404")
    status, h, body = c.request("DELETE", "/")
    check(status == 405 and h["allow"] == ["GET, HEAD"], "wrong method is 405")
    status, h, body = c.request("GET", "/ws")
    check(status == 426, "/ws without upgrade is 426")

    # Expect: 100-continue gets the interim response before the body is sent.
    c.send(b"POST /consume HTTP/1.1\r\nHost: smoke\r\nContent-Length: 3\r\n"
           b"Expect: 100-continue\r\n\r\n")
    status, _ = c.read_head()
    check(status == 100, f"100-continue: {status}")
    c.send(b"abc")
    status, h, body = c.read_response()
    check(status == 200 and json.loads(body) == {"bytes": 3}, "body after 100-continue")
    c.close()


def test_headers_route(app):
    c = Conn(app)
    c.send(b"POST /headers?x=1 HTTP/1.1\r\nHost: smoke\r\nX-Dup: one\r\nx-dup: two\r\n"
           b"X-Latin: caf\xe9\r\nContent-Length: 4\r\n\r\nbody")
    status, h, body = c.read_response()
    check(status == 200 and h["content-type"] == ["application/json"], "/headers status")
    doc = json.loads(body)
    check(doc["method"] == "POST" and doc["target"] == "/headers?x=1", f"{doc}")
    check(doc["version"] == "HTTP/1.1" and doc["body_bytes"] == 4, f"{doc}")
    check(doc["headers"]["x-dup"] == ["one", "two"], f"duplicates: {doc['headers']}")
    check(doc["headers"]["x-latin"] == "caf\u00e9", "bytes >= 0x80 map to \\u00XX")
    check(doc["raw_headers"] == [["Host", "smoke"], ["X-Dup", "one"], ["x-dup", "two"],
                                 ["X-Latin", "caf\u00e9"], ["Content-Length", "4"]],
          f"raw headers: {doc['raw_headers']}")
    check(doc["release"] == "smoke-rel" and doc["slot"] == "blue", "release and slot")
    c.close()


def test_pipelining(app):
    c = Conn(app)
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
           b"POST /consume HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
           b"GET /bytes/3 HTTP/1.1\r\nHost: a\r\n\r\n"
           b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    r1 = c.read_response()
    r2 = c.read_response()
    r3 = c.read_response()
    r4 = c.read_response()
    check(r1[2] == b"hello from smoke-rel\n", "pipelined 1")
    check(json.loads(r2[2]) == {"bytes": 5}, "pipelined 2")
    check(r3[2] == b"abc", "pipelined 3")
    check(r4[2] == b"ok\n" and r4[1].get("connection") == ["close"], "pipelined 4")
    check(c.sock.recv(1) == b"", "closed after Connection: close")
    c.close()

    # HTTP/1.0: no chunked encoding, close-delimited instead.
    c = Conn(app)
    c.send(b"GET /chunked/10 HTTP/1.0\r\n\r\n")
    status, h, body = c.read_response()
    check("transfer-encoding" not in h and body == pattern(0, 10), "HTTP/1.0 streaming body")
    c.close()

    c = Conn(app)
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\nBroken header line\r\n\r\n")
    status, h, body = c.read_response()
    check(status == 400 and h.get("connection") == ["close"], f"malformed request: {status}")
    c.close()


def test_big_echo(app, chunked):
    """64 MiB through /echo; the sender runs in a thread because the app streams
    the body back while it is still arriving."""
    size = 64 * 1024 * 1024
    block = os.urandom(1 << 20)
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)

    c = Conn(app)
    framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}".encode()
    send_error = []

    def sender():
        try:
            c.send(b"POST /echo HTTP/1.1\r\nHost: smoke\r\n" + framing + b"\r\n\r\n")
            for _ in range(size // len(block)):
                if chunked:
                    c.send(b"%x\r\n" % len(block) + block + b"\r\n")
                else:
                    c.send(block)
            if chunked:
                c.send(b"0\r\n\r\n")
        except OSError as e:
            send_error.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    status, h = c.read_head()
    got = hashlib.sha256()
    total = 0
    if chunked:
        check(h.get("transfer-encoding") == ["chunked"], "chunked echo framing")

        def on_chunk(d):
            nonlocal total
            total += len(d)
            got.update(d)
        # read_chunks also collects the body; stream instead to keep memory flat.
        while True:
            n = int(c.read_until(b"\r\n").strip(), 16)
            if n == 0:
                c.read_until(b"\r\n")
                break
            on_chunk(c.read_exact(n))
            c.read_exact(2)
    else:
        check(h["content-length"] == [str(size)], "echo keeps Content-Length")
        while total < size:
            if not c.buf:
                c._fill()
            piece, c.buf = c.buf[: size - total], c.buf[size - total:]
            total += len(piece)
            got.update(piece)
    t.join(TIMEOUT)
    check(not send_error, f"send failed: {send_error}")
    check(status == 200 and total == size, f"echo size {total}")
    check(got.digest() == expected.digest(), "echo content")
    c.close()


def test_sse(app):
    c = Conn(app)
    c.send(b"GET /sse?n=4&interval_ms=200 HTTP/1.1\r\nHost: smoke\r\n\r\n")
    t0 = time.monotonic()
    status, h = c.read_head()
    check(h["content-type"] == ["text/event-stream"], f"sse headers {h}")
    arrivals = []
    body = c.read_chunks(on_chunk=lambda d: arrivals.append((time.monotonic() - t0, d)))
    check(len(arrivals) == 4, f"one chunk per event: {arrivals}")
    for i, (_, data) in enumerate(arrivals, 1):
        check(data == f"id: {i}\ndata: event {i} of 4 from smoke-rel\n\n".encode(), data)
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    # Lower bounds only: events must not arrive together (no buffering).
    check(all(g >= 0.15 for g in gaps), f"events arrive one by one: gaps {gaps}")
    check(len(body) > 0, "sse body")
    c.close()


def ws_frame(opcode, payload):
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(c):
    """One message: (opcode, payload), continuation frames joined."""
    opcode, message = None, b""
    while True:
        b0, b1 = c.read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(c.read_exact(2), "big")
        elif n == 127:
            n = int.from_bytes(c.read_exact(8), "big")
        check(not (b1 & 0x80), "server frames are unmasked")
        if opcode is None:
            opcode = b0 & 0x0F
        message += c.read_exact(n)
        if b0 & 0x80:
            return opcode, message


def test_websocket(app):
    c = Conn(app)
    key = base64.b64encode(os.urandom(16)).decode()
    c.send(("GET /ws HTTP/1.1\r\nHost: smoke\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    status, h = c.read_head()
    accept = base64.b64encode(hashlib.sha1(
        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    check(status == 101 and h["sec-websocket-accept"] == [accept], f"ws handshake {status} {h}")
    check(h["x-release"] == ["smoke-rel"], "ws handshake carries X-Release")
    c.send(ws_frame(0x1, b"hello ws"))
    check(ws_read(c) == (0x1, b"hello ws"), "text echo")
    payload = os.urandom(70000)
    c.send(ws_frame(0x2, payload))
    check(ws_read(c) == (0x2, payload), "binary echo")
    c.send(ws_frame(0x8, (1000).to_bytes(2, "big")))
    opcode, _ = ws_read(c)
    check(opcode == 0x8, "close answered")
    c.close()


def test_injection():
    with tempfile.TemporaryDirectory() as release_dir:
        with open(os.path.join(release_dir, "demo-app.env"), "w") as f:
            f.write("ERROR_RATE=0.25\nEXTRA_LATENCY_MS=100\n")
        app = App("--listen", "127.0.0.1:0", cwd=release_dir, env={"RELEASE_ID": "bad"})
        try:
            c = Conn(app)
            statuses = []
            for _ in range(8):
                t0 = time.monotonic()
                statuses.append(c.request("GET", "/")[0])
                check(time.monotonic() - t0 >= 0.095, "extra latency applies to /")
            check(statuses == [200, 200, 200, 500] * 2, f"every 4th fails: {statuses}")
            check(all(c.request("GET", "/up")[0] == 200 for _ in range(8)), "/up never fails")
            c.close()
        finally:
            check(app.stop() == 0, "clean exit")


def test_unix_and_sigterm():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "app.sock")
        app = App("--unix", path, "--threads", "2", env={"SLOT": "green"})
        try:
            c = Conn(app)
            status, h, body = c.request("GET", "/up")
            check(status == 200 and h["x-slot"] == ["green"] and h["x-release"] == ["dev"],
                  "unix socket listener")
            # In-flight request survives SIGTERM; the process exits 0.
            c.send(b"GET /slow?ms=800 HTTP/1.1\r\nHost: smoke\r\n\r\n")
            idle = Conn(app)
            check(idle.request("GET", "/up")[0] == 200, "second connection")
            time.sleep(0.2)
            app.proc.send_signal(signal.SIGTERM)
            status, h, body = c.read_response()
            check(status == 200 and body == b"slept 800 ms\n", "in-flight finished")
            check(h.get("connection") == ["close"], "closes after draining")
            check(idle.sock.recv(1) == b"", "idle connection closed at shutdown")
            check(app.proc.wait(TIMEOUT) == 0, "exit code 0 after SIGTERM")
            check(not os.path.exists(path), "socket file removed")
        finally:
            app.kill()


def main():
    if not APP or not os.access(APP, os.X_OK):
        print(f"demo app binary not found: {APP!r}", file=sys.stderr)
        return 1
    app = App("--listen", "127.0.0.1:0", "--release", "smoke-rel", "--threads", "2",
              env={"SLOT": "blue"})
    tests = [
        ("basic routes", lambda: test_basic_routes(app)),
        ("/headers", lambda: test_headers_route(app)),
        ("pipelining", lambda: test_pipelining(app)),
        ("64 MiB echo (Content-Length)", lambda: test_big_echo(app, chunked=False)),
        ("64 MiB echo (chunked)", lambda: test_big_echo(app, chunked=True)),
        ("sse", lambda: test_sse(app)),
        ("websocket", lambda: test_websocket(app)),
        ("error and latency injection", test_injection),
        ("unix socket + SIGTERM", test_unix_and_sigterm),
    ]
    failed = 0
    try:
        for name, fn in tests:
            try:
                fn()
                print(f"ok   {name}")
            except Exception as e:  # report every case, then fail
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
        code = app.stop()
        if code != 0:
            failed += 1
            print(f"FAIL exit code after SIGTERM: {code}")
        if "runtime error" in app.stderr_text() or "Sanitizer" in app.stderr_text():
            failed += 1
            print("FAIL sanitizer report")
        if failed:
            print("demo app stderr:\n" + app.stderr_text())
    finally:
        app.kill()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
