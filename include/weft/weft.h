/* weft.h: the C ABI of Weft (frozen, versioned).
 *
 * Conventions:
 *  - Every function returns an int: WEFT_OK (0) or a positive WEFT_E* code. The numbers are
 *    fixed forever and match weft::Code in C++.
 *  - On failure, weft_last_error_message() returns a description for the calling thread,
 *    valid until that thread's next Weft call; after a success it returns "".
 *  - Handles are opaque (weft_<thing>_t*). A handle is used by one thread at a time.
 *  - Timeouts are in nanoseconds: 0 does not wait, a negative value waits without limit.
 *  - Borrowed pointers (reserve, read) stay valid until the matching commit or release, or
 *    until the handle is closed, whichever comes first.
 *  - Structs passed out start with a size field set by the caller, so they can grow.
 *  - Nothing here throws or aborts on bad input.
 */
#ifndef WEFT_WEFT_H_
#define WEFT_WEFT_H_

#include <stddef.h>
#include <stdint.h>

#if defined(WEFT_BUILDING_CAPI)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_ABI_VERSION 1

enum {
  WEFT_OK = 0,
  WEFT_EINVAL = 1,         /* a name, size or option is not acceptable */
  WEFT_ENOTFOUND = 2,      /* no such object */
  WEFT_EEXIST = 3,         /* already exists */
  WEFT_EWOULDBLOCK = 4,    /* a non-blocking call could not proceed */
  WEFT_ETIMEOUT = 5,       /* the timeout passed first */
  WEFT_EPEERDEAD = 6,      /* the peer died; committed data stays readable */
  WEFT_ECLOSED = 7,        /* the peer or this handle closed */
  WEFT_ETOOLARGE = 8,      /* above a fixed limit */
  WEFT_ECORRUPT = 9,       /* bytes that fail validation */
  WEFT_EVERSION = 10,      /* a format version this build does not read */
  WEFT_EWRONGKIND = 11,    /* an object of another kind */
  WEFT_EBUSY = 12,         /* a role is held by a live process */
  WEFT_EIO = 13,           /* an operating-system call failed */
  WEFT_ECONTRACT = 14,     /* RPC contract mismatch */
  WEFT_EINTERNAL = 15,     /* a bug */
  WEFT_EPERM = 16,         /* not permitted */
  WEFT_ERANGE = 17,        /* a position outside what exists (e.g. removed by retention) */
  WEFT_ECANCELED = 18,     /* the caller cancelled the operation */
  WEFT_EUNAVAILABLE = 19,  /* a server or backend cannot be reached now */
  WEFT_EUNAUTHENTICATED = 20, /* the peer's identity could not be established */
  WEFT_ERESOURCE = 21,     /* a quota, cap or buffer is full */
  WEFT_EABORTED = 22,      /* the operation lost a race; redo it from the start */
  WEFT_ESCHEMA = 23        /* a route's values and their reader or writer disagree on the schema */
};

/* Whether retrying can help, for weft_error_retry. */
enum {
  WEFT_RETRY_NO = 0,         /* the same call cannot succeed */
  WEFT_RETRY_WHEN_READY = 1, /* wait for readiness (poll), then call again */
  WEFT_RETRY_BACKOFF = 2,    /* transient: retry after a backoff (idempotent calls only) */
  WEFT_RETRY_RECONNECT = 3   /* the peer or connection is gone: reopen, then retry */
};

/* The ABI version this library implements (WEFT_ABI_VERSION when built). */
WEFT_API uint32_t weft_abi_version(void);
/* The calling thread's last error, as text ("" if none). */
WEFT_API const char* weft_last_error_message(void);
/* The name of an error code ("peer_dead"). */
WEFT_API const char* weft_error_name(int code);
/* Whether retrying after `code` can help: WEFT_RETRY_*. */
WEFT_API int weft_error_retry(int code);

/* ---- channel: one producer, one consumer, variable-size records in shared memory ---- */

typedef struct weft_channel weft_channel_t;

enum { WEFT_ROLE_PRODUCER = 0, WEFT_ROLE_CONSUMER = 1 };
/* What a producer does when its consumer is full; one vocabulary for channels, topics and the
   bus. FAIL refuses at once with WEFT_ERESOURCE (nothing is written). */
enum { WEFT_OVERFLOW_BLOCK = 0, WEFT_OVERFLOW_DROP_NEWEST = 1, WEFT_OVERFLOW_DROP_OLDEST = 2, WEFT_OVERFLOW_FAIL = 3 };

typedef struct weft_channel_options {
  uint32_t struct_size; /* sizeof(weft_channel_options_t) */
  uint32_t role;        /* the creator's role: WEFT_ROLE_* */
  uint64_t capacity;    /* ring bytes */
  uint64_t max_record;  /* 0: the most that fits */
  uint32_t overflow;    /* WEFT_OVERFLOW_* */
  uint32_t reserved;
  int64_t spin_ns;      /* spin before sleeping; -1 spins until the timeout, 0 sleeps at once */
} weft_channel_options_t;

typedef struct weft_channel_stats {
  uint32_t struct_size; /* set by the caller: sizeof(weft_channel_stats_t) */
  uint32_t reserved;
  uint64_t records_in, bytes_in, records_out, bytes_out;
  uint64_t producer_spins, producer_sleeps, producer_wakes;
  uint64_t consumer_spins, consumer_sleeps, consumer_wakes;
  uint64_t drops_newest, drops_oldest;
  uint64_t capacity, max_record, write_pos, read_pos;
} weft_channel_stats_t;

/* Fills `opt` with the defaults (1 MiB ring, producer, blocking, adaptive spin). */
WEFT_API void weft_channel_options_init(weft_channel_options_t* opt);
/* Creates channel `name` and attaches in opt->role. */
WEFT_API int weft_channel_create(const char* name, const weft_channel_options_t* opt,
                                 weft_channel_t** out);
/* Opens channel `name` and attaches as `role`; takes over the role of a dead peer. */
WEFT_API int weft_channel_open(const char* name, uint32_t role, weft_channel_t** out);
/* Detaches and frees the handle. NULL is ignored. */
WEFT_API int weft_channel_close(weft_channel_t* ch);
/* Removes the name; attached handles keep working. */
WEFT_API int weft_channel_unlink(const char* name);

/* Producer: borrows n writable bytes in the ring, valid until commit. */
WEFT_API int weft_channel_reserve(weft_channel_t* ch, size_t n, int64_t timeout_ns, void** data);
/* Producer: commits `actual` bytes of the reservation and publishes. */
WEFT_API int weft_channel_commit(weft_channel_t* ch, size_t actual);
/* Producer: commits without publishing; weft_channel_flush publishes. */
WEFT_API int weft_channel_commit_batched(weft_channel_t* ch, size_t actual);
WEFT_API int weft_channel_flush(weft_channel_t* ch);
/* Producer: copies one record in. */
WEFT_API int weft_channel_write(weft_channel_t* ch, const void* data, size_t n, int64_t timeout_ns);

/* Consumer: borrows the next record, valid until released. */
WEFT_API int weft_channel_read(weft_channel_t* ch, int64_t timeout_ns, const void** data,
                               size_t* n);
/* Consumer: releases the `count` oldest borrowed records. */
WEFT_API int weft_channel_release(weft_channel_t* ch, size_t count);
/* Consumer: copies the next record into buf (cap bytes) and releases it; *n gets its size.
   WEFT_ETOOLARGE keeps the record and sets *n to the size needed. */
WEFT_API int weft_channel_read_into(weft_channel_t* ch, void* buf, size_t cap, size_t* n,
                                    int64_t timeout_ns);

/* A descriptor that turns readable when this side may proceed; armed by a call with timeout 0
   that returned WEFT_EWOULDBLOCK. Owned by the handle. */
WEFT_API int weft_channel_wait_fd(weft_channel_t* ch, int* fd);
/* Shared counters and cursors. */
WEFT_API int weft_channel_stats(weft_channel_t* ch, weft_channel_stats_t* out);

/* ---- pool: blocks of shared memory for many processes, reclaimed when a process dies ---- */

typedef struct weft_pool weft_pool_t;

typedef struct weft_pool_options {
  uint32_t struct_size;      /* sizeof(weft_pool_options_t) */
  uint32_t max_arenas;       /* arenas the pool may grow to (1 to 1024) */
  uint64_t bytes;            /* small-block memory per arena (blocks up to 64 KiB) */
  uint64_t max_large_blocks; /* blocks above 64 KiB alive at once */
  uint64_t max_block;        /* the largest block the pool will give */
} weft_pool_options_t;

/* Fills `opt` with the defaults (64 MiB arenas, up to 16, 256 large blocks, 4 GiB max block). */
WEFT_API void weft_pool_options_init(weft_pool_options_t* opt);
/* Opens pool `name`; with `create` non-NULL, creates it if absent (safe under races). */
WEFT_API int weft_pool_open(const char* name, const weft_pool_options_t* create, weft_pool_t** out);
/* Releases this handle's holds, detaches and frees it. NULL is ignored. */
WEFT_API int weft_pool_close(weft_pool_t* pool);
/* Removes the pool's name (and its large blocks' names). */
WEFT_API int weft_pool_unlink(const char* name);
/* A block of at least n bytes, held by this handle. WEFT_ETOOLARGE above max_block,
   WEFT_EWOULDBLOCK when the pool is full. Block ids mean the same in every process. */
WEFT_API int weft_pool_allocate(weft_pool_t* pool, size_t n, uint64_t* block);
/* The block's bytes in this process (64-byte aligned), valid while a hold lasts. */
WEFT_API int weft_pool_data(weft_pool_t* pool, uint64_t block, void** data, size_t* size);
/* Adds a hold on a block that another holder still holds. */
WEFT_API int weft_pool_hold(weft_pool_t* pool, uint64_t block);
/* Drops one hold; the block is free when nobody holds it. */
WEFT_API int weft_pool_release(weft_pool_t* pool, uint64_t block);
/* Releases the holds of dead processes; *recovered gets how many holders were cleaned. */
WEFT_API int weft_pool_recover(weft_pool_t* pool, size_t* recovered);

/* ---- topics: one-to-many publish/subscribe over a pool, zero-copy ---- */

typedef struct weft_publisher weft_publisher_t;
typedef struct weft_subscriber weft_subscriber_t;

/* For weft_subscriber_open only (kept for compatibility; note the order differs from
   WEFT_OVERFLOW_*): new code uses weft_subscribe with WEFT_OVERFLOW_*. */
enum { WEFT_ON_FULL_BLOCK = 0, WEFT_ON_FULL_DROP_OLDEST = 1, WEFT_ON_FULL_DROP_NEWEST = 2 };

/* Used only when the call creates the topic. */
typedef struct weft_topic_options {
  uint32_t struct_size; /* sizeof(weft_topic_options_t) */
  uint32_t queue_depth; /* samples waiting per (publisher, subscriber); a power of two */
  uint32_t history;     /* samples each publisher keeps for late joiners (up to 64) */
  uint32_t reserved;
  uint64_t pool_bytes;  /* the topic pool's arena size */
} weft_topic_options_t;

typedef struct weft_sample {
  uint64_t block;       /* pass to weft_subscriber_release */
  const void* data;     /* valid until released */
  size_t size;
  uint64_t seq;         /* per publisher, from 1 */
  int32_t publisher;
  int32_t reserved;
} weft_sample_t;

WEFT_API void weft_topic_options_init(weft_topic_options_t* opt);
/* Opens topic `topic` as a publisher, creating it (with `create`, or defaults if NULL). */
WEFT_API int weft_publisher_open(const char* topic, const weft_topic_options_t* create, weft_publisher_t** out);
WEFT_API int weft_publisher_close(weft_publisher_t* pub);
/* Removes topic `topic` (its segment and its pool); attached endpoints keep working until they
   close. WEFT_ENOTFOUND if there is no such topic. */
WEFT_API int weft_topic_unlink(const char* topic);
/* Loans a writable block of at least n bytes; *data is valid until published or discarded. */
WEFT_API int weft_publisher_loan(weft_publisher_t* pub, size_t n, uint64_t* block, void** data);
/* Publishes `size` bytes of a loan to every subscriber; WEFT_ETIMEOUT if a blocking
   subscriber stays full past the timeout (nothing published then). */
WEFT_API int weft_publisher_publish(weft_publisher_t* pub, uint64_t block, size_t size, int64_t timeout_ns);
WEFT_API int weft_publisher_discard(weft_publisher_t* pub, uint64_t block);
/* Subscribes: overflow is WEFT_OVERFLOW_* (what a publisher does when this subscriber's queue is
   full); history asks for that many earlier samples per publisher, if the topic keeps them. */
WEFT_API int weft_subscribe(const char* topic, uint32_t overflow, uint32_t history,
                            const weft_topic_options_t* create, weft_subscriber_t** out);
/* The same with on_full as WEFT_ON_FULL_* (the older numbering). */
WEFT_API int weft_subscriber_open(const char* topic, uint32_t on_full, uint32_t history,
                                  const weft_topic_options_t* create, weft_subscriber_t** out);
WEFT_API int weft_subscriber_close(weft_subscriber_t* sub);
/* The next sample, held until released. */
WEFT_API int weft_subscriber_take(weft_subscriber_t* sub, int64_t timeout_ns, weft_sample_t* sample);
WEFT_API int weft_subscriber_release(weft_subscriber_t* sub, uint64_t block);
/* A descriptor that turns readable when a take with timeout 0 that failed may now succeed. */
WEFT_API int weft_subscriber_wait_fd(weft_subscriber_t* sub, int* fd);

/* ---- log: a durable append-only log in a directory, one writer, readers in any process ---- */

typedef struct weft_log weft_log_t;
typedef struct weft_log_tail weft_log_tail_t;

enum { WEFT_FSYNC_NEVER = 0, WEFT_FSYNC_EVERY_N = 1, WEFT_FSYNC_INTERVAL = 2, WEFT_FSYNC_ALWAYS = 3 };

/* The result of an append that appended nothing (an empty batch). */
#define WEFT_LOG_NONE UINT64_MAX

typedef struct weft_log_options {
  uint32_t struct_size;       /* sizeof(weft_log_options_t) */
  uint32_t read_only;         /* 1: a reader (no lock, no appends); the log must exist */
  uint32_t fsync;             /* WEFT_FSYNC_* */
  uint32_t index_every_bytes; /* a sparse index entry per this many record bytes */
  uint64_t fsync_every_n;     /* WEFT_FSYNC_EVERY_N: records per fsync */
  int64_t fsync_interval_ms;  /* WEFT_FSYNC_INTERVAL: milliseconds between fsyncs */
  uint64_t segment_bytes;     /* roll size */
  uint64_t retention_events;  /* keep at least this many newest records (0: no limit) */
  uint64_t retention_bytes;   /* keep at least this many newest bytes (0: no limit) */
  int64_t retention_age_ms;   /* drop segments older than this (0: no limit) */
} weft_log_options_t;

typedef struct weft_log_record {
  uint64_t seq;
  int64_t timestamp_ns;  /* wall clock at append */
  uint32_t flags;
  uint32_t reserved;
  const void* data;      /* in the mapped file; valid as the call that filled it says */
  size_t size;
} weft_log_record_t;

typedef struct weft_log_stats {
  uint32_t struct_size; /* set by the caller: sizeof(weft_log_stats_t) */
  int32_t writer_pid;   /* 0 if no writer holds the log */
  uint64_t first_seq, next_seq, durable_seq;
  uint64_t segments, bytes, fsyncs;
} weft_log_stats_t;

/* Fills `opt` with the defaults (no fsync, 64 MiB segments, no retention). */
WEFT_API void weft_log_options_init(weft_log_options_t* opt);
/* Opens (a writer creates) the log in directory `path`. WEFT_EBUSY if another writer has it. */
WEFT_API int weft_log_open(const char* path, const weft_log_options_t* opt, weft_log_t** out);
/* Closes the log (syncing it under a durable policy) and frees the handle. NULL is ignored. */
WEFT_API int weft_log_close(weft_log_t* log);
/* Appends one record; *seq (if not NULL) gets its sequence number. */
WEFT_API int weft_log_append(weft_log_t* log, const void* data, size_t n, uint32_t flags, uint64_t* seq);
/* Appends `count` records with consecutive sequence numbers; *first gets the first, or
   WEFT_LOG_NONE when count is 0. */
WEFT_API int weft_log_append_batch(weft_log_t* log, const void* const* data, const size_t* sizes, size_t count,
                                   uint32_t flags, uint64_t* first);
/* Makes everything appended so far durable. */
WEFT_API int weft_log_sync(weft_log_t* log);
/* Reads record `seq`; rec->data stays valid until the next weft_log_read on this handle or its
   close. WEFT_ERANGE outside what the log holds. */
WEFT_API int weft_log_read(weft_log_t* log, uint64_t seq, weft_log_record_t* rec);
WEFT_API uint64_t weft_log_first_seq(weft_log_t* log);
WEFT_API uint64_t weft_log_next_seq(weft_log_t* log);
WEFT_API int weft_log_stats(weft_log_t* log, weft_log_stats_t* out);
/* Reads and checks every record; WEFT_ECORRUPT with the position in the error message. */
WEFT_API int weft_log_verify(weft_log_t* log);

/* A tail from `from_seq`: backfills from disk, then follows appends from any process. */
WEFT_API int weft_log_tail_open(weft_log_t* log, uint64_t from_seq, weft_log_tail_t** out);
/* The next record; rec->data stays valid until the next call on this tail or its free.
   WEFT_ETIMEOUT / WEFT_EWOULDBLOCK (timeout 0), WEFT_ECLOSED after weft_log_tail_cancel,
   WEFT_ERANGE if retention removed the next record. */
WEFT_API int weft_log_tail_next(weft_log_tail_t* tail, int64_t timeout_ns, weft_log_record_t* rec);
/* Ends weft_log_tail_next for good; callable from any thread. */
WEFT_API void weft_log_tail_cancel(weft_log_tail_t* tail);
/* Frees the tail. NULL is ignored. */
WEFT_API void weft_log_tail_free(weft_log_tail_t* tail);

/* ---- rpc: resources served to other processes, at the bytes level ---- */

typedef struct weft_rpc_server weft_rpc_server_t;
typedef struct weft_rpc_client weft_rpc_client_t;
typedef struct weft_rpc_reply weft_rpc_reply_t;

/* A method handler. args[i] (sizes[i] bytes, in the parameter's codec) are borrowed until it
   returns. It sets the result with weft_rpc_reply_set, or an error with weft_rpc_reply_error;
   it runs on a server thread, under the resource's read/write scheduler. */
typedef void (*weft_rpc_handler_fn)(void* ctx, int method, const void* const* args, const size_t* sizes,
                                    size_t nargs, weft_rpc_reply_t* reply);

/* Copies the result's bytes into the reply. */
WEFT_API int weft_rpc_reply_set(weft_rpc_reply_t* reply, const void* data, size_t n);
/* Makes the call fail with `code` (a WEFT_E* value) and a message. */
WEFT_API int weft_rpc_reply_error(weft_rpc_reply_t* reply, int code, const char* message);

/* The hash of a contract's canonical text (docs/formats/rpc-contract.md): 32 hex digits and a
   NUL into out[33]. WEFT_ECORRUPT if the text is not a canonical contract. */
WEFT_API int weft_rpc_contract_hash(const char* canonical, char out[33]);

/* A server listening at ipc://<id>. */
WEFT_API int weft_rpc_server_create(const char* id, weft_rpc_server_t** out);
/* Serves resource `name` under the contract `canonical`; `fn` handles every method (`method` is
   the index in the contract's sorted methods). */
WEFT_API int weft_rpc_server_register(weft_rpc_server_t* server, const char* name, const char* canonical,
                                      weft_rpc_handler_fn fn, void* ctx);
WEFT_API int weft_rpc_server_start(weft_rpc_server_t* server);
/* Stops accepting, finishes calls in flight, frees the server. NULL is ignored. */
WEFT_API int weft_rpc_server_close(weft_rpc_server_t* server);

/* Connects to resource `name` at `address` ("ipc://<id>"); WEFT_ECONTRACT (with what differs in
   the error message) if the contracts differ, WEFT_ENOTFOUND if there is no such server or
   resource. */
WEFT_API int weft_rpc_client_connect(const char* canonical, const char* name, const char* address,
                                     int64_t timeout_ns, weft_rpc_client_t** out);
/* Calls `method`; *result gets a buffer the caller frees with weft_free. WEFT_ETIMEOUT,
   WEFT_EPEERDEAD if the server died, or the handler's error code. */
WEFT_API int weft_rpc_client_call(weft_rpc_client_t* client, const char* method, const void* const* args,
                                  const size_t* sizes, size_t nargs, int64_t timeout_ns, void** result,
                                  size_t* result_size);
WEFT_API int weft_rpc_client_close(weft_rpc_client_t* client);
/* tcp:// (docs/remote.md): TLS 1.3 with this side's host key (weft keygen) and peers trusted by
   key id or through a CA; plaintext only when `plaintext` is nonzero. Strings may be NULL. */
typedef struct weft_rpc_tcp_options {
  uint32_t struct_size;      /* sizeof(weft_rpc_tcp_options_t) */
  const char* listen;        /* servers: "tcp://host:port" (port 0: any; see weft_rpc_server_address) */
  const char* key_file;      /* this side's private key (PEM, mode 0600) */
  const char* trusted_keys;  /* peers' key ids ("ed25519:<hex>"), separated by commas */
  const char* ca_file;       /* peers whose certificate this CA signed */
  const char* cert_file;     /* this side's certificate chain, for peers that trust a CA */
  int plaintext;             /* nonzero: no TLS (no privacy, no identity) */
  /* Discovery (servers; clients pass "nats://..." as the address instead): */
  const char* registry;      /* "nats://host:port[/bucket]" to announce every resource at */
  int64_t registry_ttl_ms;   /* how long a route outlives its last refresh (0: 10 s) */
  const char* advertise;     /* tcp:// addresses to announce instead of those listened on, by commas */
  int no_relay;              /* nonzero: no tunnels through the registry's NATS servers */
  /* When calls fail (clients; docs/remote.md): reads retried, hedged; a circuit breaker. */
  int retry_attempts;        /* tries per read (0 or 1: no retry), backoff from 20 ms doubling to 1 s */
  int64_t hedge_after_ms;    /* a read not answered this soon goes to a second server too (0: off) */
  int breaker_failures;      /* failures in a row that open the circuit (0: no breaker) */
  int64_t breaker_open_ms;   /* how long it stays open (0: 5 s) */
} weft_rpc_tcp_options_t;

/* A server at ipc://<id> that also listens at tcp->listen. */
WEFT_API int weft_rpc_server_create_tcp(const char* id, const weft_rpc_tcp_options_t* tcp, weft_rpc_server_t** out);
/* Address `index` the server listens on (0: ipc://<id>, then tcp:// with the port bound) as a
   NUL-terminated string into out[cap]; WEFT_ERANGE past the last one or if it does not fit. */
WEFT_API int weft_rpc_server_address(weft_rpc_server_t* server, size_t index, char* out, size_t cap);
/* weft_rpc_client_connect for any address, with tcp:// options (NULL: none). "nats://host:port"
   finds the resource through that registry by name and contract hash (docs/remote.md). */
WEFT_API int weft_rpc_client_connect_tcp(const char* canonical, const char* name, const char* address,
                                         int64_t timeout_ns, const weft_rpc_tcp_options_t* tcp,
                                         weft_rpc_client_t** out);
/* In a handler: the caller's verified identity ("uid:1000", "ed25519:<hex>", or "" when nothing
   is proven) as a NUL-terminated string into out[cap]. */
WEFT_API int weft_rpc_reply_caller(weft_rpc_reply_t* reply, char* out, size_t cap);
/* Frees memory the library handed out (rpc results). NULL is ignored. */
WEFT_API void weft_free(void* p);

/* In a handler: nonzero once the caller has cancelled this call (the handler may stop early;
   its result is dropped). */
WEFT_API int weft_rpc_reply_cancelled(weft_rpc_reply_t* reply);
/* In a handler of a streaming method: sends one chunk, waiting while the caller has no credit
   for more. WEFT_ECANCELED if the caller cancelled (stop then), WEFT_EPEERDEAD / WEFT_ECLOSED
   if it went away. The handler ends the stream by returning (with no result set, or an error). */
WEFT_API int weft_rpc_reply_yield(weft_rpc_reply_t* reply, const void* data, size_t n);

/* A cancel token: weft_rpc_cancel from any thread ends the calls it was given to with
   WEFT_ECANCELED. */
typedef struct weft_rpc_cancel weft_rpc_cancel_t;
WEFT_API int weft_rpc_cancel_new(weft_rpc_cancel_t** out);
WEFT_API void weft_rpc_cancel(weft_rpc_cancel_t* token);
WEFT_API void weft_rpc_cancel_free(weft_rpc_cancel_t* token);

/* A value held in place: a result in hold mode (large ones stay in the server's shared memory,
   no copy), or a loan (a block of the server's pool to build an argument in: passed to a call
   by its data pointer, it is sent without a copy). Valid until weft_rpc_held_free. */
typedef struct weft_rpc_held weft_rpc_held_t;
/* Its bytes (writable for a loan). */
WEFT_API void* weft_rpc_held_data(const weft_rpc_held_t* held, size_t* size);
/* Nonzero if the bytes are in shared memory (not a small result copied here). */
WEFT_API int weft_rpc_held_in_shared_memory(const weft_rpc_held_t* held);
WEFT_API void weft_rpc_held_free(weft_rpc_held_t* held);
/* A loan of n bytes from the server's pool. */
WEFT_API int weft_rpc_client_loan(weft_rpc_client_t* client, size_t n, weft_rpc_held_t** out);
/* weft_rpc_client_call with a cancel token (or NULL), the result held in place. */
WEFT_API int weft_rpc_client_call_held(weft_rpc_client_t* client, const char* method, const void* const* args,
                                       const size_t* sizes, size_t nargs, int64_t timeout_ns,
                                       const weft_rpc_cancel_t* cancel, weft_rpc_held_t** out);

/* The chunks of a streaming method. */
typedef struct weft_rpc_stream weft_rpc_stream_t;
WEFT_API int weft_rpc_client_stream(weft_rpc_client_t* client, const char* method, const void* const* args,
                                    const size_t* sizes, size_t nargs, int64_t timeout_ns,
                                    weft_rpc_stream_t** out);
/* The next chunk into *chunk (free with weft_free) and *size; at the end of the stream WEFT_OK
   with *chunk NULL. The call's error if it failed; WEFT_ECANCELED after weft_rpc_stream_cancel. */
WEFT_API int weft_rpc_stream_next(weft_rpc_stream_t* stream, int64_t timeout_ns, void** chunk, size_t* size);
/* Stops the stream (the server stops producing); frees nothing. */
WEFT_API void weft_rpc_stream_cancel(weft_rpc_stream_t* stream);
/* Cancels if unfinished and frees. Must come before weft_rpc_client_close. NULL is ignored. */
WEFT_API void weft_rpc_stream_free(weft_rpc_stream_t* stream);

/* ---- event bus (docs/bus.md) ---------------------------------------------------------------- */

typedef struct weft_bus weft_bus_t;
typedef struct weft_bus_consumer weft_bus_consumer_t;

/* The offset of an event that drop_newest discarded. */
#define WEFT_BUS_DROPPED UINT64_MAX
#define WEFT_BUS_PENDING (UINT64_MAX - 1) /* gathered under linger, not published yet */

typedef struct weft_bus_options {
  uint32_t struct_size;   /* sizeof(weft_bus_options_t) */
  uint32_t shards;        /* 0: one per CPU; at most 256 */
  uint64_t shard_bytes;   /* each shard's ring: a power of two, at least 4 KiB */
  uint32_t max_event;     /* largest key + data (0: a quarter of a shard) */
  uint32_t backpressure;  /* WEFT_OVERFLOW_* */
  uint32_t timestamps;    /* 1: stamp events with the wall clock */
  uint32_t must_match;    /* shm: 1: refuse a bus that exists with other options */
  const char* const* groups; /* groups created at open (NULL: none) */
  size_t group_count;
  weft_log_options_t log;  /* log: each shard's log (fsync, segment size, retention); read_only ignored */
  int64_t linger_ns;       /* 0: publish each ingest at once; above 0: gather unkeyed events per thread */
  uint32_t linger_events;  /* publish a thread's gathered events once this many (1..65536) */
  uint32_t reserved;
  /* redis:// and nats:// (docs/scale-out.md); a struct_size that ends before these takes the
     defaults. */
  const char* nonce_path;    /* the producer's nonce file, created on first use (NULL: none) */
  uint64_t max_len;          /* events kept per shard (0: no limit; needs WEFT_OVERFLOW_DROP_OLDEST) */
  int64_t claim_idle_ms;     /* a member's pending event is taken over after this (30000) */
  int64_t op_timeout_ms;     /* connecting and any round trip without a timeout (5000) */
  int64_t dedup_window_ms;   /* nats: the stream's duplicate window (120000) */
  uint32_t dedup_capacity;   /* redis: ids each consumer remembers (65536; 0: no filter) */
  uint32_t replicas;         /* nats: the stream's replicas (1) */
} weft_bus_options_t;

typedef struct weft_bus_event {
  uint32_t shard;
  uint32_t reserved;
  uint64_t offset;
  int64_t timestamp_ns;  /* 0 unless the bus stamps events */
  const void* key;       /* in the ring: valid until the consumer's next poll, commit or close */
  size_t key_size;
  const void* data;
  size_t data_size;
} weft_bus_event_t;

/* Fills `opt` with the defaults (4 MiB shards, block). */
WEFT_API void weft_bus_options_init(weft_bus_options_t* opt);
/* Opens a bus: url "memory:" (this process), "shm:<name>" (created if absent with `opt`),
   "log:<directory>" (durable; backpressure must be WEFT_OVERFLOW_DROP_OLDEST),
   "redis://host:port/<name>" (Redis Streams) or "nats://host:port/<name>" (NATS JetStream). */
WEFT_API int weft_bus_open(const char* url, const weft_bus_options_t* opt, weft_bus_t** out);
/* Closes the handle (consumers must be closed first). NULL is ignored. */
WEFT_API int weft_bus_close(weft_bus_t* bus);
/* Removes a shm: bus's name; open handles keep working. */
WEFT_API int weft_bus_unlink(const char* url);
/* Ingests one event (`key` NULL: this thread's shard; else crc32c(key) % shards). *shard and
   *offset (either may be NULL) get its position; *offset is WEFT_BUS_DROPPED if drop_newest
   discarded it. WEFT_ETIMEOUT under block, WEFT_ERESOURCE under fail. */
WEFT_API int weft_bus_ingest(weft_bus_t* bus, const void* key, size_t key_size, const void* data, size_t size,
                             int64_t timeout_ns, uint32_t* shard, uint64_t* offset);
/* Ingests up to `count` events to this thread's shard in one claim; *ingested gets how many
   (a prefix). An error only when none was. */
WEFT_API int weft_bus_ingest_batch(weft_bus_t* bus, const void* const* data, const size_t* sizes, size_t count,
                                   int64_t timeout_ns, size_t* ingested);
/* Joins group `group` (created if absent). auto_commit 1: each poll commits the previous one. */
WEFT_API int weft_bus_subscribe(weft_bus_t* bus, const char* group, uint32_t auto_commit, weft_bus_consumer_t** out);
/* Up to `capacity` events into `events`; *count gets how many. WEFT_EWOULDBLOCK (timeout 0) or
   WEFT_ETIMEOUT if none came; WEFT_ECLOSED after weft_bus_consumer_interrupt. */
WEFT_API int weft_bus_poll(weft_bus_consumer_t* consumer, weft_bus_event_t* events, size_t capacity,
                           int64_t timeout_ns, size_t* count);
/* Commits everything delivered so far. */
WEFT_API int weft_bus_commit(weft_bus_consumer_t* consumer);
/* A descriptor that turns readable when a poll may find something (events, a change of
   shards); armed by a poll with timeout 0 that returned WEFT_EWOULDBLOCK. Owned by the handle. */
WEFT_API int weft_bus_consumer_wait_fd(weft_bus_consumer_t* consumer, int* fd);
/* Ends a waiting poll, and every later one, with WEFT_ECLOSED; callable from any thread. */
WEFT_API void weft_bus_consumer_interrupt(weft_bus_consumer_t* consumer);
/* Publishes the calling thread's gathered events (linger) now. */
WEFT_API int weft_bus_flush(weft_bus_t* bus);
/* Leaves the group (committing with auto_commit) and frees the handle. NULL is ignored. */
WEFT_API int weft_bus_consumer_close(weft_bus_consumer_t* consumer);

/* ---- graph: typed routes, their latest values and observers (docs/graph.md) ---- */

typedef struct weft_graph weft_graph_t;
typedef struct weft_route weft_route_t;

typedef struct weft_envelope {
  uint64_t seq;         /* the route's count of values, from 1 */
  uint64_t id;          /* this value's id */
  uint64_t producer;    /* who published it (0: not said) */
  int64_t event_ns;     /* when it happened, UNIX ns */
  int64_t ingest_ns;    /* when the graph took it, UNIX ns */
  uint64_t trace;       /* the flow it belongs to */
  uint64_t causality;   /* the id of the value that caused it (0: none) */
  uint64_t correlation; /* the user's own id (0: none) */
} weft_envelope_t;

/* An observer: the value's bytes (valid during the call) and its envelope, on the publisher's
   thread. */
typedef void (*weft_observer_fn)(void* ctx, const void* data, size_t size, const weft_envelope_t* env);

WEFT_API int weft_graph_create(weft_graph_t** out);
/* Frees the handle; routes declared on it stay usable until freed. NULL is ignored. */
WEFT_API void weft_graph_destroy(weft_graph_t* g);
/* The route `name` ("owner/family/stream/variant/plane/layer") carrying `schema` (its canonical
   text: "bytes", "f64", "i64", "pod pose.v1 size 24 align 8" ...), declared on first use.
   WEFT_ESCHEMA if it exists with another schema; WEFT_EINVAL for a malformed name or schema. */
WEFT_API int weft_graph_declare(weft_graph_t* g, const char* name, const char* schema, weft_route_t** out);
/* Ends the handle's observations and frees it. NULL is ignored. */
WEFT_API void weft_route_free(weft_route_t* r);
/* Publishes n bytes (a pod schema's exact size). An observer's refusal comes back as its code. */
WEFT_API int weft_route_publish(weft_route_t* r, const void* data, size_t n, uint64_t producer, uint64_t correlation);
/* Copies the newest value into buf; *n gets its size (WEFT_ETOOLARGE with *n set if cap is too
   small); env, if not NULL, its envelope. WEFT_ENOTFOUND before the first value. */
WEFT_API int weft_route_latest(weft_route_t* r, void* buf, size_t cap, size_t* n, weft_envelope_t* env);
/* Calls fn for each value published from now on; *token names the observation. */
WEFT_API int weft_route_observe(weft_route_t* r, weft_observer_fn fn, void* ctx, uint64_t* token);
/* Ends an observation: no call starts after it returns (one running on another thread is
   waited for). WEFT_ENOTFOUND for an unknown token. */
WEFT_API int weft_route_unobserve(weft_route_t* r, uint64_t token);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_WEFT_H_ */
