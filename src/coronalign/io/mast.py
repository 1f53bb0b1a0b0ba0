"""Downloading JWST products from MAST by file name: retried, resumed, never half-written.

``GET <base_url>?uri=mast:JWST/product/<file name>``, the URL scheme of MAST's file download
service (what ``astroquery.mast.Observations.download_file`` and the curl scripts of the MAST
portal use), with ``base_url`` configurable so the tests can point it at a local server.
Standard library only: astroquery 0.4.11 (tried against the tests' local server) leaves a
cut-off download under the final name, does not retry, splices a file replaced between two
attempts when it resumes, and would add about 18 packages and a second of import.

* A file is written to ``.<name>.part`` in the destination folder and renamed to ``<name>``
  only when it is complete (the byte count the server announced) and, when pinned, of the
  pinned size and SHA-256; the caller skips files that are already there.
* A dropped connection is resumed with ``Range`` when the server gave a validator of the
  bytes already received (a strong ``ETag`` or ``Last-Modified``, sent back as
  ``If-Range``), so a file MAST replaced in between is never spliced; otherwise, and when
  the server ignores ``Range``, the download restarts from byte 0. A ``.part`` file left by a
  killed process is not trusted: the next download starts it again.
* Connection errors, time-outs and HTTP 408/425/429/5xx are retried with exponential
  back-off (``Retry-After`` honoured); an attempt that got further than any before does not
  use up a retry. After the retries, one :class:`~coronalign.errors.DownloadError` names
  the file. HTTP 404 (:class:`NotAtMastError`) and 401/403 (:class:`MastTokenError`) fail
  at once.
* The token (``MAST_API_TOKEN``, for proprietary data) goes in ``Authorization: token
  <token>``, as STScI's own download code sends it; it follows a redirect only to the same
  host or to an https ``*.stsci.edu`` host, is never sent over plain http except to the
  local host, and is never logged or written anywhere.
"""

import contextlib
import fcntl
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from coronalign.errors import DownloadError, ParameterError
from coronalign.io.inputs_lock import FileRecord, compare

__all__ = [
    "MAST_DOWNLOAD_URL",
    "TOKEN_VARIABLE",
    "ChecksumMismatchError",
    "MastTokenError",
    "NotAtMastError",
    "check_product_name",
    "download_file",
    "product_url",
]

log = logging.getLogger(__name__)

#: MAST's file download service.
MAST_DOWNLOAD_URL = "https://mast.stsci.edu/api/v0.1/Download/file"
#: The environment variable that holds a MAST token (https://auth.mast.stsci.edu/token).
TOKEN_VARIABLE = "MAST_API_TOKEN"
_URI_PREFIX = "mast:JWST/product/"
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRUSTED_DOMAIN = ".stsci.edu"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_CHUNK = 1 << 20
_USER_AGENT = "coronalign-download"


class NotAtMastError(DownloadError):
    """MAST has no file of that name (HTTP 404)."""


class MastTokenError(DownloadError):
    """MAST refused the file without a token, or with the one given (HTTP 401/403)."""


class ChecksumMismatchError(DownloadError):
    """The downloaded file is not the pinned one (size or SHA-256)."""


class _RetryError(Exception):
    """A transient failure: try again after a pause (``delay``: the server's Retry-After)."""

    def __init__(self, why, delay=None):
        super().__init__(why)
        self.delay = delay


class _RestartError(Exception):
    """The bytes received so far cannot be continued: start again from byte 0."""


def check_product_name(name):
    """Refuse what is not a plain product file name (no folder, not hidden).

    Raises
    ------
    ParameterError
    """
    text = str(name)
    if not text or text != Path(text).name or text.startswith(".") or "\\" in text:
        raise ParameterError("MAST file name", f"{text!r} is not a product file name")
    return text


def product_url(name, base_url=MAST_DOWNLOAD_URL):
    """The download URL of a product (the URI quoted as astroquery does, ``:`` and ``/`` kept)."""
    return f"{base_url}?uri={urllib.parse.quote(_URI_PREFIX + name, safe=':/')}"


def _host(url):
    return urllib.parse.urlsplit(url).hostname or ""


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects; the token goes along only to the same host or to https *.stsci.edu."""

    def __init__(self, token, home):
        self.token, self.home = token, home

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        parts = urllib.parse.urlsplit(newurl)
        host = parts.hostname or ""
        trusted = host == self.home or (parts.scheme == "https" and host.endswith(_TRUSTED_DOMAIN))
        if new is not None and self.token and trusted:
            new.add_unredirected_header("Authorization", f"token {self.token}")
        return new


def _opener(base_url, token):
    handlers = [_RedirectHandler(token, _host(base_url))]
    if _host(base_url) in _LOOPBACK:  # a local test server: never through a proxy
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def download_file(
    name,
    folder,
    *,
    base_url=MAST_DOWNLOAD_URL,
    token=None,
    expected=None,
    retries=5,
    timeout=60.0,
    backoff=1.0,
    max_backoff=60.0,
    sleep=time.sleep,
):
    """Download one MAST product into a folder (fetched even if the file is there).

    Parameters
    ----------
    name : str
        The product's file name, e.g. ``jw01386002001_03108_00001_nrcalong_calints.fits``.
    folder : str or os.PathLike
        Where to put it (created if needed).
    base_url : str, optional
        The download service (MAST's by default).
    token : str, optional
        A MAST token, for proprietary data. Never logged.
    expected : FileRecord, optional
        The pinned size and SHA-256: any other file is refused.
    retries : int, optional
        Failed attempts in a row allowed after the first (an attempt that gets further than
        any before does not count).
    timeout : float, optional
        Seconds per network operation (connecting, each read), not for the whole file.
    backoff, max_backoff : float, optional
        The n-th retry in a row waits ``min(max_backoff, backoff * 2**(n-1))`` seconds.
    sleep : callable, optional
        How to wait (the tests record the pauses instead).

    Returns
    -------
    FileRecord
        Name, size and SHA-256 of the file now at ``folder/name``.

    Raises
    ------
    NotAtMastError, MastTokenError, ChecksumMismatchError, DownloadError
        Each names the file; nothing is left under its name or as a ``.part`` file.
    """
    name = check_product_name(name)
    token = token.strip() if token else None
    if (
        token
        and urllib.parse.urlsplit(base_url).scheme != "https"
        and (_host(base_url) not in _LOOPBACK)
    ):
        raise ParameterError(
            "base_url", f"{base_url} is not https: a MAST token is not sent over plain http"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final, part = folder / name, folder / f".{name}.part"
    url = product_url(name, base_url)
    transfer = _Transfer(name, url, _opener(base_url, token), token, timeout)
    started = time.perf_counter()
    with open(os.open(part, os.O_RDWR | os.O_CREAT, 0o644), "r+b") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{name}: another process is downloading it ({part}); wait for it"
            ) from None
        try:
            stream.truncate(0)  # a .part left by a killed process has no validator: restart
            transfer.run(stream, retries, backoff, max_backoff, sleep)
            stream.flush()
            os.fsync(stream.fileno())
            record = FileRecord.of(part)
            record = FileRecord(name, record.size, record.sha256)
            if expected is not None and compare(expected, record):
                raise ChecksumMismatchError(
                    f"{compare(expected, record)}. The file MAST serves now is not the pinned "
                    "one: MAST reprocesses its data (every few months), so it may have "
                    "replaced the file since the lock was written; the pinned bytes may no "
                    "longer be available from MAST"
                )
            os.replace(part, final)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    with contextlib.suppress(OSError):  # make the rename durable
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    log.info("%s: downloaded, %d bytes in %.1f s", name, record.size, time.perf_counter() - started)
    return record


class _Transfer:
    """The attempts at one file: resumes, restarts, retries."""

    def __init__(self, name, url, opener, token, timeout):
        self.name, self.url, self.opener = name, url, opener
        self.token, self.timeout = token, timeout
        self.validator = None  # If-Range value for the bytes already in the file

    def run(self, stream, retries, backoff, max_backoff, sleep):
        failures, furthest = 0, 0
        while True:
            try:
                self._attempt(stream)
                return
            except _RestartError as why:
                reason, delay = str(why), 0.0
                log.info("%s: %s; starting again from byte 0", self.name, why)
                stream.truncate(0)
                self.validator = None
            except _RetryError as why:
                reason, delay = str(why), why.delay
            size = stream.seek(0, os.SEEK_END)
            if size > furthest:  # further than ever: progress, not a failure
                failures, furthest = 0, size
            else:
                failures += 1
            if failures > retries:
                raise DownloadError(
                    f"{self.name}: the download from {self.url} failed {failures} times in a "
                    f"row (last: {reason}); run again to retry"
                )
            if size and not self.validator:
                reason += "; no validator (ETag, Last-Modified) to resume with: from byte 0"
                stream.truncate(0)
            if delay is None:
                delay = min(max_backoff, backoff * 2 ** max(0, failures - 1))
            if delay:
                log.warning("%s: %s; retrying in %.1f s", self.name, reason, delay)
                sleep(delay)

    def _request(self, offset):
        request = urllib.request.Request(
            self.url, headers={"Accept-Encoding": "identity", "User-Agent": _USER_AGENT}
        )
        if self.token:
            request.add_unredirected_header("Authorization", f"token {self.token}")
        if offset:
            request.add_header("Range", f"bytes={offset}-")
            request.add_header("If-Range", self.validator)
        return request

    def _open(self, offset):
        try:
            return self.opener.open(self._request(offset), timeout=self.timeout)
        except urllib.error.HTTPError as error:
            error.close()
            self._refuse(error, offset)
        except (OSError, http.client.HTTPException) as error:  # refused, reset, time-out
            raise _RetryError(f"{type(error).__name__}: {error}") from None

    def _refuse(self, error, offset):
        code = error.code
        if code == 404:
            raise NotAtMastError(
                f"{self.name}: not at MAST ({self.url} answered 404 Not Found). Check the "
                "name; association names contain the date MAST made them, and change when "
                "MAST reprocesses a program: look the current one up in the MAST portal"
            ) from None
        if code in (401, 403):
            held = "the token in " if self.token else "no token: set "
            raise MastTokenError(
                f"{self.name}: MAST refused it (HTTP {code}) with {held}{TOKEN_VARIABLE}. "
                "Proprietary data need a MAST token with access to the program, from "
                "https://auth.mast.stsci.edu/token, in the environment variable "
                f"{TOKEN_VARIABLE}"
                + (" (tokens expire: make a new one if it is old)" if self.token else "")
            ) from None
        if code == 416 and offset:
            raise _RestartError(f"the server cannot send bytes from {offset} on") from None
        if code in _RETRY_STATUS:
            after = error.headers.get("Retry-After", "") if error.headers else ""
            delay = min(60.0, float(after)) if after.isdigit() else None
            raise _RetryError(f"HTTP {code}", delay) from None
        raise DownloadError(f"{self.name}: {self.url} answered HTTP {code} {error.reason}")

    def _attempt(self, stream):
        """One GET, resuming after the bytes already in ``stream`` when it can."""
        offset = stream.seek(0, os.SEEK_END)
        with self._open(offset) as response:
            if response.status == 206:
                announced = response.headers.get("Content-Range", "")
                first, _, total = announced.partition(" ")[2].partition("/")
                if not first.startswith(f"{offset}-"):
                    raise _RestartError(f"unexpected Content-Range {announced!r}")
                expected = int(total) if total.isdigit() else None
            else:  # 200: the whole file (a first request, or the server would not resume)
                if offset:
                    log.info("%s: the server sent the whole file again", self.name)
                    stream.truncate(0)
                    stream.seek(0)
                length = response.headers.get("Content-Length", "")
                expected = int(length) if length.isdigit() else None
                etag = response.headers.get("ETag") or ""
                strong = etag if etag and not etag.startswith("W/") else None
                self.validator = strong or response.headers.get("Last-Modified")
            while True:
                try:
                    block = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise _RetryError(
                        f"connection lost after byte {stream.tell()}: {type(error).__name__}"
                    ) from None
                if not block:
                    break
                stream.write(block)
        received = stream.seek(0, os.SEEK_END)
        if expected is not None and received != expected:  # http.client stops quietly
            raise _RetryError(f"connection closed at byte {received} of {expected}")
