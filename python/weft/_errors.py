"""Weft's exception hierarchy. Every error raised by weft is a weft.Error."""


class Error(Exception):
    """Base class of every Weft error."""

    code = 0


class InvalidArgument(Error, ValueError, TypeError):
    """A value or type a call does not accept (also a ValueError and a TypeError)."""

    code = 1


class NotFound(Error, LookupError):
    code = 2


class AlreadyExists(Error):
    code = 3


class WouldBlock(Error, BlockingIOError):
    """A non-blocking call (timeout=0) could not proceed now."""

    code = 4


class Timeout(Error, TimeoutError):
    code = 5


class PeerDead(Error):
    """The other side died. Records it committed stay readable."""

    code = 6


class Closed(Error):
    code = 7


class TooLarge(Error, ValueError):
    code = 8


class Corrupt(Error):
    code = 9


class VersionMismatch(Error):
    code = 10


class WrongKind(Error):
    code = 11


class Busy(Error):
    code = 12


class IoError(Error, OSError):
    code = 13


class ContractMismatch(Error):
    code = 14


class InternalError(Error):
    code = 15


class PermissionDenied(Error, PermissionError):
    code = 16


class OutOfRange(Error, IndexError):
    code = 17


class Cancelled(Error):
    code = 18


__all__ = [name for name, obj in list(globals().items())
           if isinstance(obj, type) and issubclass(obj, Error)]
