"""Errors that reach the user as one line: what is wrong and how to fix it."""


class LabError(Exception):
    """A problem the user can act on; the CLI prints ``str(err)`` alone, never a traceback."""


class TopologyError(LabError):
    """The topology file has a bad value; the message names the field and the fix."""


class ParseError(LabError):
    """A tool printed text a parser does not understand."""


class MissingToolError(LabError):
    """A host program the lab needs is not installed."""
