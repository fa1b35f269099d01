"""Issue 2 must-shows 1, 2, 3 and 5 against the real releasectl binary and real
demo-app backends on 127.0.0.1: forwarding of every message shape, streaming
memory bound, weighted / sticky / override routing, weight flips under load,
and a backend killed mid-traffic."""
import base64
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (Checks, Daemon, expect, free_port, parse_responses, spawn, start_demo_app, stop,
                     wait_for_port)

checks = Checks()
blue_port, green_port = free_port(), free_port()
blue = start_demo_app(blue_port, release="blue-r1", slot="blue", threads=2)
green = start_demo_app(green_port, release="green-r1", slot="green", threads=2)
SLOTS = {"blue": f"127.0.0.1:{blue_port}", "green": f"127.0.0.1:{green_port}"}
daemon = Daemon(SLOTS, {"blue": 100, "green": 0}, workers=2).start()
PORT = daemon.port


def conn(timeout=10):
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)


# ------------------------------------------------------------------ forwarding

def test_get_and_headers():
    c = conn()
    c.request("GET", "/headers?x=1", headers={"X-Request-ID": "abc-123", "Connection": "X-Secret",
                                               "X-Secret": "hop", "Keep-Alive": "timeout=5",
                                               "X-Forwarded-For": "6.6.6.6"})
    r = c.getresponse()
    body = r.read().decode()
    expect(r.status == 200, f"status {r.status}")
    import json
    seen = json.loads(body)
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    expect("x-secret" not in headers, f"header named in Connection was forwarded: {headers}")
    expect("keep-alive" not in headers, "Keep-Alive forwarded")
    expect(headers.get("host") == f"127.0.0.1:{PORT}", f"host {headers.get('host')}")
    expect(headers.get("x-request-id") == "abc-123", f"request id {headers.get('x-request-id')}")
    expect(headers.get("x-forwarded-for") == "127.0.0.1", f"untrusted XFF must be replaced: {headers.get('x-forwarded-for')}")
    expect(headers.get("x-forwarded-proto") == "http", "x-forwarded-proto")
    expect(headers.get("x-forwarded-host") == f"127.0.0.1:{PORT}", "x-forwarded-host")
    expect(seen["target"] == "/headers?x=1", f"target {seen['target']}")


def test_post_content_length():
    payload = os.urandom(300_000)
    c = conn()
    c.request("POST", "/echo", body=payload, headers={"Content-Type": "application/octet-stream"})
    r = c.getresponse()
    data = r.read()
    expect(r.status == 200 and data == payload, f"echo mismatch status={r.status} len={len(data)}")


def test_post_chunked():
    def gen():
        for i in range(50):
            yield (b"%d-" % i) * 1000
    expected = b"".join(gen())
    c = conn()
    c.request("POST", "/echo", body=gen(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    data = r.read()
    expect(r.status == 200 and data == expected, f"chunked echo mismatch len={len(data)} vs {len(expected)}")


def test_chunked_response():
    c = conn()
    c.request("GET", "/chunked/100000")
    r = c.getresponse()
    data = r.read()
    expect(r.status == 200 and len(data) == 100000, f"chunked download {len(data)}")
    expect(r.getheader("Transfer-Encoding") == "chunked", "chunked re-framed to an HTTP/1.1 client")


def test_http10_client_gets_unchunked():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"GET /chunked/5000 HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    expect(b"transfer-encoding" not in head.lower(), f"HTTP/1.0 client got chunked: {head!r}")
    expect(len(body) == 5000, f"body {len(body)}")


def test_sse_event_by_event():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"GET /sse?n=4&interval_ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
    start = time.monotonic()
    arrivals = []
    buf = b""
    while len(arrivals) < 4 and time.monotonic() - start < 8:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        count = buf.count(b"\n\n")
        while len(arrivals) < count:
            arrivals.append(time.monotonic() - start)
    s.close()
    expect(len(arrivals) == 4, f"got {len(arrivals)} events")
    # Events must arrive spread over time, not buffered until the end.
    expect(arrivals[0] < 0.6 and arrivals[-1] - arrivals[0] > 0.6, f"arrivals {arrivals}")


def ws_frame(payload, opcode=0x1):
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        header += bytes([0x80 | n])
    elif n < 65536:
        header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def ws_read_frame(s):
    def read_exact(n):
        out = b""
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                raise EOFError("closed")
            out += chunk
        return out
    b0, b1 = read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(read_exact(8), "big")
    return b0 & 0x0F, read_exact(n)


def test_websocket_echo():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise AssertionError("closed during handshake")
        head += chunk
    expect(head.startswith(b"HTTP/1.1 101"), f"handshake: {head!r}")
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    expect(accept in head, "Sec-WebSocket-Accept passes through")
    for message in [b"hello", b"x" * 1000, os.urandom(70000)]:
        opcode = 0x1 if message.isascii() and len(message) < 2000 else 0x2
        s.sendall(ws_frame(message, opcode))
        got_opcode, got = ws_read_frame(s)
        expect(got == message, f"ws echo of {len(message)} bytes came back as {len(got)}")
    s.close()


def test_expect_100_continue():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    body = b"z" * 5000
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    interim = s.recv(4096)
    expect(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), f"interim {interim!r}")
    s.sendall(body)
    data = interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    while len(parse_responses(data)) < 1 or len(parse_responses(data)[0][2]) < 5000:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    responses = parse_responses(data)
    expect(responses and responses[0][0] == 200 and responses[0][2] == body, f"final {responses[:1]}")


def test_pipelining_in_order():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"".join(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in (3, 1, 2)) +
              b"HEAD /bytes/9 HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /bytes/4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    # parse_responses can't know the 4th answers a HEAD: split manually around it
    first = parse_responses(data.split(b"HTTP/1.1 200", 5)[0] or b"")
    statuses = re.findall(rb"HTTP/1.1 (\d{3})", data)
    expect(statuses == [b"200"] * 5, f"statuses {statuses}")
    lengths = re.findall(rb"Content-Length: (\d+)", data)
    expect(lengths == [b"3", b"1", b"2", b"9", b"4"], f"responses out of order: {lengths}")
    del first


def test_head_204_304():
    status, headers, body = _request("HEAD", "/bytes/1000")
    expect(status == 200 and body == b"" and headers.get("content-length") == "1000", f"HEAD {status} {headers}")
    status, headers, body = _request("GET", "/status/204")
    expect(status == 204 and body == b"" and "content-length" not in headers and "transfer-encoding" not in headers,
           f"204 {headers}")
    status, headers, body = _request("GET", "/status/304")
    expect(status == 304 and body == b"" and "transfer-encoding" not in headers, f"304 {headers}")


def _request(method, path, headers=None, body=None):
    c = conn()
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    c.close()
    return out


def test_64mib_streams_with_bounded_memory():
    size = 64 * 1024 * 1024
    rss_before = daemon.rss_kib()
    # upload: 64 MiB streamed, the app counts it
    s = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    s.sendall(b"POST /consume HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
    block = b"u" * (1 << 20)
    for _ in range(64):
        s.sendall(block)
    data = b""
    while b"}" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    expect(b'"bytes":%d' % size in data.replace(b" ", b""), f"upload answer {data[-200:]!r}")
    # download: 64 MiB, read slowly at first so the proxy has to apply backpressure
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    received = 0
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    time.sleep(1.0)
    peak = daemon.rss_kib()
    while received < size:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        received += len(chunk)
        peak = max(peak, daemon.rss_kib()) if received % (8 << 20) < (1 << 20) else peak
    s.close()
    peak = max(peak, daemon.rss_kib())
    expect(received == size, f"download got {received}")
    growth_mib = (peak - rss_before) / 1024
    print(f"     rss before {rss_before} KiB, peak {peak} KiB, growth {growth_mib:.1f} MiB")
    expect(growth_mib < 32, f"proxy RSS grew {growth_mib:.1f} MiB")


# ------------------------------------------------------------------ routing

def count_slots(n, headers=None, connections=4):
    counts = {}
    lock = threading.Lock()
    per = n // connections

    def worker():
        c = conn()
        local = {}
        for _ in range(per):
            c.request("GET", "/", headers=headers or {})
            r = c.getresponse()
            r.read()
            slot = r.getheader("X-Slot") or f"status-{r.status}"
            local[slot] = local.get(slot, 0) + 1
        c.close()
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def reload_weights(weights):
    daemon.set_weights(weights)


def test_weights_90_10():
    reload_weights({"blue": 90, "green": 10})
    counts = count_slots(10_000)
    total = sum(counts.values())
    share = counts.get("green", 0) / total * 100
    print(f"     {counts}")
    expect(total == 10_000 and set(counts) <= {"blue", "green"}, f"counts {counts}")
    expect(abs(share - 10) <= 1.0, f"green share {share:.2f}% not within 10±1")


def test_override_header_wins():
    reload_weights({"blue": 100, "green": 0})
    counts = count_slots(200, headers={"X-Release-Slot": "green"}, connections=2)
    expect(counts == {"green": 200}, f"override to green: {counts}")
    reload_weights({"blue": 0, "green": 100})
    counts = count_slots(200, headers={"X-Release-Slot": "blue"}, connections=2)
    expect(counts == {"blue": 200}, f"override to blue: {counts}")
    reload_weights({"blue": 100, "green": 0})


def test_sticky_buckets_follow_weights():
    sticky_daemon = Daemon(SLOTS, {"blue": 90, "green": 10}, workers=2, sticky=True).start()
    try:
        visitors = []
        for _ in range(300):
            status, headers, _ = _req_port(sticky_daemon.port, "/")
            cookie = headers.get("set-cookie", "")
            m = re.match(r"releasectl_bucket=(\d+)", cookie)
            expect(m is not None, f"no sticky cookie: {cookie!r}")
            visitors.append(int(m.group(1)))
        history = {b: [] for b in visitors}
        for weight in (10, 25, 50):
            sticky_daemon.set_weights({"blue": 100 - weight, "green": weight})
            for bucket in set(visitors):
                for _ in range(2):
                    _, headers, _ = _req_port(sticky_daemon.port, "/", {"Cookie": f"releasectl_bucket={bucket}"})
                    expected = "green" if bucket < weight * 100 else "blue"
                    expect(headers.get("x-slot") == expected,
                           f"bucket {bucket} at green={weight}% went to {headers.get('x-slot')}, expected {expected}")
                    history[bucket].append(headers.get("x-slot"))
        # a visitor on the candidate never goes back while its share grows
        for bucket, slots in history.items():
            first_green = slots.index("green") if "green" in slots else len(slots)
            expect(all(s == "green" for s in slots[first_green:]), f"bucket {bucket} flapped: {slots}")
        sticky_daemon.set_weights({"blue": 100, "green": 0})  # rollback: everyone home
        for bucket in set(visitors):
            _, headers, _ = _req_port(sticky_daemon.port, "/", {"Cookie": f"releasectl_bucket={bucket}"})
            expect(headers.get("x-slot") == "blue", f"bucket {bucket} not back on blue after rollback")
    finally:
        sticky_daemon.stop()


def _req_port(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


# ------------------------------------------------------------------ under load

def run_wrk(port, seconds, connections=32, path="/"):
    wrk = shutil.which("wrk")
    expect(wrk is not None, "wrk not installed (scripts/setup installs it)")
    return spawn([wrk, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
                  f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_weight_flips_under_load():
    reload_weights({"blue": 50, "green": 50})
    load = run_wrk(PORT, 20)
    flips = 0
    start = time.monotonic()
    while flips < 50:
        weight = [0, 10, 25, 50, 75, 100][flips % 6]
        daemon.set_weights({"blue": 100 - weight, "green": weight}, wait=False)
        flips += 1
        time.sleep(max(0.0, start + flips * 0.36 - time.monotonic()))
    out, _ = load.communicate(timeout=60)
    stop(load)
    print("     " + " | ".join(l.strip() for l in out.splitlines() if "requests in" in l or "Socket" in l or "Non-2xx" in l))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    expect(requests > 1000, f"too few requests: {requests}")
    expect("Non-2xx" not in out, f"non-2xx responses during flips:\n{out}")
    expect("Socket errors" not in out, f"socket errors during flips:\n{out}")
    reload_weights({"blue": 100, "green": 0})


def test_backend_killed_and_back():
    global green
    reload_weights({"blue": 50, "green": 50})
    results = {"blue": 0, "green_ok": 0, "green_502": 0, "other": [], "slow": 0}
    lock = threading.Lock()
    stop_flag = threading.Event()

    def client():
        c = conn(timeout=5)
        while not stop_flag.is_set():
            t0 = time.monotonic()
            try:
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
            except Exception as e:  # noqa: BLE001
                with lock:
                    results["other"].append(repr(e))
                c.close()
                c = conn(timeout=5)
                continue
            elapsed = time.monotonic() - t0
            slot = r.getheader("X-Slot")
            with lock:
                if elapsed > 3:
                    results["slow"] += 1
                if r.status == 200 and slot == "blue":
                    results["blue"] += 1
                elif r.status == 200 and slot == "green":
                    results["green_ok"] += 1
                elif r.status == 502 and slot is None:
                    results["green_502"] += 1
                else:
                    results["other"].append((r.status, slot))
        c.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    green.send_signal(signal.SIGKILL)
    green.wait()
    time.sleep(2.0)
    with lock:
        during = dict(results, other=list(results["other"]))
        results["green_ok"] = 0
    green = start_demo_app(green_port, release="green-r1", slot="green", threads=2)
    time.sleep(2.0)
    stop_flag.set()
    for t in threads:
        t.join(timeout=10)
    print(f"     during outage: {during}; after return green ok={results['green_ok']}")
    expect(during["green_502"] > 0, "no 502 seen while green was down")
    expect(during["blue"] > 0, "blue stopped serving while green was down")
    expect(not results["other"], f"unexpected outcomes: {results['other'][:5]}")
    expect(results["slow"] == 0, f"{results['slow']} requests hung > 3s")
    expect(results["green_ok"] > 0, "green did not recover without a restart")
    reload_weights({"blue": 100, "green": 0})


def test_sighup_reloads_proxy_settings_on_open_connections():
    # Limits and security headers change with SIGHUP, also for a keep-alive
    # connection opened before it; listeners stay.
    d = Daemon(SLOTS, {"blue": 100}, workers=1)
    base = d.config_text()
    d.config_text = lambda: base
    d.start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("POST", "/echo", body=b"x" * 4096)
        r = c.getresponse()
        r.read()
        expect(r.status == 200 and r.getheader("X-Frame-Options") == "DENY", f"before: {r.status} {r.getheaders()}")
        changed = base.replace("workers = 1", 'workers = 1\nmax_body_size = "1KiB"\nlisten_tls = []') + \
            '[proxy.security_headers]\nX-Frame-Options = "SAMEORIGIN"\n'
        d.config_text = lambda: changed
        d.set_weights({"blue": 100})  # rewrites the file, SIGHUP, waits for "SIGHUP: reloaded"
        c.request("POST", "/echo", body=b"x" * 4096)
        r = c.getresponse()
        r.read()
        expect(r.status == 413, f"max_body_size after reload, same connection: {r.status}")
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        expect(r.status == 200 and r.getheader("X-Frame-Options") == "SAMEORIGIN",
               f"security header after reload: {r.getheader('X-Frame-Options')}")
        c.close()
        # A bad value keeps everything running as it was.
        d.config_text = lambda: changed.replace('max_body_size = "1KiB"', 'trusted_proxies = ["10.0.0.0/99"]')
        d.write_config()
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "SIGHUP: keeping the running config" not in d.log_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        expect("trusted_proxies" in d.log_text(), d.log_text()[-1000:])
        status, _ = _req_port(d.port, "/")[:2]
        expect(status == 200, f"after a refused reload: {status}")
    finally:
        d.stop()


def test_sigterm_drains():
    # A slow request in flight survives SIGTERM; new connections are refused after.
    d = Daemon(SLOTS, {"blue": 100}, workers=1).start()
    result = {}

    def slow():
        result["r"] = _req_port(d.port, "/slow?ms=1500")
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    t.join(timeout=10)
    code = d.proc.wait(timeout=20)
    d.stop()
    expect(result.get("r", (0,))[0] == 200, f"in-flight request during drain: {result}")
    expect(code == 0, f"exit code after drain {code}")


for name, fn in list(globals().items()):
    if name.startswith("test_") and callable(fn):
        checks.run(name, fn)
daemon.stop()
stop(blue)
stop(green)
checks.finish()
