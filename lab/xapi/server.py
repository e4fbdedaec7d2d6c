"""HTTP front end: XML-RPC over HTTP/1.1 POST on TCP and Unix sockets, one thread per
connection (event.from and plugins block). Error pages follow xapi's Http_svr."""
import http.server
import os
import socketserver

# A request body larger than this is refused, as xapi's http_limit_max_rpc_size.
MAX_RPC_SIZE = 300 * 1024

_PAGES = {
    400: ("Bad Request", "<html><body><h1>HTTP 400 bad request</h1>The HTTP request was "
                         "malformed. Please correct and retry.</body></html>"),
    403: ("Forbidden", "<html><body><h1>HTTP 403 forbidden</h1>Access to the requested "
                       "resource is forbidden.</body></html>"),
    500: ("Internal Error", "<html><body><h1>HTTP 500 internal server error</h1>An "
                            "unexpected error occurred; please wait a while and try again. "
                            "If the problem persists, please contact your support "
                            "representative.%s</body></html>"),
    501: ("Method not implemented", "<html><body><h1>HTTP 501 Method Not Implemented</h1>"
                                    "%s</body></html>"),
}


def _html_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


from .sim import LOCAL  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "xapi"
    sys_version = ""
    sim = None   # set on the subclass made for each server

    def log_message(self, fmt, *args):   # the simulator keeps its own log
        pass

    def address_string(self):
        return "unix" if not self.client_address else str(self.client_address[0])

    def _page(self, code, extra=""):
        reason, body = _PAGES[code]
        if "%s" in body:
            body = body % extra
        data = body.encode("utf-8")
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"   # always answer with a status line
        self.send_response(code, reason)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        if code in (400, 414, 431):
            return self._page(400)
        if code == 501:
            return self._page(501, "<p>%s not supported.<br /></p>" % _html_escape(
                str(self.command)))
        return self._page(500)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_RPC_SIZE:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_RPC_SIZE:
            return None
        return self.rfile.read(length)

    def do_POST(self):
        try:
            body = self._read_body()
        except ValueError:
            return self._page(400)
        if body is None:
            return self._page(500, "<h1> Additional information </h1>"
                                   "Http.Client_requested_size_over_limit")
        # xapi trusts root on its local Unix socket (dom0 tools log in with no password)
        LOCAL.unix = not self.client_address
        try:
            data = self.sim.handle(body)
        except ValueError as e:
            return self._page(500, "<h1> Additional information </h1>" + _html_escape(str(e)))
        self.send_response(200, "OK")
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._page(403)

    do_HEAD = do_GET


class TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def server_bind(self):
        if os.path.exists(self.server_address) or os.path.islink(self.server_address):
            os.unlink(self.server_address)
        parent = os.path.dirname(self.server_address)
        if parent:
            os.makedirs(parent, exist_ok=True)
        socketserver.UnixStreamServer.server_bind(self)
        os.chmod(self.server_address, 0o666)


def handler_for(sim):
    return type("BoundHandler", (Handler,), {"sim": sim})


def make_servers(sim, tcp=None, unix_sockets=()):
    """Build (not start) the servers; returns [(server, description)]."""
    h = handler_for(sim)
    out = []
    if tcp:
        host, port = tcp[0], int(tcp[1])
        srv = TCPServer((host, port), h)
        out.append((srv, "tcp %s:%d" % srv.server_address[:2]))
    for path in unix_sockets:
        srv = UnixServer(path, h)
        out.append((srv, "unix " + path))
    return out

