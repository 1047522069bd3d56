/*
 * whisperd: the blob store for encrypted attachments.
 *
 *   blobs.c  the store: a directory with a data file and a metadata file
 *            per blob, an index in memory (by id, and bytes per account
 *            for the quota), crash repair at startup, expiry; in cluster
 *            mode (--pg) the directory is shared by the nodes and the
 *            metadata is in PostgreSQL (blobmeta_pg.c)
 *   tus.c    HTTP: tus 1.0.0 (core, creation, termination) at /v1/blobs,
 *            and downloads with ranges
 *
 * The blobs are ciphertexts: devices encrypt attachments end to end before
 * they upload them and send the key inside a message. whisperd sees sizes,
 * times and which device uploaded what.
 *
 * Durability: a PATCH is answered only once its bytes are on the disk
 * (the data file fsynced, then the metadata with the new offset written to
 * a temporary file, fsynced and renamed over the old one, and the
 * directory fsynced). A crash leaves each blob at its last acknowledged
 * offset or later in the data file; the metadata says which, and at
 * startup the data file is cut back to it. In cluster mode the new offset
 * is a committed PostgreSQL transaction after the data's fsync, and the
 * data file is cut back to the recorded offset by whichever node writes
 * the blob next, under the blob's writer lock.
 */
#ifndef WHISPERD_BLOBS_H
#define WHISPERD_BLOBS_H

#include <stddef.h>
#include <stdint.h>

#include "whisperd.h"

struct lws;

#define WD_BLOB_ID_LEN 32                    /* random bytes */
#define WD_BLOB_HEX_LEN (2 * WD_BLOB_ID_LEN) /* the id as it is named: lowercase hex */
#define WD_BLOB_TAG_LEN 16                   /* the owner's account, keyed-hashed */
#define WD_BLOBS_PATH "/v1/blobs"

/* --- blobs.c ---------------------------------------------------------------- */

/** Who uploaded a blob: a keyed hash of the account (the store never
 *  writes an account's name) and the device id. */
typedef struct wd_blob_owner {
  uint8_t tag[WD_BLOB_TAG_LEN];
  uint32_t device;
} wd_blob_owner;

/** A blob in the index. The store owns it; a pointer stays valid until the
 *  blob is deleted (wd_blobs_delete, the sweep) or the store freed. */
typedef struct wd_blob {
  struct wd_blob *next; /* the index's chain */
  uint8_t id[WD_BLOB_ID_LEN];
  char hex[WD_BLOB_HEX_LEN + 1];
  wd_blob_owner owner;
  uint64_t length;     /* Upload-Length */
  uint64_t offset;     /* bytes acknowledged (durable) */
  uint64_t created_ms; /* whisperd's clock (with --clock-offset-ms) */
  int busy;            /* a PATCH is writing it */
  int fd;              /* the data file, open while busy */
  /* cluster mode: the blob is a copy of its row, the caller's until
   * wd_blobs_done() (wd_blobs_delete() frees it) */
  struct wd_blobs *cluster; /* the store it came from; NULL: the index's */
  uint64_t lock_gen;        /* the writer lock's connection (blobmeta_pg.h) */
} wd_blob;

typedef struct wd_blobs wd_blobs;

/**
 * Opens the store in `dir`. When the directory exists it is locked (one
 * whisperd per directory), repaired (data files cut back to their
 * metadata's offset, leftovers of unfinished creations removed) and
 * indexed, and blobs older than `ttl_ms` are deleted; otherwise nothing is
 * made until the first upload. Returns 0, or -1 after printing why on
 * stderr.
 */
int wd_blobs_open(wd_blobs **out, const char *dir, uint64_t ttl_ms, uint64_t now_ms);

/**
 * Cluster mode (--pg): the store in `dir`, which every node shares (made
 * if missing, never locked whole), with its metadata in PostgreSQL
 * (`conninfo`, tables beside the store's `table`; blobmeta_pg.h). Data
 * files left by creations that did not finish (older than an hour, with
 * no row) are removed and expired blobs deleted. 0, or -1 after printing
 * why on stderr.
 */
int wd_blobs_open_cluster(wd_blobs **out, const char *dir, const char *conninfo,
                          const char *table, uint64_t ttl_ms, uint64_t now_ms);

/** 1 in cluster mode. */
int wd_blobs_clustered(const wd_blobs *b);

/** Frees the index and releases the directory. Accepts NULL. */
void wd_blobs_free(wd_blobs *b);

/** The owner a token of (account, device) stands for: 0, -ENOENT when
 *  the directory is not made yet (nobody owns a blob then), or -errno. */
int wd_blobs_owner(wd_blobs *b, const char *account, uint32_t device, wd_blob_owner *out);

/** 1 if a and b are the same account (any devices), 2 the same device too, 0 neither. */
int wd_blobs_same(const wd_blob_owner *a, const wd_blob_owner *b);

/** Bytes (the sum of Upload-Length) of the account's blobs. */
uint64_t wd_blobs_used(const wd_blobs *b, const wd_blob_owner *owner);

/** The blob named by `hex` (WD_BLOB_HEX_LEN lowercase hex digits), or
 *  NULL (the index: not in cluster mode). */
wd_blob *wd_blobs_find(const wd_blobs *b, const char *hex, size_t len);

/** The blob named by `hex`, as it is now: 0, -ENOENT, or -errno (cluster
 *  mode: PostgreSQL failed). Give it back with wd_blobs_done(). In cluster
 *  mode `busy` says whether a PATCH of this node writes it. */
int wd_blobs_get(wd_blobs *b, const char *hex, size_t len, wd_blob **out);

/** The caller is done with a blob from wd_blobs_get() or
 *  wd_blobs_create_within() (nothing to do but in cluster mode). Accepts NULL. */
void wd_blobs_done(wd_blobs *b, wd_blob *blob);

/** Makes an empty blob of `length` bytes for (account, device), durably
 *  (the directory and its key too, on the first upload): 0, or -errno
 *  (nothing made). */
int wd_blobs_create(wd_blobs *b, const char *account, uint32_t device, uint64_t length,
                    uint64_t now_ms, wd_blob **out);

/** wd_blobs_create_within(): the account's quota would be exceeded. */
#define WD_BLOBS_OVER_QUOTA 1

/** wd_blobs_create() if the account's blobs (their Upload-Length, expired
 *  ones not counted) and `length` fit in `quota`, else WD_BLOBS_OVER_QUOTA
 *  (nothing made). In cluster mode the check and the creation are one
 *  transaction (the quota holds across the nodes). */
int wd_blobs_create_within(wd_blobs *b, const char *account, uint32_t device, uint64_t length,
                           uint64_t quota, uint64_t now_ms, wd_blob **out);

/** Opens the blob's data file for a PATCH and marks it busy: 0 or -errno.
 *  In cluster mode it takes the blob's writer lock first (-EBUSY: another
 *  node writes it), reads the offset again (-ESTALE: it moved, blob->offset
 *  is the new one; -ENOENT: the blob is gone) and cuts the data file back
 *  to it (bytes past it were never acknowledged). */
int wd_blobs_write_begin(wd_blobs *b, wd_blob *blob);

/** Writes bytes at `at` (at or past the acknowledged offset): 0 or -errno. */
int wd_blobs_write(wd_blob *blob, uint64_t at, const void *buf, size_t len);

/** Makes the bytes up to `offset` durable and acknowledges them (the
 *  metadata): 0, or -errno with the blob back at its old offset. Closes
 *  the data file and clears busy either way. */
int wd_blobs_write_end(wd_blobs *b, wd_blob *blob, uint64_t offset);

/** Drops what was written since write_begin: the data file is cut back to
 *  the acknowledged offset and closed, busy is cleared. */
void wd_blobs_write_abort(wd_blob *blob);

/** Deletes a blob (not busy): its metadata, then its data. 0 (the blob is
 *  freed) or -errno (it is still the caller's). In cluster mode -EBUSY when
 *  another node writes it, -ENOENT when it is gone already. */
int wd_blobs_delete(wd_blobs *b, wd_blob *blob);

/** A read-only descriptor of the blob's data file (the caller closes it;
 *  it keeps reading a blob deleted meanwhile), or -errno. */
int wd_blobs_open_data(wd_blobs *b, const wd_blob *blob);

/** 1 if the blob was created `ttl_ms` or more before now_ms: it is gone
 *  for the clients, and the next sweep deletes it. */
int wd_blobs_expired(const wd_blobs *b, const wd_blob *blob, uint64_t now_ms);

/** Deletes the blobs created `ttl_ms` or more before now_ms (those being
 *  written wait for the next sweep). Returns how many went. */
size_t wd_blobs_sweep(wd_blobs *b, uint64_t now_ms);

/** Blobs stored, and the bytes acknowledged in them. */
void wd_blobs_count(const wd_blobs *b, uint64_t *blobs, uint64_t *bytes);

/* --- tus.c -------------------------------------------------------------------- */

/** The HTTP statuses the blob endpoints answer, for the metrics. */
#define WD_BLOB_STATUSES \
  X(200) X(201) X(204) X(206) X(400) X(401) X(403) X(404) X(405) X(409) X(411) X(412) X(413) \
  X(415) X(416) X(423) X(500) X(503) X(507)

enum {
#define X(code) WD_BLOB_S##code,
  WD_BLOB_STATUSES
#undef X
  WD_BLOB_N_STATUSES
};

/** What the blob endpoints count (whisperd_blob_* metrics). */
typedef struct wd_blob_stats {
  uint64_t bytes_in;  /* PATCH bytes acknowledged */
  uint64_t bytes_out; /* GET bytes written */
  uint64_t requests[WD_BLOB_N_STATUSES];
} wd_blob_stats;

/** The status of a WD_BLOB_S* index. */
unsigned wd_blob_status_code(int index);

/** The blob endpoints: borrowed pieces whisperd already has, the store,
 *  and the counters. */
typedef struct wd_tus_ctx {
  whisper_server *srv;  /* checks the upload tokens */
  const wd_config *cfg; /* limits, --clock-offset-ms */
  wd_blobs *store;      /* NULL: no blob store (--db :memory: without --blob-dir) */
  wd_blob_stats stats;
} wd_tus_ctx;

/** One HTTP transaction on a blob path (net.c keeps a pointer to it in its
 *  per-connection data). */
typedef struct wd_tus wd_tus;

/** 1 if `path` is the blob store's (/v1/blobs, /v1/blobs/...). */
int wd_tus_path(const char *path);

/**
 * LWS_CALLBACK_HTTP for a blob path: reads the method and headers and
 * decides. *tx gets the transaction (freed by wd_tus_free); the answer is
 * written on LWS_CALLBACK_HTTP_WRITEABLE (after the request body, if
 * any). Returns 0, or -1 to close the connection.
 */
int wd_tus_request(wd_tus_ctx *t, struct lws *wsi, const char *path, wd_tus **tx);

/** A piece of the request body (LWS_CALLBACK_HTTP_BODY). 0 or -1. */
int wd_tus_body(wd_tus_ctx *t, wd_tus *tx, const void *in, size_t len);

/** The whole body arrived (LWS_CALLBACK_HTTP_BODY_COMPLETION): the answer
 *  is decided and written when writable. 0 or -1. */
int wd_tus_body_done(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi);

/** LWS_CALLBACK_HTTP_WRITEABLE: writes the headers, then the body in
 *  pieces. 0 to go on (*done set once the transaction is over and the
 *  connection may serve the next one), -1 to close. */
int wd_tus_writeable(wd_tus_ctx *t, wd_tus *tx, struct lws *wsi, int *done);

/** The transaction ends (answered, or the connection closed): a PATCH cut
 *  off keeps the bytes that arrived (made durable and acknowledged, as tus
 *  asks), everything else is dropped. Accepts NULL. */
void wd_tus_free(wd_tus_ctx *t, wd_tus *tx);

/** whisperd's clock for blobs: wd_now_ms() + --clock-offset-ms. */
uint64_t wd_blob_now(const wd_config *cfg);

#endif
