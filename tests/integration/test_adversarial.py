#!/usr/bin/env python3
"""Raw-socket adversarial tests of releasectl's reverse proxy (issue 2, "Must show" 4).

Every case talks raw bytes to the proxy and asserts three things:
  1. the exact status the client gets (or that it gets none, for timeouts),
  2. whether the client connection was closed (closed: EOF is seen; kept: a probe
     request on the same connection is answered correctly),
  3. exactly what the backend received: a recording backend below keeps every byte
     per connection and splits it into messages with a strict parser; the expected
     messages are written out in full (head bytes exact, body bytes exact; for
     chunked bodies the payload is compared after de-chunking, since where the
     proxy cuts chunks depends on how TCP delivered the bytes). Any byte that is
     not part of an expected message fails the case: no smuggled request, no
     half body that could later be completed, ever reaches the backend.

Cases are written from RFC 9112 / RFC 9110 and from the kinds of attacks catalogued
in public desync corpora (http-desync-guardian, llhttp tests); nothing is copied.

Python 3 stdlib only; every socket is on 127.0.0.1; the daemon is killed by PID.
"""
import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Checks, Daemon, expect, free_port  # noqa: E402

IO_TIMEOUT = 10.0  # generous: a loaded 2-core machine
RID = "adv-req-1"  # a valid X-Request-ID sent with most requests: kept verbatim upstream
GENERATED_ID = "<generated>"

# Small limits and timeouts keep the run fast (see the [proxy] keys in controller/config.cpp).
MAX_URI = 256
MAX_HEADER = 2048
MAX_HEADER_COUNT = 16
MAX_BODY = 1024
MAX_RESPONSE_HEADER = 2048
HEAD_TIMEOUT_S = 1.0
UPSTREAM_RESPONSE_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 3.0  # above the upstream response timeout: a stalled body must not look like a slow upstream

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
PROBE_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nprobe-ok"


# ----------------------------------------------------------------- recording backend

class Violation(Exception):
    """The proxy sent the backend something that is not a clean HTTP/1.1 request."""


class BackendRequest:
    def __init__(self, head, body, raw, method, target, headers, chunked):
        self.head = head        # bytes, request line .. CRLFCRLF
        self.body = body        # payload bytes (de-chunked)
        self.raw = raw          # every byte of the message as received
        self.method = method
        self.target = target
        self.headers = headers  # [(name, value)]
        self.chunked = chunked


def parse_backend_request(buf):
    """Parses one request at the start of buf: (BackendRequest, length), or None when
    incomplete. Strict: the proxy regenerates framing, so anything odd is a Violation."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 64 * 1024:
            raise Violation("request head larger than 64 KiB")
        return None
    head = bytes(buf[:end + 4])
    if b"\n" in head[:end].replace(b"\r\n", b"") or b"\r" in head[:end].replace(b"\r\n", b""):
        raise Violation(f"bare CR/LF in head {head!r}")
    lines = head[:end].split(b"\r\n")
    m = re.fullmatch(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/1\.1", lines[0])
    if not m:
        raise Violation(f"bad request line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or b"\0" in value:
            raise Violation(f"bad header line {line!r}")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    te = [v for n, v in headers if n.lower() == "transfer-encoding"]
    cl = [v for n, v in headers if n.lower() == "content-length"]
    if len(te) > 1 or len(cl) > 1 or (te and cl):
        raise Violation(f"ambiguous framing in {head!r}")
    pos = end + 4
    body = b""
    if te:
        if te[0] != "chunked":
            raise Violation(f"Transfer-Encoding {te[0]!r}")
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = bytes(buf[pos:line_end])
            if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_text):
                raise Violation(f"bad chunk size line {size_text!r}")
            size = int(size_text, 16)
            pos = line_end + 2
            if size == 0:
                if len(buf) < pos + 2:
                    return None
                if buf[pos:pos + 2] != b"\r\n":
                    raise Violation("trailer fields forwarded")
                pos += 2
                break
            if len(buf) < pos + size + 2:
                return None
            body += bytes(buf[pos:pos + size])
            if buf[pos + size:pos + size + 2] != b"\r\n":
                raise Violation("chunk data not followed by CRLF")
            pos += size + 2
    elif cl:
        if not re.fullmatch(r"[0-9]+", cl[0]):
            raise Violation(f"Content-Length {cl[0]!r}")
        n = int(cl[0])
        if len(buf) < pos + n:
            return None
        body = bytes(buf[pos:pos + n])
        pos += n
    request = BackendRequest(head, body, bytes(buf[:pos]), m.group(1).decode(), m.group(2).decode("latin-1"),
                             headers, bool(te))
    return request, pos


class BackendConnection:
    def __init__(self, sock, number):
        self.sock = sock
        self.number = number
        self.pending = bytearray()  # received, not yet a complete request
        self.eof = False
        self.bytes_since_reset = 0


class RecordingBackend:
    """Threaded raw TCP server. Records every byte; answers each complete request with
    the actions the current responder returns. Actions: bytes (sent), ("sleep", s),
    ("wait", threading.Event), ("set", threading.Event), "close" (FIN), "reset" (RST),
    "hang" (never answer; read until the proxy closes)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.responder = None
        self.reset()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def reset(self, responder=None):
        """Forgets what was received (pooled proxy connections stay open) and sets how
        non-probe requests are answered (None: 200 "ok")."""
        with self.lock:
            self.received = bytearray()
            self.requests = []
            self.violations = []
            self.last_event = time.monotonic()
            for conn in self.connections:
                conn.bytes_since_reset = 0
            self.responder = responder

    def _accept_loop(self):
        number = 0
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            number += 1
            conn = BackendConnection(sock, number)
            with self.lock:
                self.connections.append(conn)
                self.last_event = time.monotonic()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _recv(self, conn):
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        with self.lock:
            self.last_event = time.monotonic()
            if data:
                self.received += data
                conn.bytes_since_reset += len(data)
                conn.pending += data
            else:
                conn.eof = True
        return bool(data)

    def _serve(self, conn):
        try:
            while True:
                try:
                    parsed = parse_backend_request(conn.pending)
                except Violation as v:
                    with self.lock:
                        self.violations.append(str(v))
                    return
                if parsed is None:
                    if not self._recv(conn):
                        return
                    continue
                request, length = parsed
                with self.lock:
                    del conn.pending[:length]
                    self.requests.append(request)
                    responder = self.responder
                if request.target.startswith("/probe") or responder is None:
                    actions = [PROBE_RESPONSE if request.target.startswith("/probe") else OK_RESPONSE]
                else:
                    actions = responder(request)
                if not self._act(conn, actions):
                    return
        finally:
            with self.lock:
                self.last_event = time.monotonic()
            try:
                conn.sock.close()
            except OSError:
                pass

    def _act(self, conn, actions):
        """Performs the actions; False when the connection is finished."""
        for action in actions:
            try:
                if isinstance(action, bytes):
                    conn.sock.sendall(action)
                elif isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                elif isinstance(action, tuple) and action[0] == "wait":
                    action[1].wait(IO_TIMEOUT)
                elif isinstance(action, tuple) and action[0] == "set":
                    action[1].set()
                elif action == "close":
                    conn.sock.shutdown(socket.SHUT_WR)
                    while self._recv(conn):  # until the proxy closes its side
                        pass
                    return False
                elif action == "reset":
                    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.sock.close()
                    with self.lock:
                        conn.eof = True
                    return False
                elif action == "hang":
                    while self._recv(conn):
                        pass
                    return False
            except OSError:
                return False
        return True

    def settle(self, quiet=0.25, limit=5.0):
        """Waits until nothing has arrived for `quiet` seconds (bounded)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.lock:
                idle = time.monotonic() - self.last_event
            if idle >= quiet:
                return
            time.sleep(0.05)

    def snapshot(self, limit=5.0):
        self.settle()
        # The proxy closes the client and the upstream side of a refused body from
        # one event loop, but the client may see its close before this thread has
        # read the upstream EOF: give a half message a bounded moment to be closed.
        deadline = time.monotonic() + limit
        while True:
            with self.lock:
                open_partial = [c.number for c in self.connections
                                if c.bytes_since_reset and c.pending and not c.eof]
                if not open_partial or time.monotonic() >= deadline:
                    return list(self.requests), bytes(self.received), list(self.violations), open_partial
            time.sleep(0.05)


# ----------------------------------------------------------------- client side

class Response:
    def __init__(self, status, reason, headers, body, complete):
        self.status = status
        self.reason = reason
        self.headers = headers  # [(lower name, value)]
        self.body = body
        self.complete = complete

    def values(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self):
        return f"<{self.status} {self.headers} body={self.body[:80]!r}{'' if self.complete else ' TRUNCATED'}>"


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more; False on EOF/reset. Raises on timeout."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for the proxy (have {self.buf[:200]!r})")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"timed out waiting for the proxy (have {self.buf[:200]!r})") from None
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_response(self, method="GET", timeout=IO_TIMEOUT):
        """One response (1xx included); None when the proxy closed without one."""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                expect(not self.buf, f"connection closed inside a response head: {self.buf!r}")
                return None
        end = self.buf.index(b"\r\n\r\n")
        head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
        lines = head.split("\r\n")
        m = re.fullmatch(r"HTTP/1\.1 (\d{3}) (.*)", lines[0])
        expect(m is not None, f"bad status line from proxy: {lines[0]!r}")
        status = int(m.group(1))
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            expect(sep and name == name.strip(), f"bad header line from proxy: {line!r}")
            headers.append((name.lower(), value.strip()))
        te = [v for n, v in headers if n == "transfer-encoding"]
        cl = [v for n, v in headers if n == "content-length"]
        expect(len(te) + len(cl) <= 1, f"ambiguous framing from proxy: {headers}")
        if status < 200 or status in (204, 304) or method == "HEAD":
            return Response(status, m.group(2), headers, b"", True)
        if cl:
            n = int(cl[0])
            while len(self.buf) < n:
                if not self._fill(deadline):
                    body, self.buf = self.buf, b""
                    return Response(status, m.group(2), headers, body, False)
            body, self.buf = self.buf[:n], self.buf[n:]
            return Response(status, m.group(2), headers, body, True)
        if te:
            expect(te[0] == "chunked", f"proxy sent Transfer-Encoding {te[0]!r}")
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    if not self._fill(deadline):
                        return Response(status, m.group(2), headers, body, False)
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    if not self._fill(deadline):
                        body += self.buf[:size]
                        self.buf = b""
                        return Response(status, m.group(2), headers, body, False)
                if size == 0:
                    while not self.buf.startswith(b"\r\n"):  # trailers
                        if b"\r\n" in self.buf:
                            self.buf = self.buf.split(b"\r\n", 1)[1]
                        elif not self._fill(deadline):
                            return Response(status, m.group(2), headers, body, False)
                    self.buf = self.buf[2:]
                    return Response(status, m.group(2), headers, body, True)
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
        while self._fill(deadline):  # until close
            pass
        body, self.buf = self.buf, b""
        return Response(status, m.group(2), headers, body, True)

    def read_final(self, method="GET", timeout=IO_TIMEOUT):
        """Skips interim 1xx responses; returns (final, [interim statuses])."""
        interim = []
        while True:
            r = self.read_response(method, timeout)
            if r is None or r.status >= 200 or r.status == 101:
                return r, interim
            interim.append(r.status)

    def wait_closed(self, timeout=IO_TIMEOUT):
        """True when the proxy closes the connection in time with nothing more sent."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except AssertionError:
            return False
        expect(not self.buf, f"bytes after the response before close: {self.buf[:200]!r}")
        return True


# ----------------------------------------------------------------- expectations

def up_head(method, target, host, fields=(), framing=None, rid=RID):
    """The request head the proxy must send upstream: Host first, the client's
    end-to-end fields in order, the forwarding fields, then regenerated framing."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{n}: {v}" for n, v in fields]
    lines += ["X-Forwarded-For: 127.0.0.1", "X-Forwarded-Proto: http", f"X-Forwarded-Host: {host}",
              f"X-Request-ID: {rid}"]
    if framing:
        lines.append(framing)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


PROBE_REQUEST = b"GET /probe HTTP/1.1\r\nHost: probe.test\r\nX-Request-ID: probe-1\r\n\r\n"
PROBE_UPSTREAM = (up_head("GET", "/probe", "probe.test", rid="probe-1"), b"")


def expect_upstream(backend, expected):
    """The backend got exactly these (head, body) messages, nothing else, and holds
    no half message on a connection the proxy could still use."""
    requests, raw, violations, open_partial = backend.snapshot()
    expect(not violations, f"backend saw malformed framing: {violations}")
    got = []
    for r in requests:
        head = r.head
        # A generated request id is random: check its shape, then compare the rest.
        m = re.search(rb"\r\nX-Request-ID: ([0-9a-f]{32})\r\n", head)
        if m and any(GENERATED_ID.encode() in h for h, _ in expected):
            head = head.replace(m.group(1), GENERATED_ID.encode())
        got.append((head, r.body))
    expect(got == list(expected), f"backend received\n  {got!r}\nexpected\n  {list(expected)!r}")
    stray = len(raw) - sum(len(r.raw) for r in requests)
    expect(stray == 0, f"backend received {stray} bytes outside complete messages: {raw!r}")
    expect(not open_partial, f"a partial request was left on open backend connection(s) {open_partial}")


def expect_upstream_partial(backend, head, valid_payload, chunked=True):
    """For bodies refused while streaming: the backend may have received the head and
    a prefix of the valid payload (re-chunked) but never a complete message, never
    anything else, and the connection carrying the half message was closed."""
    requests, raw, violations, open_partial = backend.snapshot()
    expect(not violations, f"backend saw malformed framing: {violations}")
    expect(not requests, f"backend received complete request(s) for a refused body: {[r.raw for r in requests]}")
    expect(not open_partial, f"a partial request was left on open backend connection(s) {open_partial}")
    if not raw:
        return
    expect(raw.startswith(head) or head.startswith(raw), f"backend received {raw!r}, expected a prefix of {head!r}")
    rest = raw[len(head):]
    if not chunked:
        expect(valid_payload.startswith(rest), f"backend received payload {rest!r} not from the valid body")
        return
    payload = b""
    while rest:  # de-chunk what arrived; it must be a prefix of the valid data
        line_end = rest.find(b"\r\n")
        if line_end < 0:
            break
        size = int(rest[:line_end], 16)
        expect(size > 0, f"backend received a last-chunk for a refused body: {raw!r}")
        payload += rest[line_end + 2:line_end + 2 + size]
        rest = rest[line_end + 4 + size:]
    expect(valid_payload.startswith(payload), f"backend received payload {payload!r} not from the valid body")


def expect_closed(client, what=""):
    expect(client.wait_closed(), f"connection should have been closed {what}".strip())


def expect_kept(client):
    """The connection stays usable: a probe on it is answered by the backend."""
    client.send(PROBE_REQUEST)
    r = client.read_response()
    expect(r is not None and r.status == 200 and r.body == b"probe-ok",
           f"probe on the kept connection got {r!r}")


# ----------------------------------------------------------------- the daemon

class AdversarialDaemon(Daemon):
    def config_text(self):
        proxy_keys = "\n".join([
            f"max_uri_size = {MAX_URI}",
            f"max_header_size = {MAX_HEADER}",
            f"max_header_count = {MAX_HEADER_COUNT}",
            f"max_body_size = {MAX_BODY}",
            f"max_response_header_size = {MAX_RESPONSE_HEADER}",
            f'request_head_timeout = "{int(HEAD_TIMEOUT_S * 1000)}ms"',
            f'request_body_timeout = "{int(BODY_TIMEOUT_S * 1000)}ms"',
            f'upstream_response_timeout = "{int(UPSTREAM_RESPONSE_TIMEOUT_S * 1000)}ms"',
            'keepalive_timeout = "30s"',
        ])
        text = super().config_text()
        marker = f"workers = {self.workers}\n"
        expect(marker in text, "harness config layout changed")
        return text.replace(marker, marker + proxy_keys + "\n", 1)


class Suite:
    def __init__(self):
        self.backend = RecordingBackend()
        self.refused_port = free_port()  # nothing listens there: connection refused
        self.start_daemon()

    def start_daemon(self):
        self.daemon = AdversarialDaemon(
            slots={"blue": f"127.0.0.1:{self.backend.port}", "green": f"127.0.0.1:{self.refused_port}"},
            weights={"blue": 100, "green": 0}, workers=1).start()
        self.port = self.daemon.port

    def restart(self):
        """After a failed case: a fresh daemon, so no pooled upstream connection or
        other state left by the failure can make later cases fail too."""
        self.daemon.stop()
        self.start_daemon()

    def client(self):
        return Client(self.port)

    # --- the shapes most cases share ---

    def refused(self, request, status, upstream_partial=None):
        """Refused with `status` and closed; the backend saw nothing (or, for bodies
        refused while streaming, a prefix of the valid part: (head, payload))."""
        c = self.client()
        try:
            try:
                c.send(request)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the proxy may stop reading once it has decided
            r = c.read_response()
            expect(r is not None, f"no response, expected {status}")
            expect(r.status == status, f"status {r.status}, expected {status}: {r!r}")
            expect(("connection", "close") in r.headers, f"no Connection: close on {r!r}")
            expect_closed(c, f"after {status}")
        finally:
            c.close()
        if upstream_partial is None:
            expect_upstream(self.backend, [])
        else:
            expect_upstream_partial(self.backend, *upstream_partial)

    def forwarded(self, request, expected_upstream, statuses=(200,), closed=False, method="GET"):
        """Answered with `statuses` in order; the backend got exactly `expected_upstream`
        (probe included when the connection is kept)."""
        c = self.client()
        try:
            c.send(request)
            for status in statuses:
                r = c.read_response(method)
                expect(r is not None and r.status == status, f"expected {status}, got {r!r}")
            if closed:
                expect_closed(c)
            else:
                expect_kept(c)
                expected_upstream = list(expected_upstream) + [PROBE_UPSTREAM]
        finally:
            c.close()
        expect_upstream(self.backend, expected_upstream)

    def upstream_misbehaves(self, actions, status, method="GET", request=None, upstream=None, closed=False,
                            interim_allowed=()):
        """The backend answers with `actions`; the client gets `status` (never the bad
        response) and, unless `closed`, a usable connection. Interim 1xx responses
        reach the client only as `interim_allowed` (exactly, or none at all)."""
        self.backend.reset(lambda req: list(actions))
        request = request or f"{method} /bad HTTP/1.1\r\nHost: a.test\r\nX-Request-ID: {RID}\r\n\r\n".encode()
        c = self.client()
        try:
            c.send(request)
            r, interim = c.read_final(method)
            expect(r is not None and r.status == status, f"expected {status}, got {r!r}")
            expect(not interim or interim == list(interim_allowed), f"interim responses forwarded: {interim}")
            if status >= 500:
                expect(r.values("content-type") == ["text/plain; charset=utf-8"],
                       f"the upstream's response leaked to the client: {r!r}")
            if closed:
                expect_closed(c)
            else:
                expect_kept(c)
        finally:
            c.close()
        expected = upstream if upstream is not None else [(up_head(method, "/bad", "a.test"), b"")]
        if not closed:
            expected = list(expected) + [PROBE_UPSTREAM]
        expect_upstream(self.backend, expected)


def req(lines, body=b""):
    """A request from header lines joined with CRLF (bytes or str)."""
    parts = [line.encode("latin-1") if isinstance(line, str) else line for line in lines]
    return b"\r\n".join(parts) + b"\r\n\r\n" + body


def post(*fields, body=b""):
    return req(["POST /p HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}", *fields], body)


# ----------------------------------------------------------------- cases

def request_framing_cases(s):
    cases = []

    def add(name, request, status=400):
        cases.append((name, lambda: s.refused(request, status)))

    # Content-Length and Transfer-Encoding together (RFC 9112 §6.1: reject as a proxy)
    add("CL + TE: chunked", post("Content-Length: 5", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"))
    add("TE: chunked + CL (reversed order)", post("Transfer-Encoding: chunked", "Content-Length: 3", body=b"0\r\n\r\n"))
    add("TE: identity + CL", post("Transfer-Encoding: identity", "Content-Length: 5", body=b"hello"))
    # Transfer-Encoding other than exactly chunked
    add("TE: identity alone", post("Transfer-Encoding: identity", body=b"hello"))
    add("TE: gzip, chunked", post("Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"))
    add("TE: chunked, chunked", post("Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"))
    add("TE: chunked on two lines", post("Transfer-Encoding: chunked", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"))
    add("TE: xchunked", post("Transfer-Encoding: xchunked", body=b"0\r\n\r\n"))
    add("TE: chunked + vertical tab", post("Transfer-Encoding: chunked\x0b", body=b"0\r\n\r\n"))
    add("TE: chunked + NBSP (0xA0)", post(b"Transfer-Encoding: chunked\xa0", body=b"0\r\n\r\n"))
    add("TE folded (obs-fold)", post("Transfer-Encoding:", " chunked", body=b"0\r\n\r\n"))
    add("TE empty + CL", post("Transfer-Encoding:", "Content-Length: 5", body=b"hello"))
    add("TE with space before colon", post("Transfer-Encoding : chunked", body=b"0\r\n\r\n"))
    add("TE: chunked in HTTP/1.0", req(["POST /p HTTP/1.0", "Host: a.test", "Transfer-Encoding: chunked"],
                                       b"0\r\n\r\n"))
    # Content-Length
    add("duplicate CL, equal", post("Content-Length: 5", "Content-Length: 5", body=b"hello"))
    add("duplicate CL, different", post("Content-Length: 5", "Content-Length: 6", body=b"hello!"))
    add("CL list 5, 5", post("Content-Length: 5, 5", body=b"hello"))
    add("CL +5", post("Content-Length: +5", body=b"hello"))
    add("CL -1", post("Content-Length: -1", body=b"hello"))
    add("CL 0x5", post("Content-Length: 0x5", body=b"hello"))
    add("CL 2^64 (overflow)", post("Content-Length: 18446744073709551621", body=b"hello"))
    add("CL with inner space '1 0'", post("Content-Length: 1 0", body=b"hello"))
    add("CL with space before colon", post("Content-Length : 5", body=b"hello"))
    add("CL with \\x01 after digits", post("Content-Length: 5\x01", body=b"hello"))
    # header syntax
    add("obs-fold in an ordinary header", post("X-Folded: one", "\ttwo"))
    add("header line without colon", post("X-No-Colon"))
    add("space before colon", post("X-Foo : bar"))
    add("NUL in a value", post("X-Foo: a\x00b"))
    add("bare CR in a value", post("X-Foo: a\rContent-Length: 5"))
    add("bare LF in a value (header injection)", post("X-Foo: a\nTransfer-Encoding: chunked", "Content-Length: 5",
                                                      body=b"hello"))
    add("bare LF line endings", b"GET / HTTP/1.1\nHost: a.test\n\n")
    add("\\x01 in a header name", post("X-F\x01oo: bar"))
    add("empty header name", post(": bar"))
    # Host
    add("HTTP/1.1 without Host", req(["GET / HTTP/1.1", f"X-Request-ID: {RID}"]))
    add("two Host headers", req(["GET / HTTP/1.1", "Host: a.test", "Host: b.test"]))
    add("Host with userinfo", req(["GET / HTTP/1.1", "Host: user@a.test"]))
    add("Host with a path", req(["GET / HTTP/1.1", "Host: a.test/x"]))
    # request line
    add("fragment in target", req(["GET /a#frag HTTP/1.1", "Host: a.test"]))
    add("HTTP/2.0", req(["GET / HTTP/2.0", "Host: a.test"]), 505)
    add("HTTP/1.2", req(["GET / HTTP/1.2", "Host: a.test"]), 505)
    add("HTTP/0.9 version token", req(["GET / HTTP/0.9", "Host: a.test"]), 505)
    add("HTTP/3.0", req(["GET / HTTP/3.0", "Host: a.test"]), 505)
    add("lowercase http/1.1", req(["GET / http/1.1", "Host: a.test"]))
    add("HTTP/1.10", req(["GET / HTTP/1.10", "Host: a.test"]))
    add("HTTP/0.9 simple request (no version)", b"GET /\r\n\r\n")
    add("double space in request line", req(["GET  / HTTP/1.1", "Host: a.test"]))
    add("tab in request line", req(["GET\t/ HTTP/1.1", "Host: a.test"]))
    add("invalid method character", req(["G(ET / HTTP/1.1", "Host: a.test"]))
    add("DEL in target", req(["GET /a\x7fb HTTP/1.1", "Host: a.test"]))
    add("space in target", req(["GET /a b HTTP/1.1", "Host: a.test"]))
    add("empty Content-Length", post("Content-Length:", body=b"hello"))
    add("absolute-form with userinfo", req(["GET http://u@a.test/ HTTP/1.1", "Host: a.test"]))
    add("CONNECT", req(["CONNECT a.test:443 HTTP/1.1", "Host: a.test:443"]), 501)
    add("Expect: something-else", post("Expect: 200-ok", "Content-Length: 5", body=b"hello"), 417)
    # limits
    add("URI longer than max_uri_size -> 414", req([f"GET /{'a' * (MAX_URI + 10)} HTTP/1.1", "Host: a.test"]), 414)
    add("header section larger than max_header_size -> 431",
        req(["GET / HTTP/1.1", "Host: a.test", f"X-Big: {'b' * (MAX_HEADER + 100)}"]), 431)
    add("more fields than max_header_count -> 431",
        req(["GET / HTTP/1.1", "Host: a.test"] + [f"X-N{i}: {i}" for i in range(MAX_HEADER_COUNT + 4)]), 431)
    add("Content-Length above max_body_size -> 413", post(f"Content-Length: {MAX_BODY + 1}", body=b"x" * 100), 413)
    # request smuggling classics: the front and back ends must never disagree
    add("CL.TE smuggle", post("Content-Length: 44", "Transfer-Encoding: chunked",
                              body=b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    add("TE.CL smuggle", post("Content-Length: 4", "Transfer-Encoding: chunked",
                              body=b"2c\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n\r\n0\r\n\r\n"))
    add("TE.TE smuggle (second TE obfuscated)", post("Transfer-Encoding: chunked", "Transfer-encoding: cow",
                                                     body=b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    add("TE.TE smuggle (TE with leading junk name)", post("Content-Length: 4", " Transfer-Encoding: chunked",
                                                          body=b"0\r\n\r\n"))
    add("TE smuggle via bare LF before the header", post("X-A: b\nTransfer-Encoding: chunked", "Content-Length: 4",
                                                         body=b"0\r\n\r\n"))
    # CGI-style servers (Rack, WSGI, PHP) read "_" as "-": underscore twins of framing
    # and forwarding fields would reach them as a second Content-Length / TE / XFF.
    add("Transfer_Encoding twin + CL", post("Transfer_Encoding: chunked", "Content-Length: 5", body=b"0\r\n\r\n\r\n"))
    add("Content_Length twin + CL", post("Content_Length: 0", "Content-Length: 5", body=b"hello"))
    add("X_Forwarded_For twin (client IP spoofing)", req(["GET / HTTP/1.1", "Host: a.test", "X_Forwarded_For: 10.0.0.1"]))
    add("TE smuggle via header name ending in LF", post("Transfer-Encoding\n: chunked", "Content-Length: 4",
                                                        body=b"0\r\n\r\n"))
    return cases


def chunked_cases(s):
    cases = []
    head = up_head("POST", "/p", "a.test", framing="Transfer-Encoding: chunked")

    def add(name, body, valid_payload=b"", status=400):
        request = post("Transfer-Encoding: chunked", body=body)
        cases.append((name, lambda: s.refused(request, status, upstream_partial=(head, valid_payload))))

    add("chunk size not hex", b"5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n", b"hello")
    add("chunk size overflows 64 bits", b"10000000000000005\r\nhello\r\n0\r\n\r\n")
    add("chunk size negative", b"-5\r\nhello\r\n0\r\n\r\n")
    add("chunk size 0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n")
    add("chunk size with trailing space", b"5 \r\nhello\r\n0\r\n\r\n")
    add("chunk size line with bare LF", b"5\nhello\r\n0\r\n\r\n")
    add("chunk data not followed by CRLF", b"5\r\nhelloXX\r\n0\r\n\r\n", b"hello")
    add("chunk data longer than its size", b"3\r\nhello\r\n0\r\n\r\n", b"hel")
    add("empty chunk extension ';'", b"5;\r\nhello\r\n0\r\n\r\n")
    add("last chunk without final CRLF, then a request",
        b"5\r\nhello\r\n0\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n", b"hello")
    add("obs-fold in a trailer", b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n", b"hello")
    add("chunked body above max_body_size -> 413",
        b"%x\r\n" % (MAX_BODY + 256) + b"x" * (MAX_BODY + 256) + b"\r\n0\r\n\r\n", b"x" * MAX_BODY, 413)
    return cases


def forwarding_cases(s):
    cases = []

    def add(name, fn):
        cases.append((name, fn))

    get = lambda target="/", host="a.test", *fields: req(  # noqa: E731
        [f"GET {target} HTTP/1.1", f"Host: {host}", f"X-Request-ID: {RID}", *fields])

    add("pipelined GETs answered in order", lambda: s.forwarded(
        get("/one") + get("/two"),
        [(up_head("GET", "/one", "a.test"), b""), (up_head("GET", "/two", "a.test"), b"")], (200, 200)))

    add("pipelined valid then invalid: first forwarded, second 400 + close", lambda: pipelined_then_bad(s))

    add("pipelined POST (CL) + GET", lambda: s.forwarded(
        post("Content-Length: 5", body=b"hello") + get("/two"),
        [(up_head("POST", "/p", "a.test", framing="Content-Length: 5"), b"hello"),
         (up_head("GET", "/two", "a.test"), b"")], (200, 200)))

    add("pipelined POST (chunked) + GET after the last chunk", lambda: s.forwarded(
        post("Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n") + get("/two"),
        [(up_head("POST", "/p", "a.test", framing="Transfer-Encoding: chunked"), b"hello"),
         (up_head("GET", "/two", "a.test"), b"")], (200, 200)))

    smuggle_text = b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"
    add("GET with a CL body that looks like a request: one request upstream", lambda: s.forwarded(
        req(["GET / HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}", f"Content-Length: {len(smuggle_text)}"],
            smuggle_text),
        [(up_head("GET", "/", "a.test", framing=f"Content-Length: {len(smuggle_text)}"), smuggle_text)]))

    add("chunked body re-framed (uppercase hex, extensions, trailers, 000 last chunk)", lambda: s.forwarded(
        post("Transfer-Encoding: chunked",
             body=b"A;name=value;q=\"x\\\"y\"\r\n0123456789\r\n3;ext\r\nabc\r\n000\r\nX-Trailer: t\r\n\r\n"),
        [(up_head("POST", "/p", "a.test", framing="Transfer-Encoding: chunked"), b"0123456789abc")]))

    add("TE: chunked with surrounding OWS is normalised", lambda: s.forwarded(
        post("Transfer-Encoding: \t chunked \t", body=b"3\r\nabc\r\n0\r\n\r\n"),
        [(up_head("POST", "/p", "a.test", framing="Transfer-Encoding: chunked"), b"abc")]))

    add("TE: Chunked (case-insensitive coding) is normalised", lambda: s.forwarded(
        post("Transfer-Encoding: Chunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
        [(up_head("POST", "/p", "a.test", framing="Transfer-Encoding: chunked"), b"abc")]))

    add("CL with leading zeros is normalised", lambda: s.forwarded(
        post("Content-Length: 0003", body=b"abc"),
        [(up_head("POST", "/p", "a.test", framing="Content-Length: 3"), b"abc")]))

    add("CL with surrounding OWS is normalised", lambda: s.forwarded(
        post("Content-Length:   3  ", body=b"abc"),
        [(up_head("POST", "/p", "a.test", framing="Content-Length: 3"), b"abc")]))

    add("hop-by-hop fields stripped, XFF replaced, valid X-Request-ID kept", lambda: s.forwarded(
        req(["GET /h HTTP/1.1", "Host: a.test", "Connection: close, X-Foo", "X-Foo: secret", "Keep-Alive: timeout=5",
             "TE: trailers", "Trailer: X-T", "Proxy-Connection: keep-alive", "Upgrade: h2c", "X-Keep: yes",
             "X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.test",
             f"X-Request-ID: {RID}"]),
        [(up_head("GET", "/h", "a.test", fields=[("X-Keep", "yes")]), b"")], closed=True))

    add("h2c upgrade is not tunnelled: forwarded as plain HTTP/1.1, connection kept", lambda: s.forwarded(
        req(["GET /h HTTP/1.1", "Host: a.test", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
             "HTTP2-Settings: AAMAAABkAAQAAP__", f"X-Request-ID: {RID}"]),
        [(up_head("GET", "/h", "a.test"), b"")]))

    add("fields named in a second Connection line are stripped too", lambda: s.forwarded(
        req(["GET /h HTTP/1.1", "Host: a.test", "Connection: X-One", "X-One: 1", "X-Two: 2", "Connection: x-two",
             f"X-Request-ID: {RID}", "X-Three: 3"]),
        [(up_head("GET", "/h", "a.test", fields=[("X-Three", "3")]), b"")]))

    add("invalid X-Request-ID replaced by a generated one", lambda: s.forwarded(
        req(["GET / HTTP/1.1", "Host: a.test", "X-Request-ID: bad id<script>"]),
        [(up_head("GET", "/", "a.test", rid=GENERATED_ID), b"")]))

    add("Connection naming framing fields and Host cannot remove them", lambda: s.forwarded(
        post("Connection: Content-Length, Host, Transfer-Encoding, X-Forwarded-For, X-Request-ID",
             "Content-Length: 5", body=b"hello"),
        [(up_head("POST", "/p", "a.test", framing="Content-Length: 5"), b"hello")]))

    add("absolute-form target: authority becomes Host", lambda: s.forwarded(
        req(["GET http://b.test:8080/x?y=1 HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]),
        [(up_head("GET", "/x?y=1", "b.test:8080"), b"")]))

    add("empty lines before the request line are skipped", lambda: s.forwarded(
        b"\r\n\r\n" + get("/after-blank"), [(up_head("GET", "/after-blank", "a.test"), b"")]))

    add("pipelined after Connection: close: the second request is never forwarded", lambda: s.forwarded(
        req(["GET /one HTTP/1.1", "Host: a.test", "Connection: close", f"X-Request-ID: {RID}"]) + get("/two"),
        [(up_head("GET", "/one", "a.test"), b"")], closed=True))

    add("HTTP/1.0 request: answered, then closed", lambda: s.forwarded(
        req(["GET /ten HTTP/1.0", "Host: a.test", f"X-Request-ID: {RID}"]),
        [(up_head("GET", "/ten", "a.test"), b"")], closed=True))

    add("Expect: 100-continue answered by the proxy, not forwarded", lambda: expect_continue(s))

    add("HEAD: Content-Length kept, no body, connection reusable", lambda: head_request(s))
    return cases


def pipelined_then_bad(s):
    c = s.client()
    try:
        c.send(req(["GET /one HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]) +
               req(["POST /two HTTP/1.1", "Host: a.test", "Content-Length: 4", "Transfer-Encoding: chunked"],
                   b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"))
        r1 = c.read_response()
        expect(r1 is not None and r1.status == 200 and r1.body == b"ok", f"first: {r1!r}")
        r2 = c.read_response()
        expect(r2 is not None and r2.status == 400, f"second: {r2!r}")
        expect_closed(c)
    finally:
        c.close()
    expect_upstream(s.backend, [(up_head("GET", "/one", "a.test"), b"")])


def expect_continue(s):
    c = s.client()
    try:
        c.send(post("Expect: 100-continue", "Content-Length: 5"))
        interim = c.read_response()
        expect(interim is not None and interim.status == 100 and not interim.headers,
               f"expected a bare 100 Continue, got {interim!r}")
        c.send(b"hello")
        final = c.read_response()
        expect(final is not None and final.status == 200 and final.body == b"ok", f"final: {final!r}")
        expect_kept(c)
    finally:
        c.close()
    expect_upstream(s.backend, [(up_head("POST", "/p", "a.test", framing="Content-Length: 5"), b"hello"),
                                PROBE_UPSTREAM])


def head_request(s):
    s.backend.reset(lambda r: [b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n"])
    c = s.client()
    try:
        c.send(req(["HEAD /h HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
        r = c.read_response("HEAD")
        expect(r is not None and r.status == 200 and r.values("content-length") == ["1234"], f"HEAD: {r!r}")
        expect_kept(c)  # a body would be read as the probe's response
    finally:
        c.close()
    expect_upstream(s.backend, [(up_head("HEAD", "/h", "a.test"), b""), PROBE_UPSTREAM])


def timeout_cases(s):
    def slowloris():
        c = s.client()
        try:
            c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            started = time.monotonic()
            closed = False
            # trickle a header byte every 100 ms: the head deadline still fires
            while time.monotonic() - started < HEAD_TIMEOUT_S + 8:
                try:
                    c.send(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                c.sock.settimeout(0.1)
                try:
                    data = c.sock.recv(4096)
                    expect(not data or b" 408 " in data[:16], f"unexpected bytes {data!r}")
                    closed = True
                    break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    closed = True
                    break
            expect(closed, "slowloris connection was never closed")
            elapsed = time.monotonic() - started
            expect(elapsed >= HEAD_TIMEOUT_S * 0.8, f"closed after {elapsed:.2f}s, before the head deadline")
        finally:
            c.close()
        expect_upstream(s.backend, [])

    def silent():
        c = s.client()
        try:
            r = c.read_response(timeout=HEAD_TIMEOUT_S + 8)
            expect(r is None or r.status == 408, f"silent connection got {r!r}")
            expect_closed(c)
        finally:
            c.close()
        expect_upstream(s.backend, [])

    def slow_body():
        c = s.client()
        try:
            c.send(post("Content-Length: 10", body=b"hello"))  # and never the other 5 bytes
            r = c.read_response(timeout=BODY_TIMEOUT_S + 8)
            expect(r is None or r.status == 408, f"slow body got {r!r}")
            expect_closed(c)
        finally:
            c.close()
        expect_upstream_partial(s.backend, up_head("POST", "/p", "a.test", framing="Content-Length: 10"), b"hello",
                                chunked=False)

    def steady_upload():
        # Body bytes keep coming for longer than upstream_response_timeout (within
        # request_body_timeout): the upstream cannot answer before the body is done.
        c = s.client()
        pieces = 5
        gap = (UPSTREAM_RESPONSE_TIMEOUT_S + 0.5) / pieces
        try:
            c.send(post(f"Content-Length: {pieces}"))
            for i in range(pieces):
                time.sleep(gap)
                c.send(b"abcde"[i:i + 1])
            r = c.read_response()
            expect(r is not None and r.status == 200 and r.body == b"ok", f"steady upload got {r!r}")
            expect_kept(c)
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("POST", "/p", "a.test", framing=f"Content-Length: {pieces}"), b"abcde"),
                                    PROBE_UPSTREAM])

    def aborted_body():
        # The client half-closes after 3 of 5 body bytes. Its fault, not the upstream's:
        # no 5xx (which would count against the slot and could roll a canary back),
        # and the half body upstream is never completed.
        c = s.client()
        try:
            c.send(post("Content-Length: 5", body=b"hel"))
            time.sleep(0.1)  # the head and the first bytes are on their way upstream
            c.sock.shutdown(socket.SHUT_WR)
            r = c.read_response()
            expect(r is None or r.status == 400, f"aborted upload got {r!r}")
            expect_closed(c)
        finally:
            c.close()
        expect_upstream_partial(s.backend, up_head("POST", "/p", "a.test", framing="Content-Length: 5"), b"hel",
                                chunked=False)

    return [("steady slow upload beyond upstream_response_timeout -> 200", steady_upload),
            ("client aborts mid-body: no 5xx, half body never completed upstream", aborted_body),
            ("slowloris: head trickled past request_head_timeout -> closed", slowloris),
            ("silent connection closed by request_head_timeout", silent),
            ("slow body: request_body_timeout -> closed, half body never completed", slow_body)]


def upstream_cases(s):
    cases = []

    def add(name, fn):
        cases.append((name, fn))

    bad = lambda *actions: (lambda: s.upstream_misbehaves(actions, 502))  # noqa: E731
    add("upstream: two different Content-Lengths -> 502",
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokxxx"))
    add("upstream: two equal Content-Lengths -> 502",
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: Content-Length + chunked -> 502",
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
    add("upstream: Transfer-Encoding gzip -> 502",
        bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx"))
    add("upstream: invalid Content-Length -> 502",
        bad(b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok"))
    add("upstream: bad status line -> 502", bad(b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: status line without version -> 502", bad(b"200 OK\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: garbage -> 502", bad(b"garbage garbage garbage\r\n\r\n"))
    add("upstream: bare LF header lines -> 502", bad(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"))
    add("upstream: obs-fold -> 502", bad(b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: response head above max_response_header_size -> 502",
        bad(b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * (MAX_RESPONSE_HEADER + 100) + b"\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: status 600 -> 502", bad(b"HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: Transfer-Encoding identity + Content-Length -> 502",
        bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nok"))
    add("upstream: 101 without an upgrade request -> 502",
        bad(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))

    add("upstream: unsolicited 100 Continue before the real response is skipped", lambda: s.upstream_misbehaves(
        [b"HTTP/1.1 100 Continue\r\n\r\n", ("sleep", 0.05),
         b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        200, interim_allowed=(100, 103)))  # dropping them (current design) or relaying both is fine

    def no_body_status(status, tail, late):
        def run():
            head = f"HTTP/1.1 {status} X\r\n".encode() + tail
            actions = [head, ("sleep", 0.1), b"hello"] if late else [head + b"hello"]
            s.backend.reset(lambda r: actions)
            c = s.client()
            try:
                c.send(req(["GET /nb HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
                r = c.read_response()
                expect(r is not None and r.status == status, f"expected {status}, got {r!r}")
                expect(not r.values("content-length") and not r.values("transfer-encoding"),
                       f"{status} carried framing headers: {r!r}")
                expect_kept(c)  # a body would be read as the probe's response
            finally:
                c.close()
            expect_upstream(s.backend, [(up_head("GET", "/nb", "a.test"), b""), PROBE_UPSTREAM])
        return run

    add("upstream: 204 with Content-Length and a body -> 204 without body",
        no_body_status(204, b"Content-Length: 5\r\n\r\n", late=False))
    add("upstream: 204 with a late body -> body never reaches a client",
        no_body_status(204, b"Content-Length: 5\r\n\r\n", late=True))
    add("upstream: 204 with chunked framing -> 204 without body",
        no_body_status(204, b"Transfer-Encoding: chunked\r\n\r\n", late=False))
    add("upstream: 304 with Content-Length and a body -> 304 without body",
        no_body_status(304, b"Content-Length: 5\r\n\r\n", late=False))

    def closed_mid_body():
        s.backend.reset(lambda r: [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", ("sleep", 0.05), "close"])
        c = s.client()
        try:
            c.send(req(["GET /mid HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
            r = c.read_response()
            expect(r is not None and r.status == 200 and not r.complete and r.body == b"partial",
                   f"expected a truncated 200, got {r!r}")
            expect(c.eof, "connection should be closed after a truncated response")
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("GET", "/mid", "a.test"), b"")])

    add("upstream: closed mid-body -> client sees a truncated response and a close", closed_mid_body)

    def bad_chunk_mid_body():
        forwarded = threading.Event()  # the client has the first chunk: only then the bad one
        s.backend.reset(lambda r: [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                                   ("wait", forwarded), b"ZZ\r\nmore\r\n0\r\n\r\n"])
        c = s.client()
        try:
            c.send(req(["GET /chunks HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
            deadline = time.monotonic() + IO_TIMEOUT
            while b"hello\r\n" not in c.buf and c._fill(deadline):
                pass
            forwarded.set()
            r = c.read_response()
            expect(r is not None and r.status == 200 and not r.complete and r.body == b"hello",
                   f"expected a truncated 200, got {r!r}")
            expect(c.eof, "connection should be closed after a truncated response")
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("GET", "/chunks", "a.test"), b"")])

    add("upstream: malformed chunk after data was forwarded -> truncated, closed", bad_chunk_mid_body)
    # Nothing was forwarded yet when the bad chunk is seen: the client can still get a clean 502.
    add("upstream: malformed chunk before anything was forwarded -> 502",
        bad(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"))

    add("upstream: no response within upstream_response_timeout -> 504",
        lambda: s.upstream_misbehaves(["hang"], 504))
    # Slower than request_head_timeout, faster than upstream_response_timeout: a
    # normal answer (the head deadline must not keep running while we wait upstream).
    add("upstream: answer after request_head_timeout, within upstream_response_timeout -> 200",
        lambda: s.upstream_misbehaves([("sleep", (HEAD_TIMEOUT_S + UPSTREAM_RESPONSE_TIMEOUT_S) / 2), OK_RESPONSE], 200))

    def refused():
        c = s.client()
        try:
            c.send(req(["GET / HTTP/1.1", "Host: a.test", "X-Release-Slot: green", f"X-Request-ID: {RID}"]))
            r = c.read_response()
            expect(r is not None and r.status == 502, f"expected 502, got {r!r}")
            expect_kept(c)
        finally:
            c.close()
        expect_upstream(s.backend, [PROBE_UPSTREAM])

    add("upstream: connection refused -> 502", refused)

    post_req = post("Content-Length: 5", body=b"hello")
    post_up = [(up_head("POST", "/p", "a.test", framing="Content-Length: 5"), b"hello")]
    add("upstream: reset before the response -> 502 (POST not retried)",
        lambda: s.upstream_misbehaves(["reset"], 502, request=post_req, upstream=post_up))
    add("upstream: closed without a response -> 502 (POST not retried)",
        lambda: s.upstream_misbehaves(["close"], 502, request=post_req, upstream=post_up))

    def extra_after_body():
        s.backend.reset(lambda r: [OK_RESPONSE + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"])
        c = s.client()
        try:
            c.send(req(["GET /x HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
            r = c.read_response()
            expect(r is not None and r.status == 200 and r.body == b"ok", f"got {r!r}")
            expect_kept(c)
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("GET", "/x", "a.test"), b""), PROBE_UPSTREAM])

    add("upstream: bytes after a complete response are not forwarded", extra_after_body)

    def late_unsolicited_response():
        # A second response arriving on the idle pooled connection must not be handed
        # to the next request (response queue poisoning).
        evil_sent = threading.Event()
        s.backend.reset(lambda r: [OK_RESPONSE, ("sleep", 0.05), b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
                                   ("set", evil_sent)])
        c = s.client()
        try:
            c.send(req(["GET /x HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
            r = c.read_response()
            expect(r is not None and r.status == 200 and r.body == b"ok", f"got {r!r}")
            evil_sent.wait(IO_TIMEOUT)
            time.sleep(0.05)  # the unsolicited response now waits in the pooled connection
            c.send(PROBE_REQUEST)
            p = c.read_response()
            expect(p is not None and p.status == 200 and p.body == b"probe-ok",
                   f"the next request got {p!r}, not its own response")
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("GET", "/x", "a.test"), b""), PROBE_UPSTREAM])

    add("upstream: late unsolicited response on a pooled connection is never served", late_unsolicited_response)

    def until_close():
        s.backend.reset(lambda r: [b"HTTP/1.1 200 OK\r\nX-Kind: eof\r\n\r\nread until close", "close"])
        c = s.client()
        try:
            c.send(req(["GET /eof HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
            r = c.read_response()
            expect(r is not None and r.status == 200 and r.complete and r.body == b"read until close"
                   and r.values("transfer-encoding") == ["chunked"], f"got {r!r}")
            expect_kept(c)
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("GET", "/eof", "a.test"), b""), PROBE_UPSTREAM])

    add("upstream: body delimited by close is re-framed chunked, client kept", until_close)

    def response_hop_by_hop():
        s.backend.reset(lambda r: [b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=1\r\n"
                                   b"Proxy-Connection: close\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Public: p\r\n"
                                   b"Content-Length: 2\r\n\r\nok"])
        c = s.client()
        try:
            c.send(req(["GET /r HTTP/1.1", "Host: a.test", f"X-Request-ID: {RID}"]))
            r = c.read_response()
            expect(r is not None and r.status == 200 and r.body == b"ok", f"got {r!r}")
            names = [n for n, _ in r.headers]
            # (the two in the middle are the proxy's default security headers)
            expect(names == ["x-public", "x-content-type-options", "x-frame-options", "content-length"],
                   f"response fields {r.headers}")
            expect_kept(c)
        finally:
            c.close()
        expect_upstream(s.backend, [(up_head("GET", "/r", "a.test"), b""), PROBE_UPSTREAM])

    add("upstream: hop-by-hop response fields stripped", response_hop_by_hop)
    return cases


def main():
    checks = Checks()
    s = Suite()
    try:
        cases = (request_framing_cases(s) + chunked_cases(s) + forwarding_cases(s) + timeout_cases(s) +
                 upstream_cases(s))
        print(f"{len(cases)} cases", flush=True)
        only = os.environ.get("ADVERSARIAL_ONLY")  # substring filter while debugging
        for name, fn in cases:
            if only and only not in name:
                continue
            s.backend.reset()
            failed_before = checks.failed
            checks.run(name, fn)
            if checks.failed != failed_before:
                s.restart()
        checks.run("daemon still running after the battery", lambda: expect(
            s.daemon.proc.poll() is None, f"daemon exited with {s.daemon.proc.returncode}"))
    finally:
        code = s.daemon.stop()
        if code not in (0, None):
            print(f"daemon exit code {code}", flush=True)
    checks.finish()


if __name__ == "__main__":
    main()
