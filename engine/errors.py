"""Errors a user can cause. The CLI prints them as one line each and exits 1, never with a traceback."""


class EngineError(Exception):
    """A problem with the user's specs, data or command line, stated in one human sentence."""


class SpecError(EngineError):
    """Every problem found in a spec directory, so the user can fix them all in one go."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class InvariantViolation(EngineError):
    """An invariant that can only break through a bug in the engine (e.g. INV-3): the run stops."""
