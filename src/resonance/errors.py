"""The project's error base: anything raised as a `ResonanceError` is a known, explained failure that the CLI
prints as one line (exit code 2) instead of a traceback."""


class ResonanceError(Exception):
    """A failure with a message that says what went wrong and how to fix it."""
