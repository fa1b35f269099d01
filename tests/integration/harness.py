"""Shared helpers for integration tests: free ports, child processes that are
always reaped, a releasectl daemon with a generated config, raw HTTP clients.
Python 3 stdlib only. Every network address is on 127.0.0.1."""
import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

RELEASECTL = os.environ.get("RELEASECTL_BIN", "build/controller/releasectl")
DEMO_APP = os.environ.get("RELEASECTL_DEMO_APP", "build/controller/releasectl-demo-app")
SOURCE_ROOT = os.environ.get("RELEASECTL_SOURCE_ROOT", os.getcwd())

_children = []


def _reap_all():
    for proc in list(_children):
        stop(proc)


atexit.register(_reap_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args, **kwargs):
    """Starts a child we own; it is killed at exit if still running."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen(args, **kwargs)
    _children.append(proc)
    return proc


def stop(proc, sig=signal.SIGTERM, timeout=10):
    """Ends a child we started, by PID, and reaps it."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc in _children:
        _children.remove(proc)
    return proc.returncode


def wait_for_port(port, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


def start_demo_app(port, release="dev", slot="", extra_args=(), threads=1, cwd=None):
    env = dict(os.environ, RELEASE_ID=release, SLOT=slot)
    proc = spawn([DEMO_APP, "--listen", f"127.0.0.1:{port}", "--threads", str(threads), "--release", release,
                  *extra_args], env=env, cwd=cwd, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc=proc)
    return proc


class Daemon:
    """A `releasectl serve` with a generated TOML config."""

    def __init__(self, slots, weights, extra="", workers=1, sticky=False, log_path=None, listen_port=None,
                 metrics=False, root=None):
        self.dir = tempfile.mkdtemp(prefix="releasectl-test-")
        self.port = listen_port or free_port()
        self.metrics_port = free_port() if metrics else None
        self.slots = slots
        self.weights = dict(weights)
        self.extra = extra
        self.workers = workers
        self.sticky = sticky
        self.root = root or os.path.join(self.dir, "root")
        self.config_path = os.path.join(self.dir, "releasectl.toml")
        self.log_path = log_path or os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.write_config()

    def config_text(self):
        lines = [f'root = "{self.root}"', "[proxy]", f'listen = ["127.0.0.1:{self.port}"]', f"workers = {self.workers}"]
        lines += ["[routing]", f"sticky = {'true' if self.sticky else 'false'}"]
        lines += ["[log]", "access_log = false"]
        lines += ["[metrics]", f'listen = "127.0.0.1:{self.metrics_port}"' if self.metrics_port else 'listen = ""']
        for name, upstream in self.slots.items():
            lines += [f"[slots.{name}]", f'upstream = "{upstream}"']
        lines += ["[weights]"] + [f"{k} = {v}" for k, v in self.weights.items()]
        return "\n".join(lines) + "\n" + self.extra + "\n"

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(self.config_text())

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = spawn([RELEASECTL, "serve", "--config", self.config_path], stdout=self.log, stderr=self.log)
        wait_for_port(self.port, proc=self.proc)
        return self

    def set_weights(self, weights, wait=True):
        """Rewrites [weights] and SIGHUPs the daemon (the same publish path the
        controller uses); with wait, returns once the daemon logged the reload."""
        before = self.log_text().count("SIGHUP: reloaded") if wait else 0
        self.weights = dict(weights)
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)
        if not wait:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.log_text().count("SIGHUP: reloaded") > before:
                return
            time.sleep(0.01)
        raise RuntimeError("daemon did not log the SIGHUP reload within 10s")

    def stop(self):
        code = stop(self.proc, signal.SIGTERM, timeout=40)
        self.log.close()
        return code

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def raw_exchange(port, data, timeout=5.0, read_until_close=True, shutdown_write=False):
    """Sends raw bytes and returns everything read until the peer closes or the
    timeout passes, plus whether the peer closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
            if not read_until_close and b"\r\n\r\n" in b"".join(chunks):
                pass
        return b"".join(chunks), closed


def parse_responses(data):
    """Splits raw bytes into a list of (status, headers dict lowercased, body)
    for Content-Length / chunked / no-body responses."""
    out = []
    while data:
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            break
        head = data[:head_end].decode("latin-1")
        data = data[head_end + 4:]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        body = b""
        if status < 200 or status in (204, 304):
            pass
        elif "content-length" in headers:
            n = int(headers["content-length"][0])
            body, data = data[:n], data[n:]
        elif headers.get("transfer-encoding", [""])[0].lower() == "chunked":
            while True:
                line_end = data.find(b"\r\n")
                size = int(data[:line_end].split(b";")[0], 16)
                data = data[line_end + 2:]
                if size == 0:
                    trailer_end = data.find(b"\r\n")
                    data = data[trailer_end + 2:]
                    break
                body += data[:size]
                data = data[size + 2:]
        else:
            body, data = data, b""
        out.append((status, headers, body))
    return out


def http_get(port, path="/", headers=None, timeout=10.0, method="GET", body=None):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class Checks:
    """Minimal test runner: each check prints a line; the summary line is the
    one CI reads ('N passed, N failed')."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        start = time.monotonic()
        try:
            fn()
            self.passed += 1
            print(f"ok   {name} ({time.monotonic() - start:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        _reap_all()
        sys.exit(1 if self.failed else 0)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)
