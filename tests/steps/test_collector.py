"""The garbage collector is paused for the start-up only, and given back as it was."""

import gc

import pytest

from coronalign.steps import collector


@pytest.fixture
def collecting():
    """The collector on, nothing frozen; put back afterwards."""
    was_enabled = gc.isenabled()
    gc.unfreeze()
    gc.enable()
    yield
    gc.unfreeze()
    if not was_enabled:
        gc.disable()


def test_paused_until_the_end_of_startup(collecting):
    with collector.paused() as paused:
        assert paused is True
        assert not gc.isenabled()
        collector.end_of_startup()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        collector.end_of_startup()  # a second call changes nothing
        assert gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_given_back_on_an_error_before_the_end_of_startup(collecting):
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("an input is bad")
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_frozen_until_exit_when_the_process_ends(collecting):
    with collector.paused(until_exit=True):
        collector.end_of_startup()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_nothing_when_the_collector_was_off(collecting):
    gc.disable()
    with collector.paused() as paused:
        assert paused is False
        collector.end_of_startup()
        assert not gc.isenabled()
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_end_of_startup_outside_a_block_does_nothing(collecting):
    collector.end_of_startup()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_an_in_process_alignment_gives_the_collector_back(aligned, collecting):
    from coronalign.cli import main

    product = aligned["product"].parent / "again_psfalign.fits"
    args = [str(aligned["science"]), str(aligned["psfstack"]), "--psfmask", str(aligned["psfmask"])]
    assert main(["-q", "align", *args, "-o", str(product)]) == 0
    assert product.exists()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
