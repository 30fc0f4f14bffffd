"""The one error type of configuration mistakes (a leaf: every component raises it)."""


class ConfigError(ValueError):
    """A configuration mistake; the message is one line that names the fix."""
