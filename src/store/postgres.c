/*
 * The PostgreSQL store (pgstore.h): one table of (kind, key, value) rows,
 * in one database or sharded over several.
 *
 * Every statement is prepared once per connection and run with binary
 * parameters and results. Inside a transaction a get() locks what it
 * read: the row with FOR UPDATE, or, when the key has no row, the key
 * itself with a transaction-scoped advisory lock on a 64-bit hash of
 * (table, kind, key), then reads again (the row may have been committed
 * while it waited). Writers of a record always read it first in the
 * server core, so two nodes' read-modify-write cycles are serialised.
 *
 * Shards. Each record has a home shard, chosen by a hash of the account
 * its key names (the key up to its first 0x00 byte: an account name, or
 * an address "name\0device"), of the device tag that starts an ordered
 * key (mailboxes, prekeys), or shard 0 (the server's META and REPORT
 * records). A transaction begins on a shard when it first uses it. Its
 * commit is a plain COMMIT when it used one shard, and PostgreSQL's
 * two-phase commit when it used several, with shard 0 as the coordinator:
 *
 *   1. shard 0 takes an advisory lock on the transaction's id (gid) and
 *      inserts a decision row for it in <table>_2pc, both inside its
 *      transaction;
 *   2. every other shard PREPAREs TRANSACTION gid (a failure here rolls
 *      everything back: the store is as before begin);
 *   3. shard 0 COMMITs: this one commit is the decision (its writes and
 *      the decision row become durable together);
 *   4. the other shards COMMIT PREPARED. One that cannot (its connection
 *      broke) keeps its prepared transaction, which recovery commits.
 *
 * Recovery (at open, and at most every few seconds when a transaction
 * begins) looks at the prepared transactions of this table on every shard
 * and, for each, tries the gid's advisory lock on shard 0: while the
 * coordinator's shard-0 transaction runs, the lock is held and recovery
 * passes; once it is over, the decision row tells: there, COMMIT PREPARED;
 * missing, ROLLBACK PREPARED (the coordinator never decided). So any node
 * finishes what a dead node left in doubt, and never undoes a decided
 * commit. Decision rows are deleted once their transaction is finished
 * everywhere.
 */
#include <libpq-fe.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "whisper/pgstore.h"

#define PG_NAME_MAX 48
#define PG_NOTIFY_MAX 3999
#define RECOVER_EVERY_MS 5000
#define DONE_MAX 256 /* decision rows to delete, kept for the next shard-0 transaction */

enum { ST_GET, ST_GET_LOCK, ST_KEYLOCK, ST_PUT, ST_ADD, ST_DEL, ST_SCAN0 };
#define ST_SCANS 8 /* shapes: lower bound open, upper bound present, descending */
#define ST_COUNT (ST_SCAN0 + ST_SCANS)

typedef struct pg_shard {
  PGconn *db;
  int begun; /* in the current transaction */
  uint8_t prepared[ST_COUNT];
} pg_shard;

typedef struct pg_store {
  pg_shard *shards;
  size_t n;
  whisper_store *self;
  char table[PG_NAME_MAX + 1];
  unsigned lock_timeout_ms;
  unsigned sp_lock_timeout_ms; /* inside savepoints (0: lock_timeout_ms there too) */
  int in_txn;
  unsigned n_sp;        /* open savepoints (sp1..spN on every shard the transaction uses) */
  uint8_t hash_key[16]; /* keys the lock and routing hashes (per table, not secret) */
  char run_id[17];      /* this handle's part of gids */
  uint64_t gid_seq;
  uint64_t recovered_ms;
  char (*done)[96];     /* finished gids whose decision rows are to go */
  size_t n_done;
  int fail_after_prepare; /* tests: stop a commit after its PREPAREs (pgstore.h) */
} pg_store;

/* --- errors --------------------------------------------------------------- */

static int pg_fail(pg_store *s, int code, const char *what, PGconn *db, const PGresult *r) {
  if (s->self) {
    const char *detail = r ? PQresultErrorMessage(r) : (db ? PQerrorMessage(db) : "");
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

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- statements ------------------------------------------------------------ */

static int exec_on(pg_store *s, PGconn *db, const char *sql, const char *what) {
  PGresult *r = PQexec(db, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  int rc = ok ? WHISPER_OK : pg_fail(s, pg_code(r), what, db, r);
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

static int prepare(pg_store *s, pg_shard *sh, int id) {
  if (sh->prepared[id]) return WHISPER_OK;
  char sql[512], name[16];
  statement_sql(s, id, sql, sizeof sql);
  PGresult *r = PQprepare(sh->db, statement_name(id, name), sql, 0, NULL);
  int rc = PQresultStatus(r) == PGRES_COMMAND_OK
               ? WHISPER_OK
               : pg_fail(s, pg_code(r), "preparing a statement", sh->db, r);
  PQclear(r);
  if (rc == WHISPER_OK) sh->prepared[id] = 1;
  return rc;
}

/* The settings of every session, new or made again: notices quiet, and
 * the lock timeout. */
static int session_setup(pg_store *s, PGconn *db) {
  PQclear(PQexec(db, "SET client_min_messages = warning"));
  if (s->lock_timeout_ms == 0) return WHISPER_OK;
  char sql[64];
  snprintf(sql, sizeof sql, "SET lock_timeout = %u", s->lock_timeout_ms);
  return exec_on(s, db, sql, "setting the lock timeout");
}

/* A connection that dropped is made again, outside a transaction only
 * (its statements are prepared again). */
static int reconnect(pg_store *s, pg_shard *sh) {
  if (PQstatus(sh->db) == CONNECTION_OK) return WHISPER_OK;
  PQreset(sh->db);
  memset(sh->prepared, 0, sizeof sh->prepared);
  if (PQstatus(sh->db) != CONNECTION_OK)
    return pg_fail(s, WHISPER_ESTORE, "the connection to PostgreSQL is lost", sh->db, NULL);
  return session_setup(s, sh->db);
}

static int shard_begin(pg_store *s, pg_shard *sh);

/* Runs statement `id` on shard `sh` with `n` binary parameters, beginning
 * the shard's part of the transaction first; the result, or NULL (error
 * recorded, *rc set). Outside a transaction a statement stands alone: on a
 * lost connection it is run once more on a new one. */
static PGresult *run(pg_store *s, pg_shard *sh, int id, int n, const char *const *vals,
                     const int *lens, int *rc, const char *what) {
  static const int binary[4] = {1, 1, 1, 1};
  char name[16];
  if (s->in_txn && !sh->begun && (*rc = shard_begin(s, sh)) != WHISPER_OK) return NULL;
  for (int attempt = 0;; attempt++) {
    *rc = prepare(s, sh, id);
    if (*rc == WHISPER_OK) {
      PGresult *r = PQexecPrepared(sh->db, statement_name(id, name), n, vals, lens, binary, 1);
      ExecStatusType st = PQresultStatus(r);
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
      *rc = pg_fail(s, pg_code(r), what, sh->db, r);
      PQclear(r);
    }
    if (attempt > 0 || s->in_txn || PQstatus(sh->db) == CONNECTION_OK) return NULL;
    if (reconnect(s, sh) != WHISPER_OK) return NULL;
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

/* --- routing ------------------------------------------------------------- */

static uint64_t hash64(const pg_store *s, const uint8_t *p, size_t n) {
  uint8_t h[8];
  crypto_generichash(h, sizeof h, p, n, s->hash_key, sizeof s->hash_key);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | h[i];
  return v;
}

#define KIND_SERVER_META 36
#define KIND_SERVER_REPORT 98
#define TAG_LEN 16

/* The home shard of a record (see the top of the file). */
static size_t route(const pg_store *s, int kind, const uint8_t *key, size_t n) {
  if (s->n == 1 || kind == KIND_SERVER_META || kind == KIND_SERVER_REPORT) return 0;
  if (WHISPER_REC_IS_ORDERED(kind)) return hash64(s, key, n < TAG_LEN ? n : TAG_LEN) % s->n;
  const uint8_t *zero = n ? memchr(key, 0, n) : NULL;
  return hash64(s, key, zero ? (size_t)(zero - key) : n) % s->n;
}

/* --- transactions ------------------------------------------------------- */

static int shard_begin(pg_store *s, pg_shard *sh) {
  int rc = exec_on(s, sh->db, "BEGIN", "beginning a transaction");
  if (rc != WHISPER_OK && PQstatus(sh->db) != CONNECTION_OK && !s->n_sp) {
    /* the server ended the connection since the last statement */
    rc = reconnect(s, sh);
    if (rc == WHISPER_OK) rc = exec_on(s, sh->db, "BEGIN", "beginning a transaction");
  }
  /* a shard first used inside savepoints takes them too, so that rolling
   * back to one undoes its writes as well */
  for (unsigned i = 1; rc == WHISPER_OK && i <= s->n_sp; i++) {
    char sql[80];
    size_t k = (size_t)snprintf(sql, sizeof sql, "SAVEPOINT sp%u", i);
    if (i == 1 && s->sp_lock_timeout_ms) /* as on the other shards (pg_savepoint) */
      snprintf(sql + k, sizeof sql - k, "; SET LOCAL lock_timeout = %u", s->sp_lock_timeout_ms);
    rc = exec_on(s, sh->db, sql, "making a savepoint");
  }
  if (rc == WHISPER_OK) sh->begun = 1;
  return rc;
}

/* The same statement on every shard the transaction uses. */
static int on_begun(pg_store *s, const char *sql, const char *what) {
  int rc = WHISPER_OK;
  for (size_t i = 0; rc == WHISPER_OK && i < s->n; i++)
    if (s->shards[i].begun) rc = exec_on(s, s->shards[i].db, sql, what);
  return rc;
}

/* Inside savepoints (a server's batch runs each frame in one) lock waits
 * end after sp_lock_timeout_ms: SET LOCAL made inside the outermost
 * savepoint, undone by a rollback to it and put back by its release. */
static int pg_savepoint(void *user) {
  pg_store *s = user;
  if (!s->in_txn) return WHISPER_ESTATE;
  char sql[80];
  size_t k = (size_t)snprintf(sql, sizeof sql, "SAVEPOINT sp%u", s->n_sp + 1);
  if (s->n_sp == 0 && s->sp_lock_timeout_ms)
    snprintf(sql + k, sizeof sql - k, "; SET LOCAL lock_timeout = %u", s->sp_lock_timeout_ms);
  int rc = on_begun(s, sql, "making a savepoint");
  if (rc == WHISPER_OK) s->n_sp++;
  return rc;
}

static int pg_release(void *user) {
  pg_store *s = user;
  if (!s->in_txn || s->n_sp == 0) return WHISPER_ESTATE;
  char sql[96];
  size_t k = (size_t)snprintf(sql, sizeof sql, "RELEASE SAVEPOINT sp%u", s->n_sp);
  if (s->n_sp == 1 && s->sp_lock_timeout_ms) { /* the transaction's timeout again */
    if (s->lock_timeout_ms)
      snprintf(sql + k, sizeof sql - k, "; SET LOCAL lock_timeout = %u", s->lock_timeout_ms);
    else
      snprintf(sql + k, sizeof sql - k, "; SET LOCAL lock_timeout = DEFAULT");
  }
  int rc = on_begun(s, sql, "releasing a savepoint");
  if (rc == WHISPER_OK) s->n_sp--;
  return rc;
}

static int pg_rollback_to(void *user) {
  pg_store *s = user;
  if (!s->in_txn || s->n_sp == 0) return WHISPER_ESTATE;
  char sql[80];
  snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT sp%u; RELEASE SAVEPOINT sp%u", s->n_sp, s->n_sp);
  int rc = on_begun(s, sql, "rolling back to a savepoint");
  if (rc == WHISPER_OK) s->n_sp--;
  return rc;
}

static void rollback_all(pg_store *s) {
  for (size_t i = 0; i < s->n; i++) {
    pg_shard *sh = &s->shards[i];
    if (sh->begun && PQstatus(sh->db) == CONNECTION_OK) PQclear(PQexec(sh->db, "ROLLBACK"));
    sh->begun = 0;
  }
  s->in_txn = 0;
  s->n_sp = 0;
}

static void recover(pg_store *s);

static int pg_begin(void *user) {
  pg_store *s = user;
  if (s->n > 1 && now_ms() >= s->recovered_ms + RECOVER_EVERY_MS) recover(s);
  s->in_txn = 1;
  /* one shard: begin at once, as a plain store would (and its errors show
   * here); several: each begins when first used */
  if (s->n == 1) {
    int rc = shard_begin(s, &s->shards[0]);
    if (rc != WHISPER_OK) s->in_txn = 0;
    return rc;
  }
  return WHISPER_OK;
}

static int commit_one(pg_store *s, pg_shard *sh) {
  PGresult *r = PQexec(sh->db, "COMMIT");
  /* A COMMIT of a failed transaction answers ROLLBACK, with no error. */
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
  int rc = ok ? WHISPER_OK
              : pg_fail(s, PQresultStatus(r) == PGRES_COMMAND_OK ? WHISPER_ESTORE : pg_code(r),
                        "committing", sh->db, PQresultStatus(r) == PGRES_COMMAND_OK ? NULL : r);
  PQclear(r);
  sh->begun = 0;
  return rc;
}

static int exec_params(pg_store *s, PGconn *db, const char *sql, int n, const char *const *vals,
                       const char *what, PGresult **keep) {
  PGresult *r = PQexecParams(db, sql, n, NULL, vals, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? WHISPER_OK
                                                           : pg_fail(s, pg_code(r), what, db, r);
  if (keep && rc == WHISPER_OK)
    *keep = r;
  else
    PQclear(r);
  return rc;
}

/* The advisory lock of a gid, on shard 0. */
static void gid_lock_key(const pg_store *s, const char *gid, char out[24]) {
  snprintf(out, 24, "%lld", (long long)hash64(s, (const uint8_t *)gid, strlen(gid)));
}

static int commit_two_phase(pg_store *s) {
  pg_shard *zero = &s->shards[0];
  char gid[96], lock[24], sql[200];
  snprintf(gid, sizeof gid, "wh_%s_%s_%llu", s->table, s->run_id,
           (unsigned long long)++s->gid_seq);
  gid_lock_key(s, gid, lock);
  const char *vals[1] = {lock};
  int rc = zero->begun ? WHISPER_OK : shard_begin(s, zero);
  if (rc == WHISPER_OK)
    rc = exec_params(s, zero->db, "SELECT pg_advisory_xact_lock($1::bigint)", 1, vals,
                     "two-phase commit: locking", NULL);
  /* the finished gids of earlier commits go with this one */
  for (size_t i = 0; rc == WHISPER_OK && i < s->n_done; i++) {
    const char *dv[1] = {s->done[i]};
    snprintf(sql, sizeof sql, "DELETE FROM %s_2pc WHERE gid = $1", s->table);
    rc = exec_params(s, zero->db, sql, 1, dv, "two-phase commit: cleaning up", NULL);
  }
  if (rc == WHISPER_OK) {
    const char *gv[1] = {gid};
    snprintf(sql, sizeof sql, "INSERT INTO %s_2pc (gid) VALUES ($1)", s->table);
    rc = exec_params(s, zero->db, sql, 1, gv, "two-phase commit: the decision", NULL);
  }
  size_t prepared = 0;
  for (size_t i = 1; rc == WHISPER_OK && i < s->n; i++) {
    pg_shard *sh = &s->shards[i];
    if (!sh->begun) continue;
    snprintf(sql, sizeof sql, "PREPARE TRANSACTION '%s'", gid);
    rc = exec_on(s, sh->db, sql, "two-phase commit: preparing");
    sh->begun = 0; /* prepared (or rolled back by the failure) */
    if (rc == WHISPER_OK) prepared |= (size_t)1 << i;
  }
  if (rc == WHISPER_OK && s->fail_after_prepare == 1) {
    /* tests: the coordinator's connection dies before the decision (its
     * shard-0 transaction is rolled back by the server) */
    PQclear(PQexec(zero->db, "SELECT pg_terminate_backend(pg_backend_pid())"));
    zero->begun = 0;
    s->in_txn = 0;
    return pg_fail(s, WHISPER_ESTORE, "two-phase commit: stopped before the decision (test)",
                   NULL, NULL);
  }
  if (rc == WHISPER_OK) rc = commit_one(s, zero); /* the decision */
  if (rc == WHISPER_OK && s->fail_after_prepare == 2) {
    s->in_txn = 0; /* tests: decided, and nothing finished: recovery's to do */
    return WHISPER_OK;
  }
  if (rc != WHISPER_OK) {
    rollback_all(s);
    for (size_t i = 1; i < s->n; i++)
      if (prepared & ((size_t)1 << i)) {
        snprintf(sql, sizeof sql, "ROLLBACK PREPARED '%s'", gid);
        PQclear(PQexec(s->shards[i].db, sql));
      }
    return rc;
  }
  s->n_done = 0;
  int all = 1;
  for (size_t i = 1; i < s->n; i++)
    if (prepared & ((size_t)1 << i)) {
      snprintf(sql, sizeof sql, "COMMIT PREPARED '%s'", gid);
      /* decided: a shard that cannot finish now is finished by recovery */
      if (exec_on(s, s->shards[i].db, sql, "two-phase commit: finishing") != WHISPER_OK) all = 0;
    }
  if (all && s->n_done < DONE_MAX) snprintf(s->done[s->n_done++], 96, "%s", gid);
  s->in_txn = 0;
  return WHISPER_OK;
}

static int pg_commit(void *user) {
  pg_store *s = user;
  s->n_sp = 0;
  size_t used = 0, which = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->shards[i].begun) used++, which = i;
  if (used == 0) {
    s->in_txn = 0;
    return WHISPER_OK;
  }
  if (used == 1) {
    int rc = commit_one(s, &s->shards[which]);
    s->in_txn = 0;
    return rc;
  }
  return commit_two_phase(s);
}

static void pg_rollback(void *user) { rollback_all(user); }

/* In-doubt transactions of this table, on every shard (see the top). */
static void recover(pg_store *s) {
  s->recovered_ms = now_ms();
  pg_shard *zero = &s->shards[0];
  char like[80], sql[200];
  snprintf(like, sizeof like, "wh\\_%s\\_%%", s->table);
  for (size_t i = 1; i < s->n; i++) {
    pg_shard *sh = &s->shards[i];
    if (reconnect(s, sh) != WHISPER_OK || reconnect(s, zero) != WHISPER_OK) return;
    PGresult *r = NULL;
    const char *lv[1] = {like};
    if (exec_params(s, sh->db,
                    "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE $1 AND "
                    "database = current_database()",
                    1, lv, "recovery: listing prepared transactions", &r) != WHISPER_OK)
      continue;
    for (int k = 0; k < PQntuples(r); k++) {
      const char *gid = PQgetvalue(r, k, 0);
      char lock[24];
      gid_lock_key(s, gid, lock);
      const char *vals[1] = {lock};
      PGresult *got = NULL, *dec = NULL;
      if (exec_on(s, zero->db, "BEGIN", "recovery") != WHISPER_OK) break;
      int free_lock =
          exec_params(s, zero->db, "SELECT pg_try_advisory_xact_lock($1::bigint)", 1, vals,
                      "recovery: the coordinator's lock", &got) == WHISPER_OK &&
          strcmp(PQgetvalue(got, 0, 0), "t") == 0;
      PQclear(got);
      int decided = -1;
      if (free_lock) { /* the coordinator is done: its decision is final */
        const char *gv[1] = {gid};
        snprintf(sql, sizeof sql, "SELECT 1 FROM %s_2pc WHERE gid = $1", s->table);
        if (exec_params(s, zero->db, sql, 1, gv, "recovery: the decision", &dec) == WHISPER_OK)
          decided = PQntuples(dec) > 0;
        PQclear(dec);
      }
      if (decided >= 0) {
        snprintf(sql, sizeof sql, "%s PREPARED '%s'", decided ? "COMMIT" : "ROLLBACK", gid);
        exec_on(s, sh->db, sql, "recovery: finishing a transaction");
      }
      PQclear(PQexec(zero->db, "COMMIT")); /* releases the lock */
    }
    PQclear(r);
  }
}

/* --- records ------------------------------------------------------------ */

static int read_row(pg_store *s, pg_shard *sh, int id, const char kind_be[4], const uint8_t *key,
                    size_t n, whisper_buf **out, int *found) {
  const char *vals[2] = {kind_be, bytes_param(key)};
  int lens[2] = {4, (int)n}, rc;
  PGresult *r = run(s, sh, id, 2, vals, lens, &rc, "reading a record");
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
  pg_shard *sh = &s->shards[route(s, kind, key, n)];
  char kind_be[4];
  int found = 0, rc;
  *out = NULL;
  if (n > INT32_MAX) return WHISPER_EINVAL;
  be32(kind_be, (uint32_t)kind);
  rc = read_row(s, sh, s->in_txn ? ST_GET_LOCK : ST_GET, kind_be, key, n, out, &found);
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
  PGresult *r = run(s, sh, ST_KEYLOCK, 1, vals, lens, &rc, "locking a key");
  if (r == NULL) return rc;
  PQclear(r);
  rc = read_row(s, sh, ST_GET_LOCK, kind_be, key, n, out, &found);
  return rc != WHISPER_OK ? rc : found ? WHISPER_OK : WHISPER_ENOTFOUND;
}

static int write_row(pg_store *s, int id, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                     size_t vn, int *rows) {
  char kind_be[4];
  if (n > INT32_MAX || vn > INT32_MAX) return WHISPER_EINVAL;
  be32(kind_be, (uint32_t)kind);
  const char *vals[3] = {kind_be, bytes_param(key), bytes_param(v)};
  int lens[3] = {4, (int)n, (int)vn}, rc;
  pg_shard *sh = &s->shards[route(s, kind, key, n)];
  PGresult *r = run(s, sh, id, id == ST_DEL ? 2 : 3, vals, lens, &rc,
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
  int shape = lo_open | (hi ? 2 : 0) | (descending ? 4 : 0), rc = WHISPER_OK;
  char kind_be[4], limit_be[8];
  be32(kind_be, (uint32_t)kind);
  be64(limit_be, limit > INT64_MAX ? INT64_MAX : (uint64_t)limit);
  const char *vals[4] = {kind_be, bytes_param(lo), hi ? bytes_param(hi) : NULL, limit_be};
  int lens[4] = {4, (int)lo_len, (int)hi_len, 8};
  /* A prefix that fixes the home shard reads that shard; a shorter one
   * reads every shard and merges. Each result is read whole before the
   * first callback, so a callback may use the store. */
  size_t first = 0, count = s->n;
  if (s->n > 1 && (kind == KIND_SERVER_REPORT || prefix_len >= TAG_LEN)) {
    first = route(s, kind, prefix, prefix_len);
    count = 1;
  }
  PGresult *res[64] = {0};
  int row[64] = {0};
  if (count > 64) return WHISPER_EINVAL;
  for (size_t i = 0; i < count && rc == WHISPER_OK; i++) {
    res[i] = run(s, &s->shards[first + i], ST_SCAN0 + shape, 4, vals, lens, &rc,
                 "scanning records");
  }
  for (size_t taken = 0; rc == WHISPER_OK && taken < limit; taken++) {
    int best = -1;
    for (size_t i = 0; i < count; i++) {
      if (row[i] >= PQntuples(res[i])) continue;
      if (best < 0) {
        best = (int)i;
        continue;
      }
      int c = bytes_cmp((const uint8_t *)PQgetvalue(res[i], row[i], 0),
                        (size_t)PQgetlength(res[i], row[i], 0),
                        (const uint8_t *)PQgetvalue(res[best], row[best], 0),
                        (size_t)PQgetlength(res[best], row[best], 0));
      if (descending ? c > 0 : c < 0) best = (int)i;
    }
    if (best < 0) break;
    PGresult *r = res[best];
    int k = row[best]++;
    if (fn(arg, (const uint8_t *)PQgetvalue(r, k, 0), (size_t)PQgetlength(r, k, 0),
           (const uint8_t *)PQgetvalue(r, k, 1), (size_t)PQgetlength(r, k, 1)))
      break;
  }
  for (size_t i = 0; i < count; i++) PQclear(res[i]);
  return rc;
}

static void pg_destroy(void *user) {
  pg_store *s = user;
  if (s == NULL) return;
  for (size_t i = 0; i < s->n; i++)
    if (s->shards[i].db) PQfinish(s->shards[i].db);
  free(s->shards);
  free(s->done);
  free(s);
}

/* --- opening ------------------------------------------------------------ */

static int create_tables(pg_store *s, pg_shard *sh) {
  char sql[512];
  /* Nodes starting together: the first creates, the others wait on the
   * lock and find the table there. */
  int rc = exec_on(s, sh->db, "BEGIN", "creating the table");
  if (rc != WHISPER_OK) return rc;
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(hashtext('whisper:%s'))", s->table);
  rc = exec_on(s, sh->db, sql, "creating the table");
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s (kind integer NOT NULL, k bytea NOT NULL, "
           "v bytea NOT NULL, PRIMARY KEY (kind, k))",
           s->table);
  if (rc == WHISPER_OK) rc = exec_on(s, sh->db, sql, "creating the table");
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s_2pc (gid text PRIMARY KEY, at timestamptz NOT NULL "
           "DEFAULT now())",
           s->table);
  if (rc == WHISPER_OK && sh == &s->shards[0] && s->n > 1)
    rc = exec_on(s, sh->db, sql, "creating the table");
  if (rc == WHISPER_OK) return exec_on(s, sh->db, "COMMIT", "creating the table");
  PQclear(PQexec(sh->db, "ROLLBACK"));
  return rc;
}

int whisper_store_pg_open_sharded(whisper_store **out, const char *const *conninfos, size_t n,
                                  const whisper_pg_options_t *opts, const char **why) {
  static const whisper_pg_options_t defaults = WHISPER_PG_OPTIONS_INIT;
  static const whisper_store_ops ops = {
      WHISPER_STORE_OPS_VERSION, pg_begin, pg_commit, pg_rollback, pg_get, pg_put, pg_del,
      pg_destroy,                pg_scan,  pg_add,     pg_savepoint, pg_release, pg_rollback_to, NULL};
  const char *dummy;
  if (why == NULL) why = &dummy;
  *why = "";
  if (out == NULL || conninfos == NULL || n < 1 || n > 64) return WHISPER_EINVAL;
  *out = NULL;
  for (size_t i = 0; i < n; i++)
    if (conninfos[i] == NULL) return WHISPER_EINVAL;
  if (opts == NULL) opts = &defaults;
  if (opts->version < 1 || opts->version > WHISPER_PG_OPTIONS_VERSION) {
    *why = "unknown options version: initialize them with WHISPER_PG_OPTIONS_INIT";
    return WHISPER_EINVAL;
  }
  const char *table = opts->table ? opts->table : "whisper_records";
  /* "_2pc" is appended for the decision table: 44 + 4 <= PG_NAME_MAX */
  if (opts->version < 1 || !name_ok(table) || strlen(table) > PG_NAME_MAX - 4) {
    *why = "the table name must be 1..44 of [a-z0-9_], starting with a letter";
    return WHISPER_EINVAL;
  }
  if (sodium_init() < 0) return WHISPER_EINTERNAL;
  pg_store *s = calloc(1, sizeof *s);
  if (s == NULL) return WHISPER_ENOMEM;
  s->shards = calloc(n, sizeof *s->shards);
  s->done = calloc(DONE_MAX, sizeof *s->done);
  if (s->shards == NULL || s->done == NULL) {
    pg_destroy(s);
    return WHISPER_ENOMEM;
  }
  s->n = n;
  snprintf(s->table, sizeof s->table, "%s", table);
  s->lock_timeout_ms = opts->lock_timeout_ms;
  if (opts->version >= 2) s->sp_lock_timeout_ms = opts->savepoint_lock_timeout_ms;
  crypto_generichash(s->hash_key, sizeof s->hash_key, (const uint8_t *)s->table, strlen(s->table),
                     NULL, 0);
  uint8_t run[8];
  randombytes_buf(run, sizeof run);
  sodium_bin2hex(s->run_id, sizeof s->run_id, run, sizeof run);
  int rc = WHISPER_OK;
  for (size_t i = 0; i < n && rc == WHISPER_OK; i++) {
    pg_shard *sh = &s->shards[i];
    sh->db = PQconnectdb(conninfos[i]);
    if (sh->db == NULL) {
      rc = WHISPER_ENOMEM;
    } else if (PQstatus(sh->db) != CONNECTION_OK) {
      *why = "cannot connect to PostgreSQL";
      rc = WHISPER_ESTORE;
    } else {
      rc = session_setup(s, sh->db);
      if (rc == WHISPER_OK) rc = create_tables(s, sh);
      if (rc != WHISPER_OK) *why = "cannot create the store's table in PostgreSQL";
    }
  }
  if (rc == WHISPER_OK && n > 1) recover(s);
  if (rc == WHISPER_OK) rc = whisper_store_new(out, &ops, s);
  if (rc != WHISPER_OK) {
    pg_destroy(s);
    return rc;
  }
  s->self = *out;
  return WHISPER_OK;
}

int whisper_store_pg_open(whisper_store **out, const char *conninfo,
                          const whisper_pg_options_t *opts, const char **why) {
  const char *one[1] = {conninfo};
  return whisper_store_pg_open_sharded(out, one, 1, opts, why);
}

int whisper_store_pg_notify(whisper_store *store, const char *channel, const uint8_t *payload,
                            size_t len) {
  if (store == NULL || store->ops.begin != pg_begin || channel == NULL || !name_ok(channel) ||
      (payload == NULL && len > 0) || len > PG_NOTIFY_MAX)
    return WHISPER_EINVAL;
  pg_store *s = store->user;
  pg_shard *sh = &s->shards[0];
  if (s->in_txn && !sh->begun) {
    int rc = shard_begin(s, sh);
    if (rc != WHISPER_OK) return rc;
  }
  char hex[2 * PG_NOTIFY_MAX + 1];
  sodium_bin2hex(hex, sizeof hex, payload ? payload : (const uint8_t *)"", len);
  const char *vals[2] = {channel, hex};
  return exec_params(s, sh->db, "SELECT pg_notify($1, $2)", 2, vals, "notifying", NULL);
}

/* Tests only (test_pgstore.c): 1 makes the next two-phase commits stop
 * before their decision, 2 right after it; 0 back to normal. */
void wh_pg_test_fail_after_prepare(whisper_store *store, int mode);
void wh_pg_test_fail_after_prepare(whisper_store *store, int mode) {
  if (store && store->ops.begin == pg_begin) ((pg_store *)store->user)->fail_after_prepare = mode;
}

/* Tests only: runs recovery now. */
void wh_pg_test_recover(whisper_store *store);
void wh_pg_test_recover(whisper_store *store) {
  if (store && store->ops.begin == pg_begin && ((pg_store *)store->user)->n > 1)
    recover(store->user);
}
