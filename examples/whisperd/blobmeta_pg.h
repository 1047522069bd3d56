/*
 * whisperd: the blob store's metadata in PostgreSQL, for cluster mode
 * (--pg). blobs.c keeps the data files in the shared --blob-dir and asks
 * this for everything it would otherwise keep in <id>.meta files and its
 * index in memory, so that every node sees every blob.
 *
 * Two tables beside the store's (<table> is --pg-table, by default
 * whisper_records), created if missing:
 *
 *   <table>_blobs      one row per blob: id (32 bytes), owner (the 16-byte
 *                      tag), device, length (Upload-Length), off (bytes
 *                      acknowledged), created (ms, whisperd's clock)
 *   <table>_blobs_key  one row: a fingerprint of the blob directory's
 *                      owner.key, so that a node whose --blob-dir is not
 *                      the others' refuses to start
 *
 * Locks are PostgreSQL advisory locks in the two-int4 key space (the
 * store's own locks use the bigint one), keyed by the first 8 bytes of
 * the blob id or of the owner tag, both random:
 *
 *   a writer   a session lock on the blob id, held by the node whose PATCH
 *              writes the blob, from before it reads the offset (and cuts
 *              the data file back to it) until the new offset is
 *              committed; a PATCH of the blob on another node fails to
 *              take it (423). A node that dies loses it with its session.
 *   a creation a transaction lock on the owner tag, so that the quota
 *              (the SUM of the owner's live blobs' lengths) is read and
 *              the row inserted without another node creating between
 *   a deletion a transaction lock on the blob id, tried: a blob being
 *              written is not deleted (423 for its uploader; the sweep
 *              leaves it to a later pass)
 *
 * The connection is the node's own (not the store's), used only from the
 * event loop's thread. When it drops it is made again at the next call
 * and its generation goes up: the session locks taken on the old one are
 * gone, so an offset taken under one (wd_bmeta_pg_set_offset with the old
 * generation) is refused.
 */
#ifndef WHISPERD_BLOBMETA_PG_H
#define WHISPERD_BLOBMETA_PG_H

#include <stddef.h>
#include <stdint.h>

#include "blobs.h"

typedef struct wd_bmeta_pg wd_bmeta_pg;

/** The fingerprint of a blob directory (of its owner.key). */
#define WD_BMETA_FP_LEN 32

/**
 * Connects with `conninfo`, creates the tables of the store's `table`
 * (NULL: whisper_records) if missing, and checks that the directory whose
 * owner.key has fingerprint `fp` is the cluster's (the first node to start
 * records it). 0, or -1 with *why set to a sentence (static or in `why_buf`).
 */
int wd_bmeta_pg_open(wd_bmeta_pg **out, const char *conninfo, const char *table,
                     const uint8_t fp[WD_BMETA_FP_LEN], char *why_buf, size_t why_cap,
                     const char **why);

void wd_bmeta_pg_free(wd_bmeta_pg *m);

/** The name of the blobs' table (for the log). */
const char *wd_bmeta_pg_table(const wd_bmeta_pg *m);

/** The blob's row into `blob` (owner, length, offset, created; the id is
 *  blob->id): 1, 0 when there is none, or -errno. */
int wd_bmeta_pg_get(wd_bmeta_pg *m, wd_blob *blob);

/**
 * Starts a creation for `owner`: a transaction holding the owner's lock,
 * in which the bytes (Upload-Length) of its blobs created after
 * `live_after_ms` (-1: all of them) plus `length` are checked against
 * `quota`. 0 (the transaction is open: end it with _create_commit or
 * _create_abort), 1 over the quota (nothing is open), or -errno.
 */
int wd_bmeta_pg_create_begin(wd_bmeta_pg *m, const uint8_t owner[WD_BLOB_TAG_LEN],
                             uint64_t length, uint64_t quota, int64_t live_after_ms);

/** Inserts the blob's row (offset 0) and commits: 0, -EEXIST (the id is
 *  taken: nothing committed), or -errno. The transaction is over either way. */
int wd_bmeta_pg_create_commit(wd_bmeta_pg *m, const wd_blob *blob);

/** Rolls the creation back. */
void wd_bmeta_pg_create_abort(wd_bmeta_pg *m);

/** Takes the blob's writer lock (without waiting): 1 taken (*gen gets the
 *  connection's generation), 0 held by another session, or -errno. */
int wd_bmeta_pg_lock(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN], uint64_t *gen);

/** Releases it (if the connection is still the one of `gen`). */
void wd_bmeta_pg_unlock(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN], uint64_t gen);

/** Moves the acknowledged offset from `old` to `now`, committed, if the
 *  connection is still the one of `gen` (the lock is held): 0, -ESTALE
 *  (the row is gone or not at `old`), -ENOLCK (the connection, and the
 *  lock with it, was lost), or -errno. */
int wd_bmeta_pg_set_offset(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN], uint64_t old,
                           uint64_t now, uint64_t gen);

/** Deletes the blob's row unless a writer holds its lock: 1 deleted, 0 no
 *  such row, -EBUSY (being written), or -errno. */
int wd_bmeta_pg_delete(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN]);

/** Up to `cap` ids of blobs created at or before `cut_ms`, oldest first,
 *  into `ids` (WD_BLOB_ID_LEN bytes each): how many, or -errno. */
int wd_bmeta_pg_expired(wd_bmeta_pg *m, uint64_t cut_ms, uint8_t *ids, size_t cap);

/** Which of `n` ids have a row: known[i] set to 1 or 0. 0 or -errno. */
int wd_bmeta_pg_known(wd_bmeta_pg *m, const uint8_t *ids, size_t n, uint8_t *known);

/** Blobs, and bytes acknowledged in them, in the whole cluster. 0 or -errno. */
int wd_bmeta_pg_count(wd_bmeta_pg *m, uint64_t *blobs, uint64_t *bytes);

#endif
