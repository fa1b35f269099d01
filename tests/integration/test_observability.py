"""Issue 5 (observability) end to end against the REAL daemon: `releasectl serve`
whose supervisor runs releasectl-demo-app releases in blue / green, a real
Prometheus (Debian package) scraping it every second on 127.0.0.1, load
generators that give every request a unique X-Request-ID and remember what came
back, and the CLI driving the rollouts.

  1. /metrics under traffic on both slots (a canary paused at 25 %):
     `promtool check metrics` exit 0 and silent; no duplicate series; every
     histogram cumulative with +Inf == _count; every series of the README with
     its labels and plausible values; bearer token 401 / 200.
  2. Prometheus scraping at 1 s while the load runs with a fixed 75/25 split and
     latencies spread over 50..500 ms: histogram_quantile(0.95) per slot within
     10 % of the exact p95 of the same requests, and the rate split within 2
     percentage points of the weights.
  3. [analysis] source = "prometheus": a good canary is promoted step by step,
     one with 20 % 5xx is rolled back, and the daemon's queries are in
     Prometheus' query log; with Prometheus unreachable, or answering uselessly
     (bad framing, empty result, error, NaN, not JSON), a canary with plenty of
     traffic never advances (inconclusive) while the checks keep coming, and it
     advances once switched to builtin by SIGHUP.
  4. /health/ready 200 -> 503 naming the failing check while the live app is
     SIGSTOPped -> 200 once the supervisor restarted it; /health/live always 200.
  5. Access log: every request exactly once as a JSON line with the documented
     fields and the values the client saw, across a mid-load rotation
     (mv + SIGUSR1) and a failed reopen; flushed by SIGTERM. At rest,
     requests_total{slot,release,code} and each histogram _count equal the
     access log's counts (a release newly bound to a slot starts at 0).

Run by meson (`meson test -C BUILD observability-integration`) or directly from
the source root with RELEASECTL_BIN / RELEASECTL_DEMO_APP pointing at a build.
Environment knobs: OBS_MAIN_SECONDS (main load duration, default 20)."""
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from harness import Checks, RolloutDaemon, expect, free_port, read_response, write_demo_release
from test_metrics_promtool import PrometheusServer, check_exposition, parse_exposition, promtool_check_metrics

TOKEN = "obs-s3cret-token"
HOST = "obs.test"
USER_AGENT = "obs-load/1.0"
MAIN_SECONDS = float(os.environ.get("OBS_MAIN_SECONDS", "20"))
MAIN_THREADS = 24
CHECK_INTERVAL_S = 3  # prometheus source: a [3s] window holds 2-3 scrapes at 1 s
ACCESS_FIELDS = {"time", "client", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration",
                 "upstream_time", "slot", "release", "request_id", "user_agent"}

checks = Checks()
work = tempfile.mkdtemp(prefix="releasectl-obs-")
sources = {
    "v1": write_demo_release(os.path.join(work, "src/v1")),
    # green gets +100 ms so the two slots' p95 differ by ~25 %: a histogram
    # that mixed the slots up could not pass the 10 % comparison.
    "v2": write_demo_release(os.path.join(work, "src/v2"), extra_latency_ms=100),
    "v3-errors": write_demo_release(os.path.join(work, "src/v3-errors"), error_rate=0.2),
}


def note(text):
    print(f"     {text}", flush=True)


# --------------------------------------------------------------------------
# The daemon: RolloutDaemon plus a metrics listener with a token, an access
# log file and an [analysis] table.

class ObsDaemon(RolloutDaemon):
    def __init__(self, rollout, analysis, token=TOKEN, workers=2):
        self.mport = free_port()
        self.token = token
        self.analysis = dict(analysis)
        super().__init__(rollout, app={"health_timeout": '"300ms"', "unhealthy_threshold": 3}, workers=workers)

    @property
    def access_log(self):
        return os.path.join(self.dir, "access.log")

    def config_text(self):
        text = super().config_text()
        metrics = f'[metrics]\nlisten = "127.0.0.1:{self.mport}"\ntoken = "{self.token}"'
        log = f'[log]\naccess_log = true\naccess_log_path = "{self.access_log}"'
        for old, new in (('[metrics]\nlisten = ""', metrics), ("[log]\naccess_log = false", log)):
            expect(old in text, f"harness config changed: {old!r} not found")
            text = text.replace(old, new)
        return text + "[analysis]\n" + "".join(f"{k} = {v}\n" for k, v in self.analysis.items())

    def reload(self):
        before = self.log_text().count("SIGHUP: reloaded")
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.log_text().count("SIGHUP: reloaded") > before:
                return
            time.sleep(0.02)
        raise AssertionError("daemon did not log the SIGHUP reload within 15 s")

    def get(self, path, token=None, timeout=10):
        """GET on the metrics listener: (status, headers, body text)."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.mport, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def scrape(self):
        status, _, body = self.get("/metrics", TOKEN)
        expect(status == 200, f"/metrics with the token: {status}")
        return body

    def log_tail(self, n=2500):
        return self.log_text()[-n:]


def samples_of(samples, name):
    return [(labels, value) for n, labels, value in samples if n == name]


def one(samples, name, **labels):
    """The value of the single series `name{labels}` (exact label set)."""
    found = [v for l, v in samples_of(samples, name) if l == labels]
    expect(len(found) == 1, f"{name}{labels}: {len(found)} series; have {samples_of(samples, name)[:8]}")
    return found[0]


def rollout_of(state):
    return state.get("rollout") or {}


# --------------------------------------------------------------------------
# Load generator: keep-alive GETs, unique X-Request-ID each, everything kept.

class IdLoad:
    def __init__(self, port, prefix, threads, path_of, per_thread_rps=None):
        self.port, self.prefix, self.path_of = port, prefix, path_of
        self.gap = 1.0 / per_thread_rps if per_thread_rps else 0.0
        self.records = {}
        self._lock = threading.Lock()
        self._running = True
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def stop(self):
        self._running = False
        for t in self._threads:
            t.join(timeout=30)
        expect(not any(t.is_alive() for t in self._threads), f"load {self.prefix}: threads did not stop")
        return self.snapshot()

    def snapshot(self):
        with self._lock:
            return dict(self.records)

    @staticmethod
    def _exchange(s, request):
        s.sendall(request)
        status, headers, body, head_length = read_response(s)
        expect(len(body) == int(headers.get("content-length", "0")), "bytes after the response body (no pipelining here)")
        return status, headers, head_length + len(body)

    def _run(self, index):
        rng = random.Random(f"{self.prefix}-{index}")
        s = None
        n = 0
        next_at = time.monotonic()
        while self._running:
            if self.gap:
                next_at = max(next_at + self.gap, time.monotonic() - 1.0)
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            rid = f"{self.prefix}-{index}-{n}"
            n += 1
            path = self.path_of(rng)
            request = (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {USER_AGENT}\r\n"
                       f"X-Request-ID: {rid}\r\n\r\n").encode()
            rec = {"id": rid, "path": path, "bytes_in": len(request), "wall_start": time.time(),
                   "start": time.monotonic(), "status": 0, "release": ""}
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=20)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                status, headers, received = self._exchange(s, request)
                rec.update(status=status, release=headers.get("x-release", ""), bytes_out=received)
                if headers.get("connection", "").lower() == "close":
                    s.close()
                    s = None
            except (OSError, ValueError, IndexError, AssertionError) as e:
                rec["error"] = repr(e)
                if s is not None:
                    s.close()
                s = None
                time.sleep(0.01)
            rec["end"] = time.monotonic()
            rec["wall_end"] = time.time()
            with self._lock:
                self.records[rid] = rec
        if s is not None:
            s.close()


def failed(records):
    return [r for r in records.values() if r["status"] != 200]


def slow_path(low_ms, high_ms):
    return lambda rng: f"/slow?ms={rng.randint(low_ms, high_ms)}"


# --------------------------------------------------------------------------
# Access log reading

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def read_access_lines(path):
    """[(parsed object, raw line)]; raises on a line that is not one JSON object."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, "rb") as f:
        data = f.read()
    expect(not data or data.endswith(b"\n"), f"{path}: last line is incomplete")
    for number, raw in enumerate(data.split(b"\n")[:-1], 1):
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AssertionError(f"{path}:{number}: not JSON ({e}): {raw[:200]!r}")
        expect(isinstance(obj, dict), f"{path}:{number}: not an object")
        out.append(obj)
    return out


def wait_for_lines(paths, want, timeout=15.0):
    """The async logger writes in the background: wait (bounded) until the
    files hold at least `want` lines in total."""
    deadline = time.monotonic() + timeout
    while True:
        total = 0
        for p in paths:
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    total += f.read().count(b"\n")
        if total >= want or time.monotonic() > deadline:
            return total
        time.sleep(0.05)


def unix_time(text):
    expect(TIME_RE.match(text) is not None, f"time {text!r} is not YYYY-mm-ddTHH:MM:SS.ffffffZ")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def verify_access_lines(lines, records, where):
    """Each line: the documented fields with the values the client saw; each
    request exactly once. Returns {request_id: line}."""
    by_id = {}
    for obj in lines:
        expect(set(obj) == ACCESS_FIELDS, f"{where}: fields {sorted(obj)} != documented {sorted(ACCESS_FIELDS)}")
        rid = obj["request_id"]
        expect(rid not in by_id, f"{where}: request {rid} logged twice")
        by_id[rid] = obj
    missing = [rid for rid in records if rid not in by_id]
    extra = [rid for rid in by_id if rid not in records]
    expect(not missing, f"{where}: {len(missing)} of {len(records)} requests not logged, e.g. {missing[:5]}")
    expect(not extra, f"{where}: {len(extra)} lines for requests nobody sent, e.g. {extra[:5]}")
    overshoot = []  # proxy's duration minus the client's round trip
    for rid, obj in by_id.items():
        rec = records[rid]
        want = {"client": "127.0.0.1", "method": "GET", "host": HOST, "path": rec["path"], "status": rec["status"],
                "user_agent": USER_AGENT, "release": rec["release"], "bytes_in": rec["bytes_in"],
                "bytes_out": rec["bytes_out"]}
        got = {k: obj[k] for k in want}
        expect(got == want, f"{where}: {rid}: logged {got}, client saw {want}")
        expect(obj["slot"] in ("blue", "green"), f"{where}: {rid}: slot {obj['slot']!r}")
        t = unix_time(obj["time"])
        expect(rec["wall_start"] - 1.0 <= t <= rec["wall_end"] + 1.0,
               f"{where}: {rid}: time {obj['time']} outside the request ({rec['wall_start']:.3f}..{rec['wall_end']:.3f})")
        elapsed = rec["end"] - rec["start"]
        slept = int(rec["path"].split("ms=")[1]) / 1000.0 if "ms=" in rec["path"] else 0.0
        expect(obj["duration"] >= slept, f"{where}: {rid}: duration {obj['duration']} < the app's sleep {slept}")
        overshoot.append((obj["duration"] - elapsed, rid))
        expect(slept <= obj["upstream_time"] <= obj["duration"],
               f"{where}: {rid}: upstream_time {obj['upstream_time']} not within [{slept}, {obj['duration']}]")
    # The proxy's duration (head parsed .. last write completed) lies inside
    # the client's round trip, except that the proxy stamps the end when its
    # write completion runs, which on a loaded 2-core machine (ASan, other
    # builds) is now and then tens of ms after the client already has the
    # bytes. So: typically below the client's time, never far above it; an
    # idle keep-alive gap or the app's sleep counted twice would shift them all.
    overshoot.sort()
    median, (worst, worst_id) = overshoot[len(overshoot) // 2][0], overshoot[-1]
    expect(median <= 0.002, f"{where}: median duration - client round trip = {median * 1000:.1f} ms")
    expect(worst <= 0.25, f"{where}: {worst_id}: duration exceeds the client's round trip by {worst * 1000:.0f} ms")
    return by_id


def nearest_rank(values, q):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --------------------------------------------------------------------------
# Prometheus with a query log (to see the daemon's own analysis queries)

class QueryLoggingPrometheus(PrometheusServer):
    def __init__(self, targets, bearer_token):
        super().__init__(targets, bearer_token=bearer_token)
        self.query_log = os.path.join(self.dir, "queries.log")
        with open(self.config_path) as f:
            text = f.read()
        expect(text.startswith("global:\n"), "unexpected prometheus.yml from PrometheusServer")
        with open(self.config_path, "w") as f:
            f.write(text.replace("global:\n", f"global:\n  query_log_file: {json.dumps(self.query_log)}\n", 1))

    def query_at(self, promql, at):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?" +
               urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"}))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        expect(body.get("status") == "success", f"query {promql!r} failed: {body}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def logged_queries(self):
        """[(unix time, query)] from Prometheus' query log."""
        out = []
        if not os.path.exists(self.query_log):
            return out
        with open(self.query_log, errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                try:  # "2026-11-23T13:34:50.394Z"
                    when = datetime.fromisoformat(entry.get("ts", "").replace("Z", "+00:00")).timestamp()
                except ValueError:
                    when = 0.0
                out.append((when, entry.get("params", {}).get("query", "")))
        return out


# ==========================================================================
# Daemon 1: [analysis] source = "prometheus", Prometheus scraping it.

prom = QueryLoggingPrometheus([], bearer_token=TOKEN)  # target filled in below
d1 = None
shared = {}
loads = {}   # prefix -> records (finished loads)
running = {}  # prefix -> IdLoad (for cleanup)


def all_records():
    out = {}
    for records in loads.values():
        out.update(records)
    return out


def start_d1():
    global d1
    d1 = ObsDaemon(rollout={
        "strategy": '"canary"', "steps": "[25, 50, 100]", "step_duration": '"6s"',
        "check_interval": f'"{CHECK_INTERVAL_S}s"', "min_requests": 10, "max_error_rate": 0.05,
        "max_p95": '"2s"', "failure_threshold": 2, "rollback_window": '"1m"', "max_step_duration": '"5m"',
    }, analysis={"source": '"prometheus"', "prometheus_url": f'"http://127.0.0.1:{prom.port}"'})
    # Point the Prometheus at this daemon's metrics listener (config rewritten
    # before Prometheus starts).
    with open(prom.config_path) as f:
        text = f.read()
    with open(prom.config_path, "w") as f:
        f.write(text.replace("targets: []", f'targets: ["127.0.0.1:{d1.mport}"]'))
    prom.start()
    shared["d1_spawned_wall"] = time.time()
    d1.start()
    code, out, err, _ = d1.cli("deploy", sources["v1"], "--release", "v1")
    expect(code == 0, f"deploy v1: exit {code}: {out} {err}")
    code, out, err, _ = d1.cli("deploy", sources["v2"], "--release", "v2", "--detach")
    expect(code == 0, f"deploy v2: exit {code}: {out} {err}")
    d1.wait_status(lambda s: s["phase"] == "running" and rollout_of(s).get("percent") == 25, timeout=30,
                   what="v2 at 25 %")
    # Freeze the split at 75/25 for the measurements (checks still run).
    code, out, err, _ = d1.cli("pause")
    expect(code == 0, f"pause: exit {code}: {out} {err}")
    state = d1.wait_status(lambda s: s["phase"] == "paused", timeout=10, what="paused")
    weights = {s["name"]: s["weight"] for s in state["slots"]}
    expect(weights == {"blue": 75, "green": 25}, f"weights {weights}")
    prom.wait_for('up{job="releasectl"}', lambda r: len(r) == 1 and r[0][1] == 1.0, timeout=60,
                  what="Prometheus scrapes the daemon (with the bearer token): up == 1")


def test_bearer_token():
    status, headers, _ = d1.get("/metrics")
    expect(status == 401, f"/metrics without the token: {status}")
    expect("bearer" in headers.get("www-authenticate", "").lower(), f"WWW-Authenticate: {headers}")
    status, _, _ = d1.get("/metrics", "not-the-token")
    expect(status == 401, f"/metrics with a wrong token: {status}")
    status, headers, body = d1.get("/metrics", TOKEN)
    expect(status == 200 and "releasectl_requests_total" in body, f"/metrics with the token: {status}")
    expect(headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
           f"content type {headers.get('content-type')}")
    status, _, _ = d1.get("/health/live")
    expect(status == 200, f"/health/live needs no token: {status}")


def run_main_load():
    """Warm-up, idle gap, then the main load with a scrape at ~25 % and the
    access log rotation at ~50 % of it."""
    warm = IdLoad(d1.port, "warm", MAIN_THREADS, slow_path(50, 400))
    running["warm"] = warm
    time.sleep(3)
    loads["warm"] = warm.stop()
    time.sleep(3.0)  # idle: the rate window below starts in this gap, on flat counters
    shared["load_start_wall"] = time.time()
    main = IdLoad(d1.port, "main", MAIN_THREADS, slow_path(50, 400))
    running["main"] = main
    started = time.monotonic()
    time.sleep(MAIN_SECONDS * 0.25)
    shared["scrape_under_load"] = d1.scrape()
    shared["fds_under_load"] = len(os.listdir(f"/proc/{d1.proc.pid}/fd"))
    with open(f"/proc/{d1.proc.pid}/status") as f:
        shared["rss_under_load"] = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    time.sleep(max(0.0, started + MAIN_SECONDS * 0.5 - time.monotonic()))
    # logrotate's way: rename, then SIGUSR1.
    os.rename(d1.access_log, d1.access_log + ".1")
    shared["rotated_wall"] = time.time()
    d1.proc.send_signal(signal.SIGUSR1)
    time.sleep(max(0.0, started + MAIN_SECONDS - time.monotonic()))
    loads["main"] = main.stop()
    shared["load_end_wall"] = time.time()


def test_1_scrape_under_traffic():
    text = shared["scrape_under_load"]
    promtool_check_metrics(text)          # exit 0 and no output (lint clean)
    samples = check_exposition(text)      # no duplicates, +Inf == _count, cumulative buckets
    _, types = parse_exposition(text)
    want_types = {
        "releasectl_requests_total": "counter", "releasectl_request_duration_seconds": "histogram",
        "releasectl_upstream_errors_total": "counter", "releasectl_slot_weight": "gauge",
        "releasectl_slot_healthy": "gauge", "releasectl_rollout_step": "gauge", "releasectl_rollout_state": "gauge",
        "releasectl_rollbacks_total": "counter", "releasectl_release_info": "gauge",
        "releasectl_connections_active": "gauge", "releasectl_build_info": "gauge",
        "process_cpu_seconds_total": "counter", "process_resident_memory_bytes": "gauge",
        "process_open_fds": "gauge", "process_start_time_seconds": "gauge",
    }
    for name, kind in want_types.items():
        expect(types.get(name) == kind, f"{name}: TYPE {types.get(name)}, want {kind}")
    # requests_total{slot,release,code}: both slots took traffic, each under its release.
    req = samples_of(samples, "releasectl_requests_total")
    expect(all(set(l) == {"slot", "release", "code"} for l, _ in req), f"requests_total labels: {req[:3]}")
    expect({l["code"] for l, _ in req} == {"none", "1xx", "2xx", "3xx", "4xx", "5xx"}, f"codes {req}")
    blue_ok = one(samples, "releasectl_requests_total", slot="blue", release="v1", code="2xx")
    green_ok = one(samples, "releasectl_requests_total", slot="green", release="v2", code="2xx")
    expect(blue_ok > 0 and green_ok > 0, f"2xx: blue {blue_ok}, green {green_ok}")
    # histogram per slot
    for slot in ("blue", "green"):
        count = one(samples, "releasectl_request_duration_seconds_count", slot=slot)
        total = sum(v for l, v in req if l["slot"] == slot)
        expect(count > 0 and abs(count - total) <= MAIN_THREADS,
               f"{slot}: histogram _count {count} vs requests_total {total}")
        buckets = [l for l, _ in samples_of(samples, "releasectl_request_duration_seconds_bucket") if l["slot"] == slot]
        expect(all(set(l) == {"slot", "le"} for l in buckets) and len(buckets) > 20, f"{slot}: buckets {buckets[:3]}")
    kinds = {(l["slot"], l["kind"]) for l, _ in samples_of(samples, "releasectl_upstream_errors_total")}
    expect(kinds == {(s, k) for s in ("blue", "green") for k in ("connect", "reset", "timeout", "bad_response", "tls")},
           f"upstream_errors_total series {sorted(kinds)}")
    expect(one(samples, "releasectl_slot_weight", slot="blue") == 75 and
           one(samples, "releasectl_slot_weight", slot="green") == 25, "slot weights are not 75/25")
    expect(one(samples, "releasectl_slot_healthy", slot="blue") == 1 and
           one(samples, "releasectl_slot_healthy", slot="green") == 1, "slots not healthy")
    expect(one(samples, "releasectl_rollout_step") == 1, "rollout_step != 1 (first step of 25,50,100)")
    states = {l["state"]: v for l, v in samples_of(samples, "releasectl_rollout_state")}
    expect(set(states) == {"idle", "starting_candidate", "running", "paused", "promoted", "rolled_back"},
           f"rollout_state states {sorted(states)}")
    expect(sum(states.values()) == 1 and states["paused"] == 1, f"rollout_state not one-hot on paused: {states}")
    reasons = {l["reason"]: v for l, v in samples_of(samples, "releasectl_rollbacks_total")}
    expect({"analysis", "manual", "hook", "restart", "unhealthy", "other"} <= set(reasons) and
           not any(reasons.values()), f"rollbacks_total before any rollback: {reasons}")
    infos = sorted((l["slot"], l["release"], v) for l, v in samples_of(samples, "releasectl_release_info"))
    expect(infos == [("blue", "v1", 1.0), ("green", "v2", 1.0)], f"release_info {infos}")
    active = one(samples, "releasectl_connections_active")
    expect(MAIN_THREADS - 2 <= active <= MAIN_THREADS + 2, f"connections_active {active}, load keeps {MAIN_THREADS} open")
    builds = samples_of(samples, "releasectl_build_info")
    expect(len(builds) == 1 and re.match(r"^\d+\.\d+\.\d+", builds[0][0].get("version", "")) and builds[0][1] == 1,
           f"build_info {builds}")
    expect(one(samples, "process_cpu_seconds_total") > 0, "process_cpu_seconds_total is 0")
    rss = one(samples, "process_resident_memory_bytes")
    expect(0.5 < rss / shared["rss_under_load"] < 2.0, f"resident {rss} vs VmRSS {shared['rss_under_load']}")
    fds = one(samples, "process_open_fds")
    expect(abs(fds - shared["fds_under_load"]) <= 8, f"open_fds {fds} vs /proc: {shared['fds_under_load']}")
    start = one(samples, "process_start_time_seconds")
    expect(abs(start - shared["d1_spawned_wall"]) < 5, f"start_time {start} vs spawned at {shared['d1_spawned_wall']:.2f}")
    note(f"{len(samples)} samples; 2xx so far blue {blue_ok:.0f} / green {green_ok:.0f}; "
         f"connections_active {active:.0f}; open_fds {fds:.0f}")


def test_2_prometheus_p95_and_split():
    main = loads["main"]
    expect(main and not failed(main), f"main load: {len(failed(main))} failed of {len(main)}: {failed(main)[:3]}")
    # Wait until Prometheus has scraped at least twice after the load ended.
    prom.wait_for("timestamp(releasectl_build_info)",
                  lambda r: r and r[0][1] >= shared["load_end_wall"] + 1.5, timeout=30, what="scrapes after the load")
    at = time.time()
    # The window starts ~2 s before the load, in the idle gap, and ends after
    # it: it holds exactly the main load's requests.
    window = math.ceil(at - shared["load_start_wall"] + 2)
    # The exact p95 comes from the access log: the `duration` of each request
    # of the main load, per slot, is the same microsecond value the proxy put
    # into the histogram (and what the client measured, checked in 5). The
    # controller's analysis p95 would be a second estimate from the same
    # buckets, so it is not used as the reference.
    lines = read_access_lines(d1.access_log + ".1") + read_access_lines(d1.access_log)
    durations = {"blue": [], "green": []}
    for obj in lines:
        if obj["request_id"].startswith("main-"):
            durations[obj["slot"]].append(obj["duration"])
    expect(sum(map(len, durations.values())) == len(main),
           f"access log has {sum(map(len, durations.values()))} main-load lines, the client made {len(main)}")
    results = {}
    for slot in ("blue", "green"):
        q = (f'histogram_quantile(0.95, sum by (le) (rate(releasectl_request_duration_seconds_bucket'
             f'{{job="releasectl",slot="{slot}"}}[{window}s])))')
        r = prom.query_at(q, at)
        expect(len(r) == 1 and math.isfinite(r[0][1]), f"{q}: {r}")
        exact = nearest_rank(durations[slot], 0.95)
        results[slot] = (r[0][1], exact, len(durations[slot]))
    split = {l["slot"]: v for l, v in prom.query_at(
        f'sum by (slot) (rate(releasectl_requests_total{{job="releasectl"}}[{window}s]))', at)}
    total = sum(split.values())
    share = {slot: 100.0 * v / total for slot, v in split.items()} if total else {}
    exact_share = {slot: 100.0 * len(d) / len(main) for slot, d in durations.items()}
    for slot, (value, exact, n) in results.items():
        note(f"{slot}: Prometheus p95 {value * 1000:.1f} ms vs exact p95 {exact * 1000:.1f} ms of {n} requests "
             f"({100 * (value - exact) / exact:+.2f} %)")
    note(f"split by Prometheus rate(): " + ", ".join(f"{s} {share.get(s, 0):.2f} %" for s in ("blue", "green")) +
         f" (weights 75/25; access log: blue {exact_share['blue']:.2f} %, green {exact_share['green']:.2f} %); "
         f"window {window}s, {len(main)} requests")
    shared["numbers"] = {"p95": results, "split": share}
    for slot, (value, exact, _) in results.items():
        expect(abs(value - exact) / exact <= 0.10, f"{slot}: p95 {value:.4f} vs exact {exact:.4f} (> 10 %)")
    expect(set(share) == {"blue", "green"}, f"split {split}")
    expect(abs(share["blue"] - 75) <= 2 and abs(share["green"] - 25) <= 2, f"split {share} vs weights 75/25")


def test_5_access_log_rotation():
    records = dict(loads["warm"])
    records.update(loads["main"])
    old, new = d1.access_log + ".1", d1.access_log
    total = wait_for_lines([old, new], len(records))
    old_lines, new_lines = read_access_lines(old), read_access_lines(new)
    note(f"{len(records)} requests sent; {len(old_lines)} lines in access.log.1 + {len(new_lines)} in access.log "
         f"(= {total}) after the mid-load rotation")
    expect(len(old_lines) + len(new_lines) == len(records),
           f"lines(old) {len(old_lines)} + lines(new) {len(new_lines)} != requests sent {len(records)}")
    verify_access_lines(old_lines + new_lines, records, "access.log.1 + access.log")
    main_old = [o for o in old_lines if o["request_id"].startswith("main-")]
    main_new = [o for o in new_lines if o["request_id"].startswith("main-")]
    expect(main_old and main_new, f"rotation was mid-load, yet old has {len(main_old)} and new {len(main_new)} "
                                  f"main-load lines")
    rotated = shared["rotated_wall"]
    late_old = [o for o in old_lines if unix_time(o["time"]) > rotated + 1.0]
    early_new = [o for o in new_lines if unix_time(o["time"]) < rotated - 1.0]
    expect(not late_old and not early_new, f"rotation split: {len(late_old)} old lines after it, "
                                           f"{len(early_new)} new lines before it")
    # The release each line names is the one that answered (X-Release), and
    # it is the release bound to the slot the line names.
    for o in old_lines + new_lines:
        expect({"blue": "v1", "green": "v2"}[o["slot"]] == o["release"], f"slot/release mismatch: {o}")


def test_3a_prometheus_source_promotes_good_release():
    loads_bg = IdLoad(d1.port, "bg", 8, lambda rng: "/", per_thread_rps=20)
    running["bg"] = loads_bg
    started_wall = time.time()
    code, out, err, _ = d1.cli("resume")
    expect(code == 0, f"resume: exit {code}: {out} {err}")
    state = d1.wait_status(lambda s: rollout_of(s).get("outcome") != "in_progress", timeout=90,
                           what="v2 to finish after resume")
    ro = rollout_of(state)
    records = ro.get("step_records", [])
    expect(ro.get("outcome") == "promoted", f"v2 outcome {ro.get('outcome')}: {ro.get('reason')}\n{d1.log_tail()}")
    expect([r["percent"] for r in records] == [25, 50, 100], f"steps {[r['percent'] for r in records]}")
    expect(all(r["passes"] >= 1 and r["fails"] == 0 for r in records[:2]),
           f"step records {[(r['percent'], r['passes'], r['fails'], r['inconclusives']) for r in records]}")
    # The verdicts came from Prometheus: the daemon's own expanded queries
    # (default templates, ${slot}=green, ${window}=3s) are in its query log.
    mine = [q for t, q in prom.logged_queries() if t >= started_wall - 1 and 'slot="green"' in q and
            f"[{CHECK_INTERVAL_S}s]" in q]
    kinds = {"requests": [q for q in mine if "increase(releasectl_requests_total" in q and "5xx" not in q],
             "errors": [q for q in mine if 'code="5xx"' in q],
             "p95": [q for q in mine if "histogram_quantile(0.95" in q]}
    passes = ", ".join(f"{r['percent']}%: {r['passes']} passes" for r in records[:2])
    logged = ", ".join(f"{k} {len(v)}" for k, v in kinds.items())
    note(f"v2 promoted 25 -> 50 -> 100 ({passes}); daemon queries in Prometheus' log since resume: {logged}")
    expect(all(len(v) >= 2 for v in kinds.values()), f"daemon's queries in the query log: {kinds}")


def test_3b_prometheus_source_rolls_back_errors():
    started_wall = time.time()
    code, out, err, _ = d1.cli("deploy", sources["v3-errors"], "--release", "v3-errors", "--steps", "25,100",
                               timeout=120)
    expect(code == 1, f"deploy v3-errors: exit {code}, want 1 (rolled back):\n{out}\n{err}")
    state = d1.status()
    ro = rollout_of(state)
    records = ro.get("step_records", [])
    expect(ro.get("outcome") == "rolled_back" and "error rate" in ro.get("reason", ""), f"rollout {ro}")
    expect(len(records) == 1 and records[0]["percent"] == 25 and records[0]["fails"] >= 2,
           f"step records {records}")
    candidate = ro["candidate_slot"]
    mine = [q for t, q in prom.logged_queries() if t >= started_wall - 1 and f'slot="{candidate}"' in q and
            'code="5xx"' in q and f"[{CHECK_INTERVAL_S}s]" in q]
    note(f"v3-errors rolled back from {candidate}: {ro['reason']}; {len(mine)} error-rate queries for "
         f"slot {candidate} in Prometheus' log")
    expect(len(mine) >= 2, f"no error-rate queries for {candidate} in the query log since the deploy")
    samples = check_exposition(d1.scrape())
    expect(one(samples, "releasectl_rollbacks_total", reason="analysis") == 1, "rollbacks_total{analysis} != 1")
    states = {l["state"]: v for l, v in samples_of(samples, "releasectl_rollout_state")}
    expect(states.get("rolled_back") == 1 and sum(states.values()) == 1, f"rollout_state {states}")
    prom.wait_for('max(releasectl_rollbacks_total{job="releasectl",reason="analysis"})',
                  lambda r: r and r[0][1] == 1, timeout=20, what="Prometheus sees the rollback")


def test_counts_match_access_log():
    """Quiescent: requests_total{slot,release,code} equals the access log's
    count for the release each slot runs now (counted from when it was bound:
    blue ran v1 before v3-errors, and v1's requests must not be credited to
    v3-errors), and the histogram _count equals all of the slot's lines."""
    loads["bg"] = running.pop("bg").stop()
    records = all_records()
    bad = [r for r in failed(loads["bg"]) if not (r["status"] == 500 and r["release"] == "v3-errors")]
    expect(not bad, f"background load: {len(bad)} failures other than v3-errors' injected 500s: {bad[:3]}")
    wait_for_lines([d1.access_log + ".1", d1.access_log], len(records))
    lines = read_access_lines(d1.access_log + ".1") + read_access_lines(d1.access_log)
    verify_access_lines(lines, records, "all access log lines")
    samples = check_exposition(d1.scrape())
    bound = {l["slot"]: l["release"] for l, _ in samples_of(samples, "releasectl_release_info")}
    expect(bound == {"blue": "v3-errors", "green": "v2"}, f"release_info {bound}")
    want, per_slot, earlier = {}, {}, {}
    for o in lines:
        per_slot[o["slot"]] = per_slot.get(o["slot"], 0) + 1
        if o["release"] == bound[o["slot"]]:
            key = (o["slot"], o["release"], f"{o['status'] // 100}xx")
            want[key] = want.get(key, 0) + 1
        else:
            earlier[(o["slot"], o["release"])] = earlier.get((o["slot"], o["release"]), 0) + 1
    series = samples_of(samples, "releasectl_requests_total")
    got = {(l["slot"], l["release"], l["code"]): v for l, v in series if v}
    note(f"requests_total by (slot, release, code): {sorted(got.items())}; access log also has "
         f"{sorted(earlier.items())} from releases the slots ran before")
    expect(earlier.get(("blue", "v1"), 0) > 1000, f"blue should have served v1 before v3-errors: {earlier}")
    expect(got == want, f"requests_total {sorted(got.items())} != access log {sorted(want.items())}")
    expect({(l["slot"], l["release"]) for l, _ in series} == set(bound.items()),
           f"requests_total series for releases no slot runs: {sorted({(l['slot'], l['release']) for l, _ in series})}")
    for slot, n in per_slot.items():
        count = one(samples, "releasectl_request_duration_seconds_count", slot=slot)
        expect(count == n, f"{slot}: histogram _count {count} != access log lines {n}")


def test_5b_failed_reopen_keeps_logging():
    """A reopen that fails (the path is now a directory) must not take the
    proxy down; lines keep going to the open file, and the next SIGUSR1 that
    can reopen does."""
    path = d1.access_log
    os.rename(path, path + ".2")
    os.mkdir(path)
    d1.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    expect(d1.proc.poll() is None, f"daemon died on a failed reopen: exit {d1.proc.poll()}\n{d1.log_tail()}")
    probe = IdLoad(d1.port, "probe1", 2, lambda rng: "/", per_thread_rps=50)
    time.sleep(0.5)
    loads["probe1"] = probe.stop()
    expect(loads["probe1"] and not failed(loads["probe1"]), f"requests after the failed reopen: {failed(loads['probe1'])[:3]}")
    os.rmdir(path)
    d1.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.isfile(path):
        time.sleep(0.05)
    expect(os.path.isfile(path), "SIGUSR1 after the directory was removed did not recreate access.log")
    probe = IdLoad(d1.port, "probe2", 2, lambda rng: "/", per_thread_rps=50)
    time.sleep(0.5)
    loads["probe2"] = probe.stop()
    wait_for_lines([path], len(loads["probe2"]))
    in_old = {o["request_id"] for o in read_access_lines(path + ".2")}
    in_new = {o["request_id"] for o in read_access_lines(path)}
    expect(set(loads["probe1"]) <= in_old, "requests after the failed reopen are not in the still-open file")
    expect(set(loads["probe2"]) == in_new, "requests after the good reopen are not (only) in the new file")
    expect("cannot reopen" in d1.log_text(), "the failed reopen was not logged")


SANITIZER = re.compile(r"runtime error:|ERROR: (Address|Leak|Undefined)Sanitizer|terminate called")


def sanitizer_reports(daemon):
    return [l for l in daemon.log_text().splitlines() if SANITIZER.search(l)]


def test_5c_sigterm_flushes_everything():
    code = d1.stop()
    expect(code == 0, f"daemon exit status after SIGTERM: {code}")
    expect(not sanitizer_reports(d1), f"daemon 1 log: {sanitizer_reports(d1)[:5]}")
    records = all_records()
    paths = [d1.access_log + ext for ext in (".1", ".2", "")]
    lines = []
    counts = []
    for p in paths:
        got = read_access_lines(p)
        counts.append(len(got))
        lines += got
    note(f"after SIGTERM: {' + '.join(map(str, counts))} = {len(lines)} lines in access.log.1/.2/access.log, "
         f"{len(records)} requests sent")
    expect(len(lines) == len(records), f"{len(lines)} lines for {len(records)} requests")
    verify_access_lines(lines, records, "all files after SIGTERM")


class FakePrometheus:
    """A loopback server answering /api/v1/query with a different useless
    answer each time: malformed chunked framing, an empty vector, an error
    status, NaN, not JSON. In-process (a thread), closed by close()."""
    ANSWERS = [
        ("bad chunked framing", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        ("empty result", b'{"status":"success","data":{"resultType":"vector","result":[]}}'),
        ("error status", b'{"status":"error","errorType":"bad_data","error":"parse error at char 1"}'),
        ("NaN", b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}'),
        ("not JSON", b"<html>502 Bad Gateway</html>"),
    ]

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.served = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    name, body = self.ANSWERS[len(self.served) % len(self.ANSWERS)]
                    self.served.append(name)
                    if not body.startswith(b"HTTP/"):
                        status = b"400 Bad Request" if name == "error status" else b"200 OK"
                        body = (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: " +
                                str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                    conn.sendall(body)
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        self._thread.join(timeout=10)


# ==========================================================================
# Daemon 2: readiness, and the prometheus source with nobody listening.

d2 = None


def start_d2():
    global d2
    dead = free_port()  # nothing listens here
    d2 = ObsDaemon(rollout={
        "strategy": '"canary"', "steps": "[50, 100]", "step_duration": '"1s"', "check_interval": '"1s"',
        "min_requests": 5, "max_error_rate": 0.05, "max_p95": '"2s"', "failure_threshold": 2,
        "rollback_window": '"1m"', "max_step_duration": '"5m"',
    }, analysis={"source": '"prometheus"', "prometheus_url": f'"http://127.0.0.1:{dead}"'}, workers=1)
    d2.start()
    code, out, err, _ = d2.cli("deploy", sources["v1"], "--release", "v1")
    expect(code == 0, f"deploy v1: exit {code}: {out} {err}")


def test_4_readiness_follows_live_slot():
    def ready():
        status, _, body = d2.get("/health/ready", timeout=5)
        return status, json.loads(body)

    status, body = ready()
    expect(status == 200 and body == {"status": "ready", "checks": {"listeners": "ok", "live_slot": "ok"}},
           f"ready before: {status} {body}")
    live_codes = []
    stop_polling = threading.Event()

    def poll_live():
        while not stop_polling.is_set():
            try:
                live_codes.append(d2.get("/health/live", timeout=5)[0])
            except OSError as e:
                live_codes.append(repr(e))
            time.sleep(0.05)

    poller = threading.Thread(target=poll_live, daemon=True)
    poller.start()
    state = d2.status()
    live = state["live_slot"]
    pid = next(s["pid"] for s in state["slots"] if s["name"] == live)
    os.kill(pid, signal.SIGSTOP)  # the app stops answering: health checks time out
    stopped_at = time.monotonic()
    try:
        deadline = time.monotonic() + 20
        status, body = ready()
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            status, body = ready()
        went_down = time.monotonic() - stopped_at
        expect(status == 503, f"/health/ready still {status} 20 s after the live app was stopped")
        expect(body.get("status") == "not_ready" and body["checks"].get("listeners") == "ok" and
               body["checks"].get("live_slot", "ok") != "ok" and live in body["checks"]["live_slot"],
               f"503 body should name the failing check: {body}")
        samples = check_exposition(d2.scrape())
        expect(one(samples, "releasectl_slot_healthy", slot=live) == 0, "slot_healthy of the stopped app is not 0")
        down_body = body
    finally:
        os.kill(pid, signal.SIGCONT)  # let it take the supervisor's SIGTERM now
    deadline = time.monotonic() + 40
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        status, body = ready()
    back = time.monotonic() - stopped_at
    stop_polling.set()
    poller.join(timeout=10)
    expect(status == 200 and body["status"] == "ready", f"/health/ready not back to 200: {status} {body}")
    new_pid = next(s["pid"] for s in d2.status()["slots"] if s["name"] == live)
    note(f"SIGSTOP {live} app pid {pid}: 503 after {went_down:.2f}s {json.dumps(down_body)}; 200 again after "
         f"{back:.2f}s (restarted as pid {new_pid}); /health/live {len(live_codes)} probes, "
         f"{sum(c == 200 for c in live_codes)} x 200")
    expect(new_pid != pid, "the supervisor did not restart the stopped app")
    expect(len(live_codes) >= 10 and all(c == 200 for c in live_codes),
           f"/health/live was not 200 throughout: {[c for c in live_codes if c != 200][:5]} of {len(live_codes)}")


def test_3c_unreachable_prometheus_is_inconclusive():
    code, out, err, _ = d2.cli("deploy", sources["v2"], "--release", "v2", "--detach")
    expect(code == 0, f"deploy v2: exit {code}: {out} {err}")
    d2.wait_status(lambda s: s["phase"] == "running" and rollout_of(s).get("percent") == 50, timeout=30,
                   what="v2 at 50 %")
    load = IdLoad(d2.port, "d2", 4, lambda rng: "/", per_thread_rps=40)
    running["d2"] = load
    try:
        time.sleep(5.5)  # 5 checks; step_duration is 1 s
        state = d2.status()
        ro = rollout_of(state)
        rec = ro["step_records"][0]
        verdict = state.get("last_verdict", {})
        green = next(s for s in state["slots"] if s["name"] == ro["candidate_slot"])
        note(f"after 5.5 s at 50 % with Prometheus unreachable: step {ro['step'] + 1}, {rec['checks']} checks "
             f"({rec['passes']} pass, {rec['inconclusives']} inconclusive); candidate served {green['requests']} "
             f"requests; last verdict: {verdict.get('summary')}")
        expect(ro["step"] == 0 and state["phase"] == "running", f"advanced without data: {ro['progress']}")
        expect(rec["passes"] == 0 and rec["fails"] == 0 and rec["inconclusives"] >= 3, f"step record {rec}")
        expect(verdict.get("kind") == "inconclusive" and
               any("prometheus unreachable" in r for r in verdict.get("reasons", [])), f"verdict {verdict}")
        expect(green["requests"] >= 10 * 5, f"candidate had only {green['requests']} requests: not a fair test")
        # Prometheus answers, but uselessly: still inconclusive, and the
        # analysis loop survives every kind of bad answer (checks keep coming).
        fake = FakePrometheus()
        try:
            d2.analysis["prometheus_url"] = f'"http://127.0.0.1:{fake.port}"'
            checks_before = rec["checks"]
            log_before = len(d2.log_text())
            d2.reload()
            time.sleep(6.5)
            state = d2.status()
            ro = rollout_of(state)
            rec = ro["step_records"][0]
            reasons = re.findall(r"analysis: (.*)", d2.log_text()[log_before:])
            note(f"fake Prometheus answered {fake.served}; {rec['checks'] - checks_before} more checks, all "
                 f"inconclusive; reasons: {sorted(set(r[:60] for r in reasons))}")
            expect(ro["step"] == 0 and rec["passes"] == 0 and rec["fails"] == 0,
                   f"advanced or judged on useless answers: {ro['progress']} {rec}")
            expect(rec["checks"] - checks_before >= 5, f"only {rec['checks'] - checks_before} checks in 6.5 s: "
                                                       f"the analysis loop stopped ({fake.served})")
            expect(len(set(fake.served)) == len(FakePrometheus.ANSWERS), f"not every bad answer was tried: {fake.served}")
            # (the bad chunked framing reads as "answer unusable" or "not JSON",
            # depending on how http_client decodes it)
            for kind in ("not JSON", "query failed", "NaN", "no data"):
                expect(any(kind in r for r in reasons), f"no inconclusive check logged for '{kind}': {reasons}")
        finally:
            fake.close()
        # Control: the same rollout, switched to the builtin source, advances.
        d2.analysis["source"] = '"builtin"'
        d2.reload()
        state = d2.wait_status(lambda s: rollout_of(s).get("step", 0) >= 1 or rollout_of(s).get("outcome") == "promoted",
                               timeout=20, what="the step to advance with source = builtin")
        note(f"with source = builtin after SIGHUP: {rollout_of(state)['progress']}")
    finally:
        loads["d2"] = running.pop("d2").stop()
    expect(not failed(loads["d2"]), f"requests failed during the canary: {failed(loads['d2'])[:3]}")


# ==========================================================================

test_started = time.monotonic()
try:
    checks.run("setup: Prometheus + daemon (source = prometheus), v1 live, v2 canary paused at 25 %", start_d1)
    if d1 is not None and d1.proc is not None and d1.proc.poll() is None:
        checks.run("/metrics: 401 without / with a wrong bearer token, 200 with it", test_bearer_token)
        checks.run("load: warm-up, then main load with a scrape and an access log rotation", run_main_load)
        if "scrape_under_load" in shared:
            checks.run("1) scrape under traffic: promtool clean, no duplicates, +Inf == _count, every series",
                       test_1_scrape_under_traffic)
        if "main" in loads:
            checks.run("2) Prometheus: p95 per slot within 10 % of exact, split within 2 pp of 75/25",
                       test_2_prometheus_p95_and_split)
            checks.run("5) access log: every request exactly once, documented fields, rotation loses nothing",
                       test_5_access_log_rotation)
        checks.run("3a) prometheus source: good canary promoted 25 -> 50 -> 100", test_3a_prometheus_source_promotes_good_release)
        checks.run("3b) prometheus source: 20 % 5xx canary rolled back", test_3b_prometheus_source_rolls_back_errors)
        checks.run("requests_total{slot,release,code} and _count equal the access log",
                   test_counts_match_access_log)
        checks.run("5b) failed access log reopen: daemon keeps serving and logging", test_5b_failed_reopen_keeps_logging)
        checks.run("5c) SIGTERM flushes: lines == requests over all files", test_5c_sigterm_flushes_everything)
finally:
    for name, load in list(running.items()):
        load.stop()
    if d1 is not None and d1.proc is not None and d1.proc.poll() is None:
        d1.stop()
    prom.stop()

try:
    checks.run("setup: daemon with prometheus_url where nothing listens, v1 live", start_d2)
    if d2 is not None and d2.proc is not None and d2.proc.poll() is None:
        checks.run("4) /health/ready 200 -> 503 naming live_slot -> 200; /health/live always 200",
                   test_4_readiness_follows_live_slot)
        checks.run("3c) Prometheus unreachable / useless answers: inconclusive, no advance; builtin then advances",
                   test_3c_unreachable_prometheus_is_inconclusive)
finally:
    for name, load in list(running.items()):
        load.stop()
    if d2 is not None and d2.proc is not None and d2.proc.poll() is None:
        def stop_d2():
            code = d2.stop()
            expect(code == 0, f"daemon 2 exit status after SIGTERM: {code}")
            expect(not sanitizer_reports(d2), f"daemon 2 log: {sanitizer_reports(d2)[:5]}")
        checks.run("daemon 2: SIGTERM exits 0, no sanitizer reports", stop_d2)
note(f"total {time.monotonic() - test_started:.1f}s")
if checks.failed:
    note(f"kept for inspection: {work}, " + ", ".join(d.dir for d in (d1, d2) if d is not None))
else:
    for d in (d1, d2):
        if d is not None:
            shutil.rmtree(d.dir, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
checks.finish()
