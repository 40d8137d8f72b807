"""The probe package's user-input error: a file or option that a probe run cannot use."""

from __future__ import annotations


class ProbeInputError(ValueError):
    """Bad user input to a probe run (a refused file or option). ``echojepa-probe`` prints its message
    as one line and exits 2; the message names the file or option and the reason."""
