"""The one exception type a user sees for their own mistakes."""


class ConfigError(ValueError):
    """A config, override or formula the user wrote cannot be used as written.

    The message names where the problem is (file and line, or the command-line
    argument), what is wrong and how to fix it. The command line prints it alone,
    without a traceback, and exits with code 2. Raised before any work starts.

    Attributes:
      problems: every problem found, one line each, already located.
    """

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after saving what it had finished.

    The message says how much is saved, where, and how to resume.

    Attributes:
      signal: the signal's number (SIGINT, SIGTERM), or None.
    """

    def __init__(self, message: str = "", signal: int | None = None):
        super().__init__(message)
        self.signal = signal


#: The signal that asked the running sweep to stop, once one has: a signal
#: handler's KeyboardInterrupt can be swallowed (raised inside a garbage
#: collector callback, it is only printed), so the sweep also looks here
#: between chunks.
_stop_requested: list[int] = []


def request_stop(number: int) -> None:
    """Notes that signal ``number`` asked the running sweep to stop."""
    _stop_requested[:] = [number]


def interrupt(number: int):
    """A signal handler's stop: notes it (in case what follows is swallowed),
    then raises KeyboardInterrupt with the signal's number as ``signal``."""
    request_stop(number)
    stopped = KeyboardInterrupt()
    stopped.signal = number
    raise stopped


def clear_stop() -> None:
    _stop_requested.clear()


def check_stop() -> None:
    """Raises the KeyboardInterrupt of a stop that was asked for and lost."""
    if _stop_requested:
        interrupt(_stop_requested[0])
