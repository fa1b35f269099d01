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


def read_response(s):
    """Reads one response (Content-Length, chunked, or no body) from a socket:
    (status, {lower name: value}, body bytes incl. chunk framing, head length)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        need = int(headers["content-length"])
        while len(rest) < need:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a body")
            rest += chunk
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a chunked body")
            rest += chunk
    return status, headers, rest, len(head) + 4


def recv_all(s):
    """Everything the peer sends until it closes the connection."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


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


# --------------------------------------------------------------------------
# Rollout helpers: a daemon that supervises demo-app releases, the CLI, a
# keep-alive load generator that remembers every answer.

def port_closed(port, timeout=10.0):
    """True once nothing accepts on 127.0.0.1:port (within timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


def pid_gone(pid, timeout=10.0):
    """True once `pid` no longer runs (gone or a zombie of someone else)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return True
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        time.sleep(0.05)
    return False


def write_demo_release(directory, error_rate=0.0, extra_latency_ms=0):
    """A release source for releasectl-demo-app: a directory with demo-app.env."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "demo-app.env"), "w") as f:
        f.write(f"ERROR_RATE={error_rate}\nEXTRA_LATENCY_MS={extra_latency_ms}\n")
    return directory


class RolloutDaemon(Daemon):
    """A `releasectl serve` whose slots run releasectl-demo-app ([app] command),
    with a [rollout] policy and an admin socket in its temp dir."""

    def __init__(self, rollout, app=None, proxy_extra=None, workers=1, extra=""):
        self.blue_port = free_port()
        self.green_port = free_port()
        self.rollout = dict(rollout)
        self.app = {"health_path": '"/up"', "health_interval": '"100ms"', "healthy_threshold": 1,
                    "stop_timeout": '"3s"', "start_timeout": '"20s"'}
        self.app.update(app or {})
        self.proxy_extra = {"drain_timeout": '"5s"'}
        self.proxy_extra.update(proxy_extra or {})
        super().__init__({"blue": f"127.0.0.1:{self.blue_port}", "green": f"127.0.0.1:{self.green_port}"},
                         {"blue": 100, "green": 0}, extra=extra, workers=workers)
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self.write_config()

    def config_text(self):
        def table(name, values):
            return [f"[{name}]"] + [f"{k} = {v}" for k, v in values.items()]
        lines = [f'root = "{self.root}"']
        lines += table("proxy", {"listen": f'["127.0.0.1:{self.port}"]', "workers": self.workers, **self.proxy_extra})
        lines += ["[routing]", f"sticky = {'true' if self.sticky else 'false'}"]
        lines += ["[log]", "access_log = false"]
        lines += ["[metrics]", 'listen = ""']
        lines += ["[admin]", f'socket = "{os.path.join(self.dir, "admin.sock")}"']
        for name, upstream in self.slots.items():
            lines += [f"[slots.{name}]", f'upstream = "{upstream}"']
        lines += ["[weights]"] + [f"{k} = {v}" for k, v in self.weights.items()]
        app = {"command": f'"{os.path.abspath(DEMO_APP)} --listen 127.0.0.1:${{PORT}} --threads 1"', **self.app}
        lines += table("app", app)
        lines += table("rollout", self.rollout)
        return "\n".join(lines) + "\n" + self.extra + "\n"

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = spawn([RELEASECTL, "serve", "--config", self.config_path], stdout=self.log, stderr=self.log)
        wait_for_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not os.path.exists(self.socket_path):
            time.sleep(0.02)
        return self

    def kill9(self):
        """SIGKILL, reaped; returns the exit status (-9)."""
        code = stop(self.proc, signal.SIGKILL, timeout=10)
        self.log.close()
        return code

    def cli(self, *args, timeout=120):
        """Runs `releasectl ARGS --socket <admin socket>`; returns (code, stdout,
        stderr, monotonic time at which it returned)."""
        proc = subprocess.run([RELEASECTL, *args, "--socket", self.socket_path], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        returned = time.monotonic()
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"), returned

    def status(self):
        import json
        code, out, err, _ = self.cli("status", "--json", timeout=20)
        if code != 0:
            raise RuntimeError(f"releasectl status --json exited {code}: {err.strip()}")
        return json.loads(out)

    def wait_status(self, predicate, timeout=30.0, what="condition"):
        """Polls `status --json` until predicate(state) holds; returns the state."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.status()
            if predicate(state):
                return state
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last status: {state}")


class Answer:
    __slots__ = ("started", "finished", "status", "release")

    def __init__(self, started, finished, status, release):
        self.started, self.finished, self.status, self.release = started, finished, status, release

    def __repr__(self):
        return f"Answer({self.status}, {self.release!r}, started={self.started:.3f})"


class KeepAliveLoad:
    """`threads` threads doing keep-alive GETs through the proxy, each at most
    `per_thread_rps` a second. Every answer is kept: monotonic start and end of
    the request, status (0 = connection error / timeout) and X-Release."""

    def __init__(self, port, threads=4, per_thread_rps=100, path="/", timeout=15.0):
        import threading
        self.port = port
        self.path = path
        self.timeout = timeout
        self.gap = 1.0 / per_thread_rps if per_thread_rps else 0.0
        self.answers = []
        self._lock = threading.Lock()
        self._running = True
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def stop(self):
        self._running = False
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        return self.snapshot()

    def snapshot(self):
        with self._lock:
            return list(self.answers)

    def _record(self, started, status, release):
        answer = Answer(started, time.monotonic(), status, release)
        with self._lock:
            self.answers.append(answer)

    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def _exchange(self, s, request):
        """One request on a kept-alive connection: (status, release, keep)."""
        s.sendall(request)
        status, headers, _, _ = read_response(s)
        keep = headers.get("connection", "").lower() != "close"
        return status, headers.get("x-release", ""), keep

    def _run(self):
        request = f"GET {self.path} HTTP/1.1\r\nHost: load\r\nUser-Agent: rollout-test\r\n\r\n".encode()
        s = None
        next_at = time.monotonic()
        while self._running:
            if self.gap:
                next_at = max(next_at + self.gap, time.monotonic() - 1.0)
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            started = time.monotonic()
            try:
                if s is None:
                    s = self._connect()
                status, release, keep = self._exchange(s, request)
                self._record(started, status, release)
                if not keep:
                    s.close()
                    s = None
            except (OSError, ValueError, IndexError):
                self._record(started, 0, "")
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.005)  # a dead proxy: don't spin
        if s is not None:
            s.close()
