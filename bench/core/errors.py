"""The one exception type the CLI turns into a single clear line and a non-zero exit."""


class BenchError(Exception):
    """A user-facing error: bad input, missing data, an unwritable folder.

    The message must be one line that says what is wrong and what would fix it; the CLI prints it
    as ``error: <message>`` and exits with status 2, never with a traceback.
    """
