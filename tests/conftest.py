"""Test-suite wide settings: no network, no stray CRDS configuration."""

import ipaddress
import os
import socket

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address):
    """True for Unix sockets and loopback addresses, the only ones tests may reach."""
    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX path
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if not _is_local(address):
        raise RuntimeError(f"tests must not use the network (attempted connection to {address!r})")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        raise RuntimeError(f"tests must not use the network (attempted connection to {address!r})")
    return _real_connect_ex(self, address)


def pytest_configure(config):
    """Block outgoing connections and keep CRDS away from any server for the whole session."""
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    for name in list(os.environ):
        if name.startswith("CRDS_"):
            del os.environ[name]
    os.environ["CRDS_SERVER_URL"] = "https://crds-serverless-mode.stsci.edu"
    os.environ["CRDS_MODE"] = "local"


@pytest.fixture
def rng():
    """A seeded random generator, so every test is repeatable."""
    import numpy as np

    return np.random.default_rng(20261124)


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """Environment for Snakemake and coronalign subprocesses: offline, no CRDS_* variable
    (see tests/helpers/workflow.py)."""
    from tests.helpers.workflow import workflow_environment

    return workflow_environment(tmp_path_factory.mktemp("bin"))
