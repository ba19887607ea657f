"""The one exception that carries a message for the user (CLI exit status 2)."""


class AnalogcError(Exception):
    """A problem with the user's input: bad file, bad option, model that does not fit.

    The CLI prints ``analogc: error: <message>`` and exits with status 2; anything
    else that escapes is an internal error (status 1).
    """

    exit_code = 2
