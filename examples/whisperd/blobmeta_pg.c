/*
 * whisperd: the blob store's metadata in PostgreSQL (blobmeta_pg.h says
 * what for, the tables and the locks).
 *
 * Every statement is a parameterised one in text format; a bytea goes as
 * "\x<hex>". Errors are logged with PostgreSQL's primary message only (its
 * DETAIL may quote a key, and a blob id is the capability to download the
 * blob) and come back as -errno: -EEXIST for a unique violation, -EBUSY
 * for a lock not granted in time, -EIO for the rest (a lost connection
 * among them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "blobmeta_pg.h"

#define NAME_MAX_LEN 44 /* the store's limit on --pg-table */
#define LOCK_TIMEOUT_MS 5000
#define KNOWN_MAX 1024 /* ids per wd_bmeta_pg_known() query */

struct wd_bmeta_pg {
  PGconn *db;
  char table[NAME_MAX_LEN + 1];
  char blobs[NAME_MAX_LEN + 16]; /* <table>_blobs */
  char key[NAME_MAX_LEN + 16];   /* <table>_blobs_key */
  uint64_t gen;                  /* the connection's generation: +1 at each new session */
  int in_tx;                     /* a creation's transaction is open */
};

/* --- small helpers ------------------------------------------------------------ */

static int name_ok(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > NAME_MAX_LEN || n[0] < 'a' || n[0] > 'z') return 0;
  for (size_t i = 0; i < len; i++)
    if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_')) return 0;
  return 1;
}

/* A bytea parameter: "\x" and the hex of `len` bytes (out: 2 * len + 3). */
static void bytea_param(char *out, const uint8_t *in, size_t len) {
  out[0] = '\\';
  out[1] = 'x';
  sodium_bin2hex(out + 2, 2 * len + 1, in, len);
}

/* A bytea value as PostgreSQL writes it in text ("\x<hex>") of exactly
 * `len` bytes: 0 or -1. */
static int bytea_value(uint8_t *out, size_t len, const char *v) {
  size_t got = 0;
  if (strncmp(v, "\\x", 2) != 0 || strlen(v + 2) != 2 * len) return -1;
  if (sodium_hex2bin(out, len, v + 2, 2 * len, NULL, &got, NULL) != 0 || got != len) return -1;
  return 0;
}

static int u64_value(const char *v, uint64_t *out) {
  char *end;
  if (*v < '0' || *v > '9') return -1;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end) return -1;
  *out = x;
  return 0;
}

/* The advisory lock key of a random id or tag: its first 8 bytes as two
 * int4, in decimal. */
static void lock_key(char k1[16], char k2[16], const uint8_t *b) {
  uint32_t a = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
  uint32_t c = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 | (uint32_t)b[6] << 8 | b[7];
  snprintf(k1, 16, "%ld", (long)(int32_t)a);
  snprintf(k2, 16, "%ld", (long)(int32_t)c);
}

static int errno_of(const PGresult *r) {
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (!state) return -EIO;
  if (strcmp(state, "23505") == 0) return -EEXIST;
  if (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "57014") == 0)
    return -EBUSY;
  return -EIO;
}

/* --- the connection ------------------------------------------------------------ */

static int session_setup(wd_bmeta_pg *m) {
  char sql[64];
  PQclear(PQexec(m->db, "SET client_min_messages = warning"));
  PQclear(PQexec(m->db, "SET bytea_output = hex")); /* what bytea_value() reads */
  snprintf(sql, sizeof sql, "SET lock_timeout = %d", LOCK_TIMEOUT_MS);
  PGresult *r = PQexec(m->db, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok ? 0 : -EIO;
}

/* The connection, made again if it dropped (not inside a transaction:
 * that is lost with it). 0 or -EIO. */
static int conn_ok(wd_bmeta_pg *m) {
  if (PQstatus(m->db) == CONNECTION_OK) return 0;
  if (m->in_tx) return -EIO;
  m->gen++; /* the old session's locks are gone, whatever happens next */
  PQreset(m->db);
  if (PQstatus(m->db) != CONNECTION_OK) {
    wd_warn("blobs: the connection to PostgreSQL is lost: %s", PQerrorMessage(m->db));
    return -EIO;
  }
  wd_info("blobs: connected to PostgreSQL again");
  return session_setup(m);
}

/* Runs `sql` with `n` text parameters. On success *res (if not NULL) gets
 * the result, which the caller clears. With `retry`, a statement that
 * failed because the connection dropped runs once more on a new one
 * (reads and statements whose repetition is harmless only). 0 or -errno. */
static int run(wd_bmeta_pg *m, const char *sql, int n, const char *const *vals, PGresult **res,
               int retry, const char *what) {
  for (int attempt = 0;; attempt++) {
    int rc = conn_ok(m);
    if (rc != 0) return rc;
    PGresult *r = PQexecParams(m->db, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
      if (res)
        *res = r;
      else
        PQclear(r);
      return 0;
    }
    int lost = PQstatus(m->db) != CONNECTION_OK;
    if (lost && retry && attempt == 0 && !m->in_tx) {
      PQclear(r);
      continue;
    }
    rc = errno_of(r);
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (rc != -EEXIST)
      wd_warn("blobs: PostgreSQL, %s: %s", what, msg ? msg : PQerrorMessage(m->db));
    PQclear(r);
    return rc;
  }
}

/* A statement whose answer is one boolean: 1 true, 0 false, or -errno. */
static int run_bool(wd_bmeta_pg *m, const char *sql, int n, const char *const *vals, int retry,
                    const char *what) {
  PGresult *r;
  int rc = run(m, sql, n, vals, &r, retry, what);
  if (rc != 0) return rc;
  rc = PQntuples(r) == 1 && PQnfields(r) >= 1 ? strcmp(PQgetvalue(r, 0, 0), "t") == 0 : -EIO;
  PQclear(r);
  return rc;
}

static void rollback(wd_bmeta_pg *m) {
  if (PQstatus(m->db) == CONNECTION_OK) PQclear(PQexec(m->db, "ROLLBACK"));
  m->in_tx = 0;
}

/* --- opening ---------------------------------------------------------------------- */

static int create_tables(wd_bmeta_pg *m, const uint8_t fp[WD_BMETA_FP_LEN],
                         uint8_t have[WD_BMETA_FP_LEN]) {
  char sql[512], fph[2 * WD_BMETA_FP_LEN + 3];
  const char *vals[1] = {fph};
  bytea_param(fph, fp, WD_BMETA_FP_LEN);
  int rc = run(m, "BEGIN", 0, NULL, NULL, 0, "creating the tables");
  if (rc != 0) return rc;
  m->in_tx = 1;
  /* nodes starting together: the first creates, the others wait and find them */
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(hashtext('whisper-blobs:%s'))", m->table);
  rc = run(m, sql, 0, NULL, NULL, 0, "creating the tables");
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s (id bytea PRIMARY KEY, owner bytea NOT NULL, "
           "device integer NOT NULL, length bigint NOT NULL, off bigint NOT NULL, "
           "created bigint NOT NULL, CHECK (off >= 0 AND off <= length))",
           m->blobs);
  if (rc == 0) rc = run(m, sql, 0, NULL, NULL, 0, "creating the tables");
  snprintf(sql, sizeof sql, "CREATE INDEX IF NOT EXISTS %s_owner ON %s (owner, created)", m->blobs,
           m->blobs);
  if (rc == 0) rc = run(m, sql, 0, NULL, NULL, 0, "creating the tables");
  snprintf(sql, sizeof sql, "CREATE INDEX IF NOT EXISTS %s_created ON %s (created)", m->blobs,
           m->blobs);
  if (rc == 0) rc = run(m, sql, 0, NULL, NULL, 0, "creating the tables");
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s (one integer PRIMARY KEY CHECK (one = 1), "
           "fingerprint bytea NOT NULL)",
           m->key);
  if (rc == 0) rc = run(m, sql, 0, NULL, NULL, 0, "creating the tables");
  snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1, $1::bytea) ON CONFLICT DO NOTHING", m->key);
  if (rc == 0) rc = run(m, sql, 1, vals, NULL, 0, "recording the blob directory");
  PGresult *r = NULL;
  snprintf(sql, sizeof sql, "SELECT fingerprint FROM %s WHERE one = 1", m->key);
  if (rc == 0) rc = run(m, sql, 0, NULL, &r, 0, "reading the blob directory's fingerprint");
  if (rc == 0 && (PQntuples(r) != 1 || bytea_value(have, WD_BMETA_FP_LEN, PQgetvalue(r, 0, 0))))
    rc = -EIO;
  PQclear(r);
  if (rc == 0) rc = run(m, "COMMIT", 0, NULL, NULL, 0, "creating the tables");
  if (rc != 0) rollback(m);
  m->in_tx = 0;
  return rc;
}

int wd_bmeta_pg_open(wd_bmeta_pg **out, const char *conninfo, const char *table,
                     const uint8_t fp[WD_BMETA_FP_LEN], char *why_buf, size_t why_cap,
                     const char **why) {
  *out = NULL;
  *why = "";
  if (!table) table = "whisper_records";
  if (!name_ok(table)) {
    *why = "the table name must be 1..44 of [a-z0-9_], starting with a letter";
    return -1;
  }
  wd_bmeta_pg *m = calloc(1, sizeof *m);
  if (!m) {
    *why = "out of memory";
    return -1;
  }
  snprintf(m->table, sizeof m->table, "%s", table);
  snprintf(m->blobs, sizeof m->blobs, "%s_blobs", table);
  snprintf(m->key, sizeof m->key, "%s_blobs_key", table);
  m->gen = 1;
  m->db = PQconnectdb(conninfo);
  if (!m->db || PQstatus(m->db) != CONNECTION_OK) {
    snprintf(why_buf, why_cap, "cannot connect to PostgreSQL: %s",
             m->db ? PQerrorMessage(m->db) : "out of memory");
    *why = why_buf;
    wd_bmeta_pg_free(m);
    return -1;
  }
  uint8_t have[WD_BMETA_FP_LEN];
  if (session_setup(m) != 0 || create_tables(m, fp, have) != 0) {
    snprintf(why_buf, why_cap, "cannot make the table %s: %s", m->blobs, PQerrorMessage(m->db));
    *why = why_buf;
    wd_bmeta_pg_free(m);
    return -1;
  }
  if (memcmp(have, fp, WD_BMETA_FP_LEN) != 0) {
    *why =
        "this --blob-dir is not the cluster's: its owner.key is not the one the first node "
        "recorded (every node must use the same shared directory)";
    wd_bmeta_pg_free(m);
    return -1;
  }
  *out = m;
  return 0;
}

void wd_bmeta_pg_free(wd_bmeta_pg *m) {
  if (!m) return;
  if (m->db) PQfinish(m->db); /* and with the session, any lock it held */
  free(m);
}

const char *wd_bmeta_pg_table(const wd_bmeta_pg *m) { return m->blobs; }

/* --- rows ------------------------------------------------------------------------- */

int wd_bmeta_pg_get(wd_bmeta_pg *m, wd_blob *blob) {
  char sql[256], id[2 * WD_BLOB_ID_LEN + 3];
  const char *vals[1] = {id};
  PGresult *r;
  bytea_param(id, blob->id, WD_BLOB_ID_LEN);
  snprintf(sql, sizeof sql,
           "SELECT owner, device, length, off, created FROM %s WHERE id = $1::bytea", m->blobs);
  int rc = run(m, sql, 1, vals, &r, 1, "reading a blob");
  if (rc != 0) return rc;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return 0;
  }
  uint64_t device = 0;
  rc = PQntuples(r) == 1 && PQnfields(r) == 5 &&
               bytea_value(blob->owner.tag, WD_BLOB_TAG_LEN, PQgetvalue(r, 0, 0)) == 0 &&
               u64_value(PQgetvalue(r, 0, 1), &device) == 0 && device >= 1 &&
               device <= 0x7FFFFFFF && u64_value(PQgetvalue(r, 0, 2), &blob->length) == 0 &&
               u64_value(PQgetvalue(r, 0, 3), &blob->offset) == 0 &&
               u64_value(PQgetvalue(r, 0, 4), &blob->created_ms) == 0 &&
               blob->offset <= blob->length
           ? 1
           : -EIO;
  blob->owner.device = (uint32_t)device;
  PQclear(r);
  if (rc < 0) wd_warn("blobs: %.8s...: its row in %s is not readable", blob->hex, m->blobs);
  return rc;
}

int wd_bmeta_pg_create_begin(wd_bmeta_pg *m, const uint8_t owner[WD_BLOB_TAG_LEN],
                             uint64_t length, uint64_t quota, int64_t live_after_ms) {
  char sql[256], tag[2 * WD_BLOB_TAG_LEN + 3], k1[16], k2[16], len[24], q[24], after[24];
  bytea_param(tag, owner, WD_BLOB_TAG_LEN);
  lock_key(k1, k2, owner);
  snprintf(len, sizeof len, "%llu", (unsigned long long)length);
  snprintf(q, sizeof q, "%llu", (unsigned long long)quota);
  snprintf(after, sizeof after, "%lld", (long long)live_after_ms);
  int rc = run(m, "BEGIN", 0, NULL, NULL, 1, "creating a blob");
  if (rc != 0) return rc;
  m->in_tx = 1;
  /* the lock first, in a statement of its own: the sum's statement then
   * sees every creation committed before it was granted */
  const char *lk[2] = {k1, k2};
  rc = run(m, "SELECT pg_advisory_xact_lock($1::int4, $2::int4)", 2, lk, NULL, 0,
           "locking an account's blobs");
  if (rc == 0) {
    const char *vals[4] = {tag, len, q, after};
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(SUM(length), 0)::numeric + $2::numeric <= $3::numeric FROM %s "
             "WHERE owner = $1::bytea AND created > $4::bigint",
             m->blobs);
    rc = run_bool(m, sql, 4, vals, 0, "summing an account's blobs");
    if (rc == 1) return 0;
    if (rc == 0) rc = 1; /* over the quota */
  }
  rollback(m);
  return rc;
}

int wd_bmeta_pg_create_commit(wd_bmeta_pg *m, const wd_blob *blob) {
  char sql[256], id[2 * WD_BLOB_ID_LEN + 3], tag[2 * WD_BLOB_TAG_LEN + 3], dev[16], len[24],
      created[24];
  const char *vals[5] = {id, tag, dev, len, created};
  bytea_param(id, blob->id, WD_BLOB_ID_LEN);
  bytea_param(tag, blob->owner.tag, WD_BLOB_TAG_LEN);
  snprintf(dev, sizeof dev, "%lu", (unsigned long)blob->owner.device);
  snprintf(len, sizeof len, "%llu", (unsigned long long)blob->length);
  snprintf(created, sizeof created, "%llu", (unsigned long long)blob->created_ms);
  snprintf(sql, sizeof sql,
           "INSERT INTO %s (id, owner, device, length, off, created) "
           "VALUES ($1::bytea, $2::bytea, $3::int4, $4::bigint, 0, $5::bigint)",
           m->blobs);
  int rc = run(m, sql, 5, vals, NULL, 0, "creating a blob");
  if (rc == 0) rc = run(m, "COMMIT", 0, NULL, NULL, 0, "committing a blob's creation");
  if (rc != 0) rollback(m);
  m->in_tx = 0;
  return rc;
}

void wd_bmeta_pg_create_abort(wd_bmeta_pg *m) { rollback(m); }

int wd_bmeta_pg_lock(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN], uint64_t *gen) {
  char k1[16], k2[16];
  const char *vals[2] = {k1, k2};
  lock_key(k1, k2, id);
  int rc = run_bool(m, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", 2, vals, 1,
                    "locking a blob");
  *gen = m->gen;
  return rc;
}

void wd_bmeta_pg_unlock(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN], uint64_t gen) {
  char k1[16], k2[16];
  const char *vals[2] = {k1, k2};
  if (gen != m->gen || PQstatus(m->db) != CONNECTION_OK) return; /* gone with its session */
  lock_key(k1, k2, id);
  run_bool(m, "SELECT pg_advisory_unlock($1::int4, $2::int4)", 2, vals, 0, "unlocking a blob");
}

int wd_bmeta_pg_set_offset(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN], uint64_t old,
                           uint64_t now, uint64_t gen) {
  char sql[256], idh[2 * WD_BLOB_ID_LEN + 3], o[24], n[24];
  const char *vals[3] = {idh, o, n};
  if (gen != m->gen || PQstatus(m->db) != CONNECTION_OK) return -ENOLCK;
  bytea_param(idh, id, WD_BLOB_ID_LEN);
  snprintf(o, sizeof o, "%llu", (unsigned long long)old);
  snprintf(n, sizeof n, "%llu", (unsigned long long)now);
  snprintf(sql, sizeof sql,
           "UPDATE %s SET off = $3::bigint WHERE id = $1::bytea AND off = $2::bigint", m->blobs);
  PGresult *r;
  int rc = run(m, sql, 3, vals, &r, 0, "recording a blob's offset");
  if (rc != 0) return rc;
  rc = strcmp(PQcmdTuples(r), "1") == 0 ? 0 : -ESTALE;
  PQclear(r);
  return rc;
}

int wd_bmeta_pg_delete(wd_bmeta_pg *m, const uint8_t id[WD_BLOB_ID_LEN]) {
  char sql[256], idh[2 * WD_BLOB_ID_LEN + 3], k1[16], k2[16];
  const char *lk[2] = {k1, k2}, *vals[1] = {idh};
  bytea_param(idh, id, WD_BLOB_ID_LEN);
  lock_key(k1, k2, id);
  int rc = run(m, "BEGIN", 0, NULL, NULL, 1, "deleting a blob");
  if (rc != 0) return rc;
  m->in_tx = 1;
  rc = run_bool(m, "SELECT pg_try_advisory_xact_lock($1::int4, $2::int4)", 2, lk, 0,
                "locking a blob");
  if (rc == 0) rc = -EBUSY; /* a writer holds it */
  PGresult *r = NULL;
  snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = $1::bytea", m->blobs);
  if (rc == 1) rc = run(m, sql, 1, vals, &r, 0, "deleting a blob");
  if (rc == 0) {
    rc = strcmp(PQcmdTuples(r), "1") == 0 ? 1 : 0;
    PQclear(r);
    int c = run(m, "COMMIT", 0, NULL, NULL, 0, "committing a blob's deletion");
    if (c != 0) rc = c;
  }
  if (rc < 0) rollback(m);
  m->in_tx = 0;
  return rc;
}

/* Ids from the first column of `r` into `ids`: how many (rows not an id
 * are skipped). */
static size_t ids_of(PGresult *r, uint8_t *ids, size_t cap) {
  size_t n = 0;
  for (int i = 0; i < PQntuples(r) && n < cap; i++)
    if (bytea_value(ids + n * WD_BLOB_ID_LEN, WD_BLOB_ID_LEN, PQgetvalue(r, i, 0)) == 0) n++;
  return n;
}

int wd_bmeta_pg_expired(wd_bmeta_pg *m, uint64_t cut_ms, uint8_t *ids, size_t cap) {
  char sql[256], cut[24], lim[24];
  const char *vals[2] = {cut, lim};
  snprintf(cut, sizeof cut, "%llu", (unsigned long long)cut_ms);
  snprintf(lim, sizeof lim, "%zu", cap);
  snprintf(sql, sizeof sql,
           "SELECT id FROM %s WHERE created <= $1::bigint ORDER BY created LIMIT $2::int4",
           m->blobs);
  PGresult *r;
  int rc = run(m, sql, 2, vals, &r, 1, "finding expired blobs");
  if (rc != 0) return rc;
  size_t n = ids_of(r, ids, cap);
  PQclear(r);
  return (int)n;
}

int wd_bmeta_pg_known(wd_bmeta_pg *m, const uint8_t *ids, size_t n, uint8_t *known) {
  memset(known, 0, n);
  for (size_t from = 0; from < n; from += KNOWN_MAX) {
    size_t k = n - from < KNOWN_MAX ? n - from : KNOWN_MAX;
    char *list = malloc(k * (2 * WD_BLOB_ID_LEN + 1) + 1), sql[256];
    if (!list) return -ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
      if (i) list[at++] = ',';
      sodium_bin2hex(list + at, 2 * WD_BLOB_ID_LEN + 1, ids + (from + i) * WD_BLOB_ID_LEN,
                     WD_BLOB_ID_LEN);
      at += 2 * WD_BLOB_ID_LEN;
    }
    list[at] = 0;
    const char *vals[1] = {list};
    snprintf(sql, sizeof sql,
             "SELECT id FROM %s WHERE id = ANY (SELECT decode(x, 'hex') FROM "
             "unnest(string_to_array($1::text, ',')) AS x)",
             m->blobs);
    PGresult *r;
    int rc = run(m, sql, 1, vals, &r, 1, "looking up blobs");
    free(list);
    if (rc != 0) return rc;
    uint8_t id[WD_BLOB_ID_LEN];
    for (int j = 0; j < PQntuples(r); j++) {
      if (bytea_value(id, WD_BLOB_ID_LEN, PQgetvalue(r, j, 0)) != 0) continue;
      for (size_t i = 0; i < k; i++)
        if (memcmp(id, ids + (from + i) * WD_BLOB_ID_LEN, WD_BLOB_ID_LEN) == 0) known[from + i] = 1;
    }
    PQclear(r);
  }
  return 0;
}

int wd_bmeta_pg_count(wd_bmeta_pg *m, uint64_t *blobs, uint64_t *bytes) {
  char sql[256];
  PGresult *r;
  snprintf(sql, sizeof sql, "SELECT count(*), COALESCE(SUM(off), 0) FROM %s", m->blobs);
  int rc = run(m, sql, 0, NULL, &r, 1, "counting blobs");
  if (rc != 0) return rc;
  rc = PQntuples(r) == 1 && u64_value(PQgetvalue(r, 0, 0), blobs) == 0 &&
               u64_value(PQgetvalue(r, 0, 1), bytes) == 0
           ? 0
           : -EIO;
  PQclear(r);
  return rc;
}
