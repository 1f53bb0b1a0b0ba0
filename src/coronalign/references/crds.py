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
import io
import logging
import os
import re
import time
from pathlib import Path

from coronalign.errors import InputFileError, ReferenceFileError
from coronalign.io.paths import check_input
from coronalign.references.selection import PsfmaskSelection

__all__ = [
    "SELECTION_KEYS",
    "SERVERLESS_URL",
    "crds_environment",
    "select_psfmask",
]

log = logging.getLogger(__name__)

#: Placeholder server URL that puts the crds client in server-less mode (no network at all).
SERVERLESS_URL = "https://crds-serverless-mode.stsci.edu"

#: CRDS selection parameters of PSFMASK (datamodel names) and their FITS keywords.
SELECTION_KEYS = {
    "META.INSTRUMENT.NAME": "INSTRUME",
    "META.EXPOSURE.TYPE": "EXP_TYPE",
    "META.INSTRUMENT.FILTER": "FILTER",
    "META.INSTRUMENT.CORONAGRAPH": "CORONMSK",
    "META.SUBARRAY.NAME": "SUBARRAY",
    "META.OBSERVATION.DATE": "DATE-OBS",
    "META.OBSERVATION.TIME": "TIME-OBS",
}

_OBSERVATORY = "jwst"
_REFTYPE = "psfmask"
_FAR_FUTURE = {"META.OBSERVATION.DATE": "2999-12-31", "META.OBSERVATION.TIME": "23:59:59"}
# Variables that would silently send crds to another cache or to S3 when we pin CRDS_PATH.
_CONFLICTING = re.compile(r"^CRDS_(?!PATH$)\w*(PATH|_URI)\w*$")

_lookups_in_process = 0


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
        from the cached rules, never by the server), ``CRDS_OBSERVATORY=jwst`` and
        ``CRDS_READONLY_CACHE``; ``CRDS_PATH`` and ``CRDS_CONTEXT`` when given; the retry and
        timeout settings when a server is given.
    """
    env = {
        "CRDS_SERVER_URL": server_url or SERVERLESS_URL,
        "CRDS_MODE": "local",
        "CRDS_OBSERVATORY": _OBSERVATORY,
        "CRDS_READONLY_CACHE": "1" if readonly else "0",
    }
    if path is not None:
        env["CRDS_PATH"] = str(Path(path).expanduser().resolve())
    if context is not None:
        env["CRDS_CONTEXT"] = str(context)
    if server_url:
        env["CRDS_CLIENT_RETRY_COUNT"] = "1"
        env["CRDS_CLIENT_TIMEOUT_SECONDS"] = "30"
    return env


def select_psfmask(
    crds_parameters: dict,
    *,
    override=None,
    crds_path=None,
    context=None,
    server_url=None,
    readonly=True,
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
    crds_path, context, server_url, readonly
        See :func:`crds_environment`. They are written to ``os.environ`` before crds is
        imported or used; this function is meant to run once per process.

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
    return _crds_select(parameters, crds_path, context, server_url, readonly)


# ----------------------------------------------------------------------------------------------
# CRDS lookup


def _crds_select(parameters, crds_path, context, server_url, readonly):
    """Run the CRDS lookup with a pinned environment and translate every outcome."""
    global _lookups_in_process

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
    cache = os.environ.get("CRDS_PATH")
    if not cache:
        raise ReferenceFileError(
            "no CRDS cache configured: give the cache directory (crds_path / --crds-path) or "
            "set CRDS_PATH, or give the PSFMASK file directly as an override"
        )
    if not Path(cache).is_dir():
        raise ReferenceFileError(
            f"the CRDS cache directory {cache} does not exist; fill it on a host with network "
            f"access with `CRDS_PATH={cache} crds sync --contexts <context> --fetch-references`"
        )
    context = context or os.environ.get("CRDS_CONTEXT") or None
    url = env["CRDS_SERVER_URL"]

    started = time.perf_counter()
    try:
        import crds
    except ImportError as exc:
        raise ReferenceFileError(
            f"the crds client cannot be imported ({exc}); install it (`pip install crds`) or "
            "give the PSFMASK file directly as an override"
        ) from None
    with _captured_crds_output():
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
                parameters, reftypes=[_REFTYPE], observatory=_OBSERVATORY, context=context
            )
            used_context = _context_used(context)
        except SystemExit as exc:
            raise _missing_config_error(cache, context, exc) from None
        except Exception as exc:
            raise _lookup_error(exc, parameters, cache, context, url) from None
    version = crds.__version__
    log.debug("CRDS lookup took %.3f s", time.perf_counter() - started)

    best = str(result.get(_REFTYPE, "NOT FOUND (no answer)"))
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
                    f"{_describe(parameters)}"
                ),
            )
        raise ReferenceFileError(
            f"CRDS context {used_context} gives no PSFMASK for {_describe(parameters)}: "
            f"{best[len('NOT FOUND') :].strip()}"
        )
    path = Path(best)
    if not path.is_file():  # crds should have raised; never hand on a path that is not there
        raise ReferenceFileError(_missing_file_message(path.name, cache, used_context))
    return PsfmaskSelection(
        status="selected",
        path=path,
        reference=f"crds://{path.name}",
        context=used_context,
        crds_version=version,
        reason=f"CRDS context {used_context} selects {path.name} for {_describe(parameters)}",
    )


class _Collector(logging.Handler):
    """Keeps the crds client's log records (it logs to its own 'CRDS' logger)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


@contextlib.contextmanager
def _captured_crds_output():
    """Silence the crds client's console output for the duration, forward it to DEBUG."""
    crds_logger = logging.getLogger("CRDS")
    saved = list(crds_logger.handlers)
    collector = _Collector()
    for handler in saved:
        crds_logger.removeHandler(handler)
    crds_logger.addHandler(collector)
    stream = io.StringIO()
    try:
        with contextlib.redirect_stderr(stream), contextlib.redirect_stdout(stream):
            yield collector
    finally:
        crds_logger.removeHandler(collector)
        for handler in saved:
            crds_logger.addHandler(handler)
        for message in collector.messages:
            log.debug("crds: %s", message)
        for line in stream.getvalue().splitlines():
            log.debug("crds output: %s", line)


def _context_used(context):
    """The .pmap crds actually used (cached in crds after the lookup, so no extra work)."""
    from crds.core import heavy_client

    try:
        return str(heavy_client.get_context_name(_OBSERVATORY, context))
    except (Exception, SystemExit) as exc:  # bookkeeping must never fail a lookup
        log.debug("could not read the CRDS context back: %s", exc)
        return str(context) if context else "the default context"


def _describe(parameters):
    """'EXP_TYPE=NRC_CORON, FILTER=F335M, ...' for the selection parameters present."""
    parts = []
    for key, fits_key in SELECTION_KEYS.items():
        for name in (key, fits_key):
            if name in parameters:
                parts.append(f"{fits_key}={parameters[name]}")
                break
    return ", ".join(parts) if parts else "the given parameters"


def _sync_command(cache, context):
    """The command that fills a cache on a connected host."""
    return (
        f"`CRDS_PATH={cache} crds sync --contexts {context or '<context>'} --fetch-references` "
        "on a host with network access"
    )


def _missing_file_message(name, cache, context):
    return (
        f"the CRDS cache {cache} does not hold {name}, which context {context} needs; "
        f"fill the cache by running {_sync_command(cache, context)}"
    )


def _missing_config_error(cache, context, exc):
    """crds logs FATAL and calls sys.exit when the cache configuration cannot be read."""
    cfg = Path(cache) / "config" / _OBSERVATORY / "server_config"
    if not cfg.is_file():
        problem = f"it has no {cfg.relative_to(cache)}, so it is not a complete CRDS cache"
    else:
        problem = f"its configuration {cfg} cannot be read (crds exit status {exc.code})"
    return ReferenceFileError(
        f"the CRDS cache {cache} cannot be used: {problem}; fill it by running "
        f"{_sync_command(cache, context)} (crds sync writes the configuration too)"
    )


def _lookup_error(exc, parameters, cache, context, url):
    """Translate a crds exception into one clear ReferenceFileError."""
    from crds.core import exceptions as crexc

    text = " ".join(str(exc).split())
    log.debug("crds raised %s: %s", type(exc).__name__, text)
    ctx = context or _context_used(None)
    remote = url != SERVERLESS_URL

    if isinstance(exc, crexc.ChecksumError):
        name = _quoted(text) or "a mapping"
        return ReferenceFileError(
            f"the CRDS rules file {name} in {cache}/mappings/{_OBSERVATORY} is corrupt or was "
            f"edited (its sha1sum header does not match its contents); replace it by running "
            f"{_sync_command(cache, context)}, or if you changed the rules on purpose, run "
            f"`crds checksum {name}`"
        )
    if isinstance(exc, crexc.MappingError):
        return ReferenceFileError(f"a CRDS rules file in {cache} cannot be read: {text}")
    if isinstance(exc, crexc.CrdsUnknownInstrumentError):
        return ReferenceFileError(
            f"CRDS context {ctx} has no rules for instrument "
            f"{_get(parameters, 'META.INSTRUMENT.NAME')}; PSFMASK exists for NIRCam and MIRI "
            "coronagraphy only"
        )
    if isinstance(exc, crexc.CrdsLookupError):
        return _no_match_error(text, parameters, ctx)
    if isinstance(exc, (crexc.CrdsBadReferenceError, crexc.CrdsBadRulesError)):
        return ReferenceFileError(
            f"CRDS marks the selection as scientifically invalid: {text}; use another context "
            "or give the PSFMASK file directly as an override"
        )
    if isinstance(exc, crexc.ValidationError) and "undefined" in text:
        name = _quoted(text) or "a selection parameter"
        return ReferenceFileError(
            f"the input lacks the CRDS selection parameter {name} "
            f"({SELECTION_KEYS.get(name, 'FITS keyword unknown')}), which the PSFMASK rules of "
            f"{ctx} need; fix the input's header or give the PSFMASK file as an override"
        )
    if isinstance(exc, (crexc.CrdsNetworkError, crexc.CrdsDownloadError, crexc.ServiceError)):
        missing = _what_is_missing(parameters, cache, context)
        if remote and "serverless" not in text:
            return ReferenceFileError(
                f"the CRDS server {url} could not be reached ({_short(text)}) and "
                f"{missing or 'a file'} is not in the cache {cache}; check the server URL "
                f"and the network, or fill the cache by running {_sync_command(cache, context)}"
            )
        if missing:
            return ReferenceFileError(
                f"the CRDS cache {cache} does not hold {missing}; fill it by running "
                f"{_sync_command(cache, context)}"
            )
        return ReferenceFileError(
            f"the CRDS cache {cache} is incomplete for context {ctx} ({_short(text)}); fill it "
            f"by running {_sync_command(cache, context)}"
        )
    if isinstance(exc, AssertionError):
        return ReferenceFileError(
            f"CRDS rejected the request ({text or 'assertion failed'}); the context must be a "
            "pipeline mapping name such as jwst_1234.pmap"
        )
    if isinstance(exc, crexc.CrdsError):
        return ReferenceFileError(f"CRDS could not select a PSFMASK with {ctx}: {text}")
    return ReferenceFileError(
        f"CRDS failed while selecting a PSFMASK with {ctx}: {type(exc).__name__}: {text}"
    )


def _no_match_error(text, parameters, ctx):
    """No rule matches: a parameter value the rules do not know, or a date before them all."""
    found = re.search(
        r"parameter='([^'\s\[]+)[^']*' value='([^']*)' is not in (\[.*?\]|\(.*?\))", text
    )
    if found:
        name, value, allowed = found.groups()
        if value == "UNDEFINED":
            return ReferenceFileError(
                f"the input lacks the CRDS selection parameter {name} "
                f"({SELECTION_KEYS.get(name, name)}), which the PSFMASK rules of {ctx} need "
                f"(known values: {allowed}); fix the input's header or give the PSFMASK file "
                "as an override"
            )
        return ReferenceFileError(
            f"no PSFMASK rule in CRDS context {ctx} for {name} "
            f"({SELECTION_KEYS.get(name, name)}) = {value!r}; the rules know only {allowed}. "
            f"Check the input's header, use another context, or give the PSFMASK file as an "
            f"override"
        )
    if "No match found" in text:
        latest, first_date = _probe_far_future(parameters, ctx)
        if latest is not None:
            date = _get(parameters, "META.OBSERVATION.DATE")
            obs_time = _get(parameters, "META.OBSERVATION.TIME")
            first = f" (the first one starts {first_date})" if first_date else ""
            return ReferenceFileError(
                f"the observation date {date} {obs_time} is earlier than the use-after date of "
                f"every PSFMASK rule in CRDS context {ctx} for {_describe(parameters)}{first}; "
                "check DATE-OBS/TIME-OBS, use another context, or give the PSFMASK file as an "
                "override"
            )
        return ReferenceFileError(
            f"no PSFMASK rule in CRDS context {ctx} matches the combination "
            f"{_describe(parameters)}; use another context or give the PSFMASK file as an "
            "override"
        )
    return ReferenceFileError(f"CRDS found no PSFMASK with {ctx}: {text}")


def _probe_far_future(parameters, ctx):
    """Retry the selection with a date after every rule: tells a too-early date apart.

    Returns the reference that would match and the earliest use-after of its rule, or
    (None, None) when the combination matches nothing at any date.
    """
    import crds
    from crds.core import rmap

    probe = {k: v for k, v in parameters.items() if k not in ("DATE-OBS", "TIME-OBS")}
    probe.update(_FAR_FUTURE)
    try:
        with _captured_crds_output():
            best = crds.getrecommendations(
                probe,
                reftypes=[_REFTYPE],
                observatory=_OBSERVATORY,
                context=ctx,
            )[_REFTYPE]
    except Exception:
        return None, None
    if best.upper().startswith("NOT FOUND"):
        return None, None
    first = None
    with contextlib.suppress(Exception), _captured_crds_output():
        instrument = str(_get(parameters, "META.INSTRUMENT.NAME")).upper()
        pmap = rmap.get_cached_mapping(ctx)
        tree = pmap.get_imap(instrument).get_rmap(_REFTYPE).selector.todict()
        dates = list(_useafters_leading_to(tree, best))
        first = min(dates) if dates else None
    return best, first


def _useafters_leading_to(tree, reference):
    """Use-after dates of every UseAfter branch (of a todict() tree) that names ``reference``."""
    for _key, value in tree.get("selections", []):
        if isinstance(value, dict):
            if value.get("parameters") == ("USEAFTER",):
                names = [v for _k, v in value["selections"]]
                if reference in names:
                    yield from (k[0] for k, _v in value["selections"])
            else:
                yield from _useafters_leading_to(value, reference)


def _what_is_missing(parameters, cache, context):
    """Name the mapping or reference file the cache lacks (for the error message)."""
    import crds
    from crds.core import rmap

    ctx = context or _context_used(None)
    instrument = str(_get(parameters, "META.INSTRUMENT.NAME")).upper()
    try:
        with _captured_crds_output():
            # Mappings load lazily: walk the chain this lookup needs, pmap -> imap -> rmap.
            rmap.load_mapping(ctx).get_imap(instrument).get_rmap(_REFTYPE)
    except FileNotFoundError as exc:
        return f"the CRDS rules file {Path(exc.filename).name} (part of context {ctx})"
    except Exception as exc:
        log.debug("loading %s to find the missing file: %s", ctx, exc)
    try:
        with _captured_crds_output():
            best = crds.getrecommendations(
                parameters, reftypes=[_REFTYPE], observatory=_OBSERVATORY, context=context
            )[_REFTYPE]
    except Exception as exc:
        log.debug("getrecommendations to find the missing file: %s", exc)
        return None
    return f"the PSFMASK reference {best}, which context {ctx} selects"


def _get(parameters, key):
    """A selection parameter by datamodel name or FITS keyword ('?' when absent)."""
    return parameters.get(key, parameters.get(SELECTION_KEYS.get(key, key), "?"))


def _quoted(text):
    found = re.search(r"'([^']+)'", text)
    return found.group(1) if found else None


def _short(text, limit=200):
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Loading and cut-out
