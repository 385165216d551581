"""Errors a user can cause. The CLI prints them as one line each and exits 1, never with a traceback."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a library's may run to many), or its type when it has none."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def escaped(text: str, most: int | None = None) -> str:
    """Text with every character that is not printable (a newline, an escape sequence, U+202E turning the
    line around) written as Python writes it (\\x1b, \\u202e): one line, inert on a terminal; cut at `most`
    characters, if given (a 10,000-character node type from the data)."""
    text = text if most is None or len(text) <= most else f"{text[: most - 1]}…"
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def listed(items: list, most: int) -> str:
    """Items for a one-line message: the first `most`, then how many more (a list may hold 50,000)."""
    more = f" and {len(items) - most:,} more" if len(items) > most else ""
    return ", ".join(map(str, items[:most])) + more


class EngineError(Exception):
    """A problem with the user's specs, data or command line, stated in one human sentence."""


class SpecError(EngineError):
    """Every problem found in a spec directory, so the user can fix them all in one go."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class InvariantViolation(EngineError):
    """An invariant that can only break through a bug in the engine (e.g. INV-3): the run stops."""


class ExprError(ValueError):
    """A spec expression the engine refuses: unparseable, too large, or outside the whitelist.

    The message is one line naming the construct (e.g. "unknown function 'read_csv'"); callers prefix the
    file, the spec and the field. A ValueError, not an EngineError: the checks collect it as a problem.
    """

    def __init__(self, message: str):
        # A quoted name may hold a newline ("a\nb"(x)); the message shows it escaped, and stays one line.
        super().__init__(escaped(message))
