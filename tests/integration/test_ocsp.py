"""OCSP stapling against the real releasectl binary. A CA, a delegated OCSP
responder certificate and leaves with `authorityInfoAccess = OCSP;URI:...` are
made here with `openssl`; the responder is `openssl ocsp -index index.txt`
(the openssl ca database) behind a small HTTP server on 127.0.0.1 (the
`-port` mode of `openssl ocsp` cannot bind to loopback only). Clients are
`openssl s_client -status`. 127.0.0.1 only; every child is reaped."""
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import RELEASECTL, Checks, Daemon, expect, free_port, recv_all, start_demo_app, wait_for_port

checks = Checks()
WORK = tempfile.mkdtemp(prefix="releasectl-ocsp-")


def run(args, check=True, timeout=60):
    return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, check=check)


def path(name):
    return os.path.join(WORK, name)


# ------------------------------------------------------------------ certificates

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
GOOD_PORT, REVOKED_PORT, LATE_PORT, CHECK_PORT = free_port(), free_port(), free_port(), free_port()


def make_ca():
    run(["openssl", "req", "-x509", *EC, "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2",
         "-subj", "/CN=releasectl OCSP test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])


def sign(name, subject, serial, extensions):
    """A key and a certificate for it signed by the test CA, with `serial`."""
    key, csr, cert, ext = path(f"{name}.key"), path(f"{name}.csr"), path(f"{name}.crt"), path(f"{name}.ext")
    run(["openssl", "req", "-new", *EC, "-keyout", key, "-out", csr, "-subj", subject])
    os.chmod(key, 0o600)
    with open(ext, "w") as f:
        f.write("\n".join(extensions) + "\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
         "-set_serial", str(serial), "-days", "2", "-out", cert, "-extfile", ext])
    return cert, key


def make_leaf(name, serial, ocsp_port=None):
    """A server certificate; its .pem is leaf + CA (the issuer must be in the file for stapling)."""
    extensions = [f"subjectAltName=DNS:{name}", "basicConstraints=CA:FALSE", "extendedKeyUsage=serverAuth"]
    if ocsp_port:
        extensions.append(f"authorityInfoAccess=OCSP;URI:http://127.0.0.1:{ocsp_port}")
    cert, key = sign(name, f"/CN={name}", serial, extensions)
    with open(cert) as a, open(path("ca.pem")) as b, open(path(f"{name}.pem"), "w") as out:
        out.write(a.read() + b.read())
    return path(f"{name}.pem"), key


make_ca()
sign("responder", "/CN=releasectl OCSP test responder", 0x100,
     ["basicConstraints=CA:FALSE", "extendedKeyUsage=OCSPSigning", "keyUsage=critical,digitalSignature"])
GOOD = make_leaf("good.test", 0x1001, GOOD_PORT)
REVOKED = make_leaf("revoked.test", 0x1002, REVOKED_PORT)
PLAIN = make_leaf("plain.test", 0x1003)              # no authorityInfoAccess
LATE = make_leaf("late.test", 0x1004, LATE_PORT)     # its responder starts after the daemon
CHECKED = make_leaf("check.test", 0x1005, CHECK_PORT)

# The openssl ca database: V(alid) or R(evoked), expiry, revocation, serial (hex), file, subject.
with open(path("index.txt"), "w") as f:
    f.write("V\t300101000000Z\t\t1001\tunknown\t/CN=good.test\n")
    f.write("R\t300101000000Z\t240101000000Z,keyCompromise\t1002\tunknown\t/CN=revoked.test\n")
    f.write("V\t300101000000Z\t\t1004\tunknown\t/CN=late.test\n")


# ------------------------------------------------------------------ the responder

class OcspHandler(BaseHTTPRequestHandler):
    """POST / with a DER OCSPRequest: `openssl ocsp` answers it from index.txt."""
    protocol_version = "HTTP/1.0"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            request, response = os.path.join(tmp, "req.der"), os.path.join(tmp, "resp.der")
            with open(request, "wb") as f:
                f.write(body)
            proc = run(["openssl", "ocsp", "-index", path("index.txt"), "-CA", path("ca.pem"),
                        "-rsigner", path("responder.crt"), "-rkey", path("responder.key"), "-ndays", "1",
                        "-reqin", request, "-respout", response], check=False)
            answer = open(response, "rb").read() if proc.returncode == 0 and os.path.exists(response) else b""
        self.server.requests += 1
        self.send_response(200 if answer else 500)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class Responder:
    def __init__(self, port):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), OcspHandler)
        self.server.daemon_threads = True
        self.server.requests = 0
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# ------------------------------------------------------------------ the daemon

blue_port = free_port()
blue = start_demo_app(blue_port, release="blue-r1", slot="blue")


class OcspDaemon(Daemon):
    def __init__(self, certificates, tls_extra=(), **kwargs):
        self.tls_port = free_port()
        self.certificates = list(certificates)
        self.tls_extra = list(tls_extra)
        super().__init__({"blue": f"127.0.0.1:{blue_port}", "green": f"127.0.0.1:{free_port()}"},
                         {"blue": 100, "green": 0}, **kwargs)

    def config_text(self):
        lines = [f'root = "{self.root}"', "[proxy]", f'listen = ["127.0.0.1:{self.port}"]',
                 f'listen_tls = ["127.0.0.1:{self.tls_port}"]', "workers = 2"]
        lines += ["[routing]", "sticky = false", "[log]", "access_log = false", "[metrics]", 'listen = ""']
        lines += ["[admin]", f'socket = "{os.path.join(self.dir, "admin.sock")}"']
        for name, upstream in self.slots.items():
            lines += [f"[slots.{name}]", f'upstream = "{upstream}"']
        lines += ["[weights]"] + [f"{k} = {v}" for k, v in self.weights.items()]
        lines += ["[tls]"] + self.tls_extra
        for cert, key in self.certificates:
            lines += ["[[tls.certificates]]", f'cert = "{cert}"', f'key = "{key}"']
        return "\n".join(lines) + "\n"

    def start(self):
        super().start()
        wait_for_port(self.tls_port, proc=self.proc)
        return self

    def wait_log(self, text, timeout=15, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(text) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the log within {timeout}s:\n{self.log_text()[-2500:]}")


def s_client(name, port):
    """The handshake's OCSP part as `openssl s_client -status` prints it."""
    proc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-status"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    return proc.stdout.decode("utf-8", "replace")


def stapled(out):
    return "OCSP Response Status: successful" in out and "Cert Status: good" in out


def no_staple(out):
    return "OCSP response: no response sent" in out


def wait_staple(name, port, timeout=15):
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = s_client(name, port)
        if stapled(out):
            return out
        time.sleep(0.2)
    raise AssertionError(f"no good staple for {name} within {timeout}s:\n{out}")


def https_get(name, port):
    context = ssl.create_default_context(cafile=path("ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = recv_all(s)
    return int(data.split(b" ", 2)[1])


good_responder = Responder(GOOD_PORT)  # good.test's alone, so its requests can be counted
revoked_responder = Responder(REVOKED_PORT)
late_responder = None
daemon = OcspDaemon([GOOD, REVOKED, PLAIN, LATE], tls_extra=['ocsp_retry_interval = "1s"']).start()
TLS = daemon.tls_port


# ------------------------------------------------------------------ checks

def test_responder_down_then_up():
    global late_responder
    daemon.wait_log("OCSP: no response for late.test: responder http://127.0.0.1:" + str(LATE_PORT))
    out = s_client("late.test", TLS)
    expect(no_staple(out) and "CN = late.test" in out, out)
    expect(https_get("late.test", TLS) == 200, "late.test must be served without a staple")
    time.sleep(2.5)  # a few retries (1 s, 2 s) fail meanwhile
    log = daemon.log_text()
    expect(log.count("OCSP: no response for late.test") == 1, f"one warning, not one per retry:\n{log[-2500:]}")
    expect("serving it without a staple" in log, log[-2500:])
    late_responder = Responder(LATE_PORT)
    started = time.monotonic()
    wait_staple("late.test", TLS, timeout=12)
    print(f"     staple for late.test {time.monotonic() - started:.1f}s after its responder started", flush=True)
    daemon.wait_log("OCSP: stapling response for late.test (good, next update")


def test_good_certificate_stapled():
    out = wait_staple("good.test", TLS)
    expect("CN = good.test" in out, out)
    expect("Responder Id: CN = releasectl OCSP test responder" in out, out)
    daemon.wait_log("OCSP: stapling response for good.test (good, next update")
    expect(https_get("good.test", TLS) == 200, "good.test over HTTPS")


def test_certificate_without_responder_not_stapled():
    out = s_client("plain.test", TLS)
    expect(no_staple(out) and "CN = plain.test" in out, out)
    expect(https_get("plain.test", TLS) == 200, "plain.test over HTTPS")


def test_revoked_certificate_not_stapled():
    daemon.wait_log("OCSP: certificate for revoked.test (")
    log = daemon.log_text()
    line = next(l for l in log.splitlines() if "OCSP: certificate for revoked.test" in l)
    expect("[error]" in line and REVOKED[0] in line and "revoked at" in line and "keyCompromise" in line, line)
    out = s_client("revoked.test", TLS)
    expect(no_staple(out) and "CN = revoked.test" in out, out)
    expect(https_get("revoked.test", TLS) == 200, "still served (the operator decides)")


def test_staple_survives_sighup():
    wait_staple("good.test", TLS)
    requests_before = good_responder.server.requests
    results = []
    running = True

    def probe():
        while running:
            results.append(s_client("good.test", TLS))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        time.sleep(0.5)
        before = daemon.log_text().count("SIGHUP: TLS reloaded")
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("SIGHUP: TLS reloaded", count=before + 1)
        time.sleep(1.0)
    finally:
        running = False
        prober.join(timeout=30)
    missing = [r for r in results if not stapled(r)]
    expect(len(results) >= 5, f"only {len(results)} handshakes")
    expect(not missing, f"{len(missing)} of {len(results)} handshakes without a staple around SIGHUP:\n"
                        f"{missing[0][-1500:] if missing else ''}")
    # The same certificates: their staples were kept, not fetched again.
    expect(good_responder.server.requests == requests_before,
           f"{good_responder.server.requests - requests_before} fetches after a reload of the same certificates")
    print(f"     {len(results)} handshakes around SIGHUP, all stapled", flush=True)


def test_stapling_can_be_turned_off_and_check_fetches_nothing():
    # A responder that would notice any request.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", CHECK_PORT))
    listener.listen(8)
    listener.settimeout(0.5)
    try:
        d = OcspDaemon([CHECKED])
        proc = run([RELEASECTL, "check", "--config", d.config_path], check=False)
        out = proc.stdout.decode() + proc.stderr.decode()
        expect(proc.returncode == 0, f"check: {proc.returncode} {out}")
        try:
            conn, _ = listener.accept()
            conn.close()
            raise AssertionError("`releasectl check` contacted the OCSP responder")
        except socket.timeout:
            pass
    finally:
        listener.close()
    off = OcspDaemon([GOOD], tls_extra=["ocsp_stapling = false"]).start()
    try:
        time.sleep(1.0)
        out = s_client("good.test", off.tls_port)
        expect(no_staple(out) and "CN = good.test" in out, out)
        expect("OCSP" not in off.log_text(), off.log_text()[-1500:])
    finally:
        off.stop()
    bad = OcspDaemon([GOOD], tls_extra=["ocsp_stapling = 1"])
    proc = run([RELEASECTL, "check", "--config", bad.config_path], check=False)
    out = proc.stdout.decode() + proc.stderr.decode()
    expect(proc.returncode == 2 and "tls.ocsp_stapling" in out and "boolean" in out, out)


checks.run("responder down at start: served without a staple, stapled once it answers", test_responder_down_then_up)
checks.run("a good certificate gets a verified staple", test_good_certificate_stapled)
checks.run("no authorityInfoAccess: no staple, still served", test_certificate_without_responder_not_stapled)
checks.run("a revoked certificate is not stapled and the log names it", test_revoked_certificate_not_stapled)
checks.run("SIGHUP: every handshake keeps its staple", test_staple_survives_sighup)
checks.run("ocsp_stapling = false; `check` fetches nothing", test_stapling_can_be_turned_off_and_check_fetches_nothing)

code = daemon.stop()
checks.run("SIGTERM: clean exit", lambda: expect(code == 0, f"exit {code}"))
good_responder.stop()
revoked_responder.stop()
if late_responder:
    late_responder.stop()
checks.finish()
