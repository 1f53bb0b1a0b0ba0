"""Single keywords of a FITS file's primary header, read without opening a data model."""

from pathlib import Path

__all__ = ["primary_header_value"]


def primary_header_value(path, keyword):
    """The value of a keyword of a FITS file's primary header, or None.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file (anything else gives None).
    keyword : str
        E.g. ``CRDS_CTX``, the CRDS context a calibrated exposure was made with.

    Returns
    -------
    str, int, float, bool or None
        None when the file is not FITS or the keyword is absent.
    """
    from astropy.io import fits

    path = Path(path)
    if path.suffix.lower() != ".fits":
        return None
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdulist:
            return hdulist[0].header.get(keyword)
    except (OSError, ValueError):
        return None
