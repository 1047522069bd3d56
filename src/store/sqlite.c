/*
 * The SQLite store: the record interface of store.h on one SQLite file.
 * Nothing readable is left in the file: a record's row is found by a keyed
 * BLAKE2b hash of (kind, key) (so contact names and ids do not show), and
 * its value holds the key and the record sealed with XChaCha20-Poly1305
 * under the store key, with the row's hash as associated data (a value
 * moved to another row no longer opens). An ordered row (history, outbox)
 * has its key in the clear (the library builds those keys from keyed tags
 * and numbers), and its value seals only the record, with the kind and key
 * as associated data. Both keys are derived from the store key.
 *
 * Schema (PRAGMA user_version):
 *   1  meta(name, value)                      salt, key check
 *      records(row, value)                    the protocol's records
 *   2  ordered(kind, key, value)              history and outbox, in key order
 *                                             (keys made of tags and numbers)
 *   3  (no table changes)                     ordered values re-sealed without
 *                                             the key inside, AD = kind || key
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SCHEMA_VERSION 3
#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SALT_LEN crypto_pwhash_SALTBYTES

static const char CHECK_PLAIN[] = "libwhisper store key check";

#define ROW_LEN 32
#define ORDERED_KEY_MAX 1024 /* bytes of an ordered row's key */

#define NONCE_POOL 4080 /* 170 nonces per refill */

typedef struct sq_store {
  sqlite3 *db;
  sqlite3_stmt *get, *put, *add, *del, *oget, *oput, *oadd, *odel, *tbegin, *tcommit, *trollback;
  sqlite3_stmt *tsave, *trelease, *tundo; /* SAVEPOINT, RELEASE, ROLLBACK TO (savepoint "sp") */
  sqlite3_stmt *scan[8]; /* scan()'s statements, by shape (see sq_scan), prepared on first use */
  uint8_t nonces[NONCE_POOL]; /* random, public once used: one syscall per 170 */
  size_t nonces_left;
  uint8_t *key; /* 3 x KEY_LEN in sodium secure memory: master, sealing, row index */
  whisper_store *self;
  int in_txn;
  unsigned savepoints; /* open inside the transaction */
} sq_store;

static int sq_begin(void *user);

/* --- errors ----------------------------------------------------------------- */

/* A failure of the store's own (not SQLite's): `what` alone. */
static int sq_fail(sq_store *s, int code, const char *what) {
  if (s->self) snprintf(s->self->last_error, sizeof s->self->last_error, "%s", what);
  return code;
}

/* SQLite's name of a primary result code. */
static const char *sq_name(int rc) {
  static const char *const names[] = {
      "SQLITE_OK",       "SQLITE_ERROR",    "SQLITE_INTERNAL", "SQLITE_PERM",
      "SQLITE_ABORT",    "SQLITE_BUSY",     "SQLITE_LOCKED",   "SQLITE_NOMEM",
      "SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",   "SQLITE_CORRUPT",
      "SQLITE_NOTFOUND", "SQLITE_FULL",     "SQLITE_CANTOPEN", "SQLITE_PROTOCOL",
      "SQLITE_EMPTY",    "SQLITE_SCHEMA",   "SQLITE_TOOBIG",   "SQLITE_CONSTRAINT",
      "SQLITE_MISMATCH", "SQLITE_MISUSE",   "SQLITE_NOLFS",    "SQLITE_AUTH",
      "SQLITE_FORMAT",   "SQLITE_RANGE",    "SQLITE_NOTADB",   "SQLITE_NOTICE",
      "SQLITE_WARNING"};
  rc &= 0xFF;
  if (rc == SQLITE_ROW) return "SQLITE_ROW";
  if (rc == SQLITE_DONE) return "SQLITE_DONE";
  return rc < (int)(sizeof names / sizeof *names) ? names[rc] : "SQLITE_?";
}

static int sq_code(int rc);

/* SQLite failed with `rc` doing `what`: the store's sentence is `what`,
 * SQLite's code name, its extended code and its message, e.g. "writing a
 * record: SQLITE_BUSY (5): database is locked". SQLite's messages name
 * tables and constraints, never a bound value. Returns our code. */
static int sq_err(sq_store *s, int rc, const char *what) {
  int code = sq_code(rc);
  if (s->self) {
    int ext = rc;
    const char *msg = sqlite3_errstr(rc);
    if (s->db && (sqlite3_extended_errcode(s->db) & 0xFF) == (rc & 0xFF)) {
      ext = sqlite3_extended_errcode(s->db); /* else the handle's is another call's */
      msg = sqlite3_errmsg(s->db);
    }
    snprintf(s->self->last_error, sizeof s->self->last_error, "%s: %s (%d): %s", what, sq_name(rc),
             ext, msg);
  }
  return code;
}

/* Maps a SQLite result code to ours. */
static int sq_code(int rc) {
  switch (rc & 0xFF) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return WHISPER_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return WHISPER_EBUSY;
    case SQLITE_NOMEM: return WHISPER_ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return WHISPER_ECORRUPT;
    default: return WHISPER_ESTORE;
  }
}

/* --- sealing ------------------------------------------------------------------ */

#define SEAL_KEY(s) ((s)->key + KEY_LEN)
#define ROW_KEY(s) ((s)->key + 2 * KEY_LEN)

/* The sealing and row keys from the master key. */
static void subkeys(sq_store *s) {
  crypto_kdf_derive_from_key(SEAL_KEY(s), KEY_LEN, 1, "whspseal", s->key);
  crypto_kdf_derive_from_key(ROW_KEY(s), KEY_LEN, 2, "whsprows", s->key);
}

/* The row id of (kind, key): a keyed hash, so nothing of the key shows. */
static void row_id(const sq_store *s, uint8_t out[ROW_LEN], int kind, const uint8_t *k, size_t n) {
  crypto_generichash_state h;
  uint8_t kb[4];
  wh_be32(kb, (uint32_t)kind);
  crypto_generichash_init(&h, ROW_KEY(s), KEY_LEN, ROW_LEN);
  crypto_generichash_update(&h, kb, 4);
  if (n) crypto_generichash_update(&h, k, n);
  crypto_generichash_final(&h, out, ROW_LEN);
}

/* Sealed values: nonce (24) || XChaCha20-Poly1305(plaintext) || tag (16).
 *   records row: plaintext = kind (4, BE) || key_len (4, BE) || key || record,
 *                AD = the row id;
 *   ordered row: plaintext = record, AD = kind (4, BE) || key.
 * Schema 2 sealed ordered rows as records rows (migrate_v3 re-seals them). */
static void next_nonce(sq_store *s, uint8_t out[NONCE_LEN]) {
  if (s->nonces_left < NONCE_LEN) {
    randombytes_buf(s->nonces, sizeof s->nonces);
    s->nonces_left = sizeof s->nonces;
  }
  memcpy(out, s->nonces + sizeof s->nonces - s->nonces_left, NONCE_LEN);
  s->nonces_left -= NONCE_LEN;
}

/* The associated data of ordered row (kind, k): in `ad`, 4 + n bytes. */
static size_t ordered_ad(uint8_t ad[4 + ORDERED_KEY_MAX], int kind, const uint8_t *k, size_t n) {
  wh_be32(ad, (uint32_t)kind);
  if (n) memcpy(ad + 4, k, n);
  return 4 + n;
}

/* A value for a plaintext of pn bytes: the caller lays the plaintext out
 * at value + NONCE_LEN (where its ciphertext goes: libsodium seals in
 * place, so no copy of it is left to wipe), then calls value_seal(). */
static uint8_t *value_new(size_t pn) { return malloc(NONCE_LEN + pn + TAG_LEN); }

static size_t value_seal(sq_store *s, const uint8_t seal_key[KEY_LEN], uint8_t *c, size_t pn,
                         const uint8_t *ad, size_t ad_len) {
  unsigned long long clen = 0;
  next_nonce(s, c); /* nonces are not protocol randomness */
  crypto_aead_xchacha20poly1305_ietf_encrypt(c + NONCE_LEN, &clen, c + NONCE_LEN, pn, ad, ad_len,
                                             NULL, c, seal_key);
  return NONCE_LEN + (size_t)clen;
}

/* Opens value c into a new buffer (*out): WHISPER_ECORRUPT if it fails
 * authentication. */
static int value_open(const uint8_t seal_key[KEY_LEN], const uint8_t *ad, size_t ad_len,
                      const uint8_t *c, size_t cn, whisper_buf **out) {
  if (cn < NONCE_LEN + TAG_LEN) return WHISPER_ECORRUPT;
  whisper_buf *b = whisper_buf_new(NULL, cn - NONCE_LEN - TAG_LEN);
  if (b == NULL) return WHISPER_ENOMEM;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(b->data, NULL, NULL, c + NONCE_LEN,
                                                 cn - NONCE_LEN, ad, ad_len, c, seal_key) != 0) {
    whisper_buf_free(b);
    return WHISPER_ECORRUPT;
  }
  *out = b;
  return WHISPER_OK;
}

/* Seals a records row's value. */
static int seal(sq_store *s, const uint8_t seal_key[KEY_LEN], const uint8_t row[ROW_LEN], int kind,
                const uint8_t *k, size_t n, const uint8_t *v, size_t vn, uint8_t **out,
                size_t *out_len) {
  size_t pn = 8 + n + vn;
  uint8_t *c = value_new(pn);
  if (c == NULL) return WHISPER_ENOMEM;
  uint8_t *plain = c + NONCE_LEN;
  wh_be32(plain, (uint32_t)kind);
  wh_be32(plain + 4, (uint32_t)n);
  if (n) memcpy(plain + 8, k, n);
  if (vn) memcpy(plain + 8 + n, v, vn);
  *out_len = value_seal(s, seal_key, c, pn, row, ROW_LEN);
  *out = c;
  return WHISPER_OK;
}

/* Seals an ordered row's value. */
static int seal_ordered(sq_store *s, const uint8_t seal_key[KEY_LEN], int kind, const uint8_t *k,
                        size_t n, const uint8_t *v, size_t vn, uint8_t **out, size_t *out_len) {
  uint8_t ad[4 + ORDERED_KEY_MAX];
  if (n > ORDERED_KEY_MAX) return WHISPER_EINVAL;
  uint8_t *c = value_new(vn);
  if (c == NULL) return WHISPER_ENOMEM;
  if (vn) memcpy(c + NONCE_LEN, v, vn);
  *out_len = value_seal(s, seal_key, c, vn, ad, ordered_ad(ad, kind, k, n));
  *out = c;
  return WHISPER_OK;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Opens a records row's value into its record (*out) and, if key_out is
 * not NULL, its kind and key. When k is not NULL, checks that they are
 * (kind, k). */
static int unseal(const uint8_t seal_key[KEY_LEN], const uint8_t row[ROW_LEN], int kind,
                  const uint8_t *k, size_t n, const uint8_t *c, size_t cn, whisper_buf **out,
                  int *kind_out, whisper_buf **key_out) {
  whisper_buf *plain = NULL;
  int rc = value_open(seal_key, row, ROW_LEN, c, cn, &plain);
  if (rc != WHISPER_OK) return rc;
  size_t pn = plain->len, kn = pn >= 8 ? be32(plain->data + 4) : 0;
  if (pn < 8 || kn > pn - 8 ||
      (k && ((int)be32(plain->data) != kind || kn != n ||
             (n && memcmp(plain->data + 8, k, n) != 0)))) {
    rc = WHISPER_ECORRUPT;
  } else {
    *out = whisper_buf_new(plain->data + 8 + kn, pn - 8 - kn);
    if (*out == NULL) rc = WHISPER_ENOMEM;
    if (rc == WHISPER_OK && key_out) {
      *kind_out = (int)be32(plain->data);
      if ((*key_out = whisper_buf_new(plain->data + 8, kn)) == NULL) {
        whisper_buf_free(*out);
        rc = WHISPER_ENOMEM;
      }
    }
  }
  whisper_buf_free(plain);
  return rc;
}

/* Opens an ordered row's value into its record (*out). */
static int unseal_ordered(const uint8_t seal_key[KEY_LEN], int kind, const uint8_t *k, size_t n,
                          const uint8_t *c, size_t cn, whisper_buf **out) {
  uint8_t ad[4 + ORDERED_KEY_MAX];
  if (n > ORDERED_KEY_MAX) return WHISPER_ECORRUPT;
  return value_open(seal_key, ad, ordered_ad(ad, kind, k, n), c, cn, out);
}

/* --- statements ------------------------------------------------------------------ */

static int exec(sq_store *s, const char *sql) {
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? WHISPER_OK : sq_err(s, rc, sql);
}

static int meta_get(sq_store *s, const char *name, uint8_t **v, size_t *n) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = ?", -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_err(s, rc, "reading the store's metadata");
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  int out = WHISPER_ENOTFOUND;
  if (rc == SQLITE_ROW) {
    *n = (size_t)sqlite3_column_bytes(st, 0);
    *v = malloc(*n ? *n : 1);
    if (*v == NULL) out = WHISPER_ENOMEM;
    else {
      if (*n) memcpy(*v, sqlite3_column_blob(st, 0), *n);
      out = WHISPER_OK;
    }
  } else if (rc != SQLITE_DONE) {
    out = sq_err(s, rc, "reading the store's metadata");
  }
  sqlite3_finalize(st);
  return out;
}

static int meta_put(sq_store *s, const char *name, const uint8_t *v, size_t n) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)", -1,
                              &st, NULL);
  if (rc != SQLITE_OK) return sq_err(s, rc, "writing the store's metadata");
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, v, (int)n, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? WHISPER_OK : sq_err(s, rc, "writing the store's metadata");
}

/* --- the record interface ---------------------------------------------------------- */

/* Runs a prepared statement (if prepared yet) or the SQL text. */
static int run(sq_store *s, sqlite3_stmt *st, const char *sql) {
  if (st == NULL) return exec(s, sql);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? WHISPER_OK : sq_err(s, rc, sql);
}

static int sq_begin(void *user) {
  sq_store *s = user;
  if (s->in_txn) return WHISPER_ESTATE;
  int rc = run(s, s->tbegin, "BEGIN IMMEDIATE");
  if (rc == WHISPER_OK) s->in_txn = 1;
  return rc;
}

static int sq_commit(void *user) {
  sq_store *s = user;
  int rc = run(s, s->tcommit, "COMMIT");
  if (rc != WHISPER_OK && !sqlite3_get_autocommit(s->db)) run(s, s->trollback, "ROLLBACK");
  s->in_txn = 0;
  s->savepoints = 0;
  return rc;
}

static void sq_rollback(void *user) {
  sq_store *s = user;
  if (s->in_txn && !sqlite3_get_autocommit(s->db)) run(s, s->trollback, "ROLLBACK");
  s->in_txn = 0;
  s->savepoints = 0;
}

/* Savepoints are all named "sp": SQLite keeps them in a stack, and RELEASE
 * and ROLLBACK TO act on the newest of that name. SQLite may roll the
 * whole transaction back by itself after an I/O error, a full disk or a
 * lack of memory: a savepoint then would start a new transaction, so the
 * three refuse once SQLite is back in autocommit mode. */
static int txn_lost(sq_store *s) {
  if (!sqlite3_get_autocommit(s->db)) return WHISPER_OK;
  snprintf(s->self->last_error, sizeof s->self->last_error,
           "the transaction was rolled back after a failure");
  return WHISPER_ESTORE;
}

static int sq_savepoint(void *user) {
  sq_store *s = user;
  if (!s->in_txn) return WHISPER_ESTATE;
  int rc = txn_lost(s);
  if (rc == WHISPER_OK) rc = run(s, s->tsave, "SAVEPOINT sp");
  if (rc == WHISPER_OK) s->savepoints++;
  return rc;
}

static int sq_release(void *user) {
  sq_store *s = user;
  if (!s->in_txn || s->savepoints == 0) return WHISPER_ESTATE;
  int rc = txn_lost(s);
  if (rc == WHISPER_OK) rc = run(s, s->trelease, "RELEASE sp");
  if (rc == WHISPER_OK) s->savepoints--;
  return rc;
}

/* ROLLBACK TO keeps the savepoint open: RELEASE closes it. */
static int sq_rollback_to(void *user) {
  sq_store *s = user;
  if (!s->in_txn || s->savepoints == 0) return WHISPER_ESTATE;
  int rc = txn_lost(s);
  if (rc == WHISPER_OK) rc = run(s, s->tundo, "ROLLBACK TO sp");
  if (rc == WHISPER_OK) rc = run(s, s->trelease, "RELEASE sp");
  if (rc == WHISPER_OK) s->savepoints--;
  return rc;
}

/* Binds the row of (kind, key): its hash in `records`, or (kind, key) in
 * `ordered`. */
static void bind_row(sqlite3_stmt *st, int kind, const uint8_t *k, size_t n,
                     const uint8_t row[ROW_LEN]) {
  static const uint8_t empty[1];
  if (WHISPER_REC_IS_ORDERED(kind)) {
    sqlite3_bind_int(st, 1, kind);
    sqlite3_bind_blob(st, 2, n ? k : empty, (int)n, SQLITE_STATIC);
  } else {
    sqlite3_bind_blob(st, 1, row, ROW_LEN, SQLITE_STATIC);
  }
}

static int sq_get(void *user, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  sq_store *s = user;
  int ordered = WHISPER_REC_IS_ORDERED(kind);
  sqlite3_stmt *st = ordered ? s->oget : s->get;
  uint8_t row[ROW_LEN];
  if (!ordered) row_id(s, row, kind, k, n);
  bind_row(st, kind, k, n, row);
  int rc = sqlite3_step(st), out_rc;
  if (rc == SQLITE_ROW) {
    const uint8_t *c = sqlite3_column_blob(st, 0);
    size_t cn = (size_t)sqlite3_column_bytes(st, 0);
    out_rc = ordered ? unseal_ordered(SEAL_KEY(s), kind, k, n, c, cn, out)
                     : unseal(SEAL_KEY(s), row, kind, k, n, c, cn, out, NULL, NULL);
    if (out_rc == WHISPER_ECORRUPT) sq_fail(s, out_rc, "a stored record fails authentication");
  } else if (rc == SQLITE_DONE) {
    out_rc = WHISPER_ENOTFOUND;
  } else {
    out_rc = sq_err(s, rc, "reading a record");
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return out_rc;
}

/* Seals and writes a record with `st` (of `records`: row, value; of
 * `ordered`: kind, key, value). WHISPER_EINVAL for an ordered key over
 * ORDERED_KEY_MAX bytes. */
static int write_row(sq_store *s, sqlite3_stmt *st, int kind, const uint8_t *k, size_t n,
                     const uint8_t *v, size_t vn) {
  uint8_t *c, row[ROW_LEN];
  size_t cn;
  int ordered = WHISPER_REC_IS_ORDERED(kind), rc;
  if (vn > (size_t)INT32_MAX - 64 - n) return WHISPER_EINVAL;
  if (ordered) {
    rc = seal_ordered(s, SEAL_KEY(s), kind, k, n, v, vn, &c, &cn);
  } else {
    row_id(s, row, kind, k, n);
    rc = seal(s, SEAL_KEY(s), row, kind, k, n, v, vn, &c, &cn);
  }
  if (rc != WHISPER_OK) return rc;
  bind_row(st, kind, k, n, row);
  sqlite3_bind_blob(st, ordered ? 3 : 2, c, (int)cn, SQLITE_STATIC);
  int step = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  free(c);
  return step == SQLITE_DONE ? WHISPER_OK : sq_err(s, step, "writing a record");
}

static int sq_put(void *user, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  sq_store *s = user;
  return write_row(s, WHISPER_REC_IS_ORDERED(kind) ? s->oput : s->put, kind, k, n, v, vn);
}

/* Insert-if-absent: one lookup (the insert's own) instead of a read and a
 * write. */
static int sq_add(void *user, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  sq_store *s = user;
  int rc = write_row(s, WHISPER_REC_IS_ORDERED(kind) ? s->oadd : s->add, kind, k, n, v, vn);
  return rc == WHISPER_OK && sqlite3_changes(s->db) == 0 ? WHISPER_EDUPLICATE : rc;
}

static int sq_del(void *user, int kind, const uint8_t *k, size_t n) {
  sq_store *s = user;
  uint8_t row[ROW_LEN];
  int ordered = WHISPER_REC_IS_ORDERED(kind);
  if (!ordered) row_id(s, row, kind, k, n);
  sqlite3_stmt *st = ordered ? s->odel : s->del;
  bind_row(st, kind, k, n, row);
  int step = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return step == SQLITE_DONE ? WHISPER_OK : sq_err(s, step, "deleting a record");
}

/* The smallest key above every key that starts with `p` (n bytes), in
 * `out`; 0 if there is none (p empty or all 0xFF). */
static size_t prefix_end(uint8_t *out, const uint8_t *p, size_t n) {
  while (n > 0 && p[n - 1] == 0xFF) n--;
  if (n == 0) return 0;
  memcpy(out, p, n);
  out[n - 1]++;
  return n;
}

/* SQLite's order of blobs: bytewise, then the shorter first. */
static int blob_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int c = an && bn ? memcmp(a, b, an < bn ? an : bn) : 0;
  return c ? c : an < bn ? -1 : an > bn;
}

static int sq_scan(void *user, int kind, const uint8_t *prefix, size_t prefix_len,
                   const uint8_t *bound, size_t bound_len, int descending, size_t limit,
                   whisper_scan_fn fn, void *arg) {
  sq_store *s = user;
  static const uint8_t empty[1];
  if (!WHISPER_REC_IS_ORDERED(kind) || prefix_len > 256) return WHISPER_EINVAL;
  uint8_t end[256];
  size_t end_len = prefix_end(end, prefix, prefix_len);
  /* The range as one lower and one upper limit: SQLite seeks to one limit
   * on each side and tests any other row by row, so a bound inside the
   * prefix's range must replace the limit it tightens (else a scan from a
   * bound deep in a long range walks every row above it). */
  const uint8_t *lo = prefix_len ? prefix : empty, *hi = end_len ? end : NULL;
  size_t lo_len = prefix_len, hi_len = end_len;
  int lo_open = 0; /* key > lo rather than key >= lo */
  if (bound && !descending && blob_cmp(bound, bound_len, lo, lo_len) >= 0) {
    lo = bound_len ? bound : empty;
    lo_len = bound_len;
    lo_open = 1;
  }
  if (bound && descending && (hi == NULL || blob_cmp(bound, bound_len, hi, hi_len) < 0)) {
    hi = bound_len ? bound : empty;
    hi_len = bound_len;
  }
  /* one statement per shape, kept; a scan inside another scan's callback
   * of the same shape gets one of its own */
  int shape = lo_open | (hi ? 2 : 0) | (descending ? 4 : 0), rc;
  sqlite3_stmt *st = s->scan[shape];
  int kept = st != NULL && !sqlite3_stmt_busy(st);
  if (!kept) {
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT key, value FROM ordered WHERE kind = ?1 AND key %s ?2%s"
             " ORDER BY key %s LIMIT ?4",
             lo_open ? ">" : ">=", hi ? " AND key < ?3" : "", descending ? "DESC" : "ASC");
    int keep = s->scan[shape] == NULL;
    rc = sqlite3_prepare_v3(s->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL);
    if (rc != SQLITE_OK) return sq_err(s, rc, "scanning records");
    if (keep) s->scan[shape] = st;
    kept = keep;
  }
  sqlite3_bind_int(st, 1, kind);
  sqlite3_bind_blob(st, 2, lo, (int)lo_len, SQLITE_STATIC);
  if (hi) sqlite3_bind_blob(st, 3, hi, (int)hi_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
  int out = WHISPER_OK;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const uint8_t *k = sqlite3_column_blob(st, 0);
    size_t kn = (size_t)sqlite3_column_bytes(st, 0);
    whisper_buf *v = NULL;
    out = unseal_ordered(SEAL_KEY(s), kind, k, kn, sqlite3_column_blob(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1), &v);
    if (out != WHISPER_OK) {
      if (out == WHISPER_ECORRUPT) sq_fail(s, out, "a stored record fails authentication");
      break;
    }
    int stop = fn(arg, k, kn, v->data, v->len);
    whisper_buf_free(v);
    if (stop) break;
  }
  if (out == WHISPER_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
    out = sq_err(s, rc, "scanning records");
  if (kept) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  } else {
    sqlite3_finalize(st);
  }
  return out;
}

static void sq_destroy(void *user) {
  sq_store *s = user;
  if (s == NULL) return;
  sqlite3_finalize(s->get);
  sqlite3_finalize(s->put);
  sqlite3_finalize(s->add);
  sqlite3_finalize(s->oadd);
  sqlite3_finalize(s->del);
  sqlite3_finalize(s->oget);
  sqlite3_finalize(s->oput);
  sqlite3_finalize(s->odel);
  sqlite3_finalize(s->tbegin);
  sqlite3_finalize(s->tcommit);
  sqlite3_finalize(s->trollback);
  sqlite3_finalize(s->tsave);
  sqlite3_finalize(s->trelease);
  sqlite3_finalize(s->tundo);
  for (int i = 0; i < 8; i++) sqlite3_finalize(s->scan[i]);
  if (s->db) sqlite3_close_v2(s->db);
  if (s->key) sodium_free(s->key);
  free(s);
}

static const whisper_store_ops sq_ops = {WHISPER_STORE_OPS_VERSION, sq_begin, sq_commit, sq_rollback,
                                         sq_get, sq_put, sq_del, sq_destroy, sq_scan,
                                         sq_add, sq_savepoint, sq_release, sq_rollback_to, NULL};

/* --- keys ------------------------------------------------------------------------- */

/* Derives the store key from the options into s->key; `salt` is used for a
 * passphrase. */
static int derive_key(sq_store *s, const uint8_t *key, size_t key_len, const char *pass,
                      const uint8_t salt[SALT_LEN]) {
  (void)key_len;
  if (key) {
    memcpy(s->key, key, KEY_LEN);
  } else if (crypto_pwhash(s->key, KEY_LEN, pass, strlen(pass), salt,
                           crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                           crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return WHISPER_ENOMEM;
  }
  subkeys(s);
  return WHISPER_OK;
}

static int check_key_args(const uint8_t *key, size_t key_len, const char *pass) {
  if ((key == NULL) == (pass == NULL)) return WHISPER_EINVAL;
  if (key && key_len != KEY_LEN) return WHISPER_EINVAL;
  return WHISPER_OK;
}

/* Writes the salt (for a passphrase; deletes it for a key) and the sealed
 * key check. */
static int write_key_meta(sq_store *s, int with_salt, const uint8_t salt[SALT_LEN]) {
  uint8_t *c;
  size_t cn;
  int rc = with_salt ? meta_put(s, "salt", salt, SALT_LEN)
                     : exec(s, "DELETE FROM meta WHERE name = 'salt'");
  if (rc != WHISPER_OK) return rc;
  static const uint8_t check_row[ROW_LEN];
  rc = seal(s, SEAL_KEY(s), check_row, 0, NULL, 0, (const uint8_t *)CHECK_PLAIN,
            sizeof CHECK_PLAIN, &c, &cn);
  if (rc != WHISPER_OK) return rc;
  rc = meta_put(s, "key_check", c, cn);
  free(c);
  return rc;
}

/* --- schema ------------------------------------------------------------------------- */

/* The SQL of each step; NULL for a step that is code (migrate_v3). */
static const char *const MIGRATIONS[SCHEMA_VERSION] = {
    /* 0 -> 1 */
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE records(row BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
    /* 1 -> 2 */
    "CREATE TABLE ordered(kind INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    "  PRIMARY KEY(kind, key)) WITHOUT ROWID;",
    /* 2 -> 3: migrate_v3 */
    NULL,
};

static int schema_version(sq_store *s, int *v) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_err(s, rc, "reading the schema version");
  rc = sqlite3_step(st);
  *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? WHISPER_OK : sq_err(s, rc, "reading the schema version");
}

/* Schema 2 -> 3: every ordered row's value, sealed as a records row's
 * (the key inside, AD = the row id), is sealed again as an ordered row's.
 * Rows are read in chunks of MIGRATE_CHUNK in key order and rewritten
 * after each chunk's read is over (writing to a table a SELECT walks is
 * undefined), so memory stays small whatever the history's size. */
#define MIGRATE_CHUNK 256

typedef struct resealed {
  int kind;
  whisper_buf *key;
  uint8_t *value;
  size_t value_len;
} resealed;

static int migrate_v3_chunk(sq_store *s, sqlite3_stmt *sel, resealed *r, size_t *n) {
  int rc = WHISPER_OK, step = SQLITE_DONE;
  *n = 0;
  while (rc == WHISPER_OK && *n < MIGRATE_CHUNK && (step = sqlite3_step(sel)) == SQLITE_ROW) {
    int kind = sqlite3_column_int(sel, 0);
    const uint8_t *k = sqlite3_column_blob(sel, 1);
    size_t kn = (size_t)sqlite3_column_bytes(sel, 1);
    uint8_t row[ROW_LEN], *c = NULL;
    size_t cn = 0;
    whisper_buf *record = NULL;
    row_id(s, row, kind, k, kn);
    rc = unseal(SEAL_KEY(s), row, kind, k, kn, sqlite3_column_blob(sel, 2),
                (size_t)sqlite3_column_bytes(sel, 2), &record, NULL, NULL);
    if (rc == WHISPER_ECORRUPT) sq_fail(s, rc, "a stored record fails authentication");
    if (rc == WHISPER_OK) rc = seal_ordered(s, SEAL_KEY(s), kind, k, kn, record->data, record->len, &c, &cn);
    whisper_buf_free(record);
    if (rc == WHISPER_OK && (r[*n].key = whisper_buf_new(k, kn)) == NULL) rc = WHISPER_ENOMEM;
    if (rc == WHISPER_OK) {
      r[*n].kind = kind;
      r[*n].value = c;
      r[*n].value_len = cn;
      (*n)++;
    } else {
      free(c);
    }
  }
  if (rc == WHISPER_OK && *n < MIGRATE_CHUNK && step != SQLITE_DONE)
    rc = sq_err(s, step, "re-sealing the history");
  return rc;
}

static int migrate_v3(sq_store *s) {
  static const uint8_t empty[1];
  sqlite3_stmt *sel = NULL, *upd = NULL;
  resealed *r = calloc(MIGRATE_CHUNK, sizeof *r);
  size_t n = 0;
  int rc = r ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK &&
      (sqlite3_prepare_v2(s->db,
                          "SELECT kind, key, value FROM ordered WHERE (kind, key) > (?1, ?2)"
                          " ORDER BY kind, key LIMIT ?3",
                          -1, &sel, NULL) != SQLITE_OK ||
       sqlite3_prepare_v2(s->db, "UPDATE ordered SET value = ?1 WHERE kind = ?2 AND key = ?3", -1,
                          &upd, NULL) != SQLITE_OK))
    rc = sq_err(s, sqlite3_errcode(s->db), "re-sealing the history");
  if (rc == WHISPER_OK) { /* the cursor starts below every row */
    sqlite3_bind_int64(sel, 1, INT64_MIN);
    sqlite3_bind_blob(sel, 2, empty, 0, SQLITE_STATIC);
    sqlite3_bind_int(sel, 3, MIGRATE_CHUNK);
  }
  while (rc == WHISPER_OK) {
    rc = migrate_v3_chunk(s, sel, r, &n);
    sqlite3_reset(sel);
    for (size_t i = 0; i < n && rc == WHISPER_OK; i++) {
      sqlite3_bind_blob(upd, 1, r[i].value, (int)r[i].value_len, SQLITE_STATIC);
      sqlite3_bind_int(upd, 2, r[i].kind);
      sqlite3_bind_blob(upd, 3, r[i].key->data, (int)r[i].key->len, SQLITE_STATIC);
      int step = sqlite3_step(upd);
      sqlite3_reset(upd);
      if (step != SQLITE_DONE) rc = sq_err(s, step, "re-sealing the history");
    }
    if (n == MIGRATE_CHUNK) { /* go on after the chunk's last row */
      sqlite3_bind_int(sel, 1, r[n - 1].kind);
      sqlite3_bind_blob(sel, 2, r[n - 1].key->data, (int)r[n - 1].key->len, SQLITE_TRANSIENT);
    }
    for (size_t i = 0; i < n; i++) {
      whisper_buf_free(r[i].key);
      free(r[i].value);
    }
    if (n < MIGRATE_CHUNK) break;
  }
  sqlite3_finalize(sel);
  sqlite3_finalize(upd);
  free(r);
  return rc;
}

/* Brings the schema up to date inside the open transaction, with the key
 * known (migrate_v3 re-seals). */
static int migrate(sq_store *s, int from) {
  char sql[64];
  for (int v = from; v < SCHEMA_VERSION; v++) {
    int rc = MIGRATIONS[v] ? exec(s, MIGRATIONS[v]) : migrate_v3(s);
    if (rc != WHISPER_OK) return rc;
  }
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
  return exec(s, sql);
}

/* --- open ---------------------------------------------------------------------------- */

static int open_fail(sq_store *s, whisper_store *ws, int rc, const char **why, const char *msg) {
  if (why) *why = msg;
  if (ws) whisper_store_free(ws); /* destroys s */
  else sq_destroy(s);
  return rc;
}

/* Makes a missing store file empty with mode 0600, whatever the umask
 * (SQLite would make it 0644 less the umask; its -wal, -shm and -journal
 * files copy the database file's mode, so they are 0600 too). An existing
 * file keeps its mode. Returns 0, or -1 when the file was made but its mode
 * could not be set (it is removed again). Any other failure is left to
 * SQLite's open to report. */
static int create_private(const char *path) {
  if (path[0] == 0 || strcmp(path, ":memory:") == 0) return 0;
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  int rc = fchmod(fd, 0600);
  close(fd);
  if (rc != 0) unlink(path);
  return rc == 0 ? 0 : -1;
}

int whisper_store_sqlite_open(whisper_store **out, const char *path,
                              const whisper_sqlite_options_t *o, const char **why) {
  whisper_store *ws = NULL;
  uint8_t *salt = NULL;
  size_t salt_n = 0;
  int rc, version = 0;
  if (why) *why = "";
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  if (path == NULL || o == NULL || o->version < 1 || o->version > WHISPER_SQLITE_OPTIONS_VERSION ||
      check_key_args(o->key, o->key_len, o->passphrase) != WHISPER_OK ||
      (o->synchronous != WHISPER_SYNC_FULL && o->synchronous != WHISPER_SYNC_NORMAL)) {
    if (why) *why = "bad options: give a path, exactly one of a 32-byte key and a passphrase, "
                    "and a synchronous mode";
    return WHISPER_EINVAL;
  }
  if (sodium_init() < 0) return WHISPER_EINTERNAL;
  sq_store *s = calloc(1, sizeof *s);
  if (s == NULL || (s->key = sodium_malloc(3 * KEY_LEN)) == NULL) {
    free(s);
    return WHISPER_ENOMEM;
  }
  if ((rc = whisper_store_new(&ws, &sq_ops, s)) != WHISPER_OK)
    return open_fail(s, NULL, rc, why,
                     rc == WHISPER_ENOMEM ? "out of memory" : "the store's function table is refused");
  s->self = ws;
  if (create_private(path) != 0)
    return open_fail(s, ws, WHISPER_ESTORE, why, "the store file cannot be made private (mode 0600)");
  int orc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (orc != SQLITE_OK)
    return open_fail(s, ws, sq_code(orc) == WHISPER_ECORRUPT ? WHISPER_ECORRUPT : WHISPER_ESTORE,
                     why, "the store file cannot be opened");
  sqlite3_busy_timeout(s->db, (int)(o->busy_timeout_ms > INT32_MAX ? INT32_MAX : o->busy_timeout_ms));
  sqlite3_extended_result_codes(s->db, 0);

  /* A damaged or foreign file shows here. */
  sqlite3_stmt *qc;
  orc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &qc, NULL);
  if (orc == SQLITE_OK) {
    orc = sqlite3_step(qc);
    const unsigned char *res = orc == SQLITE_ROW ? sqlite3_column_text(qc, 0) : NULL;
    int ok = res && strcmp((const char *)res, "ok") == 0;
    sqlite3_finalize(qc);
    if (!ok && (orc == SQLITE_ROW || sq_code(orc) == WHISPER_ECORRUPT))
      return open_fail(s, ws, WHISPER_ECORRUPT, why, "the store file is damaged or is not a store");
  }
  if (orc != SQLITE_OK && orc != SQLITE_ROW && orc != SQLITE_DONE)
    return open_fail(s, ws, sq_code(orc), why, "the store file cannot be read");

  if ((rc = exec(s, "PRAGMA journal_mode = WAL")) != WHISPER_OK ||
      (rc = exec(s, o->synchronous == WHISPER_SYNC_FULL ? "PRAGMA synchronous = FULL"
                                                        : "PRAGMA synchronous = NORMAL")) != WHISPER_OK)
    return open_fail(s, ws, rc, why, "the store file cannot be set up");
  if ((rc = sq_begin(s)) != WHISPER_OK) return open_fail(s, ws, rc, why, "the store is busy or unwritable");
  rc = schema_version(s, &version);
  if (rc == WHISPER_OK && version > SCHEMA_VERSION) {
    sq_rollback(s);
    return open_fail(s, ws, WHISPER_EVERSION, why, "the store was written by a newer libwhisper");
  }
  if (rc != WHISPER_OK) {
    sq_rollback(s);
    return open_fail(s, ws, rc, why, "the store's schema version cannot be read");
  }
  int fresh = version == 0;

  /* The key: derive it, verify it (an existing store), bring the schema up
   * to date (which may re-seal, so after the check), and record the key's
   * check (a new store). */
  uint8_t new_salt[SALT_LEN];
  if (fresh) {
    randombytes_buf(new_salt, sizeof new_salt);
  } else {
    rc = meta_get(s, "salt", &salt, &salt_n);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
    if (rc == WHISPER_OK && o->passphrase && salt_n != SALT_LEN) {
      sq_rollback(s);
      free(salt);
      return open_fail(s, ws, WHISPER_EKEY, why, "this store is protected by a key, not a passphrase");
    }
  }
  if (rc == WHISPER_OK)
    rc = derive_key(s, o->key, o->key_len, o->passphrase, fresh ? new_salt : salt);
  free(salt);
  if (rc == WHISPER_OK && !fresh) {
    uint8_t *c = NULL;
    size_t cn = 0;
    whisper_buf *plain = NULL;
    rc = meta_get(s, "key_check", &c, &cn);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_ECORRUPT;
    if (rc == WHISPER_OK) {
      static const uint8_t check_row[ROW_LEN];
      rc = unseal(SEAL_KEY(s), check_row, 0, NULL, 0, c, cn, &plain, NULL, NULL);
      if (rc == WHISPER_ECORRUPT) rc = WHISPER_EKEY;
      if (rc == WHISPER_OK && (plain->len != sizeof CHECK_PLAIN ||
                               memcmp(plain->data, CHECK_PLAIN, plain->len) != 0))
        rc = WHISPER_EKEY;
    }
    whisper_buf_free(plain);
    free(c);
  }
  if (rc == WHISPER_OK && version < SCHEMA_VERSION && (rc = migrate(s, version)) != WHISPER_OK) {
    sq_rollback(s);
    return open_fail(s, ws, rc, why, "the store's schema cannot be brought up to date");
  }
  if (rc == WHISPER_OK && fresh) rc = write_key_meta(s, o->passphrase != NULL, new_salt);
  if (rc == WHISPER_OK) rc = sq_commit(s);
  else sq_rollback(s);
  if (rc != WHISPER_OK)
    return open_fail(s, ws, rc, why,
                     rc == WHISPER_EKEY ? "the key or passphrase is not this store's"
                                        : "the store cannot be opened");

  if (sqlite3_prepare_v3(s->db, "SELECT value FROM records WHERE row = ?", -1,
                         SQLITE_PREPARE_PERSISTENT, &s->get, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "INSERT OR REPLACE INTO records(row, value) VALUES (?, ?)",
                         -1, SQLITE_PREPARE_PERSISTENT, &s->put, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db,
                         "INSERT INTO records(row, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                         -1, SQLITE_PREPARE_PERSISTENT, &s->add, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db,
                         "INSERT INTO ordered(kind, key, value) VALUES (?, ?, ?)"
                         " ON CONFLICT DO NOTHING",
                         -1, SQLITE_PREPARE_PERSISTENT, &s->oadd, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "DELETE FROM records WHERE row = ?", -1,
                         SQLITE_PREPARE_PERSISTENT, &s->del, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "SELECT value FROM ordered WHERE kind = ? AND key = ?", -1,
                         SQLITE_PREPARE_PERSISTENT, &s->oget, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "INSERT OR REPLACE INTO ordered(kind, key, value) VALUES (?, ?, ?)",
                         -1, SQLITE_PREPARE_PERSISTENT, &s->oput, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "DELETE FROM ordered WHERE kind = ? AND key = ?", -1,
                         SQLITE_PREPARE_PERSISTENT, &s->odel, NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT, &s->tbegin,
                         NULL) != SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT, &s->tcommit, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "ROLLBACK", -1, SQLITE_PREPARE_PERSISTENT, &s->trollback, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "SAVEPOINT sp", -1, SQLITE_PREPARE_PERSISTENT, &s->tsave, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "RELEASE sp", -1, SQLITE_PREPARE_PERSISTENT, &s->trelease, NULL) !=
          SQLITE_OK ||
      sqlite3_prepare_v3(s->db, "ROLLBACK TO sp", -1, SQLITE_PREPARE_PERSISTENT, &s->tundo, NULL) !=
          SQLITE_OK)
    return open_fail(s, ws, WHISPER_ESTORE, why, "the store's statements cannot be prepared");
  *out = ws;
  return WHISPER_OK;
}

int whisper_store_rekey(whisper_store *ws, const uint8_t *key, size_t key_len, const char *pass) {
  if (ws == NULL || ws->ops.begin != sq_begin || check_key_args(key, key_len, pass) != WHISPER_OK)
    return WHISPER_EINVAL;
  sq_store *s = ws->user;
  if (s->in_txn) return WHISPER_ESTATE;
  uint8_t *old = sodium_malloc(3 * KEY_LEN), salt[SALT_LEN];
  if (old == NULL) return WHISPER_ENOMEM;
  memcpy(old, s->key, 3 * KEY_LEN);
  int rc = sq_begin(s);
  if (rc != WHISPER_OK) {
    sodium_free(old);
    return rc;
  }
  /* Read every record under the old keys (writing to a table while a
   * SELECT walks it is undefined), then write them all under the new. */
  typedef struct rec {
    int kind;
    whisper_buf *key, *value;
  } rec;
  rec *recs = NULL;
  size_t n = 0, cap = 0;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT row, value, NULL, NULL FROM records UNION ALL "
                         "SELECT NULL, value, kind, key FROM ordered",
                         -1, &st, NULL) != SQLITE_OK)
    rc = sq_err(s, sqlite3_errcode(s->db), "re-encrypting the store");
  while (rc == WHISPER_OK) {
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE) break;
    if (step != SQLITE_ROW) {
      rc = sq_err(s, step, "re-encrypting the store");
      break;
    }
    if (n == cap) {
      rec *r = realloc(recs, (cap = cap ? cap * 2 : 64) * sizeof *recs);
      if (r == NULL) {
        rc = WHISPER_ENOMEM;
        break;
      }
      recs = r;
    }
    const uint8_t *c = sqlite3_column_blob(st, 1);
    size_t cn = (size_t)sqlite3_column_bytes(st, 1);
    if (sqlite3_column_type(st, 0) == SQLITE_NULL) { /* an ordered row: its kind and key show */
      recs[n].kind = sqlite3_column_int(st, 2);
      recs[n].key = whisper_buf_new(sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
      rc = recs[n].key ? unseal_ordered(old + KEY_LEN, recs[n].kind, recs[n].key->data,
                                        recs[n].key->len, c, cn, &recs[n].value)
                       : WHISPER_ENOMEM;
      if (rc != WHISPER_OK) whisper_buf_free(recs[n].key);
    } else if (sqlite3_column_bytes(st, 0) == ROW_LEN) {
      rc = unseal(old + KEY_LEN, sqlite3_column_blob(st, 0), 0, NULL, 0, c, cn, &recs[n].value,
                  &recs[n].kind, &recs[n].key);
    } else {
      rc = sq_fail(s, WHISPER_ECORRUPT, "a stored record has a malformed row id");
      break;
    }
    if (rc == WHISPER_OK) n++;
    else if (rc == WHISPER_ECORRUPT) sq_fail(s, rc, "a stored record fails authentication");
  }
  sqlite3_finalize(st);
  randombytes_buf(salt, sizeof salt);
  if (rc == WHISPER_OK) rc = derive_key(s, key, key_len, pass, salt);
  if (rc == WHISPER_OK) rc = write_key_meta(s, pass != NULL, salt);
  if (rc == WHISPER_OK) rc = exec(s, "DELETE FROM records; DELETE FROM ordered;");
  for (size_t i = 0; i < n; i++) {
    if (rc == WHISPER_OK)
      rc = sq_put(s, recs[i].kind, recs[i].key->data, recs[i].key->len, recs[i].value->data,
                  recs[i].value->len);
    whisper_buf_free(recs[i].key);
    whisper_buf_free(recs[i].value);
  }
  free(recs);
  if (rc == WHISPER_OK) rc = sq_commit(s);
  if (rc != WHISPER_OK) {
    sq_rollback(s);
    memcpy(s->key, old, 3 * KEY_LEN);
  }
  sodium_free(old);
  return rc;
}

int whisper_store_sqlite_delete(const char *path) {
  static const char *const suffix[3] = {"", "-wal", "-shm"};
  if (path == NULL) return WHISPER_EINVAL;
  size_t n = strlen(path);
  char *p = malloc(n + 5);
  if (p == NULL) return WHISPER_ENOMEM;
  int rc = WHISPER_OK;
  for (int i = 0; i < 3; i++) {
    snprintf(p, n + 5, "%s%s", path, suffix[i]);
    if (unlink(p) != 0 && errno != ENOENT) rc = WHISPER_ESTORE;
  }
  free(p);
  return rc;
}

