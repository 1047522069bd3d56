/*
 * libwhisper: the store interface.
 *
 * Everything the protocol keeps (the local identity, prekeys, sessions,
 * remote identities, sender keys) goes through a whisper_store: a table of
 * functions over (kind, key) -> value records, with transactions. The
 * library serialises and parses the values; a store only keeps bytes.
 *
 * Every protocol operation that changes state runs inside one transaction
 * (begin ... commit, or rollback on any failure), so a decrypted message,
 * the session's new state and the consumed prekey are kept together or not
 * at all. An app may hold a transaction of its own across several calls
 * (whisper_store_begin()): the calls join it. A store must make a committed transaction durable before commit
 * returns if it promises durability.
 *
 * An app may bring its own store; whisper_store_memory_new() gives a
 * volatile one (tests, ephemeral devices).
 */
#ifndef WHISPER_STORE_H
#define WHISPER_STORE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** Kinds of record. Values are stable and may be used as table ids. */
typedef enum whisper_record_kind {
  WHISPER_REC_LOCAL_IDENTITY = 1,  /* key: empty */
  WHISPER_REC_SESSION = 2,         /* key: address (see below) */
  WHISPER_REC_PREKEY = 3,          /* key: 4-byte big-endian id */
  WHISPER_REC_SIGNED_PREKEY = 4,   /* key: 4-byte big-endian id */
  WHISPER_REC_REMOTE_IDENTITY = 5, /* key: address */
  WHISPER_REC_TRUSTED_NAME = 6,    /* key: name: a key trusted for every device */
  WHISPER_REC_SENDER_KEY = 7,      /* key: address || 16-byte distribution id */
  WHISPER_REC_META = 8,            /* key: a short ASCII name (counters) */
  WHISPER_REC_MESSAGE_INDEX = 9,   /* key: a message's 16-byte tag */
  WHISPER_REC_SEND_MARK = 11,      /* key: address: the sending chains last used with it, a
                                    * row apart from the session so that restoring the
                                    * session's row alone is noticed */
  /* Ordered kinds: a store keeps their keys in the clear and in order, for
   * scan(). libwhisper builds these keys from keyed tags and sequence
   * numbers only: no name or id shows in them. */
  WHISPER_REC_HISTORY = 64,        /* key: conversation tag (16) || sort key (8, BE) || tag (16) */
  WHISPER_REC_OUTBOX = 65,         /* key: local sequence (8, BE) || message tag (16) */
  WHISPER_REC_SEARCH = 66          /* key: word tag (16) || time (8, BE) || message tag (16):
                                    * the search index (search.h) */
} whisper_record_kind;

/** 1 for the kinds a store must be able to scan() in key order. */
#define WHISPER_REC_IS_ORDERED(kind) ((kind) >= 64)

/** A callback of scan(): return 0 to go on, nonzero to stop. */
typedef int (*whisper_scan_fn)(void *WHISPER_NULLABLE arg, const uint8_t *WHISPER_NULLABLE key,
                               size_t key_len, const uint8_t *WHISPER_NULLABLE value,
                               size_t value_len);
/* An address key is the name's bytes, a 0x00 byte, then the device id as
 * 4 bytes big-endian. Names are 1..255 bytes without 0x00 (session.h). */

#define WHISPER_STORE_OPS_VERSION 5

/**
 * The functions of a store. Fill in `version` with WHISPER_STORE_OPS_VERSION
 * (fields are only ever appended; a version-1 table, without scan, still
 * serves everything but message history; a version-2 table has no add; a
 * version-3 table has no savepoints; a version-4 table has no last_error). Every function returns WHISPER_OK or a
 * negative code: WHISPER_ENOTFOUND for a missing record, WHISPER_ESTORE (or
 * WHISPER_ENOMEM) for a failure.
 */
typedef struct whisper_store_ops {
  unsigned version;
  /** Starts a transaction. A store's transactions do not nest (libwhisper
   *  nests them above the store: whisper_store_begin(), savepoints). */
  int (*begin)(void *WHISPER_NULLABLE user);
  /** Makes the transaction's writes permanent. If it fails, the store must
   *  be as before begin. */
  int (*commit)(void *WHISPER_NULLABLE user);
  /** Discards the transaction's writes. */
  void (*rollback)(void *WHISPER_NULLABLE user);
  /** Reads a record into a buffer made with whisper_buf_new(). */
  int (*get)(void *WHISPER_NULLABLE user, int kind, const uint8_t *WHISPER_NULLABLE key,
             size_t key_len, whisper_buf *WHISPER_NULLABLE *WHISPER_NONNULL out);
  /** Inserts or replaces a record. */
  int (*put)(void *WHISPER_NULLABLE user, int kind, const uint8_t *WHISPER_NULLABLE key,
             size_t key_len, const uint8_t *WHISPER_NULLABLE value, size_t value_len);
  /** Deletes a record; deleting a missing record is WHISPER_OK. */
  int (*del)(void *WHISPER_NULLABLE user, int kind, const uint8_t *WHISPER_NULLABLE key,
             size_t key_len);
  /** Releases `user`. Called by whisper_store_free(). May be NULL. */
  void (*WHISPER_NULLABLE destroy)(void *WHISPER_NULLABLE user);
  /* --- version 2 --- */
  /** For an ordered kind: calls `fn` for the records whose key starts with
   *  `prefix`, in key order (bytewise; descending if `descending`),
   *  beginning strictly past `bound` (below it when descending, above it
   *  when ascending; NULL: from the end), for at most `limit` records.
   *  Returns WHISPER_OK, WHISPER_EINVAL (not an ordered kind) or a store
   *  error. */
  int (*WHISPER_NULLABLE scan)(void *WHISPER_NULLABLE user, int kind,
                               const uint8_t *WHISPER_NULLABLE prefix, size_t prefix_len,
                               const uint8_t *WHISPER_NULLABLE bound, size_t bound_len,
                               int descending, size_t limit, whisper_scan_fn fn,
                               void *WHISPER_NULLABLE arg);
  /* --- version 3 --- */
  /** Inserts a record only if (kind, key) has none, in one step: WHISPER_OK
   *  if it was written, WHISPER_EDUPLICATE (nothing written) if the key is
   *  taken. The duplicate guard of incoming messages uses it, so a store
   *  that can test and insert in one lookup saves a read per message. May
   *  be NULL: libwhisper then reads before it writes. */
  int (*WHISPER_NULLABLE add)(void *WHISPER_NULLABLE user, int kind,
                              const uint8_t *WHISPER_NULLABLE key, size_t key_len,
                              const uint8_t *WHISPER_NULLABLE value, size_t value_len);
  /* --- version 4: savepoints (all three, or none: NULL) --- */
  /** Marks a point inside the open transaction that later writes can be
   *  undone back to, alone (rollback_to) or kept (release). Savepoints
   *  nest: release and rollback_to act on the newest one. Returns
   *  WHISPER_OK, WHISPER_ESTATE (no transaction is open) or a store error
   *  (also when the transaction was lost: the store rolled it back on its
   *  own after a failure; the caller must then roll back). The server
   *  core's group commit (whisper_server_batch_begin()) needs them. */
  int (*WHISPER_NULLABLE savepoint)(void *WHISPER_NULLABLE user);
  /** Forgets the newest savepoint; its writes stay in the transaction.
   *  Returns WHISPER_OK, WHISPER_ESTATE (none open) or a store error. */
  int (*WHISPER_NULLABLE release)(void *WHISPER_NULLABLE user);
  /** Undoes the writes made since the newest savepoint and forgets it; the
   *  transaction goes on. Returns WHISPER_OK, WHISPER_ESTATE (none open) or
   *  a store error: then the transaction is lost (only rollback is left). */
  int (*WHISPER_NULLABLE rollback_to)(void *WHISPER_NULLABLE user);
  /* --- version 5 --- */
  /** The store's own sentence about its last failed call (e.g. its
   *  database's error code and message), or NULL or "" if it has none.
   *  Called right after a call failed; the text must stay valid until the
   *  next call on the store, and must hold no secret (no record value).
   *  libwhisper appends it to whisper_ctx_last_error()'s sentence, and
   *  whisper_store_last_error() returns it. May be NULL. */
  const char *WHISPER_NULLABLE (*WHISPER_NULLABLE last_error)(void *WHISPER_NULLABLE user);
} whisper_store_ops;

/** A store handle. */
typedef struct whisper_store whisper_store;

/** Makes a store from caller-supplied functions. `ops` is copied. Returns
 *  WHISPER_OK, WHISPER_EINVAL (NULL, unknown version, missing function) or
 *  WHISPER_ENOMEM. */
WHISPER_API int whisper_store_new(whisper_store *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                  const whisper_store_ops *ops, void *WHISPER_NULLABLE user);

/** A volatile store in memory. Transactions are real: rollback restores
 *  the state as it was at begin. Returns WHISPER_OK, WHISPER_EINVAL (`out`
 *  NULL) or WHISPER_ENOMEM. */
WHISPER_API int whisper_store_memory_new(whisper_store *WHISPER_NULLABLE *WHISPER_NONNULL out);

/* --- the SQLite store --------------------------------------------------- */

#define WHISPER_SQLITE_OPTIONS_VERSION 1
#define WHISPER_SYNC_FULL 2   /* durable on every commit (the default) */
#define WHISPER_SYNC_NORMAL 1 /* WAL: a commit may be lost on power loss, never corrupted */

/** Options for whisper_store_sqlite_open(). Start from
 *  WHISPER_SQLITE_OPTIONS_INIT; fields are only ever appended. Exactly one
 *  of `key` and `passphrase` must be set. */
typedef struct whisper_sqlite_options_t {
  unsigned version;
  /** A 32-byte store key (e.g. from the platform keychain), or NULL. */
  const uint8_t *WHISPER_NULLABLE key;
  size_t key_len;
  /** A passphrase, stretched with Argon2id (salt kept in the store), or
   *  NULL. */
  const char *WHISPER_NULLABLE passphrase;
  /** WHISPER_SYNC_FULL or WHISPER_SYNC_NORMAL. */
  int synchronous;
  /** How long a transaction waits for another process holding the store
   *  (the cross-process lock), in milliseconds; then WHISPER_EBUSY. Any
   *  call on the store may wait this long (core.h, "Waiting"); 5000 in
   *  WHISPER_SQLITE_OPTIONS_INIT. */
  unsigned busy_timeout_ms;
} whisper_sqlite_options_t;

#define WHISPER_SQLITE_OPTIONS_INIT \
  { WHISPER_SQLITE_OPTIONS_VERSION, NULL, 0, NULL, WHISPER_SYNC_FULL, 5000 }

/**
 * Opens (or creates) the SQLite store at `path`: WAL journal, the chosen
 * synchronous mode, schema migrations applied. Every value (keys,
 * sessions, message bodies) is sealed with XChaCha20-Poly1305 under the
 * store key, bound to its table and key. Several processes (an app and its
 * notification extension) may open the same file: every transaction takes
 * SQLite's write lock at its start (BEGIN IMMEDIATE), so their
 * read-modify-write cycles never interleave.
 *
 * A new store file is made with mode 0600 whatever the umask, and so are
 * its -wal and -shm files (SQLite gives them the database file's mode); an
 * existing file keeps its mode.
 *
 * A store handle is used by one thread at a time, like a context. Keys of
 * ordered kinds are kept in the clear and may be up to 1024 bytes (a
 * longer one is refused with WHISPER_EINVAL); other keys have no limit.
 *
 * Returns WHISPER_OK; WHISPER_EINVAL (bad options); WHISPER_EKEY (the key
 * or passphrase is not the store's); WHISPER_ECORRUPT (the file is
 * damaged or not a store: see whisper_store_sqlite_delete());
 * WHISPER_EVERSION (written by a newer libwhisper); WHISPER_EBUSY;
 * WHISPER_ESTORE (I/O); WHISPER_ENOMEM. `why`, if not NULL, receives a
 * static sentence about the failure.
 */
WHISPER_API int whisper_store_sqlite_open(whisper_store *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                          const char *path, const whisper_sqlite_options_t *opts,
                                          const char *WHISPER_NULLABLE *WHISPER_NULLABLE why);

/**
 * Re-encrypts every value of an open SQLite store under a new key or
 * passphrase (exactly one of the two), in one transaction: on failure the
 * store is as before. Returns WHISPER_OK, WHISPER_EINVAL (not a SQLite
 * store, or bad arguments), WHISPER_ECORRUPT, WHISPER_EBUSY or
 * WHISPER_ESTORE.
 */
WHISPER_API int whisper_store_rekey(whisper_store *store, const uint8_t *WHISPER_NULLABLE key,
                                    size_t key_len, const char *WHISPER_NULLABLE passphrase);

/**
 * The explicit recreate path: deletes the store at `path` (and its WAL
 * and shared-memory files) so that the next open makes a new, empty one.
 * Everything in it is lost: sessions must be set up again. Returns
 * WHISPER_OK (also when nothing was there) or WHISPER_ESTORE.
 */
WHISPER_API int whisper_store_sqlite_delete(const char *path);

/** The store's own sentence about its last failed call ("" if none): for
 *  the SQLite store, SQLite's code and message, e.g. "writing a record:
 *  SQLITE_READONLY (8): attempt to write a readonly database"; for a store
 *  of whisper_store_new(), its ops.last_error (version 5). Valid until the
 *  next call on the store. The same text ends whisper_ctx_last_error()'s
 *  sentence after a store failure. After whisper_store_begin(),
 *  whisper_store_commit() or whisper_store_rollback() refused (e.g.
 *  WHISPER_ESTATE), the library's sentence about that instead. */
WHISPER_API const char *whisper_store_last_error(const whisper_store *store);

/* --- the app's transactions ---------------------------------------------- */

/**
 * Opens a transaction on `store` that library calls join: every call on a
 * context or client using this store, until whisper_store_commit() or
 * whisper_store_rollback(), reads and writes inside it, and what they
 * write is kept or discarded with it, together with the app's own calls
 * in between. The rules:
 *
 *  - Transactions nest. A library call (or a whisper_store_begin()) inside
 *    an open transaction joins it; on a store with savepoints (the SQLite
 *    and memory stores; a store of whisper_store_new() with ops version 4
 *    or later) it takes a savepoint, so a call that fails undoes its own
 *    writes alone and the transaction goes on. On a store without
 *    savepoints a call that fails cannot be undone alone: the transaction
 *    is then failed, every later library call in it fails at once with
 *    WHISPER_ESTORE (as when a store loses its transaction), and
 *    whisper_store_commit() rolls it back and returns WHISPER_ESTATE.
 *  - Nothing is durable before the outermost commit returns WHISPER_OK;
 *    nothing a call returned (a ciphertext to send, a decrypted message to
 *    show) should leave the app before it (a rollback would let a key be
 *    used twice, or a message be shown and then lost).
 *  - The outermost begin takes the store's write lock (the SQLite store:
 *    BEGIN IMMEDIATE), waiting for another process holding it up to the
 *    store's busy timeout (whisper_sqlite_options_t.busy_timeout_ms), then
 *    WHISPER_EBUSY; while it is open, other processes sharing the store
 *    wait in turn: keep it short, and never wait for the network in it.
 *  - A store handle is used by one thread at a time: the transaction
 *    belongs to the handle, not to a thread.
 *  - Closing a store with a transaction open rolls it back.
 *  - Do not call the client engine (client.h) while holding one on its
 *    store: its acknowledgements and frames leave after its own commits,
 *    which must be durable then, so its transactions refuse to start
 *    inside the app's (WHISPER_ESTATE, or an error event).
 *
 * Returns WHISPER_OK; WHISPER_EINVAL (`store` NULL); WHISPER_ESTATE (64
 * levels are open); WHISPER_EBUSY; WHISPER_ESTORE (the open transaction
 * has failed, or the store failed: a nested begin's failure also fails
 * the transaction); WHISPER_ENOMEM. whisper_store_last_error() says why.
 */
WHISPER_API int whisper_store_begin(whisper_store *store);

/**
 * Ends the newest open transaction keeping its writes: the outermost one
 * commits (durably, if the store promises it); a nested one's writes join
 * the enclosing transaction. Returns WHISPER_OK; WHISPER_EINVAL (`store`
 * NULL); WHISPER_ESTATE (none is open, or a call inside it failed and could
 * not be undone alone: it was rolled back instead, and for a nested one
 * the enclosing transaction goes on if it could be undone alone);
 * WHISPER_EBUSY, WHISPER_ESTORE or WHISPER_ENOMEM (the store failed: the
 * transaction was rolled back). whisper_store_last_error() says why.
 */
WHISPER_API int whisper_store_commit(whisper_store *store);

/**
 * Ends the newest open transaction without its writes (the outermost: all
 * of them; a nested one: its own, back to its savepoint, or, on a store
 * without savepoints, by failing the enclosing transaction, as above).
 * Returns WHISPER_OK, WHISPER_EINVAL (`store` NULL) or WHISPER_ESTATE
 * (none is open).
 */
WHISPER_API int whisper_store_rollback(whisper_store *store);

/** Frees a store (calling its destroy function; the SQLite store closes
 *  its database). Accepts NULL. */
WHISPER_API void whisper_store_free(whisper_store *WHISPER_NULLABLE store);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif
