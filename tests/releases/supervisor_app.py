# A tiny app for the supervisor tests: answers GET /up with 200 (and the
# release id) on $PORT, or on $SOCKET_PATH when the slot uses a Unix socket.
# GET /crash exits with code 3; GET /sick turns /up into 503;
# --ignore-sigterm ignores SIGTERM; --fail-at-start exits with code 4 at once.
import http.server
import os
import signal
import socketserver
import sys

release = os.environ.get("RELEASE_ID", "?")
sick = False  # after GET /sick, /up answers 503 (a hung or broken app)

if "--ignore-sigterm" in sys.argv:  # a stubborn app: only SIGKILL stops it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

if "--fail-at-start" in sys.argv:
    print("boom: DATABASE_URL is not set", file=sys.stderr, flush=True)
    sys.exit(4)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global sick
        if self.path == "/crash":
            os._exit(3)
        if self.path == "/sick":
            sick = True
        body = (release + "\n").encode()
        if self.path == "/up" and sick:
            self.send_response(503)
        else:
            self.send_response(200 if self.path in ("/up", "/", "/sick") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class UnixServer(socketserver.UnixStreamServer):
    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


socket_path = os.environ.get("SOCKET_PATH")
if socket_path:
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    server = UnixServer(socket_path, Handler)
else:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
print("release %s serving as pid %d slot %s greeting %s" % (
    release, os.getpid(), os.environ.get("SLOT"), os.environ.get("GREETING", "-")), flush=True)
server.serve_forever()
