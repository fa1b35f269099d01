"""ACME (RFC 8555) with HTTP-01 against Debian's pebble on 127.0.0.1: the
daemon starts HTTPS on a self-signed placeholder, orders a certificate, the
proxy answers pebble's HTTP-01 validation on its plain listener, and the
issued certificate is then served (and kept across a restart)."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request

from harness import RELEASECTL, Checks, Daemon, expect, free_port, recv_all, spawn, start_demo_app, stop, wait_for_port

checks = Checks()
WORK = tempfile.mkdtemp(prefix="releasectl-acme-")


def path(name):
    return os.path.join(WORK, name)


def run(args, check=True):
    return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                          check=check)


missing = [tool for tool in ("pebble", "pebble-challtestsrv", "openssl") if shutil.which(tool) is None]
if missing:
    print(f"FAIL setup: {', '.join(missing)} not installed (scripts/setup installs them)")
    print("0 passed, 1 failed")
    raise SystemExit(1)

# Pebble's own HTTPS endpoint needs a certificate; a throwaway CA signs it and
# releasectl trusts that CA through tls.acme.ca_bundle.
run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
     "-subj", "/CN=acme test CA", "-keyout", path("ca.key"), "-out", path("ca.pem"),
     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"])
run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
     "/CN=localhost", "-keyout", path("pebble.key"), "-out", path("pebble.csr")])
with open(path("pebble.ext"), "w") as f:
    f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
run(["openssl", "x509", "-req", "-in", path("pebble.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
     "-CAcreateserial", "-days", "2", "-out", path("pebble.pem"), "-extfile", path("pebble.ext")])

ACME_PORT, ACME_MANAGEMENT_PORT, DNS_PORT, CHALLTEST_PORT = free_port(), free_port(), free_port(), free_port()
backend_port = free_port()
backend = start_demo_app(backend_port, release="acme-r1", slot="blue")


class AcmeDaemon(Daemon):
    def __init__(self, root=None, extra_acme=()):
        self.tls_port = free_port()
        self.extra_acme = list(extra_acme)
        super().__init__({"blue": f"127.0.0.1:{backend_port}"}, {"blue": 100}, workers=2, root=root)

    def config_text(self):
        lines = [f'root = "{self.root}"', "[proxy]", f'listen = ["127.0.0.1:{self.port}"]',
                 f'listen_tls = ["127.0.0.1:{self.tls_port}"]', f"workers = {self.workers}", "redirect_http = true"]
        lines += ["[routing]", "sticky = false", "[log]", "access_log = false", "[metrics]", 'listen = ""']
        lines += ["[admin]", f'socket = "{os.path.join(self.dir, "admin.sock")}"']
        lines += ["[slots.blue]", f'upstream = "127.0.0.1:{backend_port}"', "[weights]", "blue = 100"]
        lines += ["[tls.acme]", f'directory = "https://127.0.0.1:{ACME_PORT}/dir"',
                  'domains = ["acme.test", "www.acme.test"]', 'email = "ops@acme.test"',
                  f'ca_bundle = "{path("ca.pem")}"', 'retry_interval = "2s"'] + self.extra_acme
        return "\n".join(lines) + "\n"

    def wait_log(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_text()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no '{text}' in the log within {timeout}s:\n{self.log_text()[-3000:]}")


daemon = AcmeDaemon()

# The first pebble run validates against the daemon's plain port.
challtest = spawn(["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                   "-dns01", f"127.0.0.1:{DNS_PORT}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                   "-management", f"127.0.0.1:{CHALLTEST_PORT}"],
                  stdout=open(path("challtestsrv.log"), "wb"), stderr=subprocess.STDOUT)
with open(path("pebble.json"), "w") as f:
    json.dump({"pebble": {"listenAddress": f"127.0.0.1:{ACME_PORT}",
                          "managementListenAddress": f"127.0.0.1:{ACME_MANAGEMENT_PORT}",
                          "certificate": path("pebble.pem"), "privateKey": path("pebble.key"),
                          "httpPort": daemon.port, "tlsPort": free_port(), "ocspResponderURL": "",
                          "externalAccountBindingRequired": False}}, f)
# Pebble rejects 5 % of nonces by default: left on, it exercises the badNonce retry.
pebble = spawn(["pebble", "-config", path("pebble.json"), "-dnsserver", f"127.0.0.1:{DNS_PORT}"],
               env=dict(os.environ, PEBBLE_VA_NOSLEEP="1"), stdout=open(path("pebble.log"), "wb"),
               stderr=subprocess.STDOUT)
wait_for_port(ACME_PORT, proc=pebble)
wait_for_port(ACME_MANAGEMENT_PORT, proc=pebble)


def pebble_roots():
    context = ssl.create_default_context(cafile=path("ca.pem"))
    with urllib.request.urlopen(f"https://127.0.0.1:{ACME_MANAGEMENT_PORT}/roots/0", context=context, timeout=10) as r:
        root = r.read().decode()
    with open(path("pebble-root.pem"), "w") as f:
        f.write(root)
    return path("pebble-root.pem")


def served_certificate(name, cafile=None):
    """(subject CN, issuer CN) of what the HTTPS listener serves for SNI `name`;
    with cafile, the chain must verify for `name`."""
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as s:
            der = s.getpeercert(binary_form=True)
    proc = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253"],
                          input=der, stdout=subprocess.PIPE, timeout=10)
    lines = proc.stdout.decode().splitlines()
    return lines[0].split("=", 1)[1], lines[1].split("=", 1)[1]


def test_check_before_the_first_order():
    proc = run([RELEASECTL, "check", "--config", daemon.config_path], check=False)
    out = proc.stdout.decode() + proc.stderr.decode()
    expect(proc.returncode == 0 and "no ACME certificate yet" in out, f"{proc.returncode}: {out}")


def test_order_and_serve():
    daemon.start()
    wait_for_port(daemon.tls_port, proc=daemon.proc)
    daemon.wait_log("ACME: certificate for acme.test, www.acme.test issued")
    daemon.wait_log("ACME: TLS reloaded")
    root = pebble_roots()
    for name in ("acme.test", "www.acme.test"):
        subject, issuer = served_certificate(name, cafile=root)  # verifies chain + name against pebble's root
        expect("Pebble" in issuer, f"{name}: issuer {issuer}")
    log = daemon.log_text()
    expect("ACME: ordering a certificate" in log, log[-1500:])
    with open(path("pebble.log")) as f:
        pebble_log = f.read()
    for name in ("acme.test", "www.acme.test"):  # pebble really fetched the answer from our plain listener
        expect(f"Attempting to validate w/ HTTP: http://{name}:{daemon.port}/.well-known/acme-challenge/" in pebble_log,
               f"no HTTP-01 validation of {name}:\n{pebble_log[-2000:]}")
    expect(pebble_log.count("set VALID by completed challenge") == 2, pebble_log[-2000:])
    stored = os.path.join(daemon.root, ".releasectl", "acme")
    expect(oct(os.stat(os.path.join(stored, "acme.test.key")).st_mode & 0o777) == "0o600", "key mode")
    expect(oct(os.stat(os.path.join(stored, "account.key")).st_mode & 0o777) == "0o600", "account key mode")


def test_unknown_challenge_token_goes_to_the_app():
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as s:
        s.sendall(b"GET /.well-known/acme-challenge/not-ours HTTP/1.1\r\nHost: acme.test\r\nConnection: close\r\n\r\n")
        data = recv_all(s)
    expect(data.startswith(b"HTTP/1.1 404") and b"releasectl-demo-app" in data, f"{data[:300]!r}")


def test_restart_keeps_the_certificate():
    expect(daemon.stop() == 0, "clean stop")
    again = AcmeDaemon(root=daemon.root)
    again.config_path = daemon.config_path
    again.port, again.tls_port = daemon.port, daemon.tls_port
    again.start()
    try:
        wait_for_port(again.tls_port, proc=again.proc)
        time.sleep(1.0)
        expect("ordering a certificate" not in again.log_text(), "a valid stored certificate needs no new order")
        subject, issuer = served_certificate("acme.test", cafile=path("pebble-root.pem"))
        expect("Pebble" in issuer, f"issuer {issuer}")
    finally:
        expect(again.stop() == 0, "clean stop after restart")


def served_serial(name):
    context = ssl.create_default_context(cafile=path("pebble-root.pem"))
    with socket.create_connection(("127.0.0.1", daemon.tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as s:
            der = s.getpeercert(binary_form=True)
    proc = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                          stdout=subprocess.PIPE, timeout=10)
    return proc.stdout.decode().strip()


def test_renewal_under_load():
    # renew_before longer than any pebble certificate lives: every check finds the
    # certificate due, so the daemon renews it within seconds. HTTPS clients (new
    # connections each time, verifying against pebble's root) run throughout.
    renewing = AcmeDaemon(root=daemon.root, extra_acme=['renew_before = "876000h"', 'check_interval = "1s"'])
    renewing.port, renewing.tls_port = daemon.port, daemon.tls_port  # pebble validates on daemon.port
    renewing.write_config()
    renewing.start()
    stop_load = threading.Event()
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def load():
        context = ssl.create_default_context(cafile=path("pebble-root.pem"))
        while not stop_load.is_set():
            try:
                with socket.create_connection(("127.0.0.1", renewing.tls_port), timeout=10) as raw:
                    with context.wrap_socket(raw, server_hostname="acme.test") as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: acme.test\r\nConnection: close\r\n\r\n")
                        data = recv_all(s)
                ok = data.startswith(b"HTTP/1.1 200")
                with lock:
                    if ok:
                        results["ok"] += 1
                    else:
                        results["failed"].append(data[:120])
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                with lock:
                    results["failed"].append(repr(e))

    try:
        wait_for_port(renewing.tls_port, proc=renewing.proc)
        before = served_serial("acme.test")
        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + 60
            after = before
            while time.monotonic() < deadline and after == before:
                time.sleep(0.2)
                after = served_serial("acme.test")
            time.sleep(1.0)  # keep the load on across the swap
        finally:
            stop_load.set()
            for t in threads:
                t.join(timeout=30)
        expect(after != before, f"certificate not renewed within 60 s (serial {before}):\n{renewing.log_text()[-2000:]}")
        expect("ordering a certificate" in renewing.log_text(), "no renewal order in the log")
        expect(results["ok"] > 20 and not results["failed"],
               f"{results['ok']} ok, failures during renewal: {results['failed'][:5]}")
        print(f"     renewed: serial {before} -> {after}; {results['ok']} HTTPS requests on new connections, 0 failed")
    finally:
        expect(renewing.stop() == 0, "clean stop after renewal")


for name, fn in list(globals().items()):
    if name.startswith("test_") and callable(fn):
        checks.run(name, fn)
for proc in (pebble, challtest, backend):
    stop(proc)
if daemon.proc is not None and daemon.proc.poll() is None:
    daemon.stop()
if not os.environ.get("KEEP_ACME_WORK"):  # keep pebble's log etc. while debugging
    shutil.rmtree(WORK, ignore_errors=True)
checks.finish()
