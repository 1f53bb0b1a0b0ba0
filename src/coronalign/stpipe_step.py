"""coronalign's alignment as an stpipe ``Step`` (optional: ``pip install coronalign[jwst]``).

The step takes what the official ``align_refs`` takes (the science ``CubeModel`` and the
``_psfstack`` ``CubeModel``, a PSFMASK from CRDS or the ``psfmask`` override) and returns
the 3D ``CubeModel`` (npsfs, ny, nx) that jwst >= 1.16's ``klip`` takes, so that::

    strun coronalign.stpipe_step.CoronalignAlignRefsStep sci_calints.fits psf_psfstack.fits

runs it and :class:`CoronalignCoron3Pipeline` runs ``calwebb_coron3`` with it in place of
``align_refs``. stpipe finds both through the ``stpipe.steps`` entry point
(:func:`get_steps`). Nothing here imports jwst or stpipe until a step class is used.
"""

import os
import tempfile
from pathlib import Path

#: The two step classes are made on first access (``__getattr__``).
__all__ = ["CoronalignAlignRefsStep", "CoronalignCoron3Pipeline", "get_steps"]  # noqa: F822

#: The official step's parameters (their names and defaults) and the coronalign ones.
SPEC = """
    median_box_length = integer(default=3)  # box size for the median filter
    bad_bits = string(default="DO_NOT_USE")  # DQ flags of bad pixels
    weighting = option("official", "linear", default="official")  # fit weight mask**2 or mask
    max_shift = float(default=10.0)  # search radius of each fit in pixels
    edges = option("wrap", "pad", default="wrap")  # circular shift or reflect-padded frame
    reference = option("each", "first", "mean", default="each")  # which integration is fitted
    blur_fwhm = float(default=None)  # Gaussian blur (pixels) of both images for the fit only
    err_shift = option("propagated", "official", default="propagated")  # ERR through the shift
    threads = integer(default=1)  # processes sharing the integrations
"""


def get_steps():
    """The steps this package gives stpipe (the ``stpipe.steps`` entry point).

    Returns
    -------
    list of tuple
        ``(class path, alias, is_pipeline)`` for each step.
    """
    return [
        ("coronalign.stpipe_step.CoronalignAlignRefsStep", "coronalign_align_refs", False),
        ("coronalign.stpipe_step.CoronalignCoron3Pipeline", "coronalign_coron3", True),
    ]


def _align_models(target, psf, psfmask_path, parameters):
    """Align ``psf`` to ``target`` in cube mode through files, and open the product."""
    from stdatamodels.jwst import datamodels

    from coronalign.steps.align_refs import align_files

    with tempfile.TemporaryDirectory(prefix="coronalign-") as work:
        work = Path(work)
        science_path, psf_path = work / "science_calints.fits", work / "psf_psfstack.fits"
        target.save(science_path)
        psf.save(psf_path)
        output = work / "aligned_psfalign.fits"
        align_files(
            science_path,
            psf_path,
            psfmask_path,
            output,
            parameters,
            psfmask_reference=os.path.basename(str(psfmask_path)),
        )
        with datamodels.open(output) as product:
            return product.copy()


def _step_classes():
    """Define the classes on first use: stpipe and jwst are imported only then."""
    from jwst.pipeline import Coron3Pipeline
    from jwst.stpipe import Step
    from stdatamodels.jwst import datamodels

    from coronalign.core.badpix import clean_data_planes
    from coronalign.steps.align_refs import zero_flags_for
    from coronalign.steps.parameters import StepParameters

    def _model(given):
        """The data model ``given`` (a model, kept, or a file name, opened)."""
        return given if isinstance(given, datamodels.JwstDataModel) else datamodels.open(given)

    class CoronalignAlignRefsStep(Step):
        """Align a PSF stack to a science exposure with coronalign (cube product)."""

        class_alias = "coronalign_align_refs"
        spec = SPEC
        reference_file_types = ["psfmask"]  # noqa: RUF012 (stpipe's class attribute)

        def process(self, target, psf):
            """Return the aligned PSF stack (CubeModel) of ``target``.

            As the official step does, the bad pixels of ``target`` are replaced in place
            (when it is a model), so that ``klip`` after it sees a clean target.
            """
            parameters = StepParameters(
                mode="cube",
                median_box_length=self.median_box_length,
                bad_bits=self.bad_bits,
                weighting=self.weighting,
                max_shift=self.max_shift,
                edges=self.edges,
                reference=self.reference,
                blur_fwhm=self.blur_fwhm,
                err_shift=self.err_shift,
                threads=self.threads,
            )
            science = _model(target)
            stack = _model(psf)
            psfmask_path = self.get_reference_file(science, "psfmask")
            self.log.info("coronalign align_refs with PSFMASK %s", psfmask_path)
            result = _align_models(science, stack, psfmask_path, parameters)
            cleaned, _ = clean_data_planes(
                science.data,
                science.dq,
                parameters.bad_bits_value,
                parameters.median_box_length,
                zero_flags=zero_flags_for(science.meta.instrument.name),
            )
            science.data[...] = cleaned
            result.meta.cal_step.align_psfs = "COMPLETE"
            return result

    class CoronalignCoron3Pipeline(Coron3Pipeline):
        """calwebb_coron3 with coronalign's alignment in place of ``align_refs``."""

        class_alias = "coronalign_coron3"
        step_defs = {**Coron3Pipeline.step_defs, "align_refs": CoronalignAlignRefsStep}  # noqa: RUF012

    return CoronalignAlignRefsStep, CoronalignCoron3Pipeline


_CLASSES = {}


def __getattr__(name):
    """Make the step classes on first access (PEP 562), so importing costs nothing."""
    if name in __all__[:2]:  # the step classes
        if not _CLASSES:
            _CLASSES.update(zip(__all__[:2], _step_classes(), strict=True))
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
