"""Choosing the PSFMASK reference: a user override or a CRDS lookup.

Selection
---------
:func:`select_psfmask` returns a :class:`~coronalign.references.selection.PsfmaskSelection`.
With an override it never touches
CRDS. Otherwise it asks the real ``crds`` client, with the environment pinned by
:func:`crds_environment`: a local cache (``CRDS_PATH``), a context (``CRDS_CONTEXT``), no server
by default, and a read-only cache so that many jobs can share one cache safely.

The ``crds`` client keeps process-wide state (server URL read at import time, loaded mappings,
configuration), so a lookup is meant to run **once per process** (the command line runs one
process per lookup). A repeated call in one process resets that state on a best-effort basis.

Every failure of the lookup becomes one :class:`~coronalign.errors.ReferenceFileError` whose
message says what is wrong and what to do; the client's own log lines and tracebacks are
captured and passed to this module's logger at DEBUG level.

Loading the selected mask as weights is :mod:`coronalign.references.mask`; keeping the
selection between jobs, :mod:`coronalign.references.selection`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from pathlib import Path

from coronalign.errors import InputFileError, ReferenceFileError
from coronalign.io.paths import check_input
from coronalign.references.client import (
    OBSERVATORY,
    REFTYPE,
    SELECTION_KEYS,
    SERVERLESS_URL,
    captured_crds_output,
    context_used,
)
from coronalign.references.diagnosis import (
    describe,
    lookup_error,
    missing_config_error,
    missing_file_message,
)
from coronalign.references.retrieval import ATTEMPTS, DEFAULT_CACHE, cache_lock, download_problem
from coronalign.references.selection import PsfmaskSelection

__all__ = [
    "SELECTION_KEYS",
    "SERVERLESS_URL",
    "crds_environment",
    "select_psfmask",
]

log = logging.getLogger(__name__)

# Variables that would silently send crds to another cache or to S3 when we pin CRDS_PATH.
_CONFLICTING = re.compile(r"^CRDS_(?!PATH$)\w*(PATH|_URI)\w*$")

_lookups_in_process = 0
#: The crds client's own attempts per request and download, and its delay between them (s).
CLIENT_RETRIES = 3
CLIENT_RETRY_DELAY = 2


def crds_environment(path=None, context=None, server_url=None, readonly=True) -> dict[str, str]:
    """Environment variables for a pinned, offline-capable CRDS lookup.

    Parameters
    ----------
    path : path-like, optional
        The CRDS cache directory. Sets ``CRDS_PATH`` (absolute); the cache must hold
        ``config/jwst/server_config``, ``mappings/jwst/`` and ``references/jwst/``.
        When None, ``CRDS_PATH`` is not set here (an existing value is kept).
    context : str, optional
        A pipeline context such as ``"jwst_1234.pmap"``. Sets ``CRDS_CONTEXT`` so the rules are
        pinned. When None, crds falls back to an existing ``CRDS_CONTEXT`` or to the
        operational context recorded in the cache's ``server_config``.
    server_url : str, optional
        A CRDS server. When None, ``CRDS_SERVER_URL`` is the server-less placeholder
        :data:`SERVERLESS_URL`: the client makes no network connection at all and everything
        must be in the cache. When given, crds may try the server for files missing from the
        cache; ``CRDS_CLIENT_RETRY_COUNT=1`` and ``CRDS_CLIENT_TIMEOUT_SECONDS=30`` make an
        unreachable server fail quickly instead of hanging a job.
    readonly : bool, default True
        Sets ``CRDS_READONLY_CACHE=1``: crds then never writes into the cache (no config
        update, no downloads, no ``ref_cache_subdir_mode`` file), so parallel jobs can share
        one cache. Use False only to let crds fill a cache from a server.

    Returns
    -------
    dict of str to str
        Always ``CRDS_SERVER_URL``, ``CRDS_MODE=local`` (best references are computed locally
        from the cached rules, never by the server), ``CRDSOBSERVATORY=jwst`` and
        ``CRDS_READONLY_CACHE``; ``CRDS_PATH`` and ``CRDS_CONTEXT`` when given; the retry and
        timeout settings when a server is given.
    """
    env = {
        "CRDS_SERVER_URL": server_url or SERVERLESS_URL,
        "CRDS_MODE": "local",
        "CRDSOBSERVATORY": OBSERVATORY,
        "CRDS_READONLY_CACHE": "1" if readonly else "0",
    }
    if path is not None:
        env["CRDS_PATH"] = str(Path(path).expanduser().resolve())
    if context is not None:
        env["CRDS_CONTEXT"] = str(context)
    if server_url:
        # A failed request or download is tried 3 times, 2 s apart; a server that does not
        # answer fails a request after 30 s (downloads: see retrieval.SOCKET_TIMEOUT).
        env["CRDS_CLIENT_RETRY_COUNT"] = str(CLIENT_RETRIES)
        env["CRDS_CLIENT_RETRY_DELAY_SECONDS"] = str(CLIENT_RETRY_DELAY)
        env["CRDS_CLIENT_TIMEOUT_SECONDS"] = "30"
    return env


def select_psfmask(
    crds_parameters: dict,
    *,
    override=None,
    crds_path=None,
    context=None,
    server_url=None,
    readonly=None,
) -> PsfmaskSelection:
    """Choose the PSFMASK for a data set: the user's override, or the CRDS best reference.

    Parameters
    ----------
    crds_parameters : dict
        Selection parameters, datamodel style (``model.get_crds_parameters()``, keys such as
        ``META.INSTRUMENT.FILTER``) or FITS keywords (``FILTER``, ``CORONMSK``, ``DATE-OBS``...).
        Must include the instrument name.
    override : path-like, optional
        A PSFMASK file chosen by the user; CRDS is then not consulted.
    crds_path, context, server_url
        See :func:`crds_environment`. They are written to ``os.environ`` before crds is
        imported or used; this function is meant to run once per process.
    readonly : bool, optional
        Open the cache read-only. Default: read-only without a server (offline lookup), and
        writable with one: the context's rules and the selected mask are then fetched into
        the cache (default ``~/crds_cache`` when neither ``crds_path`` nor ``CRDS_PATH`` is
        set), under the cache's lock, and verified (see
        :mod:`coronalign.references.retrieval`).

    Returns
    -------
    PsfmaskSelection

    Raises
    ------
    InputFileError
        The override file does not exist.
    ReferenceFileError
        CRDS cannot select or provide a PSFMASK (no matching rule, observation earlier than
        every rule, incomplete or corrupt cache, unreachable server...). The message says
        what to do.
    """
    if override is not None:
        path = Path(override)
        if not path.exists():
            raise InputFileError(
                path,
                "the PSFMASK override does not exist; give an existing mask file, or no "
                "override to let CRDS select one",
            )
        check_input(path, "PSFMASK override")
        return PsfmaskSelection(
            status="override",
            path=path.resolve(),
            reference=str(override),
            context=None,
            crds_version=None,
            reason=f"PSFMASK given by the user: {override} (CRDS not consulted)",
        )
    # crds upper-cases keys itself; do it here too so messages find the values
    # (stdatamodels' get_crds_parameters() gives lower-case 'meta.instrument.name' keys).
    parameters = {str(key).upper(): value for key, value in dict(crds_parameters).items()}
    if readonly is None:
        readonly = not server_url
    return _crds_select(parameters, crds_path, context, server_url, readonly)


# ----------------------------------------------------------------------------------------------
# CRDS lookup


def _crds_select(parameters, crds_path, context, server_url, readonly):
    """Run the CRDS lookup with a pinned environment and translate every outcome.

    With a server and a writable cache (retrieval), the lookup holds the cache's lock and
    every downloaded reference is verified; a bad one is removed and fetched again.
    """
    env = crds_environment(crds_path, context, server_url, readonly)
    if crds_path is not None:
        # crds itself stores "none" in CRDS_*_URI once read; only real settings conflict.
        conflicting = [
            name
            for name, value in os.environ.items()
            if _CONFLICTING.match(name) and value.lower() != "none"
        ]
        for name in conflicting:
            log.debug("unsetting %s=%s (it would override CRDS_PATH)", name, os.environ[name])
            del os.environ[name]
    os.environ.update(env)
    if not readonly and not os.environ.get("CRDS_PATH"):
        os.environ["CRDS_PATH"] = str(DEFAULT_CACHE.expanduser().resolve())
    cache = os.environ.get("CRDS_PATH")
    if not cache:
        raise ReferenceFileError(
            "no CRDS cache configured: give the cache directory (crds_path / --crds-path) or "
            "set CRDS_PATH, or give the PSFMASK file directly as an override"
        )
    if readonly and not Path(cache).is_dir():
        raise ReferenceFileError(
            f"the CRDS cache directory {cache} does not exist; fill it on a host with network "
            f"access with `CRDS_PATH={cache} crds sync --contexts <context> --fetch-references`"
        )
    context = context or os.environ.get("CRDS_CONTEXT") or None
    url = env["CRDS_SERVER_URL"]
    try:
        import crds
    except ImportError as exc:
        raise ReferenceFileError(
            f"the crds client cannot be imported ({exc}); install it (`pip install crds`) or "
            "give the PSFMASK file directly as an override"
        ) from None
    with contextlib.nullcontext() if readonly else cache_lock(cache):
        for attempt in range(1, ATTEMPTS + 1):
            best, used_context, announced = _lookup(parameters, cache, context, url)
            if best.upper().startswith("NOT FOUND") or readonly:
                break
            problem = download_problem(best, announced(Path(best).name))
            if problem is None:
                break
            Path(best).unlink(missing_ok=True)
            log.warning(
                "%s from %s: %s (attempt %d of %d)",
                Path(best).name,
                url,
                problem,
                attempt,
                ATTEMPTS,
            )
            if attempt == ATTEMPTS:
                raise ReferenceFileError(
                    f"could not fetch {Path(best).name} from the CRDS server {url} into {cache}: "
                    f"{problem} (after {ATTEMPTS} attempts); check the network and the server, "
                    "or run offline (crds.offline: true) with a cache filled by `crds sync`"
                )
    version = crds.__version__

    if best.upper().startswith("NOT FOUND"):
        if "n/a" in best.lower():
            return PsfmaskSelection(
                status="not_applicable",
                path=None,
                reference="N/A",
                context=used_context,
                crds_version=version,
                reason=(
                    f"CRDS context {used_context} says PSFMASK is not applicable (N/A) for "
                    f"{describe(parameters)}"
                ),
            )
        raise ReferenceFileError(
            f"CRDS context {used_context} gives no PSFMASK for {describe(parameters)}: "
            f"{best[len('NOT FOUND') :].strip()}"
        )
    path = Path(best)
    if not path.is_file():  # crds should have raised; never hand on a path that is not there
        raise ReferenceFileError(missing_file_message(path.name, cache, used_context))
    return PsfmaskSelection(
        status="selected",
        path=path,
        reference=f"crds://{path.name}",
        context=used_context,
        crds_version=version,
        reason=f"CRDS context {used_context} selects {path.name} for {describe(parameters)}",
    )


def _lookup(parameters, cache, context, url):
    """One ``crds.getreferences`` of the PSFMASK, every failure translated.

    Returns the best reference (a path, or crds's ``NOT FOUND ...`` text), the context used
    and a function giving the server's announced size and SHA-1 of a file (None offline).
    """
    global _lookups_in_process

    import crds

    started = time.perf_counter()
    with captured_crds_output():
        from crds.client import api
        from crds.core import config as crds_config
        from crds.core import utils as crds_utils

        api.set_crds_server(url)  # the URL is read at import time; make sure it is ours
        if _lookups_in_process:
            log.debug("repeated CRDS lookup in one process: clearing crds caches")
            crds_utils.clear_function_caches()
            crds_config.CRDS_REF_SUBDIR_MODE = "None"
        _lookups_in_process += 1
        try:
            result = crds.getreferences(
                parameters, reftypes=[REFTYPE], observatory=OBSERVATORY, context=context
            )
            used_context = context_used(context)
        except SystemExit as exc:
            raise missing_config_error(cache, context, exc, url) from None
        except Exception as exc:
            raise lookup_error(exc, parameters, cache, context, url) from None
    log.debug("CRDS lookup took %.3f s", time.perf_counter() - started)

    def announced(name):
        if "serverless" in url:
            return None
        with captured_crds_output():
            try:
                return api.get_download_metadata().get(name)
            except Exception as exc:
                log.debug("no download metadata for %s: %s", name, exc)
                return None

    return str(result.get(REFTYPE, "NOT FOUND (no answer)")), used_context, announced
