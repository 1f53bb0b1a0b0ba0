"""A stand-in for MAST's file download service on 127.0.0.1: serves the files of a folder.

    with FakeMast(folder, token="s3cret", drop={"a_calints.fits": 1}) as mast:
        download_file("a_calints.fits", dest, base_url=mast.download_url, token="s3cret")
        assert mast.count("a_calints.fits") == 2

The URL scheme is MAST's: ``GET /api/v0.1/Download/file?uri=mast:JWST/product/<name>``
(the ``mast:JWST/product/`` prefix in any case, as MAST accepts it). Unknown names get 404,
other paths 400. Knobs:

* ``drop``: ``{name: n}`` (or an int for every file): the first n GETs of the file send the
  headers (with the full Content-Length) and ``drop_after`` bytes of the body (default: half),
  then the connection is cut;
* ``token``: requests need ``Authorization: token <token>``: 401 without one, 403 if wrong;
* ``ranges``: honour ``Range`` (206 with Content-Range, 416 past the end, ``If-Range``
  compared with the ETag or Last-Modified); False: always the whole file with 200;
* ``validators``: send ``ETag`` and ``Last-Modified`` (False: neither, so a client cannot
  resume safely);
* ``errors``: ``{name: [status, ...]}``: the first GETs of the file get these statuses
  (``retry_after``: the Retry-After header sent with them);
* ``redirect``: ``{name: url}``: 302 to that URL (before the token check, as a front end);
* ``on_request``: ``callable(name, n)`` called before the n-th request of a file (from 1),
  e.g. to replace the file between two requests, as MAST's reprocessing does.

``requests`` lists what the server saw (method, name, status, headers, bytes sent,
``dropped``); ``count(name)`` counts the requests of a file. The server logs nothing.
"""

import contextlib
import hashlib
import re
import socket
import threading
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["DOWNLOAD_PATH", "FakeMast"]

#: The path of MAST's download service.
DOWNLOAD_PATH = "/api/v0.1/Download/file"
_PREFIX = "mast:jwst/product/"


class FakeMast:
    def __init__(
        self,
        root,
        *,
        token=None,
        drop=None,
        drop_after=None,
        ranges=True,
        validators=True,
        errors=None,
        retry_after=None,
        redirect=None,
        on_request=None,
        host="127.0.0.1",
    ):
        self.root = Path(root)
        self.token = token
        self.drop, self.drop_after = drop or {}, drop_after
        self.ranges, self.validators = ranges, validators
        self.errors, self.retry_after = dict(errors or {}), retry_after
        self.redirect = dict(redirect or {})
        self.on_request = on_request
        self.requests = []
        self._counts, self._gets, self._drops = {}, {}, {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True

    @property
    def base_url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def download_url(self):
        """What to give as the downloader's ``base_url``."""
        return self.base_url + DOWNLOAD_PATH

    def url(self, name):
        return f"{self.download_url}?uri=mast:JWST/product/{name}"

    def count(self, name):
        with self._lock:
            return self._counts.get(name, 0)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # what the handler asks, under the lock
    def _arrived(self, name):
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            return self._counts[name]

    def _next_get(self, name):
        """How many GETs of the file came before this one."""
        with self._lock:
            seen = self._gets.get(name, 0)
            self._gets[name] = seen + 1
            return seen

    def _should_drop(self, name):
        planned = self.drop if isinstance(self.drop, int) else self.drop.get(name, 0)
        with self._lock:
            done = self._drops.get(name, 0)
            if done < planned:
                self._drops[name] = done + 1
                return True
            return False

    def _record(self, **entry):
        with self._lock:
            self.requests.append(entry)


def _handler(mast):
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeMAST/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            self._serve()

        def do_HEAD(self):
            self._serve()

        def _send(self, status, name, headers=(), body=b"", drop=False):
            cut = len(body) // 2 if mast.drop_after is None else min(mast.drop_after, len(body))
            sent = cut if drop else len(body)
            mast._record(
                method=self.command,
                name=name,
                status=status,
                headers=dict(self.headers.items()),
                sent=0 if self.command == "HEAD" else sent,
                dropped=drop,
            )
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            if drop:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            self.wfile.write(body[:sent])
            self.wfile.flush()
            if drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        def _serve(self):
            url = urllib.parse.urlsplit(self.path)
            uri = urllib.parse.parse_qs(url.query).get("uri", [""])[0]
            if url.path != DOWNLOAD_PATH or not uri.lower().startswith(_PREFIX):
                return self._send(400, None, body=b"bad request\n")
            name = uri[len(_PREFIX) :]
            n = mast._arrived(name)
            if mast.on_request is not None:
                mast.on_request(name, n)
            if name in mast.redirect:
                return self._send(302, name, [("Location", mast.redirect[name])])
            if mast.token is not None:
                given = self.headers.get("Authorization")
                if given is None:
                    return self._send(401, name, body=b"authentication required\n")
                if given != f"token {mast.token}":
                    return self._send(403, name, body=b"forbidden\n")
            if self.command == "GET":
                planned = mast.errors.get(name, [])
                earlier = mast._next_get(name)
                if earlier < len(planned):
                    extra = [("Retry-After", str(mast.retry_after))] if mast.retry_after else []
                    return self._send(planned[earlier], name, extra, b"planned error\n")
            path = mast.root / name
            if "/" in name or name.startswith(".") or not path.is_file():
                return self._send(404, name, body=b"not found\n")
            return self._file(name, path.read_bytes(), path.stat().st_mtime)

        def _file(self, name, data, mtime):
            etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
            modified = formatdate(mtime, usegmt=True)
            headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Disposition", f"attachment; filename={name}"),
            ]
            if mast.validators:
                headers += [("ETag", etag), ("Last-Modified", modified)]
            status, size = 200, len(data)
            if mast.ranges:
                headers.append(("Accept-Ranges", "bytes"))
                wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                condition = self.headers.get("If-Range")
                valid = condition is None or (mast.validators and condition in (etag, modified))
                if wanted and valid:
                    start = int(wanted.group(1))
                    if start >= size:
                        return self._send(416, name, [("Content-Range", f"bytes */{size}")])
                    end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
                    data, status = data[start : end + 1], 206
                    headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
            drop = self.command == "GET" and mast._should_drop(name)
            return self._send(status, name, headers, data, drop=drop)

    return Handler
