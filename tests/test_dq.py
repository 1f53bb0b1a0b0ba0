"""coronalign.dq: the DQ bits are JWST's, and a fit status is one word of the shift table."""

import numpy as np
import pytest

from coronalign import dq
from coronalign.dq import FitStatus
from coronalign.io.models import pixel_flags


@pytest.mark.parametrize("name", [name for name in dq.__all__ if name.isupper()])
def test_each_bit_is_the_jwst_pixel_flag_of_that_name(name):
    assert getattr(dq, name) == pixel_flags()[name]


def test_fit_statuses_are_the_words_of_the_shift_table():
    assert [str(status) for status in FitStatus] == [
        "converged", "not_converged", "no_data", "out_of_window", "outlier",
    ]  # fmt: skip
    status = np.array([FitStatus.CONVERGED, "outlier"], dtype="<U13")
    assert list(status == FitStatus.OUTLIER) == [False, True]
    assert FitStatus("no_data") is FitStatus.NO_DATA
