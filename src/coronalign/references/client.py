"""The crds client as this package drives it: its constants, quieted output, the context.

Shared by the lookup (:mod:`coronalign.references.crds`) and the explanation of its failures
(:mod:`coronalign.references.diagnosis`).
"""

import contextlib
import io
import logging

__all__ = [
    "FAR_FUTURE",
    "OBSERVATORY",
    "REFTYPE",
    "SELECTION_KEYS",
    "SERVERLESS_URL",
    "captured_crds_output",
    "context_used",
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

OBSERVATORY = "jwst"
REFTYPE = "psfmask"
FAR_FUTURE = {"META.OBSERVATION.DATE": "2999-12-31", "META.OBSERVATION.TIME": "23:59:59"}


class _Collector(logging.Handler):
    """Keeps the crds client's log records (it logs to its own 'CRDS' logger)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


@contextlib.contextmanager
def captured_crds_output():
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


def context_used(context):
    """The .pmap crds actually used (cached in crds after the lookup, so no extra work)."""
    from crds.core import heavy_client

    try:
        return str(heavy_client.get_context_name(OBSERVATORY, context))
    except (Exception, SystemExit) as exc:  # bookkeeping must never fail a lookup
        log.debug("could not read the CRDS context back: %s", exc)
        return str(context) if context else "the default context"
