"""The one exception type the command line turns into a one-line message and a non-zero exit.

A library message names an option by its own name (the field of the options dataclass or the
keyword of the function: ``batch_size``), never by a command-line flag: it marks the name with
:func:`option`. ``str(error)`` reads in the library's terms (``batch_size=0 must be ...``); the
command layer, which alone knows each option's flag, renders the same message with
:meth:`UserError.render` (``--batch-size 0 must be ...``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# An option mark: the name, and optionally the value given, between two unit separators (a
# character no message text holds), so a message can still hold braces and quotes of its own.
_MARK = "\x1f"
_MARKED = re.compile(f"{_MARK}(-*[A-Za-z_][A-Za-z0-9_-]*)(?:=([^{_MARK}]*))?{_MARK}")


def option(name: str, value=None) -> str:
    """``name`` (an option of the library call), with the ``value`` given if any, marked for
    :class:`UserError` to render in the library's or the command line's terms."""
    shown = "" if value is None else f"={value}"
    return f"{_MARK}{name}{shown}{_MARK}"


def as_keyword(name: str, value: str | None) -> str:
    """The library's rendering of an option: ``name`` or ``name=value``."""
    return name if value is None else f"{name}={value}"


class UserError(Exception):
    """Bad input from a user: the message names what is wrong and what to do about it.

    Options named with :func:`option` read as keywords in ``str(error)`` and as whatever the
    caller's ``spell(name, value)`` makes of them in :meth:`render` (the command line: flags)."""

    def __init__(self, message: str = ""):
        self.template = str(message)
        super().__init__(self.render())

    @property
    def options(self) -> list[str]:
        """The options the message names, in order."""
        return [m.group(1) for m in _MARKED.finditer(self.template)]

    def __reduce__(self):  # another process (a worker) gets the marks, not their rendering
        return type(self), (self.template,)

    def render(self, spell: Callable[[str, str | None], str] = as_keyword) -> str:
        return _MARKED.sub(lambda m: spell(m.group(1), m.group(2)), self.template)
