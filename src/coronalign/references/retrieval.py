"""Fetching CRDS files into a writable cache: one writer at a time, every download verified.

The crds client downloads the context's rules and the selected reference by itself when
it has a server and a writable cache (``crds.getreferences``). What it does not give, and
this module adds (read from crds 14's ``client/api.py`` and ``core/cache_locker.py``):

* **One writer at a time.** The client's own lock is per file and gives up after 5 s
  (then removes the holder's lock file), so parallel jobs can download the same file
  twice. :func:`cache_lock` takes an exclusive ``flock`` on ``<cache>/.coronalign-crds.lock``
  around the whole lookup; the first job downloads, the others then find the files. (flock
  is per host: the workflow's lookup runs on the host where Snakemake runs.)
* **Verified files.** A failed, truncated or corrupt reference download is only logged by
  the client, which then returns the path anyway (and keeps a bad file under its final
  name). :func:`download_problem` checks the file against the size and SHA-1 the server
  announced; the caller removes a bad file and tries again.
* **No leftovers.** Temporary files (``.tmp_*``) of a download killed half-way stay in the
  cache forever; under the lock nobody else is downloading, so :func:`remove_leftovers`
  removes them.
* **Bounded waits.** File downloads have no timeout in the client: :data:`SOCKET_TIMEOUT`
  is set as the default for every socket.
"""

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
from pathlib import Path

__all__ = [
    "ATTEMPTS",
    "DEFAULT_CACHE",
    "SOCKET_TIMEOUT",
    "cache_lock",
    "download_problem",
    "remove_leftovers",
]

log = logging.getLogger(__name__)

#: The cache when none is configured and ``CRDS_PATH`` is unset (the jwst pipeline's default).
DEFAULT_CACHE = Path("~/crds_cache")
#: Lookups made before a download that keeps failing verification is given up.
ATTEMPTS = 3
#: Seconds a download may stall before it fails (and is retried by the client).
SOCKET_TIMEOUT = 60.0
_LOCK_NAME = ".coronalign-crds.lock"


@contextlib.contextmanager
def cache_lock(cache):
    """Hold the cache's download lock (exclusive, blocking) and a bounded socket timeout.

    Parameters
    ----------
    cache : path-like
        The CRDS cache directory (created if missing).

    Yields
    ------
    pathlib.Path
        The cache directory.
    """
    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    previous_timeout = socket.getdefaulttimeout()
    with open(cache / _LOCK_NAME, "a+") as handle:
        log.debug("waiting for the CRDS cache lock %s", cache / _LOCK_NAME)
        fcntl.flock(handle, fcntl.LOCK_EX)
        socket.setdefaulttimeout(SOCKET_TIMEOUT)
        try:
            remove_leftovers(cache)
            yield cache
        finally:
            socket.setdefaulttimeout(previous_timeout)
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_leftovers(cache):
    """Remove the crds client's temporary download files (``.tmp_*``) from a cache.

    Only call this holding :func:`cache_lock`: a temporary file is then nobody's live one.

    Parameters
    ----------
    cache : path-like
        The CRDS cache directory.

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    removed = []
    for folder in ("mappings", "references"):
        for path in sorted((Path(cache) / folder).rglob(".tmp_*")):
            if path.is_file():
                log.info("removing %s, left by an interrupted CRDS download", path)
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _sha1(path):
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_problem(path, expected):
    """What is wrong with a downloaded file, or None if it is what the server announced.

    Parameters
    ----------
    path : path-like
        The file the crds client says it downloaded.
    expected : dict or None
        The server's ``{"size": ..., "sha1sum": ...}`` for that file (from its
        ``download_metadata``); None when the server announced nothing (then only the
        file's presence is checked).

    Returns
    -------
    str or None
    """
    path = Path(path)
    if not path.is_file():
        return "the download did not arrive"
    if not expected:
        return None
    size = os.path.getsize(path)
    if str(expected.get("size", size)) != str(size):
        return f"it has {size} bytes, the server announced {expected['size']}"
    wanted = str(expected.get("sha1sum") or "")
    if wanted and wanted.lower() != "none":
        found = _sha1(path)
        if found != wanted:
            return f"its SHA-1 is {found}, the server announced {wanted}"
    return None
