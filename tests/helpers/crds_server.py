"""A small CRDS server for tests: serves a local CRDS cache to the real ``crds`` client.

It speaks exactly what the crds 14.x client uses (``crds/client/api.py``, ``crds/client/proxy.py``):

* JSON-RPC 1.0 over ``POST <url>/json/<method>/<id>/`` (the client appends ``<method>/<id>/`` to
  ``<url>/json/`` only for log readability; ``POST <url>/json/`` works too). Body
  ``{"jsonrpc": "1.0", "method": m, "params": [...] or {...}, "id": ...}``; answer
  ``{"jsonrpc": "1.0", "id": ..., "result": ..., "error": null}`` or ``"error": {"message": ...}``.
  Methods: ``get_server_info``, ``get_default_context``, ``get_build_context``,
  ``get_context_by_date``, ``get_mapping_names``, ``get_reference_names``, ``get_file_info_map``,
  ``get_file_info``, ``list_mappings``, ``list_references``, ``get_best_references``
  (for ``CRDS_MODE=remote``; computed by the real crds client in a server-less subprocess
  against the served cache) and ``get_required_parkeys``.
* Plain HTTP GET of files at the URLs that ``get_server_info`` announces:
  ``<url>/unchecked_get/mappings/<obs>/<name>`` and ``<url>/unchecked_get/references/<obs>/<name>``
  (also ``<url>/get/<name>``, the "checked" URL the client ignores).

The served directory is a CRDS cache such as ``tests/crds_cache.py`` builds
(``mappings/<obs>/*``, ``references/<obs>/**/*``, optionally ``config/<obs>/server_config`` whose
``operational_context`` and ``bad_files_list`` are reused).

Use as a context manager::

    with CrdsTestServer(cache_root) as server:
        env = server.client_env(tmp_path / "empty_cache", context="jwst_0001.pmap")
        result = run_crds_lookup(params, env)
        assert server.downloads["jwst_nircam_psfmask_0001.fits"] == 1

Faults, to exercise the client's retries and verification (each applies to the first ``times``
requests of that file or method, ``times=None`` = every request)::

    server.fail("jwst_nircam_psfmask_0001.fits", times=1, mode="drop")   # close without answer
    server.fail(name, mode="500")        # HTTP 500     (also "404")
    server.fail(name, mode="truncate")   # announce full Content-Length, send half, close
    server.fail(name, mode="short")      # send half the bytes with a matching Content-Length
    server.corrupt(name)                 # same length, lowest bit of the middle byte flipped
    server.fail(name, mode="hang", seconds=30)   # accept, then answer nothing for 30 s
    server.fail(name, mode="delay", seconds=2)   # answer correctly after 2 s (slow server)
    server.fail_rpc("get_server_info", mode="drop"|"500"|"error"|"hang"|"delay", ...)
    server.fail_rpc("*", mode="hang")    # every JSON-RPC method

Statistics (thread-safe; ``reset_stats()`` clears them): ``downloads`` (Counter: GET requests per
file name, failed ones included), ``served`` (Counter: complete, correct responses per file),
``rpc_calls`` (Counter per method), ``events`` (ordered list of dicts: ``kind`` "rpc"/"get",
``name`` (method or file), ``params``, ``outcome``, ``time``).

"""

from __future__ import annotations

import ast
import base64
import collections
import contextlib
import copy
import fnmatch
import gzip
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = ["SERVERLESS_URL", "CrdsTestServer", "clean_crds_env", "unused_url"]

#: The server-less placeholder URL (``"serverless"`` in the URL disables all JSON-RPC calls).
SERVERLESS_URL = "https://crds-serverless-mode.stsci.edu"

_MAPPING_EXTS = (".pmap", ".imap", ".rmap")
_QUOTED_MAPPING = re.compile(r"'([A-Za-z0-9_.\-]+\.(?:pmap|imap|rmap))'")
_QUOTED_REFERENCE = re.compile(
    r"'([A-Za-z0-9_.\-]+\.(?:fits|asdf|json|yaml|yml|txt|dat|csv|ecsv|r[0-9][hd]))'"
)
_SELECTOR = re.compile(r"^selector\s*=", re.MULTILINE)
_FAULT_MODES = {"drop", "500", "404", "truncate", "short", "corrupt", "hang", "delay"}
_RPC_FAULT_MODES = {"drop", "500", "error", "hang", "delay"}


def crds_encode(obj):
    """The server-side encoding the client's ``proxy.crds_decode`` undoes (json, gzip, base64)."""
    payload = base64.b64encode(gzip.compress(json.dumps(obj).encode())).decode("ascii")
    return {"crds_encoded": "1.0", "crds_payload": payload}


def unused_url(host="127.0.0.1"):
    """A URL on which nothing listens (connection refused): a server that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"http://{host}:{port}"


class _Fault:
    def __init__(self, mode, times, seconds):
        self.mode = mode
        self.remaining = times
        self.seconds = seconds

    def take(self):
        """True if this request must fail (and count it)."""
        if self.remaining is None:
            return True
        if self.remaining > 0:
            self.remaining -= 1
            return True
        return False


class CrdsTestServer:
    """Serve a CRDS cache directory to the real crds client over HTTP on 127.0.0.1.

    Parameters
    ----------
    cache_root : path-like
        The served cache (``mappings/<obs>/``, ``references/<obs>/``, optional
        ``config/<obs>/server_config``).
    observatory : str
        ``"jwst"``.
    operational_context : str, optional
        What ``get_server_info`` / ``get_default_context`` report. Default: the
        ``operational_context`` of the served cache's ``server_config``, else its newest ``.pmap``.
    force_remote_mode : bool
        Reported in ``get_server_info``: with ``CRDS_MODE=auto`` the client then asks the
        server for best references (``get_best_references``) instead of computing them.
    bad_files : iterable of str, optional
        ``bad_files_list``; default: the served ``server_config``'s.
    send_download_metadata : bool
        Put ``download_metadata`` (size and sha1sum of every file) in ``get_server_info``, as the
        real server does. False makes the client call ``get_file_info_map`` instead.
    host, port : str, int
        Bind address; port 0 picks a free port. Only loopback hosts are accepted.
    """

    def __init__(
        self,
        cache_root,
        *,
        observatory="jwst",
        operational_context=None,
        force_remote_mode=False,
        bad_files=None,
        send_download_metadata=True,
        host="127.0.0.1",
        port=0,
    ):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"CrdsTestServer binds to loopback only, not {host!r}")
        self.root = Path(cache_root).resolve()
        self.observatory = observatory
        self.host = host
        self._requested_port = port
        self.force_remote_mode = bool(force_remote_mode)
        self.send_download_metadata = send_download_metadata
        served_config = self._served_config()
        self.operational_context = (
            operational_context or served_config.get("operational_context") or self._newest_pmap()
        )
        if bad_files is None:
            bad_files = served_config.get("bad_files_list", [])
        self.bad_files = list(bad_files)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._faults: dict[str, _Fault] = {}
        self._rpc_faults: dict[str, _Fault] = {}
        self._httpd = None
        self._thread = None
        self.files: dict[str, Path] = {}
        self._info: dict[str, dict] = {}
        self.rescan()
        self.reset_stats()

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        """Start serving in a background thread; returns self."""
        if self._httpd is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class _Server(http.server.ThreadingHTTPServer):
            address_family = family
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 64

        handler = type("_BoundHandler", (_Handler,), {"crds_server": self})
        self._stop.clear()
        self._httpd = _Server((self.host, self._requested_port), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, wake hung requests, close the socket."""
        if self._httpd is None:
            return
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The value for ``CRDS_SERVER_URL`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def localhost_url(self) -> str:
        """Same server as ``http://localhost:PORT``: crds then does not log
        "CRDS_SERVER_URL does not start with https://" on every call (api.set_crds_server and
        api.get_crds_server warn unless the URL is https or contains "localhost")."""
        return f"http://localhost:{self.port}"

    def client_env(
        self, crds_path, *, context=None, mode="local", readonly=False, localhost=False, **extra
    ):
        """Environment for a crds client process using this server and cache ``crds_path``.

        Starts from :func:`clean_crds_env` (no inherited ``CRDS_*`` or proxy variables), then
        sets ``CRDS_PATH``, ``CRDS_SERVER_URL`` (:attr:`url`, or :attr:`localhost_url` with
        ``localhost=True``), ``CRDS_MODE``, ``CRDS_OBSERVATORY``, ``CRDS_READONLY_CACHE``,
        ``CRDS_CONTEXT`` (when given) and ``extra`` (str values).
        """
        env = clean_crds_env()
        env.update(
            CRDS_PATH=str(Path(crds_path).resolve()),
            CRDS_SERVER_URL=self.localhost_url if localhost else self.url,
            CRDS_MODE=mode,
            CRDS_OBSERVATORY=self.observatory,
            CRDS_READONLY_CACHE="1" if readonly else "0",
        )
        if context:
            env["CRDS_CONTEXT"] = context
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # ------------------------------------------------------------------ catalogue

    def rescan(self):
        """(Re)read the served files and their size / sha1sum."""
        files = {}
        mapdir = self.root / "mappings" / self.observatory
        if mapdir.is_dir():
            for path in sorted(mapdir.iterdir()):
                if path.is_file() and path.suffix in _MAPPING_EXTS:
                    files[path.name] = path
        refdir = self.root / "references" / self.observatory
        if refdir.is_dir():
            for path in sorted(refdir.rglob("*")):
                if path.is_file() and not path.name.startswith(".") and path.suffix != ".lock":
                    files[path.name] = path
        info = {}
        for name, path in files.items():
            data = path.read_bytes()
            is_mapping = path.suffix in _MAPPING_EXTS
            parts = name.split("_")
            info[name] = {
                "name": name,
                "observatory": self.observatory,
                "type": "mapping" if is_mapping else "reference",
                "instrument": parts[1] if len(parts) > 2 else "",
                "filekind": parts[2].split(".")[0] if len(parts) > 3 else "",
                "size": str(len(data)),
                "sha1sum": hashlib.sha1(data).hexdigest(),
                "state": "operational",
                "blacklisted": "false",
                "rejected": "false",
            }
        with getattr(self, "_lock", threading.Lock()):
            self.files = files
            self._info = info

    def file_bytes(self, name) -> bytes:
        """The bytes the server serves for ``name`` (when no fault applies)."""
        return self.files[name].read_bytes()

    def sha1sum(self, name) -> str:
        return self._info[name]["sha1sum"]

    def mapping_names(self, context) -> list[str]:
        """The closure of mappings below ``context`` (pmap, its imaps, their rmaps)."""
        seen, todo = [], [context]
        while todo:
            name = todo.pop(0)
            if name in seen:
                continue
            if name not in self.files:
                raise KeyError(f"mapping {name!r} is not on this server")
            seen.append(name)
            todo.extend(_QUOTED_MAPPING.findall(self._selector_text(name)))
        return sorted(seen)

    def reference_names(self, context) -> list[str]:
        """Every reference named by the rmaps of ``context``."""
        names = set()
        for mapping in self.mapping_names(context):
            if mapping.endswith(".rmap"):
                names.update(_QUOTED_REFERENCE.findall(self._selector_text(mapping)))
        return sorted(names)

    def _selector_text(self, name):
        text = self.files[name].read_text()
        found = _SELECTOR.search(text)
        return text[found.start() :] if found else text

    def _served_config(self):
        path = self.root / "config" / self.observatory / "server_config"
        try:
            return ast.literal_eval(path.read_text())
        except (OSError, ValueError, SyntaxError):
            return {}

    def _newest_pmap(self):
        mapdir = self.root / "mappings" / self.observatory
        pmaps = sorted(p.name for p in mapdir.glob("*.pmap")) if mapdir.is_dir() else []
        if not pmaps:
            raise ValueError(f"{self.root} holds no .pmap to serve")
        return pmaps[-1]

    # ------------------------------------------------------------------ faults and statistics

    def fail(self, name, times=1, mode="drop", seconds=30.0):
        """Make the next ``times`` GETs of file ``name`` fail (``times=None``: all of them)."""
        if mode not in _FAULT_MODES:
            raise ValueError(f"mode must be one of {sorted(_FAULT_MODES)}")
        with self._lock:
            self._faults[name] = _Fault(mode, times, seconds)

    def corrupt(self, name, times=None):
        """Serve ``name`` with one byte flipped (same length) ``times`` times (None: always)."""
        self.fail(name, times=times, mode="corrupt")

    def fail_rpc(self, method, times=1, mode="drop", seconds=30.0):
        """Make the next ``times`` calls of JSON-RPC ``method`` (``"*"``: any) fail."""
        if mode not in _RPC_FAULT_MODES:
            raise ValueError(f"mode must be one of {sorted(_RPC_FAULT_MODES)}")
        with self._lock:
            self._rpc_faults[method] = _Fault(mode, times, seconds)

    def clear_faults(self):
        with self._lock:
            self._faults.clear()
            self._rpc_faults.clear()

    def reset_stats(self):
        with self._lock:
            self.downloads = collections.Counter()
            self.served = collections.Counter()
            self.rpc_calls = collections.Counter()
            self.events = []

    def rpc_sequence(self):
        """The JSON-RPC method names called so far, in order."""
        with self._lock:
            return [e["name"] for e in self.events if e["kind"] == "rpc"]

    def get_sequence(self):
        """The file names requested by GET so far, in order."""
        with self._lock:
            return [e["name"] for e in self.events if e["kind"] == "get"]

    def _record(self, kind, name, params=None, outcome="ok"):
        with self._lock:
            self.events.append(
                {
                    "kind": kind,
                    "name": name,
                    "params": params,
                    "outcome": outcome,
                    "time": time.time(),
                }
            )

    def _take_fault(self, table, key):
        with self._lock:
            fault = table.get(key) or (table.get("*") if table is self._rpc_faults else None)
            if fault is not None and fault.take():
                return fault
        return None

    # ------------------------------------------------------------------ JSON-RPC methods

    def server_info(self):
        """What ``get_server_info`` returns (shape of the real server's answer)."""
        base = self.url
        obs = self.observatory
        context = self.operational_context
        info = {
            "observatory": obs,
            "operational_context": context,
            "latest_context": context,
            "edit_context": context,
            "versions_context": context,
            "build_context": context,
            "bad_files": " ".join(self.bad_files),
            "bad_files_list": list(self.bad_files),
            "force_remote_mode": self.force_remote_mode,
            "mappings": sorted(n for n in self.files if n.endswith(_MAPPING_EXTS)),
            "crds_version": {"str": "14.0.0", "svnurl": "", "revision": ""},
            "last_synced": time.strftime("%Y-%m-%d %H:%M:%S"),
            "max_headers_per_rpc": 500,
            "max_bestrefs_per_rpc": 1000,
            # The real server answers {"checked": ..., "unchecked": {obs: url}}; the client
            # keeps the "unchecked" part (crds/client/api.py:get_server_info).
            "reference_url": {
                "checked": {obs: f"{base}/get/"},
                "unchecked": {obs: f"{base}/unchecked_get/references/{obs}/"},
            },
            "mapping_url": {
                "checked": {obs: f"{base}/get/"},
                "unchecked": {obs: f"{base}/unchecked_get/mappings/{obs}/"},
            },
        }
        if self.send_download_metadata:
            info["download_metadata"] = crds_encode(
                {n: {"size": i["size"], "sha1sum": i["sha1sum"]} for n, i in self._info.items()}
            )
        return info

    def _rpc_get_server_info(self):
        return self.server_info()

    def _rpc_get_default_context(self, observatory=None, state=None):
        return self.operational_context

    def _rpc_get_build_context(self, observatory=None, calver=None):
        return self.operational_context

    def _rpc_get_context_by_date(self, date, observatory=None):
        # Simplification: every date maps to the operational context.
        return self.operational_context

    def _rpc_get_mapping_names(self, context):
        return self.mapping_names(context)

    def _rpc_get_reference_names(self, context):
        return self.reference_names(context)

    def _rpc_get_file_info_map(self, observatory, files=None, fields=None):
        names = self._info if files is None else list(files)
        result = {}
        for name in names:
            if name not in self._info:
                result[name] = "NOT FOUND"
                continue
            info = self._info[name]
            result[name] = {k: v for k, v in info.items() if fields is None or k in fields}
        return result

    def _rpc_get_file_info(self, context_or_observatory, filename):
        if filename not in self._info:
            raise KeyError(f"No such file {filename!r}")
        return dict(self._info[filename])

    def _rpc_list_mappings(self, observatory=None, glob_pattern="*"):
        return sorted(
            n for n in self.files if n.endswith(_MAPPING_EXTS) and fnmatch.fnmatch(n, glob_pattern)
        )

    def _rpc_list_references(self, observatory=None, glob_pattern="*"):
        return sorted(
            n
            for n in self.files
            if not n.endswith(_MAPPING_EXTS) and fnmatch.fnmatch(n, glob_pattern)
        )

    def _rpc_get_best_references(self, context, header, reftypes=None):
        return self._crds_subprocess("bestrefs", context=context, header=header, reftypes=reftypes)

    def _rpc_get_required_parkeys(self, context):
        return self._crds_subprocess("parkeys", context=context)

    def _crds_subprocess(self, what, **args):
        """Run the real crds client server-less against the served cache (no state leaks)."""
        env = clean_crds_env()
        env.update(
            CRDS_PATH=str(self.root),
            CRDS_SERVER_URL=SERVERLESS_URL,
            CRDS_MODE="local",
            CRDS_READONLY_CACHE="1",
            CRDS_OBSERVATORY=self.observatory,
        )
        proc = subprocess.run(
            [sys.executable, "-c", _SERVER_SIDE_CRDS, what, json.dumps(args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for line in proc.stdout.splitlines():
            if line.startswith(_MARK):
                answer = json.loads(line[len(_MARK) :])
                if "error" in answer:
                    raise RuntimeError(answer["error"])
                return answer["result"]
        raise RuntimeError(f"server-side crds failed: {proc.stderr[-2000:]}")

    def dispatch(self, method, params):
        func = getattr(self, "_rpc_" + str(method), None)
        if func is None:
            raise NotImplementedError(f"Unknown JSON-RPC method {method!r}")
        if isinstance(params, dict):
            return func(**params)
        return func(*(params or []))


_MARK = "@@CRDS-RESULT@@"

_SERVER_SIDE_CRDS = r"""
import json, sys
what, args = sys.argv[1], json.loads(sys.argv[2])
try:
    import crds
    if what == "bestrefs":
        result = crds.getrecommendations(args["header"], reftypes=args["reftypes"],
                                         context=args["context"], observatory="jwst")
    else:
        from crds.core import rmap
        parkeys = rmap.get_cached_mapping(args["context"]).get_required_parkeys()
        result = (
            {k: list(v) for k, v in parkeys.items()}
            if isinstance(parkeys, dict)
            else list(parkeys)
        )
    print("@@CRDS-RESULT@@" + json.dumps({"result": result}))
except Exception as exc:
    print("@@CRDS-RESULT@@" + json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    crds_server: CrdsTestServer = None  # set on a subclass per server
    protocol_version = "HTTP/1.0"  # one request per connection, like the client expects
    server_version = "CrdsTestServer/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    # -------------------------------------------------------------- files

    def do_GET(self):
        self._get(head=False)

    def do_HEAD(self):
        self._get(head=True)

    def _get(self, head):
        srv = self.crds_server
        name = self._file_name(self.path)
        if name is None or name not in srv.files:
            srv._record("get", name or self.path, outcome="404")
            self.send_error(404, f"File not found: {self.path}")
            return
        with srv._lock:
            srv.downloads[name] += 1
        data = srv.file_bytes(name)
        fault = srv._take_fault(srv._faults, name)
        mode = fault.mode if fault else None
        srv._record("get", name, outcome=mode or "ok")
        if mode == "drop":
            self._drop()
            return
        if mode in ("500", "404"):
            self.send_error(int(mode), f"injected failure for {name}")
            return
        if mode == "hang":
            srv._stop.wait(fault.seconds)
            self._drop()
            return
        if mode == "delay":
            srv._stop.wait(fault.seconds)
        length = len(data)
        if mode == "corrupt":
            middle = len(data) // 2
            # flip the lowest bit: text stays ASCII (a mapping still decodes), the sha1 changes
            data = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
        elif mode == "truncate":
            data = data[: len(data) // 2]  # Content-Length stays the full length
        elif mode == "short":
            data = data[: len(data) // 2]
            length = len(data)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if head:
            return
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if mode == "truncate":
            self._drop()
            return
        if mode is None or mode == "delay":
            with srv._lock:
                srv.served[name] += 1

    def _file_name(self, path):
        path = path.split("?", 1)[0]
        obs = self.crds_server.observatory
        for prefix in (
            f"/unchecked_get/mappings/{obs}/",
            f"/unchecked_get/references/{obs}/",
            "/get/",
        ):
            if path.startswith(prefix):
                name = path[len(prefix) :]
                return name if name and "/" not in name else None
        return None

    def _drop(self):
        """Close the connection without (the rest of) an answer."""
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    # -------------------------------------------------------------- JSON-RPC

    def do_POST(self):
        srv = self.crds_server
        if not self.path.startswith("/json"):
            self.send_error(404, "JSON-RPC lives under /json/")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        try:
            request = json.loads(body.decode("utf-8"))
            method, params, ident = request["method"], request.get("params", []), request.get("id")
        except Exception as exc:
            self.send_error(400, f"bad JSON-RPC request: {exc}")
            return
        with srv._lock:
            srv.rpc_calls[method] += 1
        fault = srv._take_fault(srv._rpc_faults, method)
        mode = fault.mode if fault else None
        srv._record("rpc", method, copy.deepcopy(params), outcome=mode or "ok")
        if mode == "drop":
            self._drop()
            return
        if mode == "500":
            self.send_error(500, f"injected failure for {method}")
            return
        if mode == "hang":
            srv._stop.wait(fault.seconds)
            self._drop()
            return
        if mode == "delay":
            srv._stop.wait(fault.seconds)
        if mode == "error":
            answer = {
                "jsonrpc": "1.0",
                "id": ident,
                "result": None,
                "error": {"name": "InjectedError", "message": f"injected error in {method}"},
            }
        else:
            try:
                answer = {
                    "jsonrpc": "1.0",
                    "id": ident,
                    "result": srv.dispatch(method, params),
                    "error": None,
                }
            except Exception as exc:
                answer = {
                    "jsonrpc": "1.0",
                    "id": ident,
                    "result": None,
                    "error": {"name": type(exc).__name__, "message": str(exc)},
                }
        data = json.dumps(answer).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json-rpc")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)


# ---------------------------------------------------------------------------------------------
# Running the real client in a fresh process


def clean_crds_env(base=None):
    """A copy of ``base`` (default ``os.environ``) without ``CRDS_*`` and proxy variables.

    Proxy variables would send urllib's requests for 127.0.0.1 to a proxy; ``NO_PROXY`` is set
    for loopback as a second safety.
    """
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key.upper().startswith("CRDS") or key.lower() in (
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
        ):
            del env[key]
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    return env
