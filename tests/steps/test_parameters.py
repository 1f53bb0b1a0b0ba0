"""The step parameters: parsing bad_bits, median_box_length and max_shift; StepParameters."""

import numpy as np
import pytest

from coronalign.errors import ParameterError
from coronalign.steps.parameters import (
    StepParameters,
    parse_bad_bits,
    parse_blur_fwhm,
    parse_box_length,
    parse_max_shift,
)

# --------------------------------------------------------------------------- bad_bits


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DO_NOT_USE", 1),
        ("do_not_use", 1),
        ("Do_Not_Use", 1),
        ("SATURATED", 2),
        ("OUTLIER, SATURATED", 18),
        ("outlier,saturated", 18),
        ("16, 2", 18),
        ("18", 18),
        (18, 18),
        ("DO_NOT_USE+SATURATED", 3),
        ("DO_NOT_USE + SATURATED", 3),
        ("DO_NOT_USE|SATURATED", 3),
        (" 1 | 2 , 16 + OUTLIER ", 19),
        ("2, 2", 2),
        ("NON_SCIENCE", 512),
        ("REFERENCE_PIXEL", 2**31),
        ("GOOD", 0),
        ("4294967295", 2**32 - 1),
        ("0", 0),
        ("", 0),
        ("   ", 0),
        ("none", 0),
        ("None", 0),
        ("NONE", 0),
        (None, 0),
        (0, 0),
        (np.int64(18), 18),
        (np.uint32(3), 3),
        (np.int16(16), 16),
        (np.str_("OUTLIER"), 16),
    ],
)
def test_parse_bad_bits(value, expected):
    result = parse_bad_bits(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("NOT_A_FLAG", "NOT_A_FLAG"),
        ("OUTLIER, BOGUS", "BOGUS"),
        ("DO NOT USE", "DO NOT USE"),
        ("-1", "-1"),
        (-1, "-1"),
        (np.int64(-4), "-4"),
        (2**32, "4294967296"),
        ("4294967296", "4294967296"),
        ("0x10", "0x10"),
        ("1.5", "1.5"),
        ("~4", "~4"),
        ("16,,2", "16,,2"),
        ("16,", "16,"),
        (True, "True"),
        (False, "False"),
        (3.0, "3.0"),
        ([1, 2], "[1, 2]"),
    ],
)
def test_parse_bad_bits_errors_name_token_and_list_flags(value, token):
    with pytest.raises(ParameterError) as info:
        parse_bad_bits(value)
    message = str(info.value)
    assert info.value.name == "bad_bits"
    assert message.startswith("bad_bits: ")
    assert token in message
    for name in ("DO_NOT_USE", "SATURATED", "OUTLIER", "NON_SCIENCE", "REFERENCE_PIXEL"):
        assert name in message


# --------------------------------------------------------------------------- box length


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1, 1), (3, 3), (8, 8), ("5", 5), (" 7 ", 7), ("0", 0), (np.int64(3), 3)],
)
def test_parse_box_length(value, expected):
    result = parse_box_length(value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("value", [3.0, 2.5, -1, "-1", "3.0", "abc", "", None, True, [3]])
def test_parse_box_length_errors(value):
    with pytest.raises(ParameterError) as info:
        parse_box_length(value)
    assert info.value.name == "median_box_length"
    assert repr(value) in str(info.value)
    assert ">= 0" in str(info.value)


@pytest.mark.parametrize(
    "text", ["DO_NOT_USE", "OUTLIER,SATURATED", "16+2", "18", "DO_NOT_USE|NON_SCIENCE", "GOOD"]
)
def test_bad_bits_read_as_the_official_step_reads_them(text):
    """Where astropy's interpret_bit_flags takes the text whole, with the JWST flag map (what
    the official step does), it gives the same mask."""
    from astropy.nddata.bitmask import interpret_bit_flags
    from stdatamodels.jwst.datamodels.dqflags import pixel

    assert parse_bad_bits(text) == interpret_bit_flags(text, flag_name_map=pixel)


# --------------------------------------------------------------------------- max_shift


@pytest.mark.parametrize(("value", "expected"), [(10, 10.0), ("2.5", 2.5), (0.01, 0.01)])
def test_parse_max_shift(value, expected):
    assert parse_max_shift(value) == expected


@pytest.mark.parametrize("value", [0, -1, "nan", "inf", "ten", None, True])
def test_parse_max_shift_errors(value):
    with pytest.raises(ParameterError, match=r"^max_shift: .* is not a number of pixels > 0"):
        parse_max_shift(value)


# --------------------------------------------------------------------------- StepParameters


def test_step_parameters_are_parsed_once_and_recorded_in_order():
    parameters = StepParameters(
        mode="cube", median_box_length="5", bad_bits="outlier, 2", max_shift="4", threads=2
    )
    assert parameters.median_box_length == 5
    assert parameters.bad_bits == "outlier, 2"
    assert parameters.bad_bits_value == 18
    assert parameters.max_shift == 4.0
    assert parameters.record() == {
        "mode": "cube",
        "median_box_length": 5,
        "bad_bits": "outlier, 2",
        "bad_bits_value": 18,
        "weighting": "official",
        "max_shift": 4.0,
        "edges": "wrap",
        "reference": "each",
        "blur_fwhm": "none",
        "err_shift": "propagated",
        "threads": 2,
    }
    assert list(parameters.record()) == [
        "mode", "median_box_length", "bad_bits", "bad_bits_value", "weighting", "max_shift",
        "edges", "reference", "blur_fwhm", "err_shift", "threads",
    ]  # fmt: skip
    with pytest.raises(AttributeError):
        parameters.mode = "quad"  # frozen: passed whole, never changed on the way


def test_step_parameter_defaults_and_integer_bad_bits():
    parameters = StepParameters()
    assert parameters.record() == {
        "mode": "quad",
        "median_box_length": 3,
        "bad_bits": "DO_NOT_USE",
        "bad_bits_value": 1,
        "weighting": "official",
        "max_shift": 10.0,
        "edges": "wrap",
        "reference": "each",
        "blur_fwhm": "none",
        "err_shift": "propagated",
        "threads": 1,
    }
    assert StepParameters(bad_bits=18).bad_bits == "18"


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("none", None), ("", None), (0, None), ("1.5", 1.5)]
)
def test_parse_blur_fwhm(value, expected):
    assert parse_blur_fwhm(value) == expected


@pytest.mark.parametrize("value", [-1, "nan", "inf", "wide", True])
def test_parse_blur_fwhm_errors(value):
    with pytest.raises(ParameterError, match=r"^blur_fwhm: .* is not a number of pixels >= 0"):
        parse_blur_fwhm(value)


def test_records_before_the_options_mean_the_old_behaviour():
    old = StepParameters.from_record({"mode": "quad", "weighting": "official"})
    assert (old.edges, old.reference, old.blur_fwhm, old.err_shift) == (
        "wrap",
        "each",
        None,
        "official",
    )
    new = StepParameters(edges="pad", reference="mean", blur_fwhm=2, err_shift="official")
    assert StepParameters.from_record(new.record()) == new


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"mode": "hyper"}, "mode"),
        ({"median_box_length": -1}, "median_box_length"),
        ({"bad_bits": "BOGUS"}, "bad_bits"),
        ({"threads": 0}, "threads"),
        ({"weighting": "squared"}, "weighting"),
        ({"max_shift": 0}, "max_shift"),
        ({"edges": "mirror"}, "edges"),
        ({"reference": "last"}, "reference"),
        ({"blur_fwhm": -2}, "blur_fwhm"),
        ({"err_shift": "shifted"}, "err_shift"),
        # the first invalid value, in the order mode, box, bad_bits, threads, weighting, max_shift
        ({"max_shift": 0, "weighting": "squared", "threads": 0, "bad_bits": "X"}, "bad_bits"),
        ({"max_shift": 0, "weighting": "squared", "threads": 0}, "threads"),
    ],
)
def test_step_parameters_name_the_first_invalid_value(fields, name):
    with pytest.raises(ParameterError) as info:
        StepParameters(**fields)
    assert info.value.name == name


def test_step_parameters_from_a_record():
    parameters = StepParameters(mode="cube", bad_bits="SATURATED", weighting="linear")
    assert StepParameters.from_record(parameters.record()) == parameters
    # records made before weighting, max_shift and threads existed: linear, default window
    old = StepParameters.from_record(
        {"mode": "quad", "median_box_length": 3, "bad_bits": "DO_NOT_USE", "bad_bits_value": 1}
    )
    assert (old.weighting, old.max_shift, old.threads) == ("linear", 10.0, 1)
    # a skipped product's record, as the command line gave the values (text)
    text = StepParameters.from_record({"median_box_length": "3", "max_shift": "10"})
    assert (text.median_box_length, text.max_shift) == (3, 10.0)
