"""Python's cyclic garbage collector, paused while ``coronalign align`` starts up.

Before its first fit, an alignment imports numpy, scipy, astropy, asdf and stdatamodels,
loads the data models' schemas and asdf's extensions, and reads its inputs: hundreds of
thousands of objects, nearly all of which live until the process ends. Meanwhile Python's
collector runs again and again, each full pass going over everything made so far, and
finds almost nothing to free: about a tenth of the whole process of a small alignment.
:func:`paused` turns it off for the start-up; :func:`end_of_startup`, called when the
fits begin, moves everything made so far out of its reach (:func:`gc.freeze`) and turns
it back on, so the work itself runs with the collector as usual. Leaving the block undoes
both (a caller that calls the command line in-process gets its collector back as it was),
unless the process ends right after the block (``until_exit=True``): the frozen objects
then stay out of the collector's reach, which spares the interpreter's shutdown a
collection over all of them (about a fifth of the whole process of a small alignment;
they are freed with the process, as they would be anyway). Nothing happens if the
collector was off already: that was the caller's choice.
"""

import contextlib
import gc

__all__ = ["end_of_startup", "paused"]

_state = {"paused": False, "frozen": False}


@contextlib.contextmanager
def paused(*, until_exit=False):
    """Turn the cyclic garbage collector off in the block, until :func:`end_of_startup`.

    Parameters
    ----------
    until_exit : bool, optional
        The process ends after the block: what :func:`end_of_startup` froze stays frozen.

    Yields
    ------
    bool
        True if the collector was paused (False if it was off already, or paused by an
        enclosing block).
    """
    if not gc.isenabled() or _state["paused"] or _state["frozen"]:
        yield False
        return
    gc.disable()
    _state["paused"] = True
    try:
        yield True
    finally:
        if _state["frozen"] and not until_exit:
            gc.unfreeze()
        _state.update(paused=False, frozen=False)
        gc.enable()


def end_of_startup():
    """Where the start-up ends: freeze what was made so far and turn the collector back on.

    Does nothing outside a :func:`paused` block (or if called twice in it).
    """
    if _state["paused"]:
        gc.freeze()
        _state.update(paused=False, frozen=True)
        gc.enable()
