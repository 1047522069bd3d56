/* The PostgreSQL store (pgstore.h) against a private cluster the test
 * fixture started (tests/tools/pg_cluster.sh; its conninfo file is named
 * by WHISPER_TEST_PG_FILE):
 *   - the same answers as the memory store for random operations, scans
 *     and transactions (a differential test);
 *   - two handles (two nodes) incrementing one counter in read-modify-write
 *     transactions from two threads lose no increment, also when the
 *     record does not exist yet;
 *   - notifications are delivered on commit only;
 *   - bad arguments are refused, and a lost connection is re-made. */
#include <libpq-fe.h>
#include <pthread.h>

#include "internal.h"
#include "test.h"
#include "whisper/pgstore.h"

static char conninfo[512], conninfo2[512]; /* the second: another database, for shards */

void wh_pg_test_fail_after_prepare(whisper_store *store, int mode);
void wh_pg_test_recover(whisper_store *store);

static void read_conninfo(void) {
  const char *file = getenv("WHISPER_TEST_PG_FILE");
  FILE *f = file ? fopen(file, "r") : NULL;
  if (f == NULL || fgets(conninfo, sizeof conninfo, f) == NULL) {
    fprintf(stderr, "test_pgstore: no cluster (WHISPER_TEST_PG_FILE=%s)\n", file ? file : "");
    exit(1);
  }
  fclose(f);
  conninfo[strcspn(conninfo, "\n")] = 0;
  /* the fixture made databases whisper and whisper2 */
  const char *db = strstr(conninfo, "dbname=whisper");
  if (db == NULL) exit(1);
  snprintf(conninfo2, sizeof conninfo2, "%.*sdbname=whisper2%s", (int)(db - conninfo), conninfo,
           db + strlen("dbname=whisper"));
}

static int shards = 1; /* the tests run over one database, then over two */

static whisper_store *open_pg(const char *table) {
  whisper_pg_options_t o = WHISPER_PG_OPTIONS_INIT;
  o.table = table;
  whisper_store *st = NULL;
  const char *why = NULL;
  const char *infos[2] = {conninfo, conninfo2};
  int rc = whisper_store_pg_open_sharded(&st, infos, (size_t)shards, &o, &why);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "test_pgstore: open: %s (%s)\n", whisper_strerror(rc), why);
    exit(1);
  }
  return st;
}

static void drop_table(const char *table) {
  const char *infos[2] = {conninfo, conninfo2};
  for (int i = 0; i < 2; i++) {
    PGconn *c = PQconnectdb(infos[i]);
    char sql[128];
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s_2pc", table);
    PQclear(PQexec(c, sql));
    PQfinish(c);
  }
}

/* Rows of `table` in database `info`. */
static long rows_in(const char *info, const char *table) {
  PGconn *c = PQconnectdb(info);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
  PGresult *r = PQexec(c, sql);
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  PQfinish(c);
  return n;
}

static long prepared_in(const char *info) {
  PGconn *c = PQconnectdb(info);
  PGresult *r = PQexec(c, "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()");
  long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  PQfinish(c);
  return n;
}

/* --- the differential test ----------------------------------------------- */

typedef struct collected {
  char text[8192];
  size_t len;
} collected;

static int collect(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  collected *c = arg;
  int n = snprintf(c->text + c->len, sizeof c->text - c->len, "[");
  c->len += (size_t)n;
  for (size_t i = 0; i < kn && c->len + 3 < sizeof c->text; i++)
    c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "%02x", k[i]);
  c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "=%zu:", vn);
  for (size_t i = 0; i < vn && c->len + 3 < sizeof c->text; i++)
    c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "%02x", v[i]);
  c->len += (size_t)snprintf(c->text + c->len, sizeof c->text - c->len, "]");
  return c->len > sizeof c->text - 256; /* stop when full, on both sides alike */
}

static uint32_t rnd(uint32_t n) { return randombytes_uniform(n); }

/* Keys from a small alphabet, so that prefixes, bounds and collisions
 * happen often; sometimes empty, sometimes with 0x00 and 0xFF bytes. */
static size_t rand_key(uint8_t *k) {
  static const uint8_t alpha[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
  size_t n = rnd(5);
  for (size_t i = 0; i < n; i++) k[i] = alpha[rnd(sizeof alpha)];
  return n;
}

static void test_differential(void) {
  const char *table = "wh_test_diff";
  drop_table(table);
  whisper_store *pg = open_pg(table), *mem;
  CHECK_RC(whisper_store_memory_new(&mem), WHISPER_OK);
  whisper_store *both[2] = {mem, pg};
  static const int kinds[] = {WHISPER_REC_META, WHISPER_REC_SESSION, WHISPER_REC_HISTORY,
                              WHISPER_REC_OUTBOX};
  int in_txn = 0, mismatches = 0, ops = 0;
  for (int step = 0; step < 3000; step++) {
    int kind = kinds[rnd(4)];
    uint8_t k[8], v[16], b[8];
    size_t kn = rand_key(k), bn = rand_key(b), vn = rnd(sizeof v);
    randombytes_buf(v, vn);
    int op = (int)rnd(100), r[2] = {0, 0};
    int okind = rnd(2) ? WHISPER_REC_HISTORY : WHISPER_REC_OUTBOX, use_bound = (int)rnd(2);
    int desc = (int)rnd(2);
    size_t limit = rnd(3) ? rnd(6) : SIZE_MAX;
    collected c[2];
    memset(c, 0, sizeof c);
    for (int s = 0; s < 2; s++) {
      whisper_store *st = both[s];
      if (op < 5) {
        if (!in_txn) r[s] = st->ops.begin(st->user);
      } else if (op < 9) {
        if (in_txn) r[s] = st->ops.commit(st->user);
      } else if (op < 12) {
        if (in_txn) st->ops.rollback(st->user);
      } else if (op < 40) {
        r[s] = st->ops.put(st->user, kind, k, kn, v, vn);
      } else if (op < 50) {
        r[s] = st->ops.add(st->user, kind, k, kn, v, vn);
      } else if (op < 60) {
        r[s] = st->ops.del(st->user, kind, k, kn);
      } else if (op < 64) { /* savepoints: make, release, roll back to */
        r[s] = op < 61   ? st->ops.savepoint(st->user)
               : op < 62 ? st->ops.release(st->user)
                         : st->ops.rollback_to(st->user);
      } else if (op < 80) {
        whisper_buf *out = NULL;
        r[s] = st->ops.get(st->user, kind, k, kn, &out);
        if (out) collect(&c[s], k, kn, out->data, out->len);
        whisper_buf_free(out);
      } else {
        r[s] = st->ops.scan(st->user, okind, k, kn, use_bound ? b : NULL, bn, desc, limit,
                            collect, &c[s]);
      }
    }
    if (op < 5 && !in_txn) in_txn = 1;
    else if (op >= 5 && op < 12 && in_txn) in_txn = 0;
    ops++;
    if (r[0] != r[1] || c[0].len != c[1].len || memcmp(c[0].text, c[1].text, c[0].len) != 0) {
      if (mismatches++ < 5)
        fprintf(stderr, "step %d op %d: memory %d '%.*s' / pg %d '%.*s' (%s)\n", step, op, r[0],
                (int)c[0].len, c[0].text, r[1], (int)c[1].len, c[1].text,
                whisper_store_last_error(pg));
    }
  }
  if (in_txn) {
    CHECK_RC(mem->ops.commit(mem->user), WHISPER_OK);
    CHECK_RC(pg->ops.commit(pg->user), WHISPER_OK);
  }
  /* and the whole ordered contents at the end, both ways */
  for (int d = 0; d <= 1; d++) {
    collected c[2];
    memset(c, 0, sizeof c);
    CHECK_RC(mem->ops.scan(mem->user, WHISPER_REC_HISTORY, NULL, 0, NULL, 0, d, SIZE_MAX, collect,
                           &c[0]),
             WHISPER_OK);
    CHECK_RC(pg->ops.scan(pg->user, WHISPER_REC_HISTORY, NULL, 0, NULL, 0, d, SIZE_MAX, collect,
                          &c[1]),
             WHISPER_OK);
    CHECK(c[0].len > 2 && c[0].len == c[1].len && memcmp(c[0].text, c[1].text, c[0].len) == 0);
  }
  CHECK(ops == 3000);
  CHECK(mismatches == 0);
  /* a plain kind cannot be scanned */
  collected c;
  memset(&c, 0, sizeof c);
  CHECK_RC(pg->ops.scan(pg->user, WHISPER_REC_META, NULL, 0, NULL, 0, 0, 10, collect, &c),
           WHISPER_EINVAL);
  whisper_store_free(mem);
  whisper_store_free(pg);
  drop_table(table);
}

/* --- two nodes, one counter ---------------------------------------------- */

typedef struct worker {
  whisper_store *st;
  int n, done, busy;
} worker;

static void *increment(void *arg) {
  worker *w = arg;
  static const uint8_t key[] = "counter";
  while (w->done < w->n) {
    whisper_store *st = w->st;
    whisper_buf *b = NULL;
    int rc = st->ops.begin(st->user);
    if (rc != WHISPER_OK) break;
    rc = st->ops.get(st->user, WHISPER_REC_META, key, sizeof key, &b);
    uint64_t v = 0;
    if (rc == WHISPER_OK && b->len == 8) memcpy(&v, b->data, 8);
    whisper_buf_free(b);
    if (rc == WHISPER_OK || rc == WHISPER_ENOTFOUND) {
      v++;
      rc = st->ops.put(st->user, WHISPER_REC_META, key, sizeof key, (const uint8_t *)&v, 8);
    }
    if (rc == WHISPER_OK) rc = st->ops.commit(st->user);
    else st->ops.rollback(st->user);
    if (rc == WHISPER_OK) w->done++;
    else if (rc == WHISPER_EBUSY) w->busy++;
    else break;
  }
  return NULL;
}

static void test_two_nodes(void) {
  const char *table = "wh_test_nodes";
  drop_table(table);
  worker w[2] = {{open_pg(table), 300, 0, 0}, {open_pg(table), 300, 0, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, increment, &w[i]);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  CHECK(w[0].done == 300 && w[1].done == 300);
  whisper_buf *b = NULL;
  static const uint8_t key[] = "counter";
  CHECK_RC(w[0].st->ops.get(w[0].st->user, WHISPER_REC_META, key, sizeof key, &b), WHISPER_OK);
  uint64_t v = 0;
  if (b && b->len == 8) memcpy(&v, b->data, 8);
  whisper_buf_free(b);
  CHECK(v == 600);
  if (v != 600) fprintf(stderr, "counter %llu, busy %d/%d\n", (unsigned long long)v, w[0].busy, w[1].busy);
  whisper_store_free(w[0].st);
  whisper_store_free(w[1].st);
  drop_table(table);
}

/* --- a batch's lock timeout (savepoint_lock_timeout_ms) ------------------ */

static double ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* B reads (FOR UPDATE) the row A holds: the code and how long it waited (ms). */
static int locked_read(whisper_store *b, double *waited) {
  static const uint8_t key[] = "held";
  whisper_buf *v = NULL;
  double t0 = ms_now();
  int rc = b->ops.get(b->user, WHISPER_REC_META, key, sizeof key, &v);
  *waited = ms_now() - t0;
  whisper_buf_free(v);
  return rc;
}

/* Inside a savepoint a lock wait gives up after savepoint_lock_timeout_ms
 * (a server's group-commit batch runs each frame in one); outside (before
 * the first, after one is released, in the next transaction) the lock
 * timeout is lock_timeout_ms. After the savepoint is rolled back the
 * transaction goes on. */
static void test_savepoint_lock_timeout(void) {
  const char *table = "wh_test_splock";
  static const uint8_t key[] = "held", other[] = "other";
  drop_table(table);
  whisper_store *a = open_pg(table), *b = NULL;
  whisper_pg_options_t o = WHISPER_PG_OPTIONS_INIT;
  o.table = table;
  o.lock_timeout_ms = 1000;
  o.savepoint_lock_timeout_ms = 100;
  const char *why = NULL;
  CHECK_RC(whisper_store_pg_open(&b, conninfo, &o, &why), WHISPER_OK);
  if (b == NULL) return;
  CHECK_RC(a->ops.begin(a->user), WHISPER_OK);
  CHECK_RC(a->ops.put(a->user, WHISPER_REC_META, key, sizeof key, (const uint8_t *)"v", 1), WHISPER_OK);
  CHECK_RC(a->ops.commit(a->user), WHISPER_OK);
  whisper_buf *v = NULL;
  CHECK_RC(a->ops.begin(a->user), WHISPER_OK);
  CHECK_RC(a->ops.get(a->user, WHISPER_REC_META, key, sizeof key, &v), WHISPER_OK); /* locked */
  whisper_buf_free(v);
  double waited;
  /* no savepoint: the 1 s */
  CHECK_RC(b->ops.begin(b->user), WHISPER_OK);
  CHECK_RC(locked_read(b, &waited), WHISPER_EBUSY);
  CHECK(waited >= 900);
  b->ops.rollback(b->user);
  /* inside a savepoint: 100 ms; rolled back to it, the transaction goes on */
  CHECK_RC(b->ops.begin(b->user), WHISPER_OK);
  CHECK_RC(b->ops.savepoint(b->user), WHISPER_OK);
  CHECK_RC(locked_read(b, &waited), WHISPER_EBUSY);
  CHECK(waited >= 80 && waited < 700);
  if (waited >= 700) fprintf(stderr, "savepoint lock wait: %.0f ms\n", waited);
  CHECK_RC(b->ops.rollback_to(b->user), WHISPER_OK);
  CHECK_RC(b->ops.savepoint(b->user), WHISPER_OK);
  CHECK_RC(b->ops.put(b->user, WHISPER_REC_META, other, sizeof other, (const uint8_t *)"w", 1),
           WHISPER_OK);
  CHECK_RC(b->ops.release(b->user), WHISPER_OK);
  CHECK_RC(b->ops.commit(b->user), WHISPER_OK);
  /* released: the 1 s again, in the same transaction */
  CHECK_RC(b->ops.begin(b->user), WHISPER_OK);
  CHECK_RC(b->ops.savepoint(b->user), WHISPER_OK);
  CHECK_RC(b->ops.release(b->user), WHISPER_OK);
  CHECK_RC(locked_read(b, &waited), WHISPER_EBUSY);
  CHECK(waited >= 900);
  b->ops.rollback(b->user);
  /* the next transaction: the 1 s again */
  CHECK_RC(b->ops.begin(b->user), WHISPER_OK);
  CHECK_RC(locked_read(b, &waited), WHISPER_EBUSY);
  CHECK(waited >= 900);
  b->ops.rollback(b->user);
  a->ops.rollback(a->user);
  CHECK_RC(a->ops.get(a->user, WHISPER_REC_META, other, sizeof other, &v), WHISPER_OK);
  CHECK(v && v->len == 1 && v->data[0] == 'w');
  whisper_buf_free(v);
  whisper_store_free(a);
  whisper_store_free(b);
  drop_table(table);
}

/* --- notifications ------------------------------------------------------- */

static int notified(PGconn *l, const char *want_hex) {
  int got = 0;
  for (int i = 0; i < 50 && !got; i++) {
    PQconsumeInput(l);
    PGnotify *n;
    while ((n = PQnotifies(l)) != NULL) {
      if (strcmp(n->relname, "wh_test_chan") == 0 && strcmp(n->extra, want_hex) == 0) got = 1;
      PQfreemem(n);
    }
    if (!got) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  return got;
}

static void test_notify(void) {
  whisper_store *st = open_pg("wh_test_notify"), *mem;
  PGconn *l = PQconnectdb(conninfo);
  PQclear(PQexec(l, "LISTEN wh_test_chan"));
  /* rolled back: nothing */
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(whisper_store_pg_notify(st, "wh_test_chan", (const uint8_t *)"\x01\x02", 2), WHISPER_OK);
  st->ops.rollback(st->user);
  CHECK(!notified(l, "0102"));
  /* committed: delivered, as hex */
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(whisper_store_pg_notify(st, "wh_test_chan", (const uint8_t *)"\xab\xcd", 2), WHISPER_OK);
  CHECK(!notified(l, "abcd")); /* not before the commit */
  CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
  CHECK(notified(l, "abcd"));
  /* refusals */
  uint8_t big[4000] = {0};
  CHECK_RC(whisper_store_pg_notify(st, "wh_test_chan", big, sizeof big), WHISPER_EINVAL);
  CHECK_RC(whisper_store_pg_notify(st, "Bad-Channel", big, 1), WHISPER_EINVAL);
  CHECK_RC(whisper_store_memory_new(&mem), WHISPER_OK);
  CHECK_RC(whisper_store_pg_notify(mem, "wh_test_chan", big, 1), WHISPER_EINVAL);
  whisper_store_free(mem);
  PQfinish(l);
  whisper_store_free(st);
  drop_table("wh_test_notify");
}

/* --- refusals and reconnection ------------------------------------------ */

static void test_open_and_reconnect(void) {
  whisper_store *st = NULL;
  whisper_pg_options_t o = WHISPER_PG_OPTIONS_INIT;
  const char *why = NULL;
  o.table = "Robert'); DROP TABLE x;--";
  CHECK_RC(whisper_store_pg_open(&st, conninfo, &o, &why), WHISPER_EINVAL);
  CHECK(st == NULL && why && why[0]);
  whisper_pg_options_t newer = WHISPER_PG_OPTIONS_INIT; /* a version it does not know */
  newer.version = WHISPER_PG_OPTIONS_VERSION + 1;
  CHECK_RC(whisper_store_pg_open(&st, conninfo, &newer, &why), WHISPER_EINVAL);
  CHECK(st == NULL && strstr(why, "WHISPER_PG_OPTIONS_INIT") != NULL);
  CHECK_RC(whisper_store_pg_open(&st, "host=127.0.0.1 port=1 connect_timeout=2", NULL, &why),
           WHISPER_ESTORE);
  CHECK(st == NULL);
  /* the server ends the connection: the next transaction makes a new one */
  char info[600];
  snprintf(info, sizeof info, "%s application_name=wh_reconnect_test", conninfo);
  o.table = "wh_test_reconnect";
  CHECK_RC(whisper_store_pg_open(&st, info, &o, &why), WHISPER_OK);
  CHECK_RC(st->ops.put(st->user, WHISPER_REC_META, (const uint8_t *)"a", 1,
                       (const uint8_t *)"1", 1),
           WHISPER_OK);
  PGconn *admin = PQconnectdb(conninfo);
  PQclear(PQexec(admin,
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = 'wh_reconnect_test'"));
  PQfinish(admin);
  whisper_buf *b = NULL;
  /* outside a transaction a statement is run again on a new connection */
  CHECK_RC(st->ops.get(st->user, WHISPER_REC_META, (const uint8_t *)"a", 1, &b), WHISPER_OK);
  if (b == NULL) fprintf(stderr, "after a lost connection: %s\n", whisper_store_last_error(st));
  CHECK(b && b->len == 1 && b->data[0] == '1');
  whisper_buf_free(b);
  b = NULL;
  admin = PQconnectdb(conninfo);
  PQclear(PQexec(admin,
                 "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = 'wh_reconnect_test'"));
  PQfinish(admin);
  /* and before a transaction begins */
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(st->ops.get(st->user, WHISPER_REC_META, (const uint8_t *)"a", 1, &b), WHISPER_OK);
  CHECK(b && b->len == 1 && b->data[0] == '1');
  whisper_buf_free(b);
  CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
  whisper_store_free(st);
  drop_table("wh_test_reconnect");
}

/* --- two shards --------------------------------------------------------- */

static void put_accounts(whisper_store *st, const char *prefix, int n, const char *value) {
  for (int i = 0; i < n; i++) {
    char k[32];
    snprintf(k, sizeof k, "%s%d", prefix, i);
    CHECK_RC(st->ops.put(st->user, 32, (const uint8_t *)k, strlen(k), (const uint8_t *)value,
                         strlen(value)),
             WHISPER_OK);
  }
}

/* How many of the accounts hold `value` (read without locks). */
static int accounts_with(whisper_store *st, const char *prefix, int n, const char *value) {
  int got = 0;
  for (int i = 0; i < n; i++) {
    char k[32];
    whisper_buf *b = NULL;
    snprintf(k, sizeof k, "%s%d", prefix, i);
    if (st->ops.get(st->user, 32, (const uint8_t *)k, strlen(k), &b) == WHISPER_OK &&
        b->len == strlen(value) && memcmp(b->data, value, b->len) == 0)
      got++;
    whisper_buf_free(b);
  }
  return got;
}

static void test_shards(void) {
  const char *t = "wh_test_shards";
  drop_table(t);
  whisper_store *st = open_pg(t), *other = open_pg(t); /* two nodes */
  /* a transaction over both shards: all or nothing */
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  put_accounts(st, "acct", 20, "one");
  CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
  CHECK(rows_in(conninfo, t) > 0 && rows_in(conninfo2, t) > 0);
  CHECK(rows_in(conninfo, t) + rows_in(conninfo2, t) == 20);
  CHECK(accounts_with(other, "acct", 20, "one") == 20);
  CHECK(prepared_in(conninfo2) == 0);
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  put_accounts(st, "acct", 20, "two");
  st->ops.rollback(st->user);
  CHECK(accounts_with(other, "acct", 20, "one") == 20);

  /* the coordinator dies before deciding: another node rolls back */
  wh_pg_test_fail_after_prepare(st, 1);
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  put_accounts(st, "acct", 20, "three");
  CHECK_RC(st->ops.commit(st->user), WHISPER_ESTORE);
  CHECK(prepared_in(conninfo2) == 1);
  wh_pg_test_recover(other);
  CHECK(prepared_in(conninfo2) == 0);
  CHECK(accounts_with(other, "acct", 20, "one") == 20);

  /* it dies after deciding: another node commits what is left */
  wh_pg_test_fail_after_prepare(st, 2);
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  put_accounts(st, "acct", 20, "four");
  CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
  CHECK(prepared_in(conninfo2) == 1);
  int before = accounts_with(other, "acct", 20, "four");
  CHECK(before > 0 && before < 20); /* shard 0's part only, until recovery */
  wh_pg_test_recover(other);
  CHECK(prepared_in(conninfo2) == 0);
  CHECK(accounts_with(other, "acct", 20, "four") == 20);

  /* while the coordinator is still deciding, recovery leaves it alone: a
   * transaction that holds its shard-0 lock is not touched */
  wh_pg_test_fail_after_prepare(st, 0);
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  put_accounts(st, "acct", 20, "five");
  CHECK_RC(st->ops.commit(st->user), WHISPER_OK);
  CHECK(accounts_with(other, "acct", 20, "five") == 20);
  whisper_store_free(st);
  whisper_store_free(other);
  drop_table(t);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  read_conninfo();
  for (shards = 1; shards <= 2; shards++) {
    test_differential();
    test_two_nodes();
  }
  shards = 2;
  test_shards();
  shards = 1;
  test_savepoint_lock_timeout();
  test_notify();
  test_open_and_reconnect();
  return test_done();
}
