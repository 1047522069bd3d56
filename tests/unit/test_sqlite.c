/* The SQLite store: durability across reopen, keys and passphrases, rekey,
 * damage, the recreate path, schema versions, encryption at rest, moved
 * ciphertexts, two processes sharing one store, and the files' modes. */
#include <sqlite3.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define NOW 1700000000000ULL

static char dir[256];
static uint8_t KEY[32], KEY2[32];

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static int open_key(whisper_store **st, const char *path, const uint8_t *key, const char *pass) {
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = key ? 32 : 0;
  o.passphrase = pass;
  return whisper_store_sqlite_open(st, path, &o, NULL);
}

/* Reads a whole file (NULL if absent). */
static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static int contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m) {
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(hay + i, needle, m) == 0) return 1;
  return 0;
}

static void test_persistence_and_keys(void) {
  char pa[300], pb[300];
  whisper_store *sa, *sb;
  whisper_ctx *a, *b;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *m, *pt;
  int type;
  path_of(pa, sizeof pa, "alice.db");
  path_of(pb, sizeof pb, "bob.db");
  CHECK_RC(open_key(&sa, pa, KEY, NULL), WHISPER_OK);
  CHECK_RC(open_key(&sb, pb, NULL, "correct horse battery staple"), WHISPER_OK);
  whisper_ctx_new(&a, sa);
  whisper_ctx_new(&b, sb);
  CHECK_RC(whisper_identity_generate(a, "alice", 1, 0, NOW), WHISPER_OK);
  CHECK_RC(whisper_identity_generate(b, "bob", 1, 0, NOW), WHISPER_OK);
  CHECK_RC(whisper_bundle_generate(b, 1, &bundle), WHISPER_OK);
  CHECK_RC(whisper_session_start(a, "bob", 1, &bundle, NOW), WHISPER_OK);
  const char *secret_text = "a very private message about the surprise party";
  CHECK_RC(whisper_session_encrypt(a, "bob", 1, (const uint8_t *)secret_text, strlen(secret_text),
                                   NOW, &type, &m), WHISPER_OK);
  CHECK_RC(whisper_session_decrypt(b, "alice", 1, type, m->data, m->len, &pt), WHISPER_OK);
  whisper_buf_free(pt);
  whisper_buf_free(m);
  uint8_t pub_a[33];
  whisper_identity_get(a, pub_a, NULL, NULL, NULL);
  uint8_t priv_a[32];
  memcpy(priv_a, a->identity.priv, 32);
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);

  /* nothing secret is in the files in the clear */
  const char *files[2] = {pa, pb};
  for (int f = 0; f < 2; f++) {
    for (int w = 0; w < 2; w++) {
      char p[320];
      snprintf(p, sizeof p, "%s%s", files[f], w ? "-wal" : "");
      size_t n = 0;
      uint8_t *bytes = slurp(p, &n);
      if (bytes == NULL) continue;
      CHECK(!contains(bytes, n, priv_a, 32));
      CHECK(!contains(bytes, n, (const uint8_t *)"alice", 5));
      free(bytes);
    }
  }

  /* reopen: everything is there, and the conversation goes on */
  CHECK_RC(open_key(&sa, pa, KEY, NULL), WHISPER_OK);
  CHECK_RC(open_key(&sb, pb, NULL, "correct horse battery staple"), WHISPER_OK);
  whisper_ctx_new(&a, sa);
  whisper_ctx_new(&b, sb);
  uint8_t pub2[33];
  const char *name;
  CHECK_RC(whisper_identity_get(a, pub2, NULL, &name, NULL), WHISPER_OK);
  CHECK(memcmp(pub2, pub_a, 33) == 0 && strcmp(name, "alice") == 0);
  CHECK_RC(whisper_session_encrypt(b, "alice", 1, (const uint8_t *)"back", 4, NOW, &type, &m), WHISPER_OK);
  CHECK(type == WHISPER_MSG_WHISPER);
  CHECK_RC(whisper_session_decrypt(a, "bob", 1, type, m->data, m->len, &pt), WHISPER_OK);
  CHECK(pt->len == 4 && memcmp(pt->data, "back", 4) == 0);
  whisper_buf_free(pt);
  CHECK_RC(whisper_session_decrypt(a, "bob", 1, type, m->data, m->len, &pt), WHISPER_EDUPLICATE);
  whisper_buf_free(m);
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);

  /* wrong keys are a clear error, never garbage */
  const char *why = NULL;
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = KEY2;
  o.key_len = 32;
  CHECK_RC(whisper_store_sqlite_open(&sa, pa, &o, &why), WHISPER_EKEY);
  CHECK(sa == NULL && why && strlen(why) > 0);
  CHECK_RC(open_key(&sb, pb, NULL, "wrong horse"), WHISPER_EKEY);
  CHECK_RC(open_key(&sb, pb, KEY, NULL), WHISPER_EKEY);
  CHECK_RC(open_key(&sa, pa, NULL, "a passphrase"), WHISPER_EKEY);
  /* bad options */
  CHECK_RC(open_key(&sa, pa, NULL, NULL), WHISPER_EINVAL);
  CHECK_RC(open_key(&sa, pa, KEY, "both"), WHISPER_EINVAL);
  o.key_len = 16;
  CHECK_RC(whisper_store_sqlite_open(&sa, pa, &o, NULL), WHISPER_EINVAL);

  /* rekey: the old key stops working, the new one opens the same data */
  CHECK_RC(open_key(&sa, pa, KEY, NULL), WHISPER_OK);
  CHECK_RC(whisper_store_rekey(sa, NULL, 0, "new passphrase"), WHISPER_OK);
  whisper_store_free(sa);
  CHECK_RC(open_key(&sa, pa, KEY, NULL), WHISPER_EKEY);
  CHECK_RC(open_key(&sa, pa, NULL, "new passphrase"), WHISPER_OK);
  whisper_ctx_new(&a, sa);
  CHECK_RC(whisper_identity_get(a, pub2, NULL, NULL, NULL), WHISPER_OK);
  CHECK(memcmp(pub2, pub_a, 33) == 0);
  int has = 0;
  CHECK_RC(whisper_session_exists(a, "bob", 1, NOW, &has), WHISPER_OK);
  CHECK(has == 1);
  CHECK_RC(whisper_store_rekey(sa, KEY2, 32, NULL), WHISPER_OK);
  CHECK_RC(whisper_store_rekey(sa, KEY2, 31, NULL), WHISPER_EINVAL);
  whisper_ctx_free(a);
  whisper_store_free(sa);
  CHECK_RC(open_key(&sa, pa, KEY2, NULL), WHISPER_OK);
  whisper_store *mem;
  whisper_store_memory_new(&mem);
  CHECK_RC(whisper_store_rekey(mem, KEY, 32, NULL), WHISPER_EINVAL); /* not a SQLite store */
  whisper_store_free(mem);

  /* a ciphertext moved to another row does not open there */
  sqlite3 *db;
  whisper_store_free(sa);
  CHECK(sqlite3_open(pa, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "UPDATE records SET value = (SELECT value FROM records ORDER BY row LIMIT 1)",
                     NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  CHECK_RC(open_key(&sa, pa, KEY2, NULL), WHISPER_OK);
  whisper_ctx_new(&a, sa);
  /* every row now holds one row's value: at most one record still opens */
  int id_rc = whisper_identity_get(a, pub2, NULL, NULL, NULL);
  int sess_rc = whisper_session_exists(a, "bob", 1, NOW, &has);
  CHECK(id_rc == WHISPER_ECORRUPT || sess_rc == WHISPER_ECORRUPT);
  CHECK((id_rc == WHISPER_OK || id_rc == WHISPER_ECORRUPT) &&
        (sess_rc == WHISPER_OK || sess_rc == WHISPER_ECORRUPT || sess_rc == WHISPER_ESTATE));
  CHECK(strlen(whisper_store_last_error(sa)) > 0);
  whisper_ctx_free(a);
  whisper_store_free(sa);
}

static void test_damage_and_versions(void) {
  char p[300];
  whisper_store *st;
  const char *why = NULL;
  /* not a database at all */
  path_of(p, sizeof p, "garbage.db");
  FILE *f = fopen(p, "wb");
  for (int i = 0; i < 8192; i++) fputc((i * 131) & 0xff, f);
  fclose(f);
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = KEY;
  o.key_len = 32;
  CHECK_RC(whisper_store_sqlite_open(&st, p, &o, &why), WHISPER_ECORRUPT);
  CHECK(why && strlen(why) > 0);
  /* the explicit recreate path */
  CHECK_RC(whisper_store_sqlite_delete(p), WHISPER_OK);
  CHECK_RC(whisper_store_sqlite_open(&st, p, &o, NULL), WHISPER_OK);
  whisper_store_free(st);
  CHECK_RC(whisper_store_sqlite_delete(p), WHISPER_OK);
  CHECK_RC(whisper_store_sqlite_delete(p), WHISPER_OK); /* nothing there: fine */

  /* a real store with damaged pages */
  path_of(p, sizeof p, "damaged.db");
  CHECK_RC(whisper_store_sqlite_open(&st, p, &o, NULL), WHISPER_OK);
  whisper_ctx *c;
  whisper_ctx_new(&c, st);
  whisper_identity_generate(c, "carol", 1, 0, NOW);
  whisper_prekeys_generate(c, 300, NULL);
  whisper_ctx_free(c);
  whisper_store_free(st);
  sqlite3 *db;
  sqlite3_open(p, &db);
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
  sqlite3_close(db);
  size_t n = 0;
  uint8_t *bytes = slurp(p, &n);
  CHECK(n > 8192);
  for (size_t i = 4096 + 200; i < n && i < 4096 * 4; i++) bytes[i] ^= 0x5a;
  f = fopen(p, "wb");
  fwrite(bytes, 1, n, f);
  fclose(f);
  free(bytes);
  CHECK_RC(whisper_store_sqlite_open(&st, p, &o, &why), WHISPER_ECORRUPT);

  /* written by a newer libwhisper */
  path_of(p, sizeof p, "newer.db");
  CHECK_RC(whisper_store_sqlite_open(&st, p, &o, NULL), WHISPER_OK);
  whisper_store_free(st);
  sqlite3_open(p, &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK_RC(whisper_store_sqlite_open(&st, p, &o, NULL), WHISPER_EVERSION);
}

/* Two processes add prekeys to one store at once: with every transaction
 * holding the write lock from its start, no update is lost. */
static void test_two_processes(void) {
  char p[300];
  whisper_store *st;
  whisper_ctx *c;
  path_of(p, sizeof p, "shared.db");
  CHECK_RC(open_key(&st, p, KEY, NULL), WHISPER_OK);
  whisper_ctx_new(&c, st);
  whisper_identity_generate(c, "dora", 1, 0, NOW);
  whisper_ctx_free(c);
  whisper_store_free(st);
  pid_t kids[2];
  for (int k = 0; k < 2; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      whisper_store *s;
      whisper_ctx *x;
      if (open_key(&s, p, KEY, NULL) != WHISPER_OK) _exit(3);
      whisper_ctx_new(&x, s);
      for (int i = 0; i < 100; i++)
        if (whisper_prekeys_generate(x, 1, NULL) != WHISPER_OK) _exit(4);
      whisper_ctx_free(x);
      whisper_store_free(s);
      _exit(0);
    }
  }
  for (int k = 0; k < 2; k++) {
    int status = 0;
    waitpid(kids[k], &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  /* 200 prekeys, ids 1..200, none lost or overwritten */
  CHECK_RC(open_key(&st, p, KEY, NULL), WHISPER_OK);
  int found = 0;
  for (uint32_t id = 1; id <= 201; id++) {
    uint8_t k[4];
    whisper_buf *b = NULL;
    wh_be32(k, id);
    if (st->ops.get(st->user, WHISPER_REC_PREKEY, k, 4, &b) == WHISPER_OK) found++;
    whisper_buf_free(b);
  }
  CHECK(found == 200);
  /* a transaction held elsewhere makes a short timeout give WHISPER_EBUSY */
  whisper_store *other;
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = KEY;
  o.key_len = 32;
  o.busy_timeout_ms = 50;
  CHECK_RC(whisper_store_sqlite_open(&other, p, &o, NULL), WHISPER_OK);
  CHECK_RC(st->ops.begin(st->user), WHISPER_OK);
  CHECK_RC(other->ops.begin(other->user), WHISPER_EBUSY);
  /* through a context: the sentence ends with SQLite's code and message */
  whisper_ctx *oc;
  CHECK_RC(whisper_ctx_new(&oc, other), WHISPER_OK);
  CHECK_RC(whisper_prekeys_generate(oc, 1, NULL), WHISPER_EBUSY);
  CHECK(strstr(whisper_ctx_last_error(oc), "store: cannot begin a transaction (store busy): ") ==
        whisper_ctx_last_error(oc));
  CHECK(strstr(whisper_ctx_last_error(oc), ": SQLITE_BUSY (5): database is locked") != NULL);
  CHECK(strstr(whisper_store_last_error(other), "SQLITE_BUSY (5): database is locked") != NULL);
  if (strstr(whisper_ctx_last_error(oc), "SQLITE_BUSY") == NULL)
    fprintf(stderr, "busy: %s\n", whisper_ctx_last_error(oc));
  whisper_ctx_free(oc);
  st->ops.rollback(st->user);
  CHECK_RC(other->ops.begin(other->user), WHISPER_OK);
  other->ops.rollback(other->user);
  whisper_store_free(other);
  whisper_store_free(st);
}

/* SQLite's own failures reach the context's last error: a constraint (a
 * trigger another connection added refuses every write) and an I/O
 * failure (a file size limit: writes fail with EFBIG, also for root). */
static void test_store_error_text(void) {
  char p[300];
  whisper_store *st;
  whisper_ctx *c;
  path_of(p, sizeof p, "errors.db");
  CHECK_RC(open_key(&st, p, KEY, NULL), WHISPER_OK);
  CHECK_RC(whisper_ctx_new(&c, st), WHISPER_OK);
  CHECK_RC(whisper_identity_generate(c, "erin", 1, 0, NOW), WHISPER_OK);
  CHECK(strcmp(whisper_ctx_last_error(c), "") == 0);
  sqlite3 *db;
  CHECK(sqlite3_open(p, &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db,
                     "CREATE TRIGGER refuse BEFORE INSERT ON records BEGIN"
                     " SELECT RAISE(ABORT, 'refused by the test'); END;",
                     NULL, NULL, NULL) == SQLITE_OK);
  int rc = whisper_prekeys_generate(c, 1, NULL);
  CHECK_RC(rc, WHISPER_ESTORE);
  const char *e = whisper_ctx_last_error(c);
  CHECK(strstr(e, "store: write failed (store failure): writing a record: SQLITE_CONSTRAINT (1811): "
                  "refused by the test") == e);
  if (strstr(e, "SQLITE_CONSTRAINT") == NULL) fprintf(stderr, "constraint: %s\n", e);
  CHECK(!whisper_err_is_fatal(rc));
  CHECK(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL, NULL) == SQLITE_OK);
  sqlite3_close(db);
  /* the failed call changed nothing; the next works and clears the sentence */
  CHECK_RC(whisper_prekeys_generate(c, 1, NULL), WHISPER_OK);
  CHECK(strcmp(whisper_ctx_last_error(c), "") == 0);
  whisper_ctx_free(c);
  whisper_store_free(st);

  /* I/O: in a child, with RLIMIT_FSIZE of 1 byte, every write fails */
  fflush(NULL);
  pid_t kid = fork();
  if (kid == 0) {
    whisper_store *s;
    whisper_ctx *x;
    if (open_key(&s, p, KEY, NULL) != WHISPER_OK || whisper_ctx_new(&x, s) != WHISPER_OK) _exit(3);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {1, 1};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(4);
    int r = WHISPER_OK;
    for (int i = 0; i < 200 && r == WHISPER_OK; i++) r = whisper_prekeys_generate(x, 50, NULL);
    const char *m = whisper_ctx_last_error(x);
    fprintf(stderr, "test_store_error_text: I/O: %s (%s)\n", whisper_strerror(r), m);
    if (r != WHISPER_ESTORE) _exit(5);
    if (strstr(m, "store: ") != m ||
        (strstr(m, ": SQLITE_IOERR (") == NULL && strstr(m, ": SQLITE_FULL (") == NULL))
      _exit(6);
    _exit(0);
  }
  int status = 0;
  waitpid(kid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Copies tests/vectors/`name` into the test directory, its path in `out`. */
static void fixture(char *out, size_t out_len, const char *name) {
  char src[512];
  size_t n = 0;
  snprintf(src, sizeof src, "%s/%s", WHISPER_VECTORS_DIR, name);
  path_of(out, out_len, name);
  uint8_t *b = slurp(src, &n);
  CHECK(b != NULL);
  FILE *f = fopen(out, "wb");
  if (b && f) fwrite(b, 1, n, f);
  if (f) fclose(f);
  free(b);
}

/* An ordered kind's key: up to 1024 bytes, a longer one refused and
 * nothing written. */
static void test_ordered_key_limit(void) {
  char p[300];
  path_of(p, sizeof p, "keys.db");
  whisper_store *st;
  CHECK_RC(open_key(&st, p, KEY, NULL), WHISPER_OK);
  uint8_t *k = calloc(1, 1025);
  whisper_buf *b = NULL;
  if (k == NULL) abort();
  memset(k, 0x5a, 1025);
  CHECK_RC(st->ops.put(st->user, WHISPER_REC_HISTORY, k, 1024, (const uint8_t *)"v", 1), WHISPER_OK);
  CHECK_RC(st->ops.get(st->user, WHISPER_REC_HISTORY, k, 1024, &b), WHISPER_OK);
  CHECK(b && b->len == 1 && b->data[0] == 'v');
  whisper_buf_free(b);
  b = NULL;
  CHECK_RC(st->ops.put(st->user, WHISPER_REC_HISTORY, k, 1025, (const uint8_t *)"w", 1), WHISPER_EINVAL);
  CHECK_RC(st->ops.add(st->user, WHISPER_REC_HISTORY, k, 1025, (const uint8_t *)"w", 1), WHISPER_EINVAL);
  CHECK_RC(st->ops.get(st->user, WHISPER_REC_HISTORY, k, 1025, &b), WHISPER_ENOTFOUND);
  CHECK_RC(st->ops.put(st->user, WHISPER_REC_SESSION, k, 1025, (const uint8_t *)"r", 1), WHISPER_OK);
  CHECK_RC(st->ops.get(st->user, WHISPER_REC_SESSION, k, 1025, &b), WHISPER_OK);
  CHECK(b && b->len == 1 && b->data[0] == 'r');
  whisper_buf_free(b);
  free(k);
  whisper_store_free(st);
}

static int user_version(const char *path) {
  sqlite3 *db;
  sqlite3_stmt *st;
  int version = -1;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return version;
}

/* Stores written by schema 1 (tests/vectors/store-v1-*.db, made by
 * tests/tools/make_store_v1.c with the first SQLite store) open after
 * migration, and the conversation in them goes on. */
static void test_migration(void) {
  char pa[300], pb[300];
  uint8_t key[32] = "store-v1 fixture key";
  fixture(pa, sizeof pa, "store-v1-alice.db");
  fixture(pb, sizeof pb, "store-v1-bob.db");
  CHECK(user_version(pa) == 1);

  whisper_store *sa, *sb;
  whisper_ctx *a, *b;
  CHECK_RC(open_key(&sa, pa, key, NULL), WHISPER_OK);
  CHECK_RC(open_key(&sb, pb, key, NULL), WHISPER_OK);
  whisper_ctx_new(&a, sa);
  whisper_ctx_new(&b, sb);
  const char *name = NULL;
  uint32_t reg = 0;
  CHECK_RC(whisper_identity_get(a, NULL, &reg, &name, NULL), WHISPER_OK);
  CHECK(reg == 1111 && name && strcmp(name, "alice") == 0);
  int has = 0;
  CHECK_RC(whisper_session_exists(a, "bob", 1, 1790000000000ULL, &has), WHISPER_OK);
  CHECK(has == 1);
  whisper_buf *m = NULL, *pt = NULL;
  int type = 0;
  CHECK_RC(whisper_session_encrypt(a, "bob", 1, (const uint8_t *)"after migration", 15,
                                   1790000000000ULL, &type, &m), WHISPER_OK);
  CHECK(type == WHISPER_MSG_WHISPER);
  whisper_message_t meta = {.size = sizeof(whisper_message_t),
                            .conversation = "alice", .id = (const uint8_t *)"m1", .id_len = 2,
                            .sort_key = 1};
  CHECK_RC(whisper_session_decrypt_store(b, "alice", 1, type, m->data, m->len, &meta, &pt),
           WHISPER_OK);
  CHECK(pt && pt->len == 15 && memcmp(pt->data, "after migration", 15) == 0);
  whisper_buf_free(pt);
  whisper_buf_free(m);
  whisper_page *page = NULL;
  CHECK_RC(whisper_history_page(b, "alice", 0, NULL, 0, 10, &page), WHISPER_OK);
  CHECK(whisper_page_count(page) == 1);
  whisper_page_free(page);
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);
  CHECK(user_version(pa) == 3);
}

/* The ordered rows of a store file: kind, key and value bytes. */
typedef struct raw_row {
  int kind;
  uint8_t key[64], value[512];
  int key_len, value_len;
} raw_row;

static size_t raw_ordered(const char *path, raw_row *rows, size_t max) {
  sqlite3 *db;
  sqlite3_stmt *st;
  size_t n = 0;
  CHECK(sqlite3_open(path, &db) == SQLITE_OK);
  CHECK(sqlite3_prepare_v2(db, "SELECT kind, key, value FROM ordered ORDER BY kind, key", -1, &st,
                           NULL) == SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW && n < max) {
    raw_row *r = &rows[n++];
    memset(r, 0, sizeof *r);
    r->kind = sqlite3_column_int(st, 0);
    r->key_len = sqlite3_column_bytes(st, 1);
    r->value_len = sqlite3_column_bytes(st, 2);
    CHECK(r->key_len <= (int)sizeof r->key && r->value_len <= (int)sizeof r->value);
    if (r->key_len > (int)sizeof r->key || r->value_len > (int)sizeof r->value) break;
    memcpy(r->key, sqlite3_column_blob(st, 1), (size_t)r->key_len);
    memcpy(r->value, sqlite3_column_blob(st, 2), (size_t)r->value_len);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

static void check_message(const whisper_page *p, size_t i, const char *id, const char *body,
                          uint64_t sort_key, const char *sender, int status) {
  const whisper_message_t *m = whisper_page_get(p, i);
  CHECK(m != NULL);
  if (m == NULL) return;
  CHECK(m->id_len == strlen(id) && memcmp(m->id, id, m->id_len) == 0);
  CHECK(m->body_len == strlen(body) && memcmp(m->body, body, m->body_len) == 0);
  CHECK(m->sort_key == sort_key);
  CHECK(sender ? m->sender && strcmp(m->sender, sender) == 0 : m->sender == NULL);
  if (status >= 0) CHECK(m->status == status);
}

/* Stores written by schema 2 (tests/vectors/store-v2-*.db, made by
 * tests/tools/make_store_v2.c): a wrong key changes nothing; the right
 * key re-seals every history and outbox row without the key inside (each
 * value exactly 8 + key bytes shorter), and the history, the statuses and
 * the outbox read back as written; then the conversation goes on, and a
 * rekey carries the new rows. */
static void test_migration_v2(void) {
  char pa[300], pb[300];
  uint8_t key[32] = "store-v2 fixture key";
  fixture(pa, sizeof pa, "store-v2-alice.db");
  fixture(pb, sizeof pb, "store-v2-bob.db");
  CHECK(user_version(pa) == 2 && user_version(pb) == 2);
  enum { ROWS = 300 };
  raw_row *before = calloc(ROWS, sizeof *before), *after = calloc(ROWS, sizeof *after),
          *still = calloc(ROWS, sizeof *still);
  if (before == NULL || after == NULL || still == NULL) abort();
  size_t nb = raw_ordered(pb, before, ROWS);
  CHECK(nb == ROWS);

  whisper_store *sa, *sb;
  CHECK_RC(open_key(&sb, pb, KEY, NULL), WHISPER_EKEY);
  CHECK(user_version(pb) == 2);
  CHECK(raw_ordered(pb, still, ROWS) == nb && memcmp(still, before, nb * sizeof *still) == 0);

  CHECK_RC(open_key(&sa, pa, key, NULL), WHISPER_OK);
  CHECK_RC(open_key(&sb, pb, key, NULL), WHISPER_OK);
  CHECK(user_version(pa) == 3 && user_version(pb) == 3);
  CHECK(raw_ordered(pb, after, ROWS) == nb);
  for (size_t i = 0; i < nb; i++) {
    CHECK(after[i].kind == before[i].kind && after[i].key_len == before[i].key_len &&
          memcmp(after[i].key, before[i].key, (size_t)after[i].key_len) == 0);
    CHECK(after[i].value_len == before[i].value_len - 8 - before[i].key_len);
  }

  whisper_ctx *a, *b;
  whisper_ctx_new(&a, sa);
  whisper_ctx_new(&b, sb);
  whisper_page *page = NULL;
  CHECK_RC(whisper_history_page(b, "alice", 0, NULL, 0, 10, &page), WHISPER_OK);
  CHECK(whisper_page_count(page) == 3);
  check_message(page, 0, "in-3", "third", 30, "alice", -1);
  check_message(page, 1, "in-2", "second", 20, "alice", -1);
  check_message(page, 2, "in-1", "first", 10, "alice", -1);
  whisper_page_free(page);
  /* "bulk" (297 rows: the migration took them in more than one chunk),
   * paged back from the newest */
  uint64_t before_key = 0;
  char before_id[32] = "";
  int seen = 0;
  for (int more = 1; more;) {
    CHECK_RC(whisper_history_page(b, "bulk", before_key, seen ? (const uint8_t *)before_id : NULL,
                                  strlen(before_id), 100, &page), WHISPER_OK);
    size_t count = whisper_page_count(page);
    for (size_t i = 0; i < count; i++, seen++) {
      char id[32], body[64];
      snprintf(id, sizeof id, "bulk-%d", 296 - seen);
      snprintf(body, sizeof body, "bulk message %d", 296 - seen);
      check_message(page, i, id, body, 100 + (uint64_t)(296 - seen), "alice", -1);
      if (i + 1 == count) {
        before_key = whisper_page_get(page, i)->sort_key;
        snprintf(before_id, sizeof before_id, "%s", id);
      }
    }
    more = count == 100;
    whisper_page_free(page);
  }
  CHECK(seen == 297);
  CHECK_RC(whisper_history_page(a, "bob", 0, NULL, 0, 10, &page), WHISPER_OK);
  CHECK(whisper_page_count(page) == 2);
  check_message(page, 0, "out-2", "still pending", 40, NULL, WHISPER_STATUS_PENDING);
  check_message(page, 1, "out-1", "hello bob", 15, NULL, WHISPER_STATUS_DELIVERED);
  whisper_page_free(page);
  CHECK_RC(whisper_outbox_page(a, 10, &page), WHISPER_OK);
  CHECK(whisper_page_count(page) == 1);
  check_message(page, 0, "out-2", "still pending", 40, NULL, WHISPER_STATUS_PENDING);
  whisper_page_free(page);

  /* a redelivery of a migrated message is recognised (its row is read) */
  static const uint8_t junk[40] = {0x33};
  whisper_message_t meta = {.size = sizeof(whisper_message_t),
                            .conversation = "alice", .id = (const uint8_t *)"in-2", .id_len = 4,
                            .sort_key = 20};
  CHECK_RC(whisper_session_decrypt_store(b, "alice", 1, WHISPER_MSG_WHISPER, junk, sizeof junk,
                                         &meta, NULL), WHISPER_EDUPLICATE);
  /* the outgoing message goes on: taken by the server, out of the outbox */
  int status = -1;
  CHECK_RC(whisper_history_sent(a, "bob", (const uint8_t *)"out-2", 5, 45), WHISPER_OK);
  CHECK_RC(whisper_history_status_get(a, "bob", (const uint8_t *)"out-2", 5, "bob", 1, &status),
           WHISPER_OK);
  CHECK(status == WHISPER_STATUS_SENT);
  CHECK_RC(whisper_outbox_page(a, 10, &page), WHISPER_OK);
  CHECK(whisper_page_count(page) == 0);
  whisper_page_free(page);
  /* and the conversation */
  whisper_buf *m = NULL, *pt = NULL;
  int type = 0;
  CHECK_RC(whisper_session_encrypt(a, "bob", 1, (const uint8_t *)"after schema 3", 14,
                                   1790000000000ULL, &type, &m), WHISPER_OK);
  meta.id = (const uint8_t *)"in-4";
  meta.sort_key = 50;
  CHECK_RC(whisper_session_decrypt_store(b, "alice", 1, type, m->data, m->len, &meta, &pt),
           WHISPER_OK);
  CHECK(pt && pt->len == 14 && memcmp(pt->data, "after schema 3", 14) == 0);
  whisper_buf_free(pt);
  whisper_buf_free(m);
  CHECK_RC(whisper_store_rekey(sb, KEY2, 32, NULL), WHISPER_OK);
  whisper_ctx_free(b);
  whisper_store_free(sb);
  CHECK_RC(open_key(&sb, pb, KEY2, NULL), WHISPER_OK);
  whisper_ctx_new(&b, sb);
  CHECK_RC(whisper_history_page(b, "alice", 0, NULL, 0, 10, &page), WHISPER_OK);
  CHECK(whisper_page_count(page) == 4);
  check_message(page, 0, "in-4", "after schema 3", 50, "alice", -1);
  check_message(page, 3, "in-1", "first", 10, "alice", -1);
  whisper_page_free(page);
  whisper_ctx_free(a);
  whisper_ctx_free(b);
  whisper_store_free(sa);
  whisper_store_free(sb);
  free(before);
  free(after);
  free(still);
}

/* scan() on SQLite gives what the memory store gives, for keys, prefixes
 * and bounds made of the bytes at the edges (0x00, 0xFF...), every shape
 * (with or without a bound, one inside or outside the prefix's range,
 * either direction), also when a scan runs inside another's callback, and
 * as keys of two ordered kinds are written and deleted in transactions
 * kept or rolled back, with savepoints released or rolled back to. */
typedef struct scan_out {
  uint8_t keys[300][8];
  size_t lens[300], n;
  whisper_store *nested; /* if set: the first row runs the same scan again, and checks it */
  const uint8_t *p, *b;
  size_t pn, bn, limit;
  int desc, nested_ok;
} scan_out;

static int scan_collect(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  scan_out *o = arg;
  (void)v, (void)vn;
  if (o->n < 300 && kn <= 8) {
    if (kn) memcpy(o->keys[o->n], k, kn);
    o->lens[o->n++] = kn;
  }
  if (o->nested && o->n == 1) {
    static scan_out again;
    memset(&again, 0, sizeof again);
    whisper_store *s = o->nested;
    o->nested_ok = s->ops.scan(s->user, 64, o->p, o->pn, o->b, o->bn, o->desc, o->limit,
                               scan_collect, &again) == WHISPER_OK &&
                   again.n >= 1 && again.lens[0] == kn &&
                   (kn == 0 || memcmp(again.keys[0], k, kn) == 0);
  }
  return 0;
}

static void test_scan_bounds(void) {
  static const uint8_t alpha[] = {0x00, 0x01, 0x7F, 0xFE, 0xFF};
  char path[300];
  path_of(path, sizeof path, "scan.db");
  whisper_store *sq, *mem;
  CHECK_RC(open_key(&sq, path, KEY, NULL), WHISPER_OK);
  CHECK_RC(whisper_store_memory_new(&mem), WHISPER_OK);
  uint32_t r = 12345;
#define NEXT_R (r = r * 1103515245u + 12345u, r >> 16)
  for (int i = 0; i < 250; i++) {
    uint8_t k[5];
    size_t n = NEXT_R % 6;
    for (size_t j = 0; j < n; j++) k[j] = alpha[NEXT_R % 5];
    CHECK_RC(sq->ops.put(sq->user, 64, k, n, k, n), WHISPER_OK);
    CHECK_RC(mem->ops.put(mem->user, 64, k, n, k, n), WHISPER_OK);
  }
  int same = 1, nested = 1;
  for (int t = 0; t < 3000; t++) {
    if (t % 100 == 50) { /* keys come and go: in a transaction kept or undone, savepoints */
      whisper_store *both[2] = {sq, mem};
      int keep = NEXT_R % 2, sp = NEXT_R % 2, undo_sp = NEXT_R % 2;
      uint32_t r0 = r;
      for (int w = 0; w < 2; w++) {
        whisper_store *s = both[w];
        r = r0; /* the same changes in both */
        CHECK_RC(s->ops.begin(s->user), WHISPER_OK);
        for (int i = 0; i < 40; i++) {
          if (sp && i == 20) CHECK_RC(s->ops.savepoint(s->user), WHISPER_OK);
          uint8_t k[5];
          size_t n = NEXT_R % 6;
          int kind = NEXT_R % 4 == 0 ? 65 : 64, del = NEXT_R % 3 == 0;
          for (size_t j = 0; j < n; j++) k[j] = alpha[NEXT_R % 5];
          if (del) CHECK_RC(s->ops.del(s->user, kind, k, n), WHISPER_OK);
          else CHECK_RC(s->ops.put(s->user, kind, k, n, k, n), WHISPER_OK);
        }
        if (sp) CHECK_RC(undo_sp ? s->ops.rollback_to(s->user) : s->ops.release(s->user), WHISPER_OK);
        if (keep) CHECK_RC(s->ops.commit(s->user), WHISPER_OK);
        else s->ops.rollback(s->user);
      }
    }
    uint8_t p[3], b[6];
    size_t pn = NEXT_R % 4, bn = NEXT_R % 7;
    for (size_t j = 0; j < pn; j++) p[j] = alpha[NEXT_R % 5];
    for (size_t j = 0; j < bn; j++) b[j] = alpha[NEXT_R % 5];
    int has_b = NEXT_R % 3 != 0, desc = NEXT_R % 2;
    size_t limit = 1 + NEXT_R % 300;
    static scan_out a, m;
    memset(&a, 0, sizeof a);
    memset(&m, 0, sizeof m);
    if (t % 10 == 0) { /* the same scan inside the first row's callback */
      a.nested = sq;
      a.p = p, a.pn = pn, a.b = has_b ? b : NULL, a.bn = has_b ? bn : 0, a.desc = desc, a.limit = limit;
      a.nested_ok = 1;
    }
    CHECK_RC(sq->ops.scan(sq->user, 64, p, pn, has_b ? b : NULL, has_b ? bn : 0, desc, limit,
                          scan_collect, &a), WHISPER_OK);
    CHECK_RC(mem->ops.scan(mem->user, 64, p, pn, has_b ? b : NULL, has_b ? bn : 0, desc, limit,
                           scan_collect, &m), WHISPER_OK);
    int eq = a.n == m.n;
    for (size_t i = 0; eq && i < a.n; i++)
      eq = a.lens[i] == m.lens[i] && memcmp(a.keys[i], m.keys[i], a.lens[i]) == 0;
    if (!eq && same)
      fprintf(stderr, "scan %d (prefix %zu B, bound %s%zu B, %s, limit %zu): %zu rows, memory %zu\n", t,
              pn, has_b ? "" : "none ", bn, desc ? "desc" : "asc", limit, a.n, m.n);
    same &= eq;
    if (a.nested && a.n) nested &= a.nested_ok;
  }
#undef NEXT_R
  CHECK(same);
  CHECK(nested);
  whisper_store_free(sq);
  whisper_store_free(mem);
}

static unsigned mode_of(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0xffffu;
}

/* A new store and its -wal and -shm files are 0600 whatever the umask (SQLite
 * alone made them 0644 less the umask); an existing file keeps its mode. */
static void test_file_modes(void) {
  static const mode_t masks[] = {0, 022, 0277};
  for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
    char p[300], wal[310], shm[310];
    snprintf(p, sizeof p, "%s/modes-%zu.db", dir, i);
    snprintf(wal, sizeof wal, "%s-wal", p);
    snprintf(shm, sizeof shm, "%s-shm", p);
    mode_t old = umask(masks[i]);
    whisper_store *st = NULL;
    CHECK_RC(open_key(&st, p, KEY, NULL), WHISPER_OK);
    whisper_ctx *c = NULL;
    whisper_ctx_new(&c, st);
    CHECK_RC(whisper_identity_generate(c, "modes", 1, 0, NOW), WHISPER_OK); /* writes the WAL */
    umask(old);
    CHECK(mode_of(p) == 0600);
    CHECK(mode_of(wal) == 0600);
    CHECK(mode_of(shm) == 0600);
    if (mode_of(p) != 0600 || mode_of(wal) != 0600 || mode_of(shm) != 0600)
      fprintf(stderr, "umask %03o: db %03o, wal %03o, shm %03o\n", (unsigned)masks[i], mode_of(p),
              mode_of(wal), mode_of(shm));
    whisper_ctx_free(c);
    whisper_store_free(st);
  }
  /* an existing store keeps the mode its owner gave it */
  char p[300];
  snprintf(p, sizeof p, "%s/modes-0.db", dir);
  CHECK(chmod(p, 0640) == 0);
  whisper_store *st = NULL;
  CHECK_RC(open_key(&st, p, KEY, NULL), WHISPER_OK);
  CHECK(mode_of(p) == 0640);
  whisper_store_free(st);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/whisper-test-sqlite-XXXXXX");
  if (mkdtemp(dir) == NULL) return 2;
  for (int i = 0; i < 32; i++) KEY[i] = (uint8_t)i, KEY2[i] = (uint8_t)(255 - i);
  test_persistence_and_keys();
  test_damage_and_versions();
  test_two_processes();
  test_store_error_text();
  test_migration();
  test_migration_v2();
  test_ordered_key_limit();
  test_scan_bounds();
  test_file_modes();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_done();
}
