"""SHA-256 of the values of every image extension of a FITS file (products of other software).

:func:`coronalign.io.provenance.data_sha256` digests the SCI, ERR and DQ arrays of our own
products; the official jwst steps' products have other extensions (an ``_i2d`` has no DQ,
but CON, WHT and variances). Here every image extension counts, named by ``EXTNAME``; the
tables (``ASDF``, which holds the dates the file was written) do not.
"""

import hashlib

__all__ = ["image_sha256"]


def image_sha256(path):
    """SHA-256 of the values of every image extension of a FITS file.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file.

    Returns
    -------
    dict
        ``EXTNAME`` (``EXTNAME,EXTVER`` when a name repeats) to the hexadecimal digest of
        its values as stored (FITS big-endian), read plane by plane; extensions without
        data are left out.
    """
    import numpy as np
    from astropy.io import fits

    digests = {}
    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdulist:
        for index, hdu in enumerate(hdulist):
            if not hdu.is_image or hdu.data is None:
                continue
            name = hdu.name or f"HDU{index}"
            if name in digests:
                name = f"{name},{hdu.ver}"
            digest = hashlib.sha256()
            data = hdu.data
            for plane in data.reshape(-1, *data.shape[-2:]) if data.ndim >= 2 else [data]:
                digest.update(np.ascontiguousarray(plane).tobytes())
            digests[name] = digest.hexdigest()
    return digests
