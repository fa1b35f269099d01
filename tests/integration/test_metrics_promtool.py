"""Issue 5 must-shows 1 and 2 (first half) against the metrics listener:
`promtool check metrics` on a real scrape (exit 0, no lint output), the checks
promtool does not make (duplicate series, +Inf == _count, monotone buckets,
escaped label values), the HTTP surface (token, health, 404/405, HEAD,
keep-alive, bounded requests), and a real Prometheus (Debian package) on
127.0.0.1 scraping it every second whose histogram_quantile(0.95) matches the
p95 the controller computes itself within 10 %.

Usage: test_metrics_promtool.py METRICS_SERVER_DRIVER
The helpers (parse_exposition, check_exposition, promtool_check_metrics,
PrometheusServer) are importable so the daemon-under-traffic test can reuse
them."""
import http.client
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from harness import Checks, expect, free_port, spawn, stop, wait_for_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# --------------------------------------------------------------------------
# Exposition parsing and the checks promtool does not make

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|\})')


def _unescape(value):
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\":
            nxt = value[i + 1]
            if nxt not in ('\\', '"', 'n'):
                raise AssertionError(f"bad escape \\{nxt} in label value {value!r}")
            out.append("\n" if nxt == "n" else nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_exposition(text):
    """Returns (samples, types): samples = [(name, {label: value}, float)],
    types = {family: type}. Raises on anything malformed."""
    samples, types, helps = [], {}, set()
    expect(text.endswith("\n"), "exposition must end with a line feed")
    for line in text.splitlines():
        expect(line != "", "empty line in exposition")
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            expect(name not in helps, f"HELP twice for {name}")
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            expect(name not in types, f"TYPE twice for {name}")
            types[name] = kind
            continue
        expect(not line.startswith("#"), f"unexpected comment {line!r}")
        m = _SAMPLE.match(line)
        expect(m is not None, f"malformed sample line {line!r}")
        name, raw_labels, value = m.group(1), m.group(2), m.group(3)
        labels = {}
        if raw_labels:
            body, pos = raw_labels[1:], 0
            while pos < len(body):
                lm = _LABEL.match(body, pos)
                expect(lm is not None, f"malformed labels in {line!r}")
                expect(lm.group(1) not in labels, f"label {lm.group(1)} twice in {line!r}")
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        samples.append((name, labels, float(value)))
    return samples, types


def check_exposition(text):
    """What promtool does not check: no duplicate series, every histogram's
    buckets ascending and cumulative with +Inf == _count, families contiguous.
    Returns the parsed samples."""
    samples, types = parse_exposition(text)
    seen = set()
    for name, labels, _ in samples:
        key = (name, tuple(sorted(labels.items())))
        expect(key not in seen, f"duplicate series {name}{labels}")
        seen.add(key)
    # Families are contiguous blocks.
    def family_of(name):
        if name in types:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in types:
                return name[: -len(suffix)]
        raise AssertionError(f"sample {name} has no TYPE")
    order = []
    for name, _, _ in samples:
        fam = family_of(name)
        if not order or order[-1] != fam:
            expect(fam not in order, f"family {fam} is split into several blocks")
            order.append(fam)
    # Histograms.
    for fam, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for name, labels, value in samples:
            if family_of(name) != fam:
                continue
            base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            entry = series.setdefault(base, {"buckets": [], "count": None, "sum": None})
            if name.endswith("_bucket"):
                le = labels["le"]
                entry["buckets"].append((math.inf if le == "+Inf" else float(le), value))
            elif name.endswith("_count"):
                entry["count"] = value
            elif name.endswith("_sum"):
                entry["sum"] = value
        expect(series, f"histogram {fam} has no series")
        for base, entry in series.items():
            buckets = entry["buckets"]
            expect(buckets and math.isinf(buckets[-1][0]), f"{fam}{base}: last bucket is not +Inf")
            expect(entry["count"] is not None and entry["sum"] is not None, f"{fam}{base}: _count/_sum missing")
            expect(buckets[-1][1] == entry["count"], f"{fam}{base}: +Inf {buckets[-1][1]} != _count {entry['count']}")
            for (le0, c0), (le1, c1) in zip(buckets, buckets[1:]):
                expect(le1 > le0, f"{fam}{base}: le not ascending at {le1}")
                expect(c1 >= c0, f"{fam}{base}: bucket counts decrease at le={le1}")
    return samples


def promtool_check_metrics(text):
    """`promtool check metrics` must exit 0 and print nothing (no lint)."""
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode(errors="replace").strip()
    expect(result.returncode == 0 and output == "",
           f"promtool check metrics: exit {result.returncode}, output: {output[:2000]}")


# --------------------------------------------------------------------------
# A real Prometheus on loopback

class PrometheusServer:
    """`prometheus` with a temp config and TSDB, scraping `targets` every 1 s.
    Stopped (by PID) with stop()."""

    def __init__(self, targets, bearer_token=None, job="releasectl"):
        self.dir = tempfile.mkdtemp(prefix="releasectl-prom-")
        self.port = free_port()
        auth = ""
        if bearer_token:
            auth = f"    authorization:\n      type: Bearer\n      credentials: {json.dumps(bearer_token)}\n"
        config = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                  f"scrape_configs:\n  - job_name: {job}\n{auth}"
                  f"    static_configs:\n      - targets: {json.dumps(targets)}\n")
        self.config_path = os.path.join(self.dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            f.write(config)
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self, timeout=90.0):
        log = open(self.log_path, "wb")
        self.proc = spawn([PROMETHEUS, f"--config.file={self.config_path}",
                           f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
                           f"--web.listen-address=127.0.0.1:{self.port}",
                           "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                          stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            expect(self.proc.poll() is None, f"prometheus exited early: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"prometheus not ready within {timeout}s: {self.log_tail()}")

    def query(self, promql):
        """Instant query; returns the result vector [(labels, float)]."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        expect(body.get("status") == "success", f"query {promql!r} failed: {body}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def wait_for(self, promql, predicate, timeout=90.0, what=None):
        """Polls until predicate(result) holds; returns the result."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.query(promql)
                if predicate(last):
                    return last
            except (OSError, AssertionError) as e:
                last = e
            time.sleep(0.5)
        raise AssertionError(f"{what or promql}: not true within {timeout}s; last result {last}")

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            stop(self.proc, timeout=20)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def monitoring_queries():
    """The PromQL of scripts/monitoring/grafana-dashboard.json with Grafana's
    variables filled in (alert rules are covered by promtool test rules)."""
    root = os.environ.get("RELEASECTL_SOURCE_ROOT", os.getcwd())
    with open(os.path.join(root, "scripts", "monitoring", "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in (("$__rate_interval", "20s"), ("$__range", "1m"), ("$instance", ".*"), ("$slot", ".*")):
                expr = expr.replace(var, value)
            queries.append(expr)
    return queries


# --------------------------------------------------------------------------
# The test against the driver

def _get(port, path, headers=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def main():
    driver = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
        "METRICS_SERVER_DRIVER", "build/tests/controller/metrics_server_driver")
    token = "t0ken-for-tests"
    port = free_port()
    proc = spawn([driver, "--listen", f"127.0.0.1:{port}", "--token", token], stdout=subprocess.DEVNULL)
    wait_for_port(port, proc=proc)
    auth = {"Authorization": f"Bearer {token}"}
    own_p95 = {}
    for line in subprocess.run([driver, "--print-p95"], capture_output=True, text=True, check=True,
                               timeout=60).stdout.splitlines():
        slot, value = line.split()
        own_p95[slot] = float(value)
    green_release = '20240102130000 "rc"\\x'  # what the driver binds to green

    checks = Checks()
    state = {}

    def scrape():
        status, headers, body = _get(port, "/metrics", auth)
        expect(status == 200, f"/metrics: {status}")
        expect(headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
               f"content type {headers.get('content-type')}")
        state["text"] = body.decode()

    def promtool():
        promtool_check_metrics(state["text"])

    def own_checks():
        samples = check_exposition(state["text"])
        names = {name for name, _, _ in samples}
        for required in ["releasectl_requests_total", "releasectl_request_duration_seconds_bucket",
                         "releasectl_upstream_errors_total", "releasectl_slot_weight", "releasectl_slot_healthy",
                         "releasectl_rollout_step", "releasectl_rollout_state", "releasectl_rollbacks_total",
                         "releasectl_release_info", "releasectl_connections_active", "releasectl_build_info",
                         "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                         "process_start_time_seconds", "process_max_fds", "process_virtual_memory_bytes"]:
            expect(required in names, f"{required} missing")
        # Escaping: the raw text carries the escaped form, the parser gets back the original.
        expect('release="20240102130000 \\"rc\\"\\\\x"' in state["text"], "release label not escaped")
        infos = [labels for name, labels, _ in samples if name == "releasectl_release_info"]
        expect({"slot": "green", "release": green_release} in infos, f"release_info: {infos}")
        states = [(labels["state"], v) for name, labels, v in samples if name == "releasectl_rollout_state"]
        expect(sum(v for _, v in states) == 1 and ("running", 1.0) in states, f"one-hot state: {states}")

    def token_required():
        status, headers, _ = _get(port, "/metrics")
        expect(status == 401, f"/metrics without token: {status}")
        expect("bearer" in headers.get("www-authenticate", "").lower(), f"WWW-Authenticate: {headers}")
        status, _, _ = _get(port, "/metrics", {"Authorization": "Bearer wrong"})
        expect(status == 401, f"/metrics with a wrong token: {status}")

    def health_and_errors():
        status, headers, body = _get(port, "/health/live")
        expect(status == 200 and json.loads(body) == {"status": "live"}, f"live: {status} {body}")
        status, _, body = _get(port, "/health/ready")
        expect(status == 200 and json.loads(body) == {"status": "ready", "checks": {"listeners": "ok", "live_slot": "ok"}},
               f"ready: {status} {body}")
        status, _, _ = _get(port, "/nope")
        expect(status == 404, f"unknown path: {status}")
        status, headers, _ = _get(port, "/metrics", auth, method="POST", body=b"x")
        expect(status == 405 and "GET" in headers.get("allow", ""), f"POST: {status} {headers}")
        status, headers, body = _get(port, "/metrics", auth, method="HEAD")
        expect(status == 200 and body == b"" and int(headers.get("content-length", "0")) > 1000, f"HEAD: {status} {headers}")

    def keep_alive_and_limits():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for _ in range(5):
                c.request("GET", "/health/live")
                r = c.getresponse()
                r.read()
                expect(r.status == 200, f"keep-alive request: {r.status}")
            expect(c.sock is not None, "connection was closed between keep-alive requests")
        finally:
            c.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            expect(data.startswith(b"HTTP/1.1 431"), f"oversized head: {data[:80]!r}")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GARBAGE\r\n\r\n")
            data = s.recv(4096)
            expect(data.startswith(b"HTTP/1.1 400"), f"garbage request: {data[:80]!r}")
        status, _, _ = _get(port, "/health/live")
        expect(status == 200, "listener still serves after bad requests")

    def real_prometheus():
        prom = PrometheusServer([f"127.0.0.1:{port}"], bearer_token=token)
        try:
            prom.start()
            prom.wait_for('up{job="releasectl"}', lambda r: len(r) == 1 and r[0][1] == 1.0, what="up == 1")
            # Enough scrapes in the window that the rate covers ~20k requests
            # per slot, not just the last scrape's batch.
            prom.wait_for('count_over_time(up{job="releasectl"}[20s])', lambda r: len(r) == 1 and r[0][1] >= 10,
                          what="10 scrapes in 20 s")
            query = ('histogram_quantile(0.95, sum by (slot, le) '
                     '(rate(releasectl_request_duration_seconds_bucket{job="releasectl"}[20s])))')
            result = prom.wait_for(query, lambda r: len(r) == 2 and all(math.isfinite(v) for _, v in r),
                                   what="p95 per slot")
            for labels, value in result:
                slot = labels["slot"]
                expected = own_p95[slot]
                print(f"     {slot}: Prometheus p95 {value:.4f} s, releasectl's own p95 {expected:.4f} s", flush=True)
                expect(abs(value - expected) / expected < 0.10,
                       f"{slot}: histogram_quantile {value} vs own p95 {expected}")
            # Escaped label values arrive intact.
            infos = prom.query('releasectl_release_info{slot="green"}')
            expect(len(infos) == 1 and infos[0][0]["release"] == green_release, f"release_info via Prometheus: {infos}")
            # Every query the shipped dashboard and alert rules make is valid
            # PromQL over these series and returns data.
            for expr in monitoring_queries():
                result = prom.query(expr)
                expect(result, f"no data for shipped query {expr}")
            # Scrapes were not failing or being sample-limited.
            health = prom.query('scrape_samples_scraped{job="releasectl"}')
            expect(health and health[0][1] > 100, f"scrape_samples_scraped: {health}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nprometheus log: {prom.log_tail()}") from None
        finally:
            prom.stop()

    checks.run("scrape /metrics with the bearer token", scrape)
    if "text" in state:
        checks.run("promtool check metrics: exit 0, no lint output", promtool)
        checks.run("no duplicate series, +Inf == _count, monotone buckets, escaped labels", own_checks)
    checks.run("/metrics requires the bearer token", token_required)
    checks.run("/health/live, /health/ready, 404, 405, HEAD", health_and_errors)
    checks.run("keep-alive; oversized and garbage requests answered 431 / 400", keep_alive_and_limits)
    checks.run("a real Prometheus scrapes at 1 s: up == 1, p95 within 10 % of releasectl's own", real_prometheus)
    def stop_closes_connections():
        # An idle keep-alive connection must not keep the listener alive:
        # stop() closes it, so the driver's io_context runs dry and it exits.
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        idle.request("GET", "/health/live")
        idle.getresponse().read()
        proc.send_signal(15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("driver still running 10 s after stop() with an idle keep-alive connection")
        finally:
            idle.close()
        expect(proc.returncode == 0, f"driver exit code {proc.returncode}")

    checks.run("stop() closes the listener and idle keep-alive connections", stop_closes_connections)
    stop(proc)
    checks.finish()


if __name__ == "__main__":
    main()
