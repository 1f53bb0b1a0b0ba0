"""Provenance: software versions, file digests, the record a product keeps, value digests."""

import hashlib
import os
import platform
import threading

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from coronalign.errors import InputFileError
from coronalign.io.provenance import (
    ENVIRONMENT_LOCK,
    SOFTWARE,
    data_sha256,
    environment_lock_record,
    file_sha256,
    provenance_record,
    software_versions,
)
from tests.helpers.paths import REPOSITORY


def test_software_versions_name_every_package_that_shapes_the_numbers():
    versions = software_versions()
    assert set(versions) == {"python", *SOFTWARE}
    assert versions["python"] == platform.python_version()
    assert versions["numpy"] == np.__version__
    assert all(isinstance(value, str) and value for value in versions.values())


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 22])
def test_file_sha256_is_the_digest_of_the_bytes_in_any_chunks(tmp_path, chunk_size):
    path = tmp_path / "x.bin"
    payload = bytes(range(256)) * 41
    path.write_bytes(payload)
    assert file_sha256(path, chunk_size=chunk_size) == hashlib.sha256(payload).hexdigest()


def test_the_record_keeps_paths_as_given_names_and_digests(tmp_path, monkeypatch):
    science, mask = tmp_path / "sci.fits", tmp_path / "mask.fits"
    science.write_bytes(b"science")
    mask.write_bytes(b"mask")
    monkeypatch.chdir(tmp_path)
    parameters = {"mode": "quad", "max_shift": 10.0}
    record = provenance_record(
        {"science": "sci.fits", "psfmask": mask},
        parameters,
        crds={"context": "jwst_0001.pmap"},
        digests={"psfmask": "given"},
    )
    assert record["inputs"]["science"] == {
        "path": "sci.fits",
        "name": "sci.fits",
        "size": len(b"science"),
        "sha256": hashlib.sha256(b"science").hexdigest(),
    }
    assert record["inputs"]["psfmask"]["sha256"] == "given"  # computed once, not twice
    assert record["parameters"] == parameters
    assert record["parameters"] is not parameters
    assert record["crds"] == {"context": "jwst_0001.pmap"}
    assert record["software"] == software_versions()
    assert provenance_record({}, {})["crds"] == {}


def test_data_sha256_digests_the_values_not_the_file(tmp_path, rng):
    """Two files with the same values (written at other times) have the same data digests."""
    data = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    dq = rng.integers(0, 2**32, size=data.shape, dtype=np.uint64).astype(np.uint32)
    paths = []
    for name in ("a_psfalign.fits", "b_psfalign.fits"):
        model = datamodels.QuadModel(data=data, err=data * 0 + 1, dq=dq)
        model.meta.filename = name
        model.save(tmp_path / name)
        paths.append(tmp_path / name)
    assert file_sha256(paths[0]) != file_sha256(paths[1])
    first, second = data_sha256(paths[0]), data_sha256(paths[1])
    assert set(first) == {"SCI", "ERR", "DQ"}
    assert first == second
    expected = hashlib.sha256()
    for plane in data.astype(">f4").reshape(-1, 8, 8):
        expected.update(plane.tobytes())
    assert first["SCI"] == expected.hexdigest()


def test_the_environment_lock_is_the_repository_s_hashed_lock(tmp_path):
    record = environment_lock_record()
    assert record == {
        "path": ENVIRONMENT_LOCK,
        "sha256": file_sha256(REPOSITORY / "requirements" / "lock.txt"),
    }
    assert "--hash=sha256:" in (REPOSITORY / ENVIRONMENT_LOCK).read_text()
    other = tmp_path / "lock.txt"
    other.write_text("numpy==2.0.0\n")
    assert environment_lock_record(other)["sha256"] == hashlib.sha256(b"numpy==2.0.0\n").hexdigest()
    assert environment_lock_record(tmp_path / "absent.txt")["sha256"] is None


def test_provenance_loads_without_numpy():
    """The inputs lock and the downloader use file_sha256: importing it must stay light."""
    import subprocess
    import sys

    code = (
        "import sys; import coronalign.io.provenance, coronalign.steps.download; "
        "sys.exit('numpy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_file_sha256_refuses_special_files_and_stops_when_asked(tmp_path):
    fifo = tmp_path / "pipe.fits"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="is a FIFO"):
        file_sha256(fifo)  # would block until a writer came
    path = tmp_path / "big.fits"
    path.write_bytes(b"x" * 100)
    stop = threading.Event()
    stop.set()  # the step failed: the hashing thread gives up at its next chunk
    assert file_sha256(path, chunk_size=10, stop=stop) is None
    assert file_sha256(path, stop=threading.Event()) == hashlib.sha256(b"x" * 100).hexdigest()
