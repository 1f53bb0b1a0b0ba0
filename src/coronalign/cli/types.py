"""Argument types shared by the commands' parsers."""

import argparse

__all__ = ["positive_int"]


def positive_int(text):
    """A whole number >= 1, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value
