"""Issue 6, upstream TLS: `upstream = "https://..."` against the real releasectl
binary. Backends are Python ssl servers (tls_backend.py) with certificates
from a CA made here with `openssl`; they record the SNI and session
resumption of every connection releasectl opens. 127.0.0.1 only."""
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from harness import (RELEASECTL, Checks, Daemon, RolloutDaemon, expect, free_port, http_get, read_response, spawn,
                     stop, wait_for_port)
from tls_backend import TlsBackend, pattern

checks = Checks()
WORK = tempfile.mkdtemp(prefix="releasectl-upstream-tls-")
HERE = os.path.dirname(os.path.abspath(__file__))


def run(args):
    return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=60, check=True)


def path(name):
    return os.path.join(WORK, name)


def make_ca(name):
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", path(f"{name}.key"), "-out", path(f"{name}.pem"), "-days", "2", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])


def make_leaf(name, ca, sans):
    key, csr, leaf = path(f"{name}.key"), path(f"{name}.csr"), path(f"{name}.leaf.pem")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
    os.chmod(key, 0o600)
    run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}"])
    with open(path(f"{name}.ext"), "w") as f:
        f.write("subjectAltName=" + ",".join(sans) + "\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", path(f"{ca}.pem"), "-CAkey", path(f"{ca}.key"),
         "-CAcreateserial", "-days", "2", "-out", leaf, "-extfile", path(f"{name}.ext")])
    with open(leaf) as a, open(path(f"{ca}.pem")) as b, open(path(f"{name}.pem"), "w") as out:
        out.write(a.read() + b.read())
    return path(f"{name}.pem"), key


make_ca("ca")
make_ca("rogue-ca")  # trusted by nobody here
APP_CERT, APP_KEY = make_leaf("app", "ca", ["DNS:localhost", "DNS:app.internal", "IP:127.0.0.1"])
ROGUE_CERT, ROGUE_KEY = make_leaf("rogue", "rogue-ca", ["DNS:localhost", "IP:127.0.0.1"])
CA = path("ca.pem")


def backend(cert=APP_CERT, key=APP_KEY, release="tls-app"):
    return TlsBackend(cert, key, release=release).start()


class UpstreamTlsDaemon(Daemon):
    """Slots given as name -> (upstream, {tls key: TOML value})."""

    def __init__(self, slots, live="blue", proxy_extra=None):
        self.slot_settings = slots
        self.proxy_extra = dict(proxy_extra or {})
        super().__init__({name: upstream for name, (upstream, _) in slots.items()},
                         {name: (100 if name == live else 0) for name in slots}, metrics=True)

    def config_text(self):
        lines = [f'root = "{self.root}"', "[proxy]", f'listen = ["127.0.0.1:{self.port}"]', "workers = 2",
                 'upstream_connect_timeout = "2s"']
        lines += [f"{k} = {v}" for k, v in self.proxy_extra.items()]
        lines += ["[routing]", "sticky = false", "[log]", "access_log = false",
                  "[metrics]", f'listen = "127.0.0.1:{self.metrics_port}"']
        for name, (upstream, keys) in self.slot_settings.items():
            lines += [f"[slots.{name}]", f'upstream = "{upstream}"'] + [f"{k} = {v}" for k, v in keys.items()]
        lines += ["[weights]"] + [f"{k} = {v}" for k, v in self.weights.items()]
        return "\n".join(lines) + "\n"

    def metric(self, name, labels):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample {name}{{{want}}}")


def get(port, target, slot=None, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    all_headers = dict(headers or {})
    if slot:
        all_headers["X-Release-Slot"] = slot
    conn.request(method, target, body=body, headers=all_headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


# ------------------------------------------------------------------ backends and the daemon

named = backend()      # reached as https://localhost:P (SNI "localhost")
renamed = backend()    # reached as 127.0.0.1 with tls_server_name = "app.internal"
by_ip = backend()      # reached as https://127.0.0.1:P (no SNI: IP literals never go in SNI)
mismatch = backend()   # tls_server_name names something the certificate does not
system = backend()     # no tls_ca_bundle: the system store does not know our CA
rogue = backend(ROGUE_CERT, ROGUE_KEY)        # signed by an untrusted CA
unverified = backend(ROGUE_CERT, ROGUE_KEY)   # the same, with tls_verify = false
bundle = f'"{CA}"'
daemon = UpstreamTlsDaemon({
    "blue": (f"https://localhost:{named.port}", {"tls_ca_bundle": bundle}),
    "renamed": (f"https://127.0.0.1:{renamed.port}", {"tls_ca_bundle": bundle, "tls_server_name": '"app.internal"'}),
    "byip": (f"https://127.0.0.1:{by_ip.port}", {"tls_ca_bundle": bundle}),
    "mismatch": (f"https://127.0.0.1:{mismatch.port}", {"tls_ca_bundle": bundle, "tls_server_name": '"wrong.example"'}),
    "system": (f"https://127.0.0.1:{system.port}", {}),
    "rogue": (f"https://127.0.0.1:{rogue.port}", {"tls_ca_bundle": bundle}),
    "loose": (f"https://127.0.0.1:{unverified.port}", {"tls_verify": "false"}),
}).start()


def check_check_command():
    code = subprocess.run([RELEASECTL, "check", "--config", daemon.config_path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)
    expect(code.returncode == 0, f"releasectl check: {code.stderr.decode()}")
    # A CA bundle that cannot be read is a config error naming the key and the file.
    broken = Daemon({"blue": f"https://127.0.0.1:{named.port}"}, {"blue": 100})
    text = broken.config_text().replace(f'upstream = "https://127.0.0.1:{named.port}"',
                                        f'upstream = "https://127.0.0.1:{named.port}"\ntls_ca_bundle = "missing-ca.pem"')
    with open(broken.config_path, "w") as f:
        f.write(text)
    result = subprocess.run([RELEASECTL, "check", "--config", broken.config_path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=30)
    err = result.stderr.decode()
    expect(result.returncode == 2, f"check with a missing CA bundle exited {result.returncode}")
    expect("slots.blue.tls_ca_bundle: cannot read CA bundle" in err and "missing-ca.pem" in err, err)
    # tls_* on a plain upstream is refused.
    with open(broken.config_path, "w") as f:
        f.write(text.replace("https://", ""))
    result = subprocess.run([RELEASECTL, "check", "--config", broken.config_path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=30)
    expect(result.returncode == 2 and "only for an https:// upstream" in result.stderr.decode(),
           result.stderr.decode())


def check_forwarding():
    response, data = get(daemon.port, "/hello?x=1")
    expect(response.status == 200, f"GET status {response.status}: {data[:200]!r}")
    seen = json.loads(data)
    expect(seen["path"] == "/hello?x=1", f"path {seen['path']}")
    expect(seen["headers"].get("x-forwarded-proto") == "http", f"X-Forwarded-Proto {seen['headers']}")
    body = os.urandom(1024 * 1024 + 17)
    response, data = get(daemon.port, "/echo", method="POST", body=body)
    expect(response.status == 200 and data == body, f"POST echo: status {response.status}, {len(data)} bytes")
    expect(response.getheader("X-Body-Sha256") == hashlib.sha256(body).hexdigest(), "upstream saw another body")
    big = 8 * 1024 * 1024
    response, data = get(daemon.port, f"/bytes/{big}")
    expect(response.status == 200 and data == pattern(big), f"8 MiB download: {response.status}, {len(data)} bytes")
    response, data = get(daemon.port, "/chunked/3000001")
    expect(response.status == 200 and data == pattern(3000001), f"chunked download: {len(data)} bytes")


def check_connection_reuse():
    before = len(named.snapshot())
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    for i in range(300):
        conn.request("GET", f"/r{i}")
        response = conn.getresponse()
        response.read()
        expect(response.status == 200, f"request {i}: {response.status}")
    conn.close()
    opened = len(named.snapshot()) - before
    print(f"     300 keep-alive requests opened {opened} upstream TLS connection(s)", flush=True)
    expect(opened <= 2, f"{opened} TLS connections for 300 sequential requests: the pool is not reused")


def check_no_response_poisoning():
    # Bytes an upstream sends after a complete response sit in OpenSSL or the
    # socket; the pooled connection must be dropped, never read for the next request.
    # The pause lets the unsolicited record arrive before the connection could
    # be reused: bytes that come after the next request was sent cannot be told
    # from its answer by any proxy (nor by nginx), so they are not this test.
    for i in range(30):
        response, data = get(daemon.port, "/poison")
        expect(response.status == 200 and data == b"clean", f"poison round {i}: {response.status} {data!r}")
        time.sleep(0.1)
        response, data = get(daemon.port, f"/after{i}")
        expect(response.status == 200 and b"POISON" not in data, f"round {i}: next answer was {data[:80]!r}")
        expect(json.loads(data)["path"] == f"/after{i}", f"round {i}: wrong answer {data[:80]!r}")


def check_names_and_sni():
    for slot, server, sni in (("blue", named, "localhost"), ("renamed", renamed, "app.internal"),
                              ("byip", by_ip, None)):
        response, data = get(daemon.port, "/", slot=slot)
        expect(response.status == 200, f"slot {slot}: status {response.status} {data[:200]!r}")
        connections = server.snapshot()
        expect(connections and connections[-1]["sni"] == sni, f"slot {slot}: SNI {connections[-1:]} (want {sni})")
        expect(connections[-1]["version"] == "TLSv1.3", f"slot {slot}: {connections[-1]['version']}")


def check_verification_failures():
    expectations = {
        "rogue": "certificate verify failed: self-signed certificate in certificate chain",
        # The chain it sends ends in its CA, which the system store does not hold.
        "system": "certificate verify failed: self-signed certificate in certificate chain",
        "mismatch": "certificate verify failed: hostname mismatch",
    }
    for slot, why in expectations.items():
        response, data = get(daemon.port, "/secret", slot=slot)
        expect(response.status == 502, f"slot {slot}: status {response.status} (an unverified upstream was used)")
        expect(b"TLS handshake with the upstream failed" in data, f"slot {slot}: body {data[:200]!r}")
    deadline = time.monotonic() + 5
    log = ""
    while time.monotonic() < deadline:
        log = daemon.log_text()
        if all(f"slot {slot}: TLS handshake with upstream" in log for slot in expectations):
            break
        time.sleep(0.05)
    for slot, why in expectations.items():
        lines = [l for l in log.splitlines() if f"slot {slot}: TLS handshake with upstream" in l]
        expect(lines and why in lines[0], f"slot {slot}: log {lines[:1]} (want '{why}')")
    expect("expected name wrong.example" in log, "the mismatch log line names the expected name")
    for slot in expectations:
        expect(daemon.metric("releasectl_upstream_errors_total", {"slot": slot, "kind": "tls"}) >= 1,
               f"slot {slot}: no kind=tls upstream error counted")
    # No request reached an upstream that failed verification.
    for server in (rogue, system, mismatch):
        expect(all(c.get("path") is None for c in server.snapshot()), "request reached an unverified upstream")


def check_verify_off():
    response, data = get(daemon.port, "/", slot="loose")
    expect(response.status == 200 and json.loads(data)["release"] == "tls-app", f"tls_verify = false: {response.status}")


def check_websocket_tunnel():
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        expect(chunk, f"closed before the 101: {head!r}")
        head += chunk
    expect(head.startswith(b"HTTP/1.1 101"), f"upgrade answer {head[:80]!r}")
    rest = head.split(b"\r\n\r\n", 1)[1]
    payload = os.urandom(200_000)
    s.sendall(payload)
    received = rest
    while len(received) < len(payload):
        chunk = s.recv(65536)
        expect(chunk, f"tunnel closed after {len(received)} bytes")
        received += chunk
    s.close()
    expect(received == payload, "tunnel echoed other bytes")


def check_session_resumption():
    # No idle pooling: every request opens a new TLS connection, which should
    # resume the session of an earlier one instead of a full handshake.
    fresh = backend(release="resume")
    resuming = UpstreamTlsDaemon({"blue": (f"https://127.0.0.1:{fresh.port}", {"tls_ca_bundle": bundle})},
                                 proxy_extra={"upstream_max_idle": 0}).start()
    try:
        for i in range(12):
            response, _ = get(resuming.port, f"/n{i}")
            expect(response.status == 200, f"request {i}: {response.status}")
        connections = fresh.snapshot()
        resumed = sum(1 for c in connections if c["resumed"])
        print(f"     {len(connections)} connections, {resumed} resumed", flush=True)
        expect(len(connections) >= 12, f"only {len(connections)} connections with upstream_max_idle = 0")
        expect(resumed >= len(connections) - 3, f"only {resumed}/{len(connections)} TLS sessions resumed")
    finally:
        code = resuming.stop()
        fresh.close()
    expect(code == 0, f"exit code {code}: {resuming.log_text()[-1500:]}")


def check_supervised_https_app():
    """[app] runs an HTTPS app; health checks speak TLS with the slot's CA and name."""
    command = f'"{sys.executable} {os.path.join(HERE, "tls_backend.py")} --port ${{PORT}} --cert {APP_CERT} --key {APP_KEY}"'
    source = path("release-src")
    os.makedirs(source, exist_ok=True)
    with open(os.path.join(source, "README"), "w") as f:
        f.write("an https app\n")
    results = {}
    for trusted in (True, False):
        supervised = RolloutDaemon(rollout={"strategy": '"blue-green"', "step_duration": '"100ms"'},
                                   app={"command": command, "start_timeout": '"4s"'})
        supervised.slots = {name: f"https://127.0.0.1:{port}" for name, port in
                            (("blue", supervised.blue_port), ("green", supervised.green_port))}
        text = supervised.config_text()
        if trusted:
            for port in (supervised.blue_port, supervised.green_port):
                text = text.replace(f'upstream = "https://127.0.0.1:{port}"',
                                    f'upstream = "https://127.0.0.1:{port}"\ntls_ca_bundle = "{CA}"')
        with open(supervised.config_path, "w") as f:
            f.write(text)
        supervised.start()
        try:
            code, out, err, _ = supervised.cli("deploy", source, "--release", "r1", timeout=60)
            results[trusted] = (code, out + err)
            if trusted:
                expect(code == 0, f"deploy to an https app exited {code}: {out}{err}")
                response, data = get(supervised.port, "/")
                expect(response.status == 200, f"through the proxy: {response.status} {data[:200]!r}")
            else:
                expect(code != 0, "deploy succeeded although the app's certificate is not trusted")
                expect("certificate verify failed" in out + err, f"deploy error does not say why: {out}{err}")
        finally:
            supervised.stop()
    print(f"     untrusted: {results[False][1].strip().splitlines()[-1][:200]}", flush=True)


checks.run("releasectl check: https upstream settings, unreadable CA bundle, tls_* on plain", check_check_command)
checks.run("verified https upstream: GET, 1 MiB POST, 8 MiB and chunked downloads", check_forwarding)
checks.run("keep-alive: 300 requests reuse pooled TLS connections", check_connection_reuse)
checks.run("no response-queue poisoning through pooled TLS connections", check_no_response_poisoning)
checks.run("SNI: host names sent, tls_server_name honoured, IP literals not sent; TLS 1.3", check_names_and_sni)
checks.run("verification on by default: untrusted CA, system store, wrong name -> 502, logged, counted",
           check_verification_failures)
checks.run("tls_verify = false reaches a self-signed upstream", check_verify_off)
checks.run("WebSocket tunnel over an https upstream", check_websocket_tunnel)
checks.run("TLS session resumption for new upstream connections", check_session_resumption)
checks.run("supervised https app: health checks over TLS, untrusted certificate fails the deploy",
           check_supervised_https_app)

def check_clean_exit():
    code = daemon.stop()  # SIGTERM drain; under ASan a leak or error makes this non-zero
    expect(code == 0, f"daemon exit code {code}:\n{daemon.log_text()[-2000:]}")


checks.run("daemon exits 0 after SIGTERM", check_clean_exit)
for server in (named, renamed, by_ip, mismatch, system, rogue, unverified):
    server.close()
checks.finish()
