"""Reading coron3 associations: member order, names, and every kind of bad association."""

import json
import logging
import os

import pytest

from coronalign.errors import InputFileError
from coronalign.io.association import association_members, exposure_root, read_association

SCIENCE = ["jw01_03106_00001_nrcalong_calints.fits", "jw01_03106_00002_nrcalong_calints.fits"]
PSF = ["jw02_03106_00002_nrcalong_calints.fits", "jw02_03106_00001_nrcalong_calints.fits"]


def _members(science=SCIENCE, psf=PSF):
    members = [{"expname": name, "exptype": "science"} for name in science]
    members += [{"expname": name, "exptype": "psf"} for name in psf]
    return members


def _write(folder, content, touch=(*SCIENCE, *PSF)):
    for name in touch:
        (folder / name).write_bytes(b"")
    path = folder / "jw01-a3001_coron3_00001_asn.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _asn(members, **extra):
    return {"asn_id": "a3001", "products": [{"name": "jw01-a3001_t001_x", "members": members}]}


def test_reads_members_in_order_relative_to_the_association(tmp_path):
    members = _members()
    members.insert(1, {"expname": "jw01_ta_calints.fits", "exptype": "target_acquisition"})
    path = _write(tmp_path, _asn(members))
    asn = read_association(path)
    assert asn.asn_id == "a3001"
    assert asn.product == "jw01-a3001_t001_x"
    assert [p.name for p in asn.science] == SCIENCE
    assert [p.name for p in asn.psf] == PSF  # member order, not sorted
    assert all(p.parent == tmp_path for p in (*asn.science, *asn.psf))


def test_asn_id_from_the_product_name_when_absent(tmp_path):
    content = _asn(_members())
    del content["asn_id"]
    content["products"][0]["name"] = "jw01386-c1018_t001_nircam_f250m"
    assert read_association(_write(tmp_path, content)).asn_id == "c1018"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON file"),
        ([1, 2], "JSON object"),
        ({"asn_id": "a3001", "products": []}, "no products"),
        (_asn([]), "has no members"),
        (_asn(_members(science=[])), "no science members; calwebb_coron3 needs both"),
        (_asn(_members(psf=[])), "no psf members; calwebb_coron3 needs both"),
        (_asn([{"exptype": "psf"}]), "has no 'expname'"),
        ({"products": [{"name": "noid", "members": _members()}]}, "no 'asn_id'"),
    ],
)
def test_bad_associations_are_named_with_the_problem(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(InputFileError, match=message) as error:
        read_association(path)
    assert str(path) in str(error.value)


def test_missing_member_file_is_named(tmp_path):
    path = _write(tmp_path, _asn(_members()), touch=SCIENCE + PSF[:1])
    with pytest.raises(InputFileError, match=f"member file {PSF[1]} does not exist"):
        read_association(path)


def test_missing_association(tmp_path):
    with pytest.raises(InputFileError, match="association file not found"):
        read_association(tmp_path / "nope.json")


def test_exposure_root():
    assert exposure_root("/d/jw01_03106_00001_nrcalong_calints.fits") == "jw01_03106_00001_nrcalong"
    assert exposure_root("other.fits") == "other"


def test_member_names_without_the_files(tmp_path):
    """What has to be fetched: science and psf names in order, not target acquisition."""
    members = _members()
    members.insert(0, {"expname": "jw01_ta_cal.fits", "exptype": "target_acquisition"})
    path = _write(tmp_path, _asn(members), touch=())
    assert association_members(path) == {"science": SCIENCE, "psf": PSF}
    with pytest.raises(InputFileError, match=r"member file .* does not exist"):
        read_association(path)
    with pytest.raises(InputFileError, match="no psf members"):
        association_members(_write(tmp_path, _asn(_members(psf=[])), touch=()))


def test_exptype_with_stray_spaces_is_read_and_the_member_named(tmp_path, caplog):
    members = _members()
    members[2]["exptype"] = " psf\t"
    path = _write(tmp_path, _asn(members))
    with caplog.at_level(logging.WARNING):
        asn = read_association(path)
    assert [p.name for p in asn.psf] == PSF
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert PSF[0] in warnings[0]
    assert "stray spaces" in warnings[0]


@pytest.mark.parametrize("spelling", ["same", "./", "symlink", "hard link"])
def test_a_file_listed_as_science_and_as_psf_is_an_error(spelling, tmp_path):
    twin = {
        "same": SCIENCE[0],
        "./": f"./{SCIENCE[0]}",
        "symlink": "link_calints.fits",
        "hard link": "hard_calints.fits",
    }[spelling]
    path = _write(tmp_path, _asn(_members(psf=[PSF[0], twin])))
    if spelling == "symlink":
        (tmp_path / twin).symlink_to(SCIENCE[0])
    elif spelling == "hard link":
        os.link(tmp_path / SCIENCE[0], tmp_path / twin)
    with pytest.raises(InputFileError, match="listed both as science and as psf") as error:
        read_association(path)
    assert str(error.value).startswith(f"{path}: member file {SCIENCE[0]}")
