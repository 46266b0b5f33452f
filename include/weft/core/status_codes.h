// The one table of status codes. The C++ enum (weft::Code), CodeName, CodeRetry, the checks on
// the C ABI's WEFT_E* values (src/capi) and the Python exception table (weft._native.codes(),
// checked against weft._errors at import) all come from it. Numbers are part of the C ABI and
// never change meaning; new codes take the next number.
//
// X(Enum, number, name, C constant, Python class, retry, description)
//   retry: kNo        retrying the same call cannot help
//          kWhenReady the operation may proceed later: wait for readiness (poll) and call again
//          kBackoff   transient: retry after a backoff (idempotent calls only, for a call that
//                     may have taken effect)
//          kReconnect the connection or peer is gone: reopen or reconnect, then retry
#pragma once

#define WEFT_STATUS_CODES(X)                                                                              \
  X(InvalidArgument, 1, "invalid_argument", WEFT_EINVAL, InvalidArgument, kNo,                            \
    "a name, size, type or option is not acceptable")                                                     \
  X(NotFound, 2, "not_found", WEFT_ENOTFOUND, NotFound, kNo, "no such segment, file or object")           \
  X(AlreadyExists, 3, "already_exists", WEFT_EEXIST, AlreadyExists, kNo, "creating something that exists") \
  X(WouldBlock, 4, "would_block", WEFT_EWOULDBLOCK, WouldBlock, kWhenReady,                               \
    "a non-blocking call could not proceed now")                                                          \
  X(Timeout, 5, "timeout", WEFT_ETIMEOUT, Timeout, kBackoff, "the deadline passed first")                 \
  X(PeerDead, 6, "peer_dead", WEFT_EPEERDEAD, PeerDead, kReconnect,                                       \
    "the other side died; what it committed stays readable")                                              \
  X(Closed, 7, "closed", WEFT_ECLOSED, Closed, kNo, "the other side or this handle closed cleanly")        \
  X(TooLarge, 8, "too_large", WEFT_ETOOLARGE, TooLarge, kNo, "a record or request above a fixed limit")   \
  X(Corrupt, 9, "corrupt", WEFT_ECORRUPT, Corrupt, kNo, "bytes that fail validation")                     \
  X(VersionMismatch, 10, "version_mismatch", WEFT_EVERSION, VersionMismatch, kNo,                         \
    "a format or protocol version this build does not read")                                              \
  X(WrongKind, 11, "wrong_kind", WEFT_EWRONGKIND, WrongKind, kNo, "an object of another kind")            \
  X(Busy, 12, "busy", WEFT_EBUSY, Busy, kBackoff, "a role or object is held by a live process")           \
  X(IoError, 13, "io_error", WEFT_EIO, IoError, kNo, "an operating-system call failed")                   \
  X(ContractMismatch, 14, "contract_mismatch", WEFT_ECONTRACT, ContractMismatch, kNo,                     \
    "the two sides of an RPC disagree on a contract")                                                     \
  X(Internal, 15, "internal", WEFT_EINTERNAL, InternalError, kNo, "a bug; please report it")              \
  X(PermissionDenied, 16, "permission_denied", WEFT_EPERM, PermissionDenied, kNo,                         \
    "not allowed for this user or caller")                                                                \
  X(OutOfRange, 17, "out_of_range", WEFT_ERANGE, OutOfRange, kNo,                                         \
    "a position outside what exists (for example removed by retention)")                                  \
  X(Cancelled, 18, "cancelled", WEFT_ECANCELED, Cancelled, kNo, "the caller cancelled the operation")     \
  X(Unavailable, 19, "unavailable", WEFT_EUNAVAILABLE, Unavailable, kBackoff,                             \
    "a server or backend cannot be reached now")                                                          \
  X(Unauthenticated, 20, "unauthenticated", WEFT_EUNAUTHENTICATED, Unauthenticated, kNo,                  \
    "the peer's identity could not be established")                                                       \
  X(ResourceExhausted, 21, "resource_exhausted", WEFT_ERESOURCE, ResourceExhausted, kBackoff,             \
    "a quota, cap or buffer is full (clients, held bytes, a queue that refuses producers)")               \
  X(Aborted, 22, "aborted", WEFT_EABORTED, Aborted, kBackoff,                                             \
    "the operation lost a race (for example a rebalance took the shard); redo it from the start")      \
  X(SchemaMismatch, 23, "schema_mismatch", WEFT_ESCHEMA, SchemaMismatch, kNo,                             \
    "a route's values and their reader or writer disagree on the schema")

// The largest code number in the table.
#define WEFT_STATUS_CODE_MAX 23
