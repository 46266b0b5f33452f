"""Weft's exception hierarchy. Every error raised by weft is a weft.Error.

Each class carries the code's fixed number (`code`, the C ABI's WEFT_E* value) and whether
retrying can help (`retry`: "no", "when_ready", "backoff" or "reconnect"). The classes are checked
against the native code table (weft/core/status_codes.h) at import: a code without its class, or
a class whose number differs, fails the import.
"""


class Error(Exception):
    """Base class of every Weft error."""

    code = 0
    retry = "no"


class InvalidArgument(Error, ValueError, TypeError):
    """A name, size, type or option a call does not accept (also a ValueError and a TypeError)."""

    code = 1


class NotFound(Error, LookupError):
    """No such segment, file or object."""

    code = 2


class AlreadyExists(Error):
    """Creating something that exists."""

    code = 3


class WouldBlock(Error, BlockingIOError):
    """A non-blocking call (timeout=0) could not proceed now; wait for readiness and call again."""

    code = 4
    retry = "when_ready"


class Timeout(Error, TimeoutError):
    """The deadline passed first."""

    code = 5
    retry = "backoff"


class PeerDead(Error, ConnectionError):
    """The other side died. Records it committed stay readable (also a ConnectionError)."""

    code = 6
    retry = "reconnect"


class Closed(Error, ConnectionError):
    """The other side, or this handle, closed cleanly (also a ConnectionError)."""

    code = 7


class TooLarge(Error, ValueError):
    """A record or request above a fixed limit."""

    code = 8


class Corrupt(Error):
    """Bytes that fail validation."""

    code = 9


class VersionMismatch(Error):
    """A format or protocol version this build does not read."""

    code = 10


class WrongKind(Error):
    """An object of another kind (a topic opened as a channel, say)."""

    code = 11


class Busy(Error):
    """A role or object is held by a live process; retry later."""

    code = 12
    retry = "backoff"


class IoError(Error, OSError):
    """An operating-system call failed."""

    code = 13


class ContractMismatch(Error):
    """The two sides of an RPC disagree on a contract."""

    code = 14


class InternalError(Error):
    """A bug in Weft; please report it."""

    code = 15


class PermissionDenied(Error, PermissionError):
    """Not allowed for this user or caller."""

    code = 16


class OutOfRange(Error, IndexError):
    """A position outside what exists (for example removed by retention)."""

    code = 17


class Cancelled(Error):
    """The caller cancelled the operation."""

    code = 18


class Unavailable(Error, ConnectionError):
    """A server or backend cannot be reached now; retry after a backoff."""

    code = 19
    retry = "backoff"


class Unauthenticated(Error, PermissionError):
    """The peer's identity could not be established."""

    code = 20


class ResourceExhausted(Error):
    """A quota, cap or buffer is full (clients, held bytes, a queue that refuses producers);
    retry after a backoff, or after freeing what is held."""

    code = 21
    retry = "backoff"


class Aborted(Error):
    """The operation lost a race (for example a rebalance took the shard); redo it from the start."""

    code = 22
    retry = "backoff"


class SchemaMismatch(Error):
    """A route's values and their reader or writer disagree on the schema; the message names
    both."""

    code = 23
    retry = "no"


__all__ = [name for name, obj in list(globals().items())
           if isinstance(obj, type) and issubclass(obj, Error)]

_RETRY = ("no", "when_ready", "backoff", "reconnect")


def _check_against_native():
    from . import _native
    table = _native.codes()
    here = {cls.__name__: cls for cls in (globals()[n] for n in __all__) if cls is not Error}
    problems = []
    for number, name, class_name, retry, _description in table:
        cls = here.pop(class_name, None)
        if cls is None:
            problems.append(f"code {number} ({name}) has no class {class_name}")
        elif cls.code != number or cls.retry != _RETRY[retry]:
            problems.append(f"{class_name} says code {cls.code}, retry {cls.retry!r}; "
                            f"the table says {number}, {_RETRY[retry]!r}")
    problems += [f"{n} is not in the code table" for n in here]
    if problems:
        raise ImportError("weft._errors differs from the status code table: " + "; ".join(problems))
    _native._load_errors(__import__(__name__, fromlist=["*"]))


_check_against_native()
