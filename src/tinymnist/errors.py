"""The one exception the command line turns into a one-line message and exit code 2."""


class TinyMnistError(Exception):
    """A problem with the user's input (files, arguments): shown as one line, no traceback."""
