/*
 * libwhisper-server: the PostgreSQL store.
 *
 * A whisper_store (store.h) kept in one table of a PostgreSQL database, for
 * whisperd running as several nodes over shared state. Records are rows
 * (kind, key, value) with (kind, key) as the primary key; ordered kinds are
 * scanned in bytewise key order, which is PostgreSQL's order of bytea.
 *
 * Transactions are PostgreSQL transactions (READ COMMITTED). A read inside
 * a transaction locks what it read until the commit: the row (FOR UPDATE)
 * or, when there is no row, the key (a transaction-scoped advisory lock),
 * so that two nodes' read-modify-write cycles on one record never
 * interleave, and two nodes creating the same record are serialised.
 * Scans lock nothing. A lock waited for longer than the lock timeout, a
 * deadlock, or a lost connection ends the transaction with WHISPER_EBUSY
 * or WHISPER_ESTORE; the caller retries (the server core's frames are
 * idempotent).
 *
 * The store keeps no secret of its own: the server's records hold only
 * what the server may see (message bodies are end-to-end ciphertext).
 * Protect the database as the server's SQLite file would be protected.
 *
 * A store handle is used by one thread at a time.
 */
#ifndef WHISPER_PGSTORE_H
#define WHISPER_PGSTORE_H

#include "core.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

#define WHISPER_PG_OPTIONS_VERSION 2

/** Options for whisper_store_pg_open(). Start from WHISPER_PG_OPTIONS_INIT;
 *  fields are only ever appended. */
typedef struct whisper_pg_options_t {
  unsigned version;
  /** The table, created if missing: 1..44 of [a-z0-9_], starting with a
   *  letter. NULL: "whisper_records". */
  const char *WHISPER_NULLABLE table;
  /** How long a statement waits for a lock another node holds, in
   *  milliseconds (0: PostgreSQL's setting); then WHISPER_EBUSY. */
  unsigned lock_timeout_ms;
  /** (version 2) How long a statement inside a savepoint waits for a
   *  lock, in milliseconds (a server's group-commit batch runs each frame
   *  in one): a batch waiting on another node's batch gives up soon
   *  (WHISPER_EBUSY: the server core commits the frames before it and runs
   *  the frame alone, under `lock_timeout_ms`) instead of holding its
   *  locks until PostgreSQL's deadlock_timeout finds the two waiting on
   *  each other. Outside savepoints `lock_timeout_ms` holds. 0:
   *  `lock_timeout_ms` everywhere. */
  unsigned savepoint_lock_timeout_ms;
} whisper_pg_options_t;

#define WHISPER_PG_OPTIONS_INIT { WHISPER_PG_OPTIONS_VERSION, NULL, 5000, 0 }

/**
 * Connects to PostgreSQL with `conninfo` (libpq's "host=... dbname=..." or
 * a postgresql:// URI) and opens the store in `opts->table`, creating it if
 * it is missing (several nodes may do so at once); `opts` NULL: the
 * defaults. Returns WHISPER_OK;
 * WHISPER_EINVAL (bad arguments or table name, an `opts->version` this
 * library does not know); WHISPER_ESTORE (cannot
 * connect or create the table: `why`, if not NULL, receives a static
 * sentence, and whisper_store_last_error() is not available since there is
 * no store); WHISPER_ENOMEM.
 */
WHISPER_SERVER_API int whisper_store_pg_open(whisper_store *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                             const char *conninfo,
                                             const whisper_pg_options_t *WHISPER_NULLABLE opts,
                                             const char *WHISPER_NULLABLE *WHISPER_NULLABLE why);

/**
 * The same, sharded over `n` databases (1..64; `conninfos[0]` is shard 0,
 * the coordinator of transactions that span shards). Each record lives on
 * one shard, chosen by a hash of the account (or device tag) its key
 * names; a transaction that used several shards commits with PostgreSQL's
 * two-phase commit (each server needs max_prepared_transactions > 0), and
 * a transaction a crashed node left prepared is finished (committed if it
 * was decided, else rolled back) by whichever node opens or uses the
 * store next. Every node must list the same shards in the same order.
 * Returns as whisper_store_pg_open() (WHISPER_EINVAL also for `n` out of
 * range), or WHISPER_EINTERNAL.
 */
WHISPER_SERVER_API int whisper_store_pg_open_sharded(
    whisper_store *WHISPER_NULLABLE *WHISPER_NONNULL out,
    const char *const WHISPER_NONNULL *WHISPER_NONNULL conninfos, size_t n,
    const whisper_pg_options_t *WHISPER_NULLABLE opts,
    const char *WHISPER_NULLABLE *WHISPER_NULLABLE why);

/**
 * Queues a notification on `channel` (1..48 of [a-z0-9_]) with `payload`
 * (at most 3,999 bytes, sent as hex: PostgreSQL takes 8,000) in the open transaction: PostgreSQL
 * delivers it to the channel's listeners when, and only if, the
 * transaction commits. Outside a transaction it is sent at once. Returns
 * WHISPER_OK, WHISPER_EINVAL (not a PostgreSQL store, bad channel or
 * payload) or WHISPER_ESTORE.
 */
WHISPER_SERVER_API int whisper_store_pg_notify(whisper_store *store, const char *channel,
                                               const uint8_t *payload, size_t len);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif
