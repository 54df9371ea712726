"""The one exception cvtrace raises at configuration time."""

from __future__ import annotations


class CvtraceConfigError(ValueError):
    """A setting has a value cvtrace cannot use.

    The message names the setting, the bad value and the fix.
    """
