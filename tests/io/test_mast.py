"""Downloading from MAST (io.mast) against the local stand-in (tests/helpers/fake_mast.py)."""

import hashlib
import logging
import os

import pytest

from coronalign.errors import DownloadError, ParameterError
from coronalign.io.inputs_lock import FileRecord
from coronalign.io.mast import (
    MAST_DOWNLOAD_URL,
    ChecksumMismatchError,
    MastTokenError,
    NotAtMastError,
    download_file,
    product_url,
)
from tests.helpers.fake_mast import FakeMast

ASN = "jw01386-c1020_20220909t073458_coron3_002a_asn.json"
CAL = "jw01386002001_03108_00001_nrcalong_calints.fits"
TOKEN = "0123456789abcdef-SECRET-token"


@pytest.fixture
def products(tmp_path):
    """What the server serves: a small association and a 3 MiB exposure (several reads)."""
    root = tmp_path / "mast"
    root.mkdir()
    (root / ASN).write_bytes(b'{"asn_type": "coron3", "products": []}\n')
    (root / CAL).write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return root


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _get(mast, name, folder, **options):
    options.setdefault("sleep", lambda seconds: None)
    return download_file(name, folder, base_url=mast.download_url, **options)


def test_the_url_is_mast_s_download_service():
    assert product_url(ASN) == (
        "https://mast.stsci.edu/api/v0.1/Download/file?uri=mast:JWST/product/" + ASN
    )
    assert product_url("a b.fits", "http://127.0.0.1:1/x").endswith("product/a%20b.fits")
    assert MAST_DOWNLOAD_URL.startswith("https://")


def test_a_download_is_complete_and_leaves_nothing_else(products, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(products) as mast:
        record = _get(mast, CAL, folder)
        assert mast.count(CAL) == 1
    assert record == FileRecord.of(products / CAL)
    assert (folder / CAL).read_bytes() == (products / CAL).read_bytes()
    assert _files(folder) == [CAL]


def test_a_dropped_connection_is_resumed_where_it_stopped(products, tmp_path):
    folder, pauses = tmp_path / "inputs", []
    with FakeMast(products, drop={CAL: 1}) as mast:
        record = _get(mast, CAL, folder, sleep=pauses.append)
        first, second = mast.requests
    assert first["dropped"]
    assert "Range" not in first["headers"]
    assert second["headers"]["Range"] == f"bytes={first['sent']}-"
    assert second["headers"]["If-Range"]  # the validator of the bytes already received
    assert second["status"] == 206
    assert second["sent"] == (products / CAL).stat().st_size - first["sent"]
    assert record.sha256 == _sha(products / CAL)
    assert len(pauses) == 1
    assert _files(folder) == [CAL]


def test_without_range_support_a_dropped_download_restarts_cleanly(products, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(products, drop={CAL: 2}, ranges=False) as mast:
        record = _get(mast, CAL, folder)
        assert [r["status"] for r in mast.requests] == [200, 200, 200]
    assert record == FileRecord.of(products / CAL)


def test_without_a_validator_it_never_resumes_on_trust(products, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(products, drop={CAL: 1}, validators=False) as mast:
        record = _get(mast, CAL, folder)
        assert ["Range" in r["headers"] for r in mast.requests] == [False, False]
    assert record == FileRecord.of(products / CAL)


def test_a_file_replaced_between_attempts_is_not_spliced(products, tmp_path):
    folder, new = tmp_path / "inputs", os.urandom(2 * 1024 * 1024)

    def reprocess(name, n):
        if n == 2:  # MAST reprocessed the file between the two requests
            (products / CAL).write_bytes(new)

    with FakeMast(products, drop={CAL: 1}, on_request=reprocess) as mast:
        record = _get(mast, CAL, folder)
        assert mast.requests[-1]["status"] == 200  # If-Range did not match: the whole file
    assert record.sha256 == hashlib.sha256(new).hexdigest()


def test_server_errors_are_retried_with_growing_pauses(products, tmp_path):
    pauses = []
    with FakeMast(products, errors={ASN: [503, 500, 502]}) as mast:
        _get(mast, ASN, tmp_path, backoff=0.5, sleep=pauses.append)
        assert mast.count(ASN) == 4
    assert pauses == [0.5, 1.0, 2.0]


def test_retry_after_is_honoured(products, tmp_path):
    pauses = []
    with FakeMast(products, errors={ASN: [429]}, retry_after=7) as mast:
        _get(mast, ASN, tmp_path, sleep=pauses.append)
    assert pauses == [7.0]


def test_after_the_retries_one_error_names_the_file_and_nothing_is_left(products, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(products, drop=99, drop_after=0) as mast:
        with pytest.raises(DownloadError, match=rf"{CAL}: the download from .* failed 3 times"):
            _get(mast, CAL, folder, retries=2)
        assert mast.count(CAL) == 3
    assert _files(folder) == []


def test_progress_does_not_use_up_the_retries(products, tmp_path):
    # every response is cut after 1 MiB: four responses for the file, with one retry allowed
    with FakeMast(products, drop=99, drop_after=1024 * 1024) as mast:
        record = _get(mast, CAL, tmp_path, retries=1)
        assert mast.count(CAL) == 4
    assert record.sha256 == _sha(products / CAL)


def test_a_part_file_left_by_a_killed_run_is_not_trusted(products, tmp_path):
    (tmp_path / f".{CAL}.part").write_bytes(b"garbage from another version")
    with FakeMast(products) as mast:
        record = _get(mast, CAL, tmp_path)
        assert "Range" not in mast.requests[0]["headers"]
    assert record.sha256 == _sha(products / CAL)
    assert _files(tmp_path) == [CAL, "mast"]


def test_a_missing_file_is_not_at_mast_and_not_retried(products, tmp_path):
    missing = "jw01386002001_03108_00009_nrcalong_calints.fits"
    with FakeMast(products) as mast:
        with pytest.raises(NotAtMastError, match=rf"{missing}: not at MAST \(.*404"):
            _get(mast, missing, tmp_path / "inputs", sleep=pytest.fail)
        assert mast.count(missing) == 1
    assert _files(tmp_path / "inputs") == []


def test_the_token_is_sent_on_every_request_and_never_logged(products, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeMast(products, token=TOKEN, drop={CAL: 1}) as mast:
        _get(mast, CAL, tmp_path, token=TOKEN + "\n")
        sent = [r["headers"]["Authorization"] for r in mast.requests]
    assert sent == [f"token {TOKEN}"] * 2  # also on the resumed request
    assert caplog.records  # it did log (the retry, the result) ...
    assert TOKEN not in caplog.text  # ... never the token


def test_without_a_token_the_error_says_to_set_mast_api_token(products, tmp_path):
    with FakeMast(products, token=TOKEN) as mast:
        with pytest.raises(MastTokenError, match=r"HTTP 401\) with no token: set MAST_API_TOKEN"):
            _get(mast, ASN, tmp_path / "inputs", sleep=pytest.fail)
        assert mast.count(ASN) == 1
    assert _files(tmp_path / "inputs") == []


def test_a_refused_token_is_not_echoed(products, tmp_path):
    with FakeMast(products, token=TOKEN) as mast, pytest.raises(MastTokenError) as error:
        _get(mast, ASN, tmp_path, token="wrong-secret")
    assert "HTTP 403" in str(error.value)
    assert "the token in MAST_API_TOKEN" in str(error.value)
    assert "wrong-secret" not in str(error.value)


def test_a_token_is_never_sent_over_plain_http_to_another_host(tmp_path):
    with pytest.raises(ParameterError, match="not https"):
        download_file(CAL, tmp_path, base_url="http://mast.example.org/x", token=TOKEN)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(("host", "follows"), [("127.0.0.1", True), ("127.0.0.2", False)])
def test_the_token_follows_a_redirect_only_to_the_same_host(products, tmp_path, host, follows):
    with FakeMast(products, host=host) as target:
        with FakeMast(products, redirect={ASN: target.url(ASN)}) as front:
            _get(front, ASN, tmp_path, token=TOKEN)
            assert front.requests[0]["headers"]["Authorization"] == f"token {TOKEN}"
        sent = target.requests[0]["headers"].get("Authorization")
    assert sent == (f"token {TOKEN}" if follows else None)
    assert (tmp_path / ASN).read_bytes() == (products / ASN).read_bytes()


def test_a_file_that_is_not_the_pinned_one_is_refused_naming_both_checksums(products, tmp_path):
    pinned = FileRecord(CAL, (products / CAL).stat().st_size, "ab" * 32)
    with FakeMast(products) as mast, pytest.raises(ChecksumMismatchError) as error:
        _get(mast, CAL, tmp_path / "inputs", expected=pinned)
    message = str(error.value)
    assert message.startswith(f"{CAL}: SHA-256 {_sha(products / CAL)}")
    assert f"the lock pins {'ab' * 32}" in message
    assert "MAST reprocesses its data" in message
    assert _files(tmp_path / "inputs") == []


@pytest.mark.parametrize("name", ["", "../x.fits", "a/b.fits", ".hidden", ".."])
def test_what_is_not_a_file_name_is_refused(name, tmp_path):
    with pytest.raises(ParameterError, match="is not a product file name"):
        download_file(name, tmp_path, base_url="http://127.0.0.1:9/x")
