"""Why a CRDS lookup failed, said so that the user can act on it.

Each crds client failure (no matching rule, an observation before every rule, an incomplete
or corrupt cache, an unreachable server, a missing configuration) becomes one
:class:`~coronalign.errors.ReferenceFileError` whose message names the parameter, the file
or the command that fixes it (e.g. ``crds sync --contexts ... --fetch-references``).
"""

import contextlib
import logging
import re
from pathlib import Path

from coronalign.errors import ReferenceFileError
from coronalign.references.client import (
    FAR_FUTURE,
    OBSERVATORY,
    REFTYPE,
    SELECTION_KEYS,
    SERVERLESS_URL,
    captured_crds_output,
    context_used,
)

__all__ = ["describe", "lookup_error", "missing_config_error", "missing_file_message"]

log = logging.getLogger(__name__)


def describe(parameters):
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


def missing_file_message(name, cache, context):
    return (
        f"the CRDS cache {cache} does not hold {name}, which context {context} needs; "
        f"fill the cache by running {_sync_command(cache, context)}"
    )


def missing_config_error(cache, context, exc, url=SERVERLESS_URL):
    """crds logs FATAL and calls sys.exit when the cache configuration cannot be read.

    With a server, that means the server did not answer (the client then falls back on the
    cache's configuration, which a new cache does not have yet).
    """
    cfg = Path(cache) / "config" / OBSERVATORY / "server_config"
    if url != SERVERLESS_URL:
        return ReferenceFileError(
            f"the CRDS server {url} could not be reached (after the crds client's retries) "
            f"and the cache {cache} has no configuration of its own yet; check the network "
            f"and the server address, or fill the cache on a host with network access with "
            f"{_sync_command(cache, context)} and run offline (crds.offline: true)"
        )
    if not cfg.is_file():
        problem = f"it has no {cfg.relative_to(cache)}, so it is not a complete CRDS cache"
    else:
        problem = f"its configuration {cfg} cannot be read (crds exit status {exc.code})"
    return ReferenceFileError(
        f"the CRDS cache {cache} cannot be used: {problem}; fill it by running "
        f"{_sync_command(cache, context)} (crds sync writes the configuration too)"
    )


def lookup_error(exc, parameters, cache, context, url):
    """Translate a crds exception into one clear ReferenceFileError."""
    from crds.core import exceptions as crexc

    text = " ".join(str(exc).split())
    log.debug("crds raised %s: %s", type(exc).__name__, text)
    ctx = context or context_used(None)
    remote = url != SERVERLESS_URL

    if isinstance(exc, crexc.ChecksumError):
        name = _quoted(text) or "a mapping"
        return ReferenceFileError(
            f"the CRDS rules file {name} in {cache}/mappings/{OBSERVATORY} is corrupt or was "
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
                f"every PSFMASK rule in CRDS context {ctx} for {describe(parameters)}{first}; "
                "check DATE-OBS/TIME-OBS, use another context, or give the PSFMASK file as an "
                "override"
            )
        return ReferenceFileError(
            f"no PSFMASK rule in CRDS context {ctx} matches the combination "
            f"{describe(parameters)}; use another context or give the PSFMASK file as an "
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
    probe.update(FAR_FUTURE)
    try:
        with captured_crds_output():
            best = crds.getrecommendations(
                probe,
                reftypes=[REFTYPE],
                observatory=OBSERVATORY,
                context=ctx,
            )[REFTYPE]
    except Exception:
        return None, None
    if best.upper().startswith("NOT FOUND"):
        return None, None
    first = None
    with contextlib.suppress(Exception), captured_crds_output():
        instrument = str(_get(parameters, "META.INSTRUMENT.NAME")).upper()
        pmap = rmap.get_cached_mapping(ctx)
        tree = pmap.get_imap(instrument).get_rmap(REFTYPE).selector.todict()
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

    ctx = context or context_used(None)
    instrument = str(_get(parameters, "META.INSTRUMENT.NAME")).upper()
    try:
        with captured_crds_output():
            # Mappings load lazily: walk the chain this lookup needs, pmap -> imap -> rmap.
            rmap.load_mapping(ctx).get_imap(instrument).get_rmap(REFTYPE)
    except FileNotFoundError as exc:
        return f"the CRDS rules file {Path(exc.filename).name} (part of context {ctx})"
    except Exception as exc:
        log.debug("loading %s to find the missing file: %s", ctx, exc)
    try:
        with captured_crds_output():
            best = crds.getrecommendations(
                parameters, reftypes=[REFTYPE], observatory=OBSERVATORY, context=context
            )[REFTYPE]
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
