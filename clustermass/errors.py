"""The cmcat error hierarchy.

Everything below the CLI raises these instead of printing. A message says what was wrong,
where (file, row, column, cluster id) and what to do about it; the CLI shows it on one line.
"""

from __future__ import annotations


class CmcatError(Exception):
    """Base class of every error cmcat reports to users.

    `exit_code` is the command's exit status: 1 for errors, 130 for an interruption (the
    shell's code for SIGINT); usage errors (2) are the CLI parser's.
    """

    exit_code: int = 1


class ConfigError(CmcatError):
    """Bad settings: an unreadable config file, an unknown key, a bad value."""


class DatabaseError(CmcatError):
    """The database cannot be reached or is not in the expected state."""


class InputError(CmcatError):
    """A user-supplied file, column or value is invalid."""


class ImageError(CmcatError):
    """Image data could not be fetched, decoded or cut out."""


class ModelError(CmcatError):
    """A model is missing, corrupt (checksum mismatch) or cannot be trained."""


class PipelineError(CmcatError):
    """A distributed run failed in a way that needs the user's attention."""


class Interrupted(CmcatError):
    """The user interrupted a run (Ctrl-C); its finished work is saved and it can be continued."""

    exit_code = 130
