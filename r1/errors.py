"""User-facing errors: one clear line, no traceback.

Anything the user can fix (a bad config value, a missing file, a malformed record) raises `UserError` or a
subclass. The CLI prints `error: <message>` and exits with status 2; library callers can catch them as usual.
"""


class UserError(Exception):
    """An error caused by input the user controls; the message alone must say what to fix."""


class ConfigError(UserError, ValueError):
    """An invalid configuration value. The message names the field and the rule it breaks."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read: missing files, wrong keys or shapes, corrupt data."""
