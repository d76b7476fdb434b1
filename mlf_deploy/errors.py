"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from a user: the message names what is wrong and what to do about it."""
