"""PSFMASK selection with the real crds client against an offline cache.

Every CRDS lookup runs in a fresh Python process (crds keeps mappings and configuration per
process), with outgoing network connections blocked in that process too. The lookups of this
module are started together by one fixture, two at a time, to keep the run short.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coronalign.errors import InputFileError, ReferenceFileError
from coronalign.references.crds import SERVERLESS_URL, crds_environment, select_psfmask
from coronalign.references.selection import PsfmaskSelection
from tests.helpers.crds_cache import CONTEXT, FRAME_SHAPE, build_crds_cache, crds_parameters
from tests.helpers.paths import REPOSITORY

# Runs in the child: block the network, run the lookup(s), print one JSON line per lookup.
_CHILD = textwrap.dedent(
    """
    import json, socket, sys, time

    def _blocked(self, address):
        if isinstance(address, (str, bytes)) or address[0] in ("127.0.0.1", "::1", "localhost"):
            return _connect(self, address)
        raise RuntimeError(f"network use in a test: {address!r}")

    _connect = socket.socket.connect
    socket.socket.connect = _blocked

    from coronalign.errors import CoronalignError
    from coronalign.references.crds import select_psfmask

    for request in json.loads(sys.argv[1]):
        started = time.perf_counter()
        try:
            sel = select_psfmask(request.pop("parameters"), **request)
            out = {"status": sel.status, "path": sel.path and str(sel.path),
                   "reference": sel.reference, "context": sel.context,
                   "crds_version": sel.crds_version, "reason": sel.reason}
        except CoronalignError as exc:
            out = {"error": type(exc).__name__, "message": str(exc)}
        out["seconds"] = time.perf_counter() - started
        print(json.dumps(out), flush=True)
    """
)


def _child_env():
    """The test environment minus anything CRDS: the code under test must set it all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPOSITORY / "src"), env.get("PYTHONPATH", "")])
    return env


def _run_child(requests):
    """Run lookups in one fresh process; returns (outcomes, stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(requests)],
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(outcomes) == len(requests), done.stdout + done.stderr
    return outcomes, done.stderr


def _snapshot(root):
    """Every path under ``root`` with its size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(root).rglob("*"))
    }


def _request(cache, case, **keys):
    return {"parameters": crds_parameters(case), "crds_path": str(cache), **keys}


@pytest.fixture(scope="module")
def lookups(caches):
    """Run every lookup of this module, each in a fresh process, two processes at a time."""
    good = caches["good"]["crds_path"]
    requests = {
        "match": _request(good, "nircam_2022", context=CONTEXT),
        "match_later": _request(good, "nircam_2024", context=CONTEXT),
        "match_miri": _request(good, "miri"),  # context from the cache's configuration
        "not_applicable": _request(good, "miri_tacq", context=CONTEXT),
        "no_match": _request(good, "bad_filter", context=CONTEXT),
        "too_early": _request(good, "too_early", context=CONTEXT),
        "no_config": _request(caches["no_config"]["crds_path"], "nircam_2022", context=CONTEXT),
        "no_reference": _request(
            caches["no_reference"]["crds_path"], "nircam_2022", context=CONTEXT
        ),
        "no_rmap": _request(caches["no_rmap"]["crds_path"], "nircam_2022", context=CONTEXT),
        "no_context": _request(good, "nircam_2022", context="jwst_0002.pmap"),
        "bad_checksum": _request(
            caches["bad_checksum"]["crds_path"], "nircam_2022", context=CONTEXT
        ),
        "bad_reference": _request(
            caches["bad_reference"]["crds_path"], "nircam_2024", context=CONTEXT
        ),
        "unreachable": _request(
            caches["no_reference"]["crds_path"],
            "nircam_2022",
            context=CONTEXT,
            server_url="https://localhost:9",  # loopback port 9 (discard): refused at once
            readonly=True,  # a server for what the cache lacks, the cache itself read-only
        ),
        "writable": _request(
            caches["writable"]["crds_path"], "nircam_2022", context=CONTEXT, readonly=False
        ),
    }
    before = {name: _snapshot(caches[name]["crds_path"]) for name in caches}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run_child, [req]) for name, req in requests.items()}
        results = {name: future.result() for name, future in futures.items()}
    after = {name: _snapshot(caches[name]["crds_path"]) for name in caches}
    outcomes = {name: result[0][0] for name, result in results.items()}
    stderr = {name: result[1] for name, result in results.items()}
    return {"outcome": outcomes, "stderr": stderr, "before": before, "after": after}


# ----------------------------------------------------------------------------------------------
# crds_environment


def test_environment_offline_by_default(tmp_path):
    env = crds_environment(tmp_path, "jwst_0042.pmap")
    assert env["CRDS_PATH"] == str(tmp_path.resolve())
    assert env["CRDS_CONTEXT"] == "jwst_0042.pmap"
    assert env["CRDS_SERVER_URL"] == SERVERLESS_URL
    assert env["CRDS_MODE"] == "local"
    assert env["CRDS_READONLY_CACHE"] == "1"
    assert "CRDS_CLIENT_TIMEOUT_SECONDS" not in env


def test_environment_with_server_retries_and_leaves_unset_values_alone():
    env = crds_environment(server_url="https://jwst-crds.stsci.edu", readonly=False)
    assert env["CRDS_SERVER_URL"] == "https://jwst-crds.stsci.edu"
    assert env["CRDS_READONLY_CACHE"] == "0"
    assert env["CRDS_CLIENT_RETRY_COUNT"] == "3"  # a network failure is tried again
    assert env["CRDS_CLIENT_RETRY_DELAY_SECONDS"] == "2"
    assert int(env["CRDS_CLIENT_TIMEOUT_SECONDS"]) <= 60
    assert "CRDS_PATH" not in env
    assert "CRDS_CONTEXT" not in env


# ----------------------------------------------------------------------------------------------
# select_psfmask: override (in process, must not touch crds)


def test_override_skips_crds(tmp_path, monkeypatch):
    mask = tmp_path / "my_mask.fits"
    mask.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "crds", None)  # any `import crds` would now fail
    selection = select_psfmask(crds_parameters("nircam_2022"), override=mask)
    assert selection == PsfmaskSelection(
        status="override",
        path=mask.resolve(),
        reference=str(mask),
        context=None,
        crds_version=None,
        reason=selection.reason,
    )
    assert str(mask) in selection.reason


@pytest.fixture
def keep_environment():
    """select_psfmask writes CRDS_* variables into os.environ; put the old ones back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("keep_environment")
def test_no_cache_configured():
    os.environ.pop("CRDS_PATH", None)
    with pytest.raises(ReferenceFileError, match="no CRDS cache configured"):
        select_psfmask(crds_parameters("nircam_2022"))


@pytest.mark.usefixtures("keep_environment")
def test_cache_directory_must_exist(tmp_path):
    with pytest.raises(ReferenceFileError, match=r"does not exist.*crds sync"):
        select_psfmask(crds_parameters("nircam_2022"), crds_path=tmp_path / "absent")


@pytest.mark.usefixtures("keep_environment")
def test_crds_not_importable(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "crds", None)
    with pytest.raises(ReferenceFileError, match="crds client cannot be imported"):
        select_psfmask(crds_parameters("nircam_2022"), crds_path=tmp_path)


def test_override_must_exist(tmp_path):
    missing = tmp_path / "nope.fits"
    with pytest.raises(InputFileError, match="override does not exist") as info:
        select_psfmask(crds_parameters("nircam_2022"), override=missing)
    assert info.value.path == str(missing)


# ----------------------------------------------------------------------------------------------
# select_psfmask: real crds lookups


def test_match_selects_file_and_records_context_and_version(lookups, caches):
    out = lookups["outcome"]["match"]
    expected = caches["good"]["references"]["jwst_nircam_psfmask_0001.fits"]
    assert out["status"] == "selected"
    assert Path(out["path"]) == expected.resolve()
    assert out["reference"] == "crds://jwst_nircam_psfmask_0001.fits"
    assert out["context"] == CONTEXT
    assert out["crds_version"] == importlib.metadata.version("crds")
    assert "F335M" in out["reason"]


def test_use_after_picks_the_latest_applicable_file(lookups):
    out = lookups["outcome"]["match_later"]
    assert out["reference"] == "crds://jwst_nircam_psfmask_0002.fits"


def test_context_defaults_to_the_cache_configuration(lookups):
    out = lookups["outcome"]["match_miri"]
    assert out["reference"] == "crds://jwst_miri_psfmask_0001.fits"
    assert out["context"] == CONTEXT


def test_not_applicable(lookups):
    out = lookups["outcome"]["not_applicable"]
    assert out["status"] == "not_applicable"
    assert out["path"] is None
    assert out["context"] == CONTEXT
    assert "N/A" in out["reason"]
    assert "EXP_TYPE=MIR_TACQ" in out["reason"]


def test_no_match_names_parameter_value_and_allowed_values(lookups):
    out = lookups["outcome"]["no_match"]
    assert out["error"] == "ReferenceFileError"
    assert "META.INSTRUMENT.FILTER (FILTER) = 'F200W'" in out["message"]
    assert "['F210M', 'F335M']" in out["message"]
    assert CONTEXT in out["message"]


def test_date_before_every_use_after(lookups):
    out = lookups["outcome"]["too_early"]
    assert out["error"] == "ReferenceFileError"
    assert "2021-06-30" in out["message"]
    assert "earlier than the use-after date" in out["message"]
    assert "2022-01-01 00:00:00" in out["message"]


def test_missing_server_config(lookups, caches):
    out = lookups["outcome"]["no_config"]
    cache = caches["no_config"]["crds_path"].resolve()
    assert out["error"] == "ReferenceFileError"
    assert "config/jwst/server_config" in out["message"]
    assert f"CRDS_PATH={cache} crds sync --contexts {CONTEXT} --fetch-references" in out["message"]


def test_reference_missing_from_cache(lookups, caches):
    out = lookups["outcome"]["no_reference"]
    cache = caches["no_reference"]["crds_path"].resolve()
    assert out["error"] == "ReferenceFileError"
    assert "jwst_nircam_psfmask_0001.fits" in out["message"]
    assert f"CRDS_PATH={cache} crds sync --contexts {CONTEXT} --fetch-references" in out["message"]


@pytest.mark.parametrize(
    ("name", "missing", "context"),
    [
        ("no_rmap", "jwst_nircam_psfmask_0001.rmap", CONTEXT),
        ("no_context", "jwst_0002.pmap", "jwst_0002.pmap"),
    ],
)
def test_mapping_missing_from_cache(lookups, name, missing, context):
    out = lookups["outcome"][name]
    assert out["error"] == "ReferenceFileError"
    assert f"does not hold the CRDS rules file {missing}" in out["message"]
    assert f"crds sync --contexts {context} --fetch-references" in out["message"]


def test_bad_mapping_checksum(lookups):
    out = lookups["outcome"]["bad_checksum"]
    assert out["error"] == "ReferenceFileError"
    assert "jwst_nircam_psfmask_0001.rmap" in out["message"]
    assert "sha1sum" in out["message"]
    assert "crds sync" in out["message"]


def test_reference_marked_scientifically_invalid(lookups):
    out = lookups["outcome"]["bad_reference"]
    assert out["error"] == "ReferenceFileError"
    assert "scientifically invalid" in out["message"]
    assert "jwst_nircam_psfmask_0002.fits" in out["message"]


def test_unreachable_server(lookups):
    out = lookups["outcome"]["unreachable"]
    assert out["error"] == "ReferenceFileError"
    assert "https://localhost:9 could not be reached" in out["message"]
    assert "jwst_nircam_psfmask_0001.fits" in out["message"]
    assert out["seconds"] < 30


def test_lookups_are_quiet(lookups):
    """crds's own log lines and tracebacks never reach the user's terminal."""
    for name, stderr in lookups["stderr"].items():
        assert "CRDS -" not in stderr, name
        assert "Traceback" not in stderr, name


def test_readonly_cache_is_not_written(lookups):
    for name in ("good", "no_config", "no_reference", "bad_checksum", "no_rmap"):
        assert lookups["after"][name] == lookups["before"][name], name


def test_snapshot_detects_writes_when_cache_is_writable(lookups):
    """Control for the test above: with readonly=False, crds does write into the cache."""
    assert lookups["outcome"]["writable"]["status"] == "selected"
    assert lookups["after"]["writable"] != lookups["before"]["writable"]


def test_lookup_with_datamodel_parameters_and_repeated_calls_in_one_process(caches, tmp_path):
    """get_crds_parameters() of a CubeModel works; a second lookup in the process is right."""
    from stdatamodels.jwst import datamodels

    model = datamodels.CubeModel((1, *FRAME_SHAPE))
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.filter = "F335M"
    model.meta.instrument.coronagraph = "MASKA335R"
    model.meta.instrument.detector = "NRCALONG"
    model.meta.exposure.type = "NRC_CORON"
    model.meta.subarray.name = "SUB320A335R"
    model.meta.observation.date = "2024-01-02"
    model.meta.observation.time = "03:04:05"
    parameters = model.get_crds_parameters()
    other = build_crds_cache(tmp_path / "other", missing_references=["jwst_miri_psfmask_0001.fits"])
    outcomes, _ = _run_child(
        [
            {"parameters": parameters, "crds_path": str(caches["good"]["crds_path"])},
            {"parameters": crds_parameters("miri"), "crds_path": str(other["crds_path"])},
            {"parameters": crds_parameters("nircam_2022"), "crds_path": str(other["crds_path"])},
        ]
    )
    assert outcomes[0]["reference"] == "crds://jwst_nircam_psfmask_0002.fits"
    assert "jwst_miri_psfmask_0001.fits" in outcomes[1]["message"]
    assert Path(outcomes[2]["path"]).is_relative_to(other["crds_path"].resolve())
