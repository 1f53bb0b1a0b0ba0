"""PSFMASK retrieval from a CRDS server into an empty cache, by the workflow's psfmask rule.

The server is :class:`tests.helpers.crds_server.CrdsTestServer`, started here on 127.0.0.1:
it serves a CRDS cache (``build_simulator_cache``) through the JSON-RPC calls and file URLs
the real crds client uses (read from crds 14's ``client/api.py``). The workflow runs as users
run it (a bare PATH, no CRDS variable inherited, the network guard refusing anything that is
not loopback). What was NOT tested against the real JWST CRDS server: see docs/crds.md.
"""

import json

import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from tests.helpers.crds_cache import SIM_CONTEXT, build_simulator_cache
from tests.helpers.crds_server import CrdsTestServer, unused_url
from tests.helpers.workflow import run_snakemake

pytestmark = pytest.mark.slow

SHAPE = (64, 64)
MASK = "jwst_nircam_psfmask_0001.fits"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A NIRCam association of 3 science exposures: 3 psfmask jobs, run in parallel."""
    folder = tmp_path_factory.mktemp("data")
    return simulation.write_association(
        folder, n_science=3, n_psf=1, nints=1, psf_nints=2, shape=SHAPE
    )


@pytest.fixture
def server(tmp_path):
    served = build_simulator_cache(tmp_path / "served", SHAPE)
    with CrdsTestServer(served["crds_path"]) as running:
        yield running


def _config(data, cache, url, **crds):
    return {
        "asn": str(data["asn"]),
        "psfmask": None,
        "crds": {"path": str(cache), "context": SIM_CONTEXT, "server_url": url, **crds},
    }


def _selections(workdir):
    return [json.loads(p.read_text()) for p in sorted(workdir.glob("results/psfmask/*.json"))]


def _leftovers(cache):
    return list(cache.rglob(".tmp_*"))


def test_a_missing_psfmask_is_downloaded_once_verified_and_recorded(
    environment, data, server, tmp_path
):
    cache = tmp_path / "empty_cache"
    workdir = tmp_path / "run"
    run = run_snakemake(environment, workdir, _config(data, cache, server.localhost_url), "-j3")
    assert run.returncode == 0, run.stderr[-3000:]
    selections = _selections(workdir)
    assert len(selections) == 3
    assert {s["reference"] for s in selections} == {f"crds://{MASK}"}
    assert {s["context"] for s in selections} == {SIM_CONTEXT}
    fetched = next(cache.rglob(MASK))
    assert fetched.read_bytes() == server.file_bytes(MASK)
    # 3 parallel jobs, one cache: every file went over the wire once.
    assert server.downloads[MASK] == 1
    assert all(count == 1 for count in server.downloads.values()), server.downloads
    assert {"get_server_info"} <= set(server.rpc_calls)
    for product in workdir.glob("results/psfalign/*_psfalign.fits"):
        with datamodels.open(product) as model:
            assert model.meta.ref_file.psfmask.name == f"crds://{MASK}"
            assert model.meta.ref_file.crds.context_used == SIM_CONTEXT
    assert not _leftovers(cache)
    # A second run finds everything in the cache.
    server.reset_stats()
    again = run_snakemake(
        environment, tmp_path / "again", _config(data, cache, server.localhost_url)
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert sum(server.downloads.values()) == 0


@pytest.mark.parametrize("fault", ["corrupt", "truncate", "drop"])
def test_a_bad_download_is_detected_removed_and_fetched_again(
    environment, data, server, tmp_path, fault
):
    cache = tmp_path / "cache"
    if fault == "corrupt":
        server.corrupt(MASK, times=1)
    else:
        server.fail(MASK, times=1, mode=fault)
    workdir = tmp_path / "run"
    config = _config(data, cache, server.localhost_url)
    run = run_snakemake(environment, workdir, config, "--until", "psfmask")
    assert run.returncode == 0, run.stderr[-3000:]
    assert server.downloads[MASK] == 2
    assert next(cache.rglob(MASK)).read_bytes() == server.file_bytes(MASK)
    assert {s["reference"] for s in _selections(workdir)} == {f"crds://{MASK}"}
    assert not _leftovers(cache)


def test_a_server_that_is_down_ends_in_one_clear_error(environment, data, tmp_path):
    cache = tmp_path / "cache"
    workdir = tmp_path / "run"
    url = unused_url()
    run = run_snakemake(environment, workdir, _config(data, cache, url), "--until", "psfmask")
    assert run.returncode != 0
    logs = list((workdir / "logs" / "psfmask").glob("*.log"))
    assert logs
    text = logs[0].read_text()
    errors = [line for line in text.splitlines() if line.startswith("coronalign: error:")]
    assert len(errors) == 1, text
    assert f"the CRDS server {url} could not be reached" in errors[0]
    assert "crds.offline: true" in errors[0]
    assert "Traceback" not in text
    assert not list(workdir.glob("results/psfalign/*"))
    assert not _leftovers(cache)


def test_offline_never_contacts_the_server(environment, data, server, tmp_path):
    """crds.offline: the server is not asked even when configured (and the cache is empty)."""
    workdir = tmp_path / "run"
    config = _config(data, tmp_path / "empty", server.localhost_url, offline=True)
    run = run_snakemake(environment, workdir, config, "--until", "psfmask")
    assert run.returncode != 0
    assert sum(server.rpc_calls.values()) == 0
    assert sum(server.downloads.values()) == 0
