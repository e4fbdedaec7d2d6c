"""A scripted HTTP peer over socketpairs, for what a real engine can't be made to do:
never answer, answer garbage, drip bytes, send endless bodies, close at odd moments."""

import collections
import json
import socket
import threading

Request = collections.namedtuple("Request", "method target headers body")


def http(status=200, body=b"", headers=(), chunked=False, reason="OK", version="1.1"):
    """Bytes of one HTTP answer. ``body`` may be a dict/list (sent as JSON)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    lines = ["HTTP/%s %d %s" % (version, status, reason)] + list(headers)
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = b""
        for i in range(0, len(body), 7):  # small, uneven chunks
            piece = body[i:i + 7]
            payload += b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
        payload += b"0\r\nX-Trailer: yes\r\n\r\n"
    else:
        if not any(h.lower().startswith("content-length") for h in headers):
            lines.append("Content-Length: %d" % len(body))
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


VERSION_141 = {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"}


class FakeEngine(object):
    """``handler(request, sock)`` returns the bytes to answer, or None to close the
    connection; it may also write on ``sock`` itself and return b"". ``/version`` is
    answered with VERSION_141 unless ``version`` says otherwise."""

    def __init__(self, handler, version=VERSION_141):
        self.handler = handler
        self.version = version
        self.requests = []
        self.connections = 0
        self.threads = []
        self.socks = []

    def connect(self):
        client, server = socket.socketpair()
        self.connections += 1
        self.socks.append(server)
        thread = threading.Thread(target=self._serve, args=(server,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return client

    def _read_request(self, sock, buffer):
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(65536)
            if not data:
                return None
            buffer.extend(data)
        head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = dict((k.strip().lower(), v.strip()) for k, v in
                       (line.split(":", 1) for line in lines[1:]))
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            data = sock.recv(65536)
            if not data:
                return None
            rest += data
        del buffer[:]
        buffer.extend(rest[length:])
        return Request(method, target, headers, rest[:length])

    def _serve(self, sock):
        buffer = bytearray()
        try:
            while True:
                request = self._read_request(sock, buffer)
                if request is None:
                    break
                self.requests.append(request)
                if request.target.split("?")[0] == "/version" and self.version is not None:
                    sock.sendall(http(200, self.version))
                    continue
                answer = self.handler(request, sock)
                if answer is None:
                    break
                sock.sendall(answer)
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def close(self):
        for sock in self.socks:
            try:
                sock.close()
            except OSError:
                pass
