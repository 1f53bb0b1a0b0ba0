"""``coronalign download``: inputs from MAST by file name, pinned by an inputs lock."""

__all__ = ["add_download"]


def add_download(subparsers):
    parser = subparsers.add_parser(
        "download",
        help="download inputs from MAST by file name, pinned by an inputs lock",
        description=(
            "Download MAST products by file name into a folder: associations (*_asn.json), "
            "then the science and psf members each names, and other files (e.g. _calints). "
            "Files already in the folder are not downloaded again. The inputs lock (name, "
            "size, SHA-256 of every file) is written on the first download and checked on "
            "every later one: a file that differs stops the command, naming it and both "
            "checksums. A token in MAST_API_TOKEN is sent for proprietary data (never logged). "
            "With --check, nothing is downloaded: the folder is checked against the lock."
        ),
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="MAST product file names (added to --config's)"
    )
    parser.add_argument(
        "--config",
        help="a workflow configuration: its mast: section gives the names, folder, lock and "
        "base URL (the options below override them)",
    )
    parser.add_argument("--to", dest="folder", help="folder to download into (results/inputs)")
    parser.add_argument(
        "--lock",
        help="the inputs lock (default: inputs.lock.json in the folder), or a manifest that "
        "embeds one (then only read)",
    )
    parser.add_argument(
        "--base-url", help="the download service (default: MAST's; for a test server)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="failed attempts in a row allowed per file after the first (default 5)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="download nothing: check every file the lock pins (no network)",
    )
    parser.add_argument(
        "--repin",
        nargs="+",
        metavar="FILE",
        default=(),
        help="deliberately re-pin these pinned files: fetch them again and replace their "
        "lock entries (prints file, old and new SHA-256)",
    )
    parser.set_defaults(handler=_run_download)


def _download_settings(args):
    from coronalign.steps.download import mast_settings

    settings = mast_settings(config=args.config)
    if not args.config:  # the command line's own default: the lock beside the files
        settings["lock"] = None
    for name in args.names:
        key = "associations" if name.endswith("_asn.json") else "exposures"
        settings[key] = [*settings[key], name]
    for key in ("folder", "lock", "base_url"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


def _run_download(args):
    from coronalign.errors import ParameterError
    from coronalign.steps.download import (
        calibration_contexts,
        download_inputs,
        lock_path,
        verify_inputs_lock,
    )

    settings = _download_settings(args)
    if args.check:
        lock = lock_path(settings["folder"], settings["lock"])
        # the folder given, else the one the lock records
        folder = settings["folder"] if args.folder or args.config else None
        paths = verify_inputs_lock(lock, folder)
        print(f"{len(paths)} file(s) match {lock}")
    else:
        if not settings["associations"] and not settings["exposures"]:
            raise ParameterError("NAME", "give MAST file names, or --config with a mast: section")
        paths = download_inputs(**settings, retries=args.retries, repin=args.repin)
        for name, (old, new) in paths.repinned.items():
            print(f"re-pinned {name}: {old} -> {new}" + (" (unchanged)" if old == new else ""))
        for path in paths:
            print(path)
        print(
            f"{len(paths)} file(s) in {settings['folder']}: {len(paths.downloaded)} downloaded, "
            f"{len(paths.present)} already there; pinned by {paths.lock}"
            + (f" ({len(paths.added)} new)" if paths.added else "")
        )
    for context, names in calibration_contexts(paths).items():
        print(f"CRDS_CTX {context}: {len(names)} file(s) (calibrated with this CRDS context)")
