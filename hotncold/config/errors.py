"""The one error type of configuration mistakes (a leaf: every component raises it), and the
check every delimiter or separator setting shares."""

from __future__ import annotations

import re


class ConfigError(ValueError):
    """A configuration mistake; the message is one line that names the fix."""


# A backslash then n, r or t that does not start a LaTeX command (\newline, \times, \right):
# Hydra's command line keeps `model.step_delimiter="\n\n"` as the four characters \ n \ n, so a
# search whose steps end at a delimiter would never see one and silently take one step.
_ESCAPE = re.compile(r"\\[nrt](?![a-z])")


def check_literal_escapes(setting: str, value: str | None) -> None:
    """Refuse a delimiter or separator holding a literal backslash escape such as `\\n`."""
    if value is None or not _ESCAPE.search(value):
        return
    raise ConfigError(
        f'{setting}="{value}" holds a literal backslash-n (or -t, -r), not a newline: the command '
        f"line does not unescape it; pass a real one, $'{setting}=\"{value}\"' in bash or "
        f'"{value}" in double quotes in a YAML file'
    )
