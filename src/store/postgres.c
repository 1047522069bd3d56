/*
 * The PostgreSQL store (pgstore.h): one table of (kind, key, value) rows.
 *
 * Every statement is prepared once per connection and run with binary
 * parameters and results. Inside a transaction a get() locks what it
 * read: the row with FOR UPDATE, or, when the key has no row, the key
 * itself with a transaction-scoped advisory lock on a 64-bit hash of
 * (table, kind, key), then reads again (the row may have been committed
 * while it waited). Writers of a record always read it first in the
 * server core, so two nodes' read-modify-write cycles are serialised.
 */
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "whisper/pgstore.h"

#define PG_NAME_MAX 48
#define PG_NOTIFY_MAX 3999

enum { ST_GET, ST_GET_LOCK, ST_KEYLOCK, ST_PUT, ST_ADD, ST_DEL, ST_SCAN0 };
#define ST_SCANS 8 /* shapes: lower bound open, upper bound present, descending */
#define ST_COUNT (ST_SCAN0 + ST_SCANS)

typedef struct pg_store {
  PGconn *db;
  whisper_store *self;
  char table[PG_NAME_MAX + 1];
  unsigned lock_timeout_ms;
  int in_txn;
  uint8_t prepared[ST_COUNT];
  uint8_t hash_key[16]; /* keys the advisory-lock hash (per table, not secret) */
} pg_store;

/* --- errors --------------------------------------------------------------- */

static int pg_fail(pg_store *s, int code, const char *what, const PGresult *r) {
  if (s->self) {
    const char *detail = r ? PQresultErrorMessage(r) : (s->db ? PQerrorMessage(s->db) : "");
    size_t n = strlen(detail);
    while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' ')) n--;
    snprintf(s->self->last_error, sizeof s->self->last_error, "%s%s%.*s", what, n ? ": " : "",
             (int)n, detail);
  }
  return code;
}

/* Lock timeouts, deadlocks and serialisation failures are "try again";
 * the rest is the store failing. */
static int pg_code(const PGresult *r) {
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  if (state == NULL) return WHISPER_ESTORE;
  if (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0 ||
      strcmp(state, "57014") == 0)
    return WHISPER_EBUSY;
  if (strncmp(state, "53", 2) == 0) return WHISPER_ENOMEM; /* insufficient resources */
  return WHISPER_ESTORE;
}

static int name_ok(const char *n) {
  size_t len = strlen(n);
  if (len == 0 || len > PG_NAME_MAX || n[0] < 'a' || n[0] > 'z') return 0;
  for (size_t i = 0; i < len; i++)
    if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= '0' && n[i] <= '9') || n[i] == '_')) return 0;
  return 1;
}

/* --- statements ------------------------------------------------------------ */

static int exec_simple(pg_store *s, const char *sql, const char *what) {
  PGresult *r = PQexec(s->db, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  int rc = ok ? WHISPER_OK : pg_fail(s, pg_code(r), what, r);
  PQclear(r);
  return rc;
}

/* The text of statement `id`; scans by shape (see pg_scan). */
static void statement_sql(const pg_store *s, int id, char *sql, size_t n) {
  const char *t = s->table;
  switch (id) {
    case ST_GET:
      snprintf(sql, n, "SELECT v FROM %s WHERE kind = $1 AND k = $2", t);
      return;
    case ST_GET_LOCK:
      snprintf(sql, n, "SELECT v FROM %s WHERE kind = $1 AND k = $2 FOR UPDATE", t);
      return;
    case ST_KEYLOCK:
      snprintf(sql, n, "SELECT pg_advisory_xact_lock($1)");
      return;
    case ST_PUT:
      snprintf(sql, n,
               "INSERT INTO %s (kind, k, v) VALUES ($1, $2, $3) "
               "ON CONFLICT (kind, k) DO UPDATE SET v = EXCLUDED.v",
               t);
      return;
    case ST_ADD:
      snprintf(sql, n,
               "INSERT INTO %s (kind, k, v) VALUES ($1, $2, $3) ON CONFLICT (kind, k) DO NOTHING", t);
      return;
    case ST_DEL:
      snprintf(sql, n, "DELETE FROM %s WHERE kind = $1 AND k = $2", t);
      return;
    default: {
      int shape = id - ST_SCAN0;
      snprintf(sql, n,
               "SELECT k, v FROM %s WHERE kind = $1 AND k %s $2%s ORDER BY k %s LIMIT $4", t,
               shape & 1 ? ">" : ">=", shape & 2 ? " AND k < $3" : " AND $3::bytea IS NULL",
               shape & 4 ? "DESC" : "ASC");
      return;
    }
  }
}

static const char *statement_name(int id, char buf[16]) {
  snprintf(buf, 16, "wh%d", id);
  return buf;
}

static int prepare(pg_store *s, int id) {
  if (s->prepared[id]) return WHISPER_OK;
  char sql[512], name[16];
  statement_sql(s, id, sql, sizeof sql);
  PGresult *r = PQprepare(s->db, statement_name(id, name), sql, 0, NULL);
  int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? WHISPER_OK
                                                   : pg_fail(s, pg_code(r), "preparing a statement", r);
  PQclear(r);
  if (rc == WHISPER_OK) s->prepared[id] = 1;
  return rc;
}

static int ensure_connected(pg_store *s);

/* Runs statement `id` with `n` binary parameters; the result, or NULL
 * (error recorded, *rc set). Outside a transaction a statement stands
 * alone: on a lost connection it is run once more on a new one. */
static PGresult *run(pg_store *s, int id, int n, const char *const *vals, const int *lens,
                     int *rc, const char *what) {
  static const int binary[4] = {1, 1, 1, 1};
  char name[16];
  for (int attempt = 0;; attempt++) {
    PGresult *r = NULL;
    *rc = prepare(s, id);
    if (*rc == WHISPER_OK) {
      r = PQexecPrepared(s->db, statement_name(id, name), n, vals, lens, binary, 1);
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
      *rc = pg_fail(s, pg_code(r), what, r);
      PQclear(r);
    }
    if (attempt > 0 || s->in_txn || PQstatus(s->db) == CONNECTION_OK) return NULL;
    if (ensure_connected(s) != WHISPER_OK) return NULL;
  }
}

static void be32(char out[4], uint32_t v) {
  out[0] = (char)(v >> 24), out[1] = (char)(v >> 16), out[2] = (char)(v >> 8), out[3] = (char)v;
}

static void be64(char out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (char)v;
}

/* An empty bytea must still be a non-NULL parameter. */
static const char *bytes_param(const uint8_t *p) {
  static const char empty[1];
  return p ? (const char *)p : empty;
}

/* --- transactions ------------------------------------------------------- */

/* A connection that dropped is re-made before a transaction starts, never
 * inside one (its statements are prepared again). */
static int ensure_connected(pg_store *s) {
  if (PQstatus(s->db) == CONNECTION_OK) return WHISPER_OK;
  PQreset(s->db);
  memset(s->prepared, 0, sizeof s->prepared);
  if (PQstatus(s->db) != CONNECTION_OK)
    return pg_fail(s, WHISPER_ESTORE, "the connection to PostgreSQL is lost", NULL);
  if (s->lock_timeout_ms) {
    char sql[64];
    snprintf(sql, sizeof sql, "SET lock_timeout = %u", s->lock_timeout_ms);
    return exec_simple(s, sql, "setting the lock timeout");
  }
  return WHISPER_OK;
}

static int pg_begin(void *user) {
  pg_store *s = user;
  int rc = ensure_connected(s);
  if (rc != WHISPER_OK) return rc;
  rc = exec_simple(s, "BEGIN", "beginning a transaction");
  if (rc != WHISPER_OK && PQstatus(s->db) != CONNECTION_OK) {
    /* the server ended the connection since the last statement */
    rc = ensure_connected(s);
    if (rc == WHISPER_OK) rc = exec_simple(s, "BEGIN", "beginning a transaction");
  }
  if (rc == WHISPER_OK) s->in_txn = 1;
  return rc;
}

static int pg_commit(void *user) {
  pg_store *s = user;
  s->in_txn = 0;
  PGresult *r = PQexec(s->db, "COMMIT");
  /* A COMMIT of a failed transaction answers ROLLBACK, with no error. */
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
  int rc = ok ? WHISPER_OK
              : pg_fail(s, PQresultStatus(r) == PGRES_COMMAND_OK ? WHISPER_ESTORE : pg_code(r),
                        "committing", PQresultStatus(r) == PGRES_COMMAND_OK ? NULL : r);
  PQclear(r);
  return rc;
}

static void pg_rollback(void *user) {
  pg_store *s = user;
  s->in_txn = 0;
  if (PQstatus(s->db) == CONNECTION_OK) PQclear(PQexec(s->db, "ROLLBACK"));
}

/* --- records ------------------------------------------------------------ */

static int read_row(pg_store *s, int id, const char kind_be[4], const uint8_t *key, size_t n,
                    whisper_buf **out, int *found) {
  const char *vals[2] = {kind_be, bytes_param(key)};
  int lens[2] = {4, (int)n}, rc;
  PGresult *r = run(s, id, 2, vals, lens, &rc, "reading a record");
  if (r == NULL) return rc;
  *found = PQntuples(r) > 0;
  rc = WHISPER_OK;
  if (*found) {
    size_t vn = (size_t)PQgetlength(r, 0, 0);
    *out = whisper_buf_new((const uint8_t *)PQgetvalue(r, 0, 0), vn);
    if (*out == NULL) rc = WHISPER_ENOMEM;
  }
  PQclear(r);
  return rc;
}

static int pg_get(void *user, int kind, const uint8_t *key, size_t n, whisper_buf **out) {
  pg_store *s = user;
  char kind_be[4];
  int found = 0, rc;
  *out = NULL;
  if (n > INT32_MAX) return WHISPER_EINVAL;
  be32(kind_be, (uint32_t)kind);
  rc = read_row(s, s->in_txn ? ST_GET_LOCK : ST_GET, kind_be, key, n, out, &found);
  if (rc != WHISPER_OK) return rc;
  if (found) return WHISPER_OK;
  if (!s->in_txn) return WHISPER_ENOTFOUND;
  /* No row: lock the key, then look again. */
  uint8_t h[8];
  crypto_generichash_state st;
  crypto_generichash_init(&st, s->hash_key, sizeof s->hash_key, sizeof h);
  crypto_generichash_update(&st, (const uint8_t *)kind_be, 4);
  crypto_generichash_update(&st, key, n);
  crypto_generichash_final(&st, h, sizeof h);
  const char *vals[1] = {(const char *)h};
  int lens[1] = {8};
  PGresult *r = run(s, ST_KEYLOCK, 1, vals, lens, &rc, "locking a key");
  if (r == NULL) return rc;
  PQclear(r);
  rc = read_row(s, ST_GET_LOCK, kind_be, key, n, out, &found);
  return rc != WHISPER_OK ? rc : found ? WHISPER_OK : WHISPER_ENOTFOUND;
}

static int write_row(pg_store *s, int id, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                     size_t vn, int *rows) {
  char kind_be[4];
  if (n > INT32_MAX || vn > INT32_MAX) return WHISPER_EINVAL;
  be32(kind_be, (uint32_t)kind);
  const char *vals[3] = {kind_be, bytes_param(key), bytes_param(v)};
  int lens[3] = {4, (int)n, (int)vn}, rc;
  PGresult *r = run(s, id, id == ST_DEL ? 2 : 3, vals, lens, &rc,
                    id == ST_DEL ? "deleting a record" : "writing a record");
  if (r == NULL) return rc;
  if (rows) *rows = atoi(PQcmdTuples(r));
  PQclear(r);
  return WHISPER_OK;
}

static int pg_put(void *user, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                  size_t vn) {
  return write_row(user, ST_PUT, kind, key, n, v, vn, NULL);
}

static int pg_add(void *user, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                  size_t vn) {
  int rows = 0;
  int rc = write_row(user, ST_ADD, kind, key, n, v, vn, &rows);
  return rc != WHISPER_OK ? rc : rows == 1 ? WHISPER_OK : WHISPER_EDUPLICATE;
}

static int pg_del(void *user, int kind, const uint8_t *key, size_t n) {
  return write_row(user, ST_DEL, kind, key, n, NULL, 0, NULL);
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

/* bytea's order: bytewise, then the shorter first. */
static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  int c = an && bn ? memcmp(a, b, an < bn ? an : bn) : 0;
  return c ? c : an < bn ? -1 : an > bn;
}

static int pg_scan(void *user, int kind, const uint8_t *prefix, size_t prefix_len,
                   const uint8_t *bound, size_t bound_len, int descending, size_t limit,
                   whisper_scan_fn fn, void *arg) {
  pg_store *s = user;
  if (!WHISPER_REC_IS_ORDERED(kind) || prefix_len > 256) return WHISPER_EINVAL;
  uint8_t end[256];
  size_t end_len = prefix_end(end, prefix, prefix_len);
  /* One lower and one upper limit, as the SQLite store does. */
  const uint8_t *lo = prefix, *hi = end_len ? end : NULL;
  size_t lo_len = prefix_len, hi_len = end_len;
  int lo_open = 0;
  if (bound && !descending && bytes_cmp(bound, bound_len, lo, lo_len) >= 0) {
    lo = bound, lo_len = bound_len, lo_open = 1;
  }
  if (bound && descending && (hi == NULL || bytes_cmp(bound, bound_len, hi, hi_len) < 0)) {
    hi = bound, hi_len = bound_len;
  }
  int shape = lo_open | (hi ? 2 : 0) | (descending ? 4 : 0), rc;
  char kind_be[4], limit_be[8];
  be32(kind_be, (uint32_t)kind);
  be64(limit_be, limit > INT64_MAX ? INT64_MAX : (uint64_t)limit);
  const char *vals[4] = {kind_be, bytes_param(lo), hi ? bytes_param(hi) : NULL, limit_be};
  int lens[4] = {4, (int)lo_len, (int)hi_len, 8};
  /* The whole result is read before the first callback, so a callback
   * may use the store (another scan, a read). */
  PGresult *r = run(s, ST_SCAN0 + shape, 4, vals, lens, &rc, "scanning records");
  if (r == NULL) return rc;
  int rows = PQntuples(r);
  for (int i = 0; i < rows; i++) {
    if (fn(arg, (const uint8_t *)PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0),
           (const uint8_t *)PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1)))
      break;
  }
  PQclear(r);
  return WHISPER_OK;
}

static void pg_destroy(void *user) {
  pg_store *s = user;
  if (s == NULL) return;
  if (s->db) PQfinish(s->db);
  free(s);
}

/* --- opening ------------------------------------------------------------ */

static int create_table(pg_store *s) {
  char sql[512];
  /* Nodes starting together: the first creates, the others wait on the
   * lock and find the table there. */
  int rc = exec_simple(s, "BEGIN", "creating the table");
  if (rc != WHISPER_OK) return rc;
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(hashtext('whisper:%s'))", s->table);
  if (rc == WHISPER_OK) rc = exec_simple(s, sql, "creating the table");
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s (kind integer NOT NULL, k bytea NOT NULL, "
           "v bytea NOT NULL, PRIMARY KEY (kind, k))",
           s->table);
  if (rc == WHISPER_OK) rc = exec_simple(s, sql, "creating the table");
  if (rc == WHISPER_OK) return exec_simple(s, "COMMIT", "creating the table");
  PQclear(PQexec(s->db, "ROLLBACK"));
  return rc;
}

int whisper_store_pg_open(whisper_store **out, const char *conninfo,
                          const whisper_pg_options_t *opts, const char **why) {
  static const whisper_pg_options_t defaults = WHISPER_PG_OPTIONS_INIT;
  static const whisper_store_ops ops = {
      WHISPER_STORE_OPS_VERSION, pg_begin, pg_commit, pg_rollback, pg_get, pg_put, pg_del,
      pg_destroy,                pg_scan,  pg_add};
  const char *dummy;
  if (why == NULL) why = &dummy;
  *why = "";
  if (out == NULL || conninfo == NULL) return WHISPER_EINVAL;
  *out = NULL;
  if (opts == NULL) opts = &defaults;
  const char *table = opts->table ? opts->table : "whisper_records";
  if (opts->version < 1 || !name_ok(table)) {
    *why = "the table name must be 1..48 of [a-z0-9_], starting with a letter";
    return WHISPER_EINVAL;
  }
  if (sodium_init() < 0) return WHISPER_EINTERNAL;
  pg_store *s = calloc(1, sizeof *s);
  if (s == NULL) return WHISPER_ENOMEM;
  snprintf(s->table, sizeof s->table, "%s", table);
  s->lock_timeout_ms = opts->lock_timeout_ms;
  crypto_generichash(s->hash_key, sizeof s->hash_key, (const uint8_t *)s->table, strlen(s->table),
                     NULL, 0);
  s->db = PQconnectdb(conninfo);
  int rc = WHISPER_OK;
  if (s->db == NULL) {
    rc = WHISPER_ENOMEM;
  } else if (PQstatus(s->db) != CONNECTION_OK) {
    *why = "cannot connect to PostgreSQL";
    rc = WHISPER_ESTORE;
  } else {
    PQclear(PQexec(s->db, "SET client_min_messages = warning"));
    if (s->lock_timeout_ms) {
      char sql[64];
      snprintf(sql, sizeof sql, "SET lock_timeout = %u", s->lock_timeout_ms);
      rc = exec_simple(s, sql, "setting the lock timeout");
    }
    if (rc == WHISPER_OK) rc = create_table(s);
    if (rc != WHISPER_OK) *why = "cannot create the store's table in PostgreSQL";
  }
  if (rc == WHISPER_OK) rc = whisper_store_new(out, &ops, s);
  if (rc != WHISPER_OK) {
    pg_destroy(s);
    return rc;
  }
  s->self = *out;
  return WHISPER_OK;
}

int whisper_store_pg_notify(whisper_store *store, const char *channel, const uint8_t *payload,
                            size_t len) {
  if (store == NULL || store->ops.begin != pg_begin || channel == NULL || !name_ok(channel) ||
      (payload == NULL && len > 0) || len > PG_NOTIFY_MAX)
    return WHISPER_EINVAL;
  pg_store *s = store->user;
  char hex[2 * PG_NOTIFY_MAX + 1];
  sodium_bin2hex(hex, sizeof hex, payload ? payload : (const uint8_t *)"", len);
  const char *vals[2] = {channel, hex};
  PGresult *r = PQexecParams(s->db, "SELECT pg_notify($1, $2)", 2, NULL, vals, NULL, NULL, 0);
  int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? WHISPER_OK
                                                 : pg_fail(s, pg_code(r), "notifying", r);
  PQclear(r);
  return rc;
}
