/* The fuzzers' shared machinery: see fuzz_common.h. */
#include "fuzz_common.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.pb-c.h"
#include "wire.pb-c.h"

void fz_die(const char *file, int line, const char *cond, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n%s:%d: FUZZ ASSERTION FAILED: %s\n  ", file, line, cond);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  fflush(stderr);
  abort();
}

/* WHISPER_OK or a WHISPER_E* code (whisper_strerror() knows every one). */
int fz_rc_known(int rc) {
  return rc == WHISPER_OK || (rc < 0 && strcmp(whisper_strerror(rc), "unknown error") != 0);
}

int fz_rc_in(int rc, int n, ...) {
  va_list ap;
  int found = 0;
  va_start(ap, n);
  for (int i = 0; i < n; i++)
    if (va_arg(ap, int) == rc) found = 1;
  va_end(ap);
  return found;
}

int fz_rng_fn(void *user, uint8_t *out, size_t len) {
  fz_rng *r = user;
  uint8_t s[randombytes_SEEDBYTES];
  memcpy(s, r->seed, sizeof s);
  for (int i = 0; i < 8; i++) s[i] ^= (uint8_t)(r->counter >> (8 * i));
  r->counter++;
  randombytes_buf_deterministic(out, len, s);
  return 0;
}

/* --- the watching store --------------------------------------------------- */

static int w_begin(void *user) {
  fz_store *f = user;
  f->txn_writes = 0;
  f->n_sp = 0;
  return f->inner->ops.begin(f->inner->user);
}

static int w_commit(void *user) {
  fz_store *f = user;
  int rc = f->inner->ops.commit(f->inner->user);
  if (rc == WHISPER_OK && f->txn_writes) f->committed_writes++;
  f->txn_writes = 0;
  f->n_sp = 0;
  return rc;
}

static void w_rollback(void *user) {
  fz_store *f = user;
  f->inner->ops.rollback(f->inner->user);
  f->txn_writes = 0;
  f->n_sp = 0;
}

/* Writes undone with their savepoint do not count. */
static int w_savepoint(void *user) {
  fz_store *f = user;
  FZ_ASSERT(f->n_sp < sizeof f->sp_writes / sizeof f->sp_writes[0], "savepoints nest too deep");
  int rc = f->inner->ops.savepoint(f->inner->user);
  if (rc == WHISPER_OK) f->sp_writes[f->n_sp++] = f->txn_writes;
  return rc;
}

static int w_release(void *user) {
  fz_store *f = user;
  int rc = f->inner->ops.release(f->inner->user);
  if (rc == WHISPER_OK && f->n_sp) f->n_sp--;
  return rc;
}

static int w_rollback_to(void *user) {
  fz_store *f = user;
  int rc = f->inner->ops.rollback_to(f->inner->user);
  if (rc == WHISPER_OK && f->n_sp) f->txn_writes = f->sp_writes[--f->n_sp];
  return rc;
}

static int w_get(void *user, int kind, const uint8_t *key, size_t key_len, whisper_buf **out) {
  fz_store *f = user;
  return f->inner->ops.get(f->inner->user, kind, key, key_len, out);
}

/* Adds (kind, key) with its current value to a list of touched records,
 * unless it is there already. */
static void remember(fz_store *f, fz_touch **list, size_t *n, size_t *cap, int kind,
                     const uint8_t *key, size_t key_len) {
  for (size_t i = 0; i < *n; i++)
    if ((*list)[i].kind == kind && (*list)[i].key_len == key_len &&
        (key_len == 0 || memcmp((*list)[i].key, key, key_len) == 0))
      return;
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 16;
    *list = realloc(*list, *cap * sizeof **list);
    FZ_ASSERT(*list != NULL, "out of memory");
  }
  fz_touch *t = &(*list)[(*n)++];
  t->kind = kind;
  t->key = malloc(key_len ? key_len : 1);
  FZ_ASSERT(t->key != NULL, "out of memory");
  if (key_len) memcpy(t->key, key, key_len);
  t->key_len = key_len;
  t->orig = NULL;
  int rc = f->inner->ops.get(f->inner->user, kind, key, key_len, &t->orig);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_ENOTFOUND, "inner get failed: %d", rc);
  if (rc != WHISPER_OK) t->orig = NULL;
}

/* Remembers the value of (kind, key) before its first write in this call
 * (and, when journaling, in this input). */
static void touch(fz_store *f, int kind, const uint8_t *key, size_t key_len) {
  if (f->tracking) remember(f, &f->touched, &f->ntouched, &f->cap, kind, key, key_len);
  if (f->journaling) remember(f, &f->journal, &f->njournal, &f->jcap, kind, key, key_len);
}

static int w_put(void *user, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
                 size_t val_len) {
  fz_store *f = user;
  touch(f, kind, key, key_len);
  f->txn_writes++;
  return f->inner->ops.put(f->inner->user, kind, key, key_len, val, val_len);
}

/* An add that finds the key taken writes nothing. */
static int w_add(void *user, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
                 size_t val_len) {
  fz_store *f = user;
  touch(f, kind, key, key_len);
  int rc = f->inner->ops.add(f->inner->user, kind, key, key_len, val, val_len);
  if (rc == WHISPER_OK) f->txn_writes++;
  return rc;
}

static int w_del(void *user, int kind, const uint8_t *key, size_t key_len) {
  fz_store *f = user;
  touch(f, kind, key, key_len);
  f->txn_writes++;
  return f->inner->ops.del(f->inner->user, kind, key, key_len);
}

static int w_scan(void *user, int kind, const uint8_t *prefix, size_t prefix_len,
                  const uint8_t *bound, size_t bound_len, int descending, size_t limit,
                  whisper_scan_fn fn, void *arg) {
  fz_store *f = user;
  return f->inner->ops.scan(f->inner->user, kind, prefix, prefix_len, bound, bound_len, descending,
                            limit, fn, arg);
}

void fz_store_open(fz_store *f) {
  static const whisper_store_ops ops = {WHISPER_STORE_OPS_VERSION, w_begin, w_commit, w_rollback,
                                        w_get, w_put, w_del, NULL, w_scan,    w_add,
                                        w_savepoint, w_release, w_rollback_to, NULL};
  memset(f, 0, sizeof *f);
  FZ_ASSERT(whisper_store_memory_new(&f->inner) == WHISPER_OK, "memory store");
  FZ_ASSERT(whisper_store_new(&f->outer, &ops, f) == WHISPER_OK, "wrapper store");
}

static void touches_clear(fz_touch *list, size_t *n) {
  for (size_t i = 0; i < *n; i++) {
    free(list[i].key);
    whisper_buf_free(list[i].orig);
  }
  *n = 0;
}

static void touched_clear(fz_store *f) { touches_clear(f->touched, &f->ntouched); }

void fz_store_close(fz_store *f) {
  touched_clear(f);
  free(f->touched);
  touches_clear(f->journal, &f->njournal);
  free(f->journal);
  whisper_store_free(f->outer);
  whisper_store_free(f->inner);
  memset(f, 0, sizeof *f);
}

int fz_buf_eq(const whisper_buf *a, const whisper_buf *b) {
  if (a == NULL || b == NULL) return a == b;
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

whisper_buf *fz_get(fz_dev *d, int kind, const uint8_t *key, size_t key_len) {
  whisper_buf *b = NULL;
  int rc = d->fs.inner->ops.get(d->fs.inner->user, kind, key, key_len, &b);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_ENOTFOUND, "inner get failed: %d", rc);
  return rc == WHISPER_OK ? b : NULL;
}

void fz_put_raw(fz_dev *d, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
                size_t val_len) {
  int rc = d->fs.inner->ops.put(d->fs.inner->user, kind, key, key_len, val, val_len);
  FZ_ASSERT(rc == WHISPER_OK, "inner put failed: %d", rc);
}

void fz_addr(wh_addr *a, const char *name, uint32_t device_id) {
  FZ_ASSERT(wh_addr_make(NULL, a, name, device_id) == WHISPER_OK, "bad address %s", name);
}

whisper_buf *fz_session_record(fz_dev *d, const char *name, uint32_t device_id) {
  wh_addr a;
  fz_addr(&a, name, device_id);
  return fz_get(d, WHISPER_REC_SESSION, a.key, a.len);
}

/* Puts every record of the list back to its remembered value. */
static void touches_restore(fz_store *f, const fz_touch *list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const fz_touch *t = &list[i];
    int r;
    if (t->orig)
      r = f->inner->ops.put(f->inner->user, t->kind, t->key, t->key_len, t->orig->data,
                            t->orig->len);
    else
      r = f->inner->ops.del(f->inner->user, t->kind, t->key, t->key_len);
    FZ_ASSERT(r == WHISPER_OK, "restoring a record failed: %d", r);
  }
}

void fz_call_begin(fz_dev *d) {
  touched_clear(&d->fs);
  d->fs.committed_writes = 0;
  d->fs.txn_writes = 0;
  d->fs.tracking = 1;
  /* a fixed stream per call, far from the scenarios' */
  d->rng.counter = UINT64_C(1) << 40;
}

/* FUZZ_VERBOSE=1 in the environment prints each call's result. */
static int verbose(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("FUZZ_VERBOSE");
    v = e != NULL && *e != '\0' && *e != '0';
  }
  return v;
}

int fz_verbose(void) { return verbose(); }

void fz_call_end(fz_dev *d, int rc, const char *what) {
  fz_store *f = &d->fs;
  f->tracking = 0;
  if (verbose())
    fprintf(stderr, "  %s: %d %s%s%s\n", what, rc, whisper_strerror(rc), rc ? ": " : "",
            rc ? whisper_ctx_last_error(d->ctx) : "");
  FZ_ASSERT(!f->outer->depth, "%s returned %d with a store transaction still open", what, rc);
  FZ_ASSERT(fz_rc_known(rc), "%s returned an undocumented code %d", what, rc);
  if (rc != WHISPER_OK) {
    FZ_ASSERT(f->committed_writes == 0,
              "%s failed (%d: %s) but committed %u transaction(s) with writes", what, rc,
              whisper_ctx_last_error(d->ctx), f->committed_writes);
    const fz_touch *t = fz_store_changed(f);
    FZ_ASSERT(t == NULL, "%s failed (%d: %s) but record kind %d changed", what, rc,
              whisper_ctx_last_error(d->ctx), t ? t->kind : 0);
  }
  /* put everything back as it was before the call */
  touches_restore(f, f->touched, f->ntouched);
  touched_clear(f);
}

/* --- watching a store over several calls ------------------------------------ */

const fz_touch *fz_store_changed(fz_store *f) {
  for (size_t i = 0; i < f->ntouched; i++) {
    const fz_touch *t = &f->touched[i];
    whisper_buf *now = NULL;
    int rc = f->inner->ops.get(f->inner->user, t->kind, t->key, t->key_len, &now);
    FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_ENOTFOUND, "inner get failed: %d", rc);
    int same = fz_buf_eq(rc == WHISPER_OK ? now : NULL, t->orig);
    whisper_buf_free(now);
    if (!same) return t;
  }
  return NULL;
}

void fz_watch_begin(fz_store *f) {
  touched_clear(f);
  f->committed_writes = 0;
  f->txn_writes = 0;
  f->tracking = 1;
}

void fz_watch_end(fz_store *f) {
  f->tracking = 0;
  touched_clear(f);
}

void fz_journal_begin(fz_store *f) {
  touches_clear(f->journal, &f->njournal);
  f->journaling = 1;
}

void fz_journal_restore(fz_store *f) {
  FZ_ASSERT(!f->outer->depth && !f->inner->depth, "restoring the store inside a transaction");
  f->journaling = 0;
  touches_restore(f, f->journal, f->njournal);
  touches_clear(f->journal, &f->njournal);
}

/* --- devices ------------------------------------------------------------------ */

fz_dev *fz_dev_new(const char *name, uint32_t device_id, uint8_t seed) {
  fz_dev *d = calloc(1, sizeof *d);
  FZ_ASSERT(d != NULL, "out of memory");
  fz_store_open(&d->fs);
  memset(d->rng.seed, seed, sizeof d->rng.seed);
  d->name = name;
  d->device_id = device_id;
  FZ_ASSERT(whisper_ctx_new(&d->ctx, d->fs.outer) == WHISPER_OK, "ctx");
  FZ_ASSERT(whisper_ctx_rng_set(d->ctx, fz_rng_fn, &d->rng) == WHISPER_OK, "rng");
  int rc = whisper_identity_generate(d->ctx, name, device_id, 0, FZ_NOW);
  FZ_ASSERT(rc == WHISPER_OK, "identity_create %s: %d", name, rc);
  return d;
}

void fz_dev_free(fz_dev *d) {
  if (d == NULL) return;
  whisper_ctx_free(d->ctx);
  fz_store_close(&d->fs);
  free(d);
}

/* --- scenario helpers --------------------------------------------------------- */

whisper_buf *fz_send(fz_dev *from, const char *to, uint32_t to_dev, const char *text,
                     int want_type) {
  whisper_buf *m = NULL;
  int type = 0;
  int rc = whisper_session_encrypt(from->ctx, to, to_dev, (const uint8_t *)text, strlen(text),
                                   FZ_NOW, &type, &m);
  FZ_ASSERT(rc == WHISPER_OK, "%s -> %s encrypt: %d (%s)", from->name, to, rc,
            whisper_ctx_last_error(from->ctx));
  FZ_ASSERT(want_type == 0 || type == want_type, "%s -> %s: type %d, wanted %d", from->name, to,
            type, want_type);
  return m;
}

void fz_recv(fz_dev *to, const char *from, uint32_t from_dev, int type, const whisper_buf *m,
             const char *text) {
  whisper_buf *pt = NULL;
  int rc = whisper_session_decrypt(to->ctx, from, from_dev, type, m->data, m->len, &pt);
  FZ_ASSERT(rc == WHISPER_OK, "%s <- %s decrypt: %d (%s)", to->name, from, rc,
            whisper_ctx_last_error(to->ctx));
  FZ_ASSERT(pt->len == strlen(text) && memcmp(pt->data, text, pt->len) == 0,
            "%s <- %s: wrong plaintext", to->name, from);
  whisper_buf_free(pt);
}

void fz_connect(fz_dev *a, fz_dev *b, int with_prekey) {
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  int rc = whisper_bundle_generate(b->ctx, with_prekey, &bundle);
  FZ_ASSERT(rc == WHISPER_OK, "bundle_make %s: %d", b->name, rc);
  rc = whisper_session_start(a->ctx, b->name, b->device_id, &bundle, FZ_NOW);
  FZ_ASSERT(rc == WHISPER_OK, "%s session_start with %s: %d (%s)", a->name, b->name, rc,
            whisper_ctx_last_error(a->ctx));
}

void fz_seeds_add(fz_seeds *s, const char *name, whisper_buf *b, int take) {
  if (s == NULL) {
    if (take) whisper_buf_free(b);
    return;
  }
  FZ_ASSERT(s->n < sizeof s->items / sizeof s->items[0], "too many seeds");
  FZ_ASSERT(b != NULL, "seed %s is NULL", name);
  fz_seed *e = &s->items[s->n++];
  snprintf(e->name, sizeof e->name, "%s", name);
  e->bytes = take ? b : whisper_buf_new(b->data, b->len);
  FZ_ASSERT(e->bytes != NULL, "out of memory");
}

void fz_seeds_free(fz_seeds *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < s->n; i++) whisper_buf_free(s->items[i].bytes);
  s->n = 0;
}

/* --- scenario: SignalMessages to bob --------------------------------------- */

fz_dev *fz_scenario_signal(fz_seeds *seeds) {
  fz_dev *alice = fz_dev_new("alice", 1, 0xA1), *bob = fz_dev_new("bob", 1, 0xB1);
  whisper_buf *m, *a[5], *n[7], *c1;

  /* the first session: bob skips a2 and never sees a4 */
  fz_connect(alice, bob, 1);
  m = fz_send(alice, "bob", 1, "hello bob", WHISPER_MSG_PREKEY);
  fz_recv(bob, "alice", 1, WHISPER_MSG_PREKEY, m, "hello bob");
  whisper_buf_free(m);
  m = fz_send(bob, "alice", 1, "hello alice", WHISPER_MSG_WHISPER);
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, m, "hello alice");
  whisper_buf_free(m);
  for (int i = 1; i <= 4; i++) a[i] = fz_send(alice, "bob", 1, "old session", WHISPER_MSG_WHISPER);
  fz_recv(bob, "alice", 1, WHISPER_MSG_WHISPER, a[1], "old session");
  fz_recv(bob, "alice", 1, WHISPER_MSG_WHISPER, a[3], "old session");

  /* the second session (the first is archived on both sides) */
  fz_connect(alice, bob, 1);
  m = fz_send(alice, "bob", 1, "new session", WHISPER_MSG_PREKEY);
  fz_recv(bob, "alice", 1, WHISPER_MSG_PREKEY, m, "new session");
  whisper_buf_free(m);
  m = fz_send(bob, "alice", 1, "ack", WHISPER_MSG_WHISPER);
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, m, "ack");
  whisper_buf_free(m);
  for (int i = 1; i <= 4; i++) n[i] = fz_send(alice, "bob", 1, "current", WHISPER_MSG_WHISPER);
  fz_recv(bob, "alice", 1, WHISPER_MSG_WHISPER, n[1], "current");
  fz_recv(bob, "alice", 1, WHISPER_MSG_WHISPER, n[3], "current");
  /* bob answers: alice's next messages start a new ratchet */
  c1 = fz_send(bob, "alice", 1, "bob again", WHISPER_MSG_WHISPER);
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, c1, "bob again");
  n[5] = fz_send(alice, "bob", 1, "ratchet", WHISPER_MSG_WHISPER);
  n[6] = fz_send(alice, "bob", 1, "ratchet 2", WHISPER_MSG_WHISPER);
  whisper_buf *far = NULL;
  for (int i = 0; i < 40; i++) {
    whisper_buf_free(far);
    far = fz_send(alice, "bob", 1, "far ahead", WHISPER_MSG_WHISPER);
  }

  fz_seeds_add(seeds, "archived_delivered", a[1], 1);
  fz_seeds_add(seeds, "archived_skipped", a[2], 1);
  fz_seeds_add(seeds, "archived_delivered2", a[3], 1);
  fz_seeds_add(seeds, "archived_next", a[4], 1);
  fz_seeds_add(seeds, "current_delivered", n[1], 1);
  fz_seeds_add(seeds, "current_skipped", n[2], 1);
  fz_seeds_add(seeds, "current_delivered2", n[3], 1);
  fz_seeds_add(seeds, "current_next", n[4], 1);
  fz_seeds_add(seeds, "new_ratchet", n[5], 1);
  fz_seeds_add(seeds, "new_ratchet_skip1", n[6], 1);
  fz_seeds_add(seeds, "new_ratchet_far", far, 1);
  fz_seeds_add(seeds, "own_message", c1, 1);
  fz_dev_free(alice);
  return bob;
}

/* --- scenario: PreKey messages to bob --------------------------------------- */

/* Re-encodes a PreKeySignalMessage with a change; `version` is the first
 * byte. */
static whisper_buf *prekey_variant(const whisper_buf *m, uint8_t version, int kyber,
                                   int drop_identity) {
  Whisper__Wire__PreKeySignalMessage *p =
      whisper__wire__pre_key_signal_message__unpack(NULL, m->len - 1, m->data + 1);
  FZ_ASSERT(p != NULL, "cannot parse our own PreKey message");
  static uint8_t kct[32] = {1, 2, 3};
  if (kyber) {
    p->has_kyber_pre_key_id = 1;
    p->kyber_pre_key_id = 7;
    p->has_kyber_ciphertext = 1;
    p->kyber_ciphertext = (ProtobufCBinaryData){sizeof kct, kct};
  }
  if (drop_identity) p->has_identity_key = 0;
  size_t len = whisper__wire__pre_key_signal_message__get_packed_size(p);
  whisper_buf *out = whisper_buf_new(NULL, 1 + len);
  FZ_ASSERT(out != NULL, "out of memory");
  out->data[0] = version;
  whisper__wire__pre_key_signal_message__pack(p, out->data + 1);
  if (kyber) p->has_kyber_ciphertext = 0, p->kyber_ciphertext = (ProtobufCBinaryData){0, NULL};
  whisper__wire__pre_key_signal_message__free_unpacked(p, NULL);
  return out;
}

fz_dev *fz_scenario_prekey(fz_seeds *seeds) {
  fz_dev *alice = fz_dev_new("alice", 1, 0xA2), *bob = fz_dev_new("bob", 1, 0xB2);
  fz_dev *mallory = fz_dev_new("mallory", 9, 0xC2);
  whisper_buf *p0, *p1, *q0, *r0, *m0;

  /* session p: bob has decrypted p0 and not p1 (same base key) */
  fz_connect(alice, bob, 1);
  p0 = fz_send(alice, "bob", 1, "p0", WHISPER_MSG_PREKEY);
  p1 = fz_send(alice, "bob", 1, "p1", WHISPER_MSG_PREKEY);
  fz_recv(bob, "alice", 1, WHISPER_MSG_PREKEY, p0, "p0");
  /* session q: a new session with a one-time prekey bob still holds */
  fz_connect(alice, bob, 1);
  q0 = fz_send(alice, "bob", 1, "q0", WHISPER_MSG_PREKEY);
  /* session r: signed prekey 2, no one-time prekey */
  FZ_ASSERT(whisper_signed_prekey_generate(bob->ctx, 2, FZ_NOW) == WHISPER_OK, "spk 2");
  fz_connect(alice, bob, 0);
  r0 = fz_send(alice, "bob", 1, "r0", WHISPER_MSG_PREKEY);
  /* another identity */
  fz_connect(mallory, bob, 1);
  m0 = fz_send(mallory, "bob", 1, "m0", WHISPER_MSG_PREKEY);

  fz_seeds_add(seeds, "duplicate_p0", p0, 0);
  fz_seeds_add(seeds, "same_base_key_p1", p1, 0);
  fz_seeds_add(seeds, "new_session_opk", q0, 0);
  fz_seeds_add(seeds, "new_session_no_opk_spk2", r0, 0);
  fz_seeds_add(seeds, "other_identity", m0, 0);
  fz_seeds_add(seeds, "kyber_fields", prekey_variant(q0, q0->data[0], 1, 0), 1);
  fz_seeds_add(seeds, "version4", prekey_variant(q0, 0x44, 0, 0), 1);
  fz_seeds_add(seeds, "no_identity_key", prekey_variant(q0, q0->data[0], 0, 1), 1);
  whisper_buf_free(p0);
  whisper_buf_free(p1);
  whisper_buf_free(q0);
  whisper_buf_free(r0);
  whisper_buf_free(m0);
  fz_dev_free(alice);
  fz_dev_free(mallory);
  return bob;
}

/* --- scenario: bundles for carol --------------------------------------------- */

static whisper_buf *bundle_bytes(const whisper_prekey_bundle_t *b) {
  whisper_buf *out = NULL;
  FZ_ASSERT(whisper_bundle_encode(b, &out) == WHISPER_OK, "bundle_encode");
  return out;
}

static whisper_buf *pack_bundle_pb(const Whisper__Wire__PreKeyBundle *pb) {
  whisper_buf *out = whisper_buf_new(NULL, whisper__wire__pre_key_bundle__get_packed_size(pb));
  FZ_ASSERT(out != NULL, "out of memory");
  whisper__wire__pre_key_bundle__pack(pb, out->data);
  return out;
}

fz_dev *fz_scenario_bundle(fz_seeds *seeds) {
  fz_dev *bob = fz_dev_new("bob", 1, 0xB3), *carol = fz_dev_new("carol", 1, 0xC3);
  fz_dev *dave = fz_dev_new("dave", 1, 0xD3);
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  whisper_buf *m;

  /* carol knows bob already */
  fz_connect(carol, bob, 1);
  m = fz_send(carol, "bob", 1, "hi", WHISPER_MSG_PREKEY);
  fz_recv(bob, "carol", 1, WHISPER_MSG_PREKEY, m, "hi");
  whisper_buf_free(m);

  FZ_ASSERT(whisper_bundle_generate(bob->ctx, 1, &b) == WHISPER_OK, "bundle");
  fz_seeds_add(seeds, "bob_with_prekey", bundle_bytes(&b), 1);
  b.signed_prekey_signature[5] ^= 0x20;
  fz_seeds_add(seeds, "bad_signature", bundle_bytes(&b), 1);
  b.signed_prekey_signature[5] ^= 0x20;
  b.prekey[1] = 0; /* not low order, but not bob's prekey either */
  fz_seeds_add(seeds, "wrong_prekey", bundle_bytes(&b), 1);

  /* keys longer than 33 bytes (libsignal ignores the extra bytes) */
  {
    whisper_prekey_bundle_t g = WHISPER_PREKEY_BUNDLE_INIT;
    uint8_t ik[40], spk[40], pk[40], sig[64];
    FZ_ASSERT(whisper_bundle_generate(bob->ctx, 1, &g) == WHISPER_OK, "bundle");
    memcpy(ik, g.identity_key, 33);
    memcpy(spk, g.signed_prekey, 33);
    memcpy(pk, g.prekey, 33);
    memset(ik + 33, 0xEE, 7);
    memset(spk + 33, 0xEE, 7);
    memset(pk + 33, 0xEE, 7);
    memcpy(sig, g.signed_prekey_signature, 64);
    Whisper__Wire__PreKeyBundle pb = WHISPER__WIRE__PRE_KEY_BUNDLE__INIT;
    pb.has_registration_id = pb.has_device_id = pb.has_prekey_id = pb.has_prekey = 1;
    pb.has_signed_prekey_id = pb.has_signed_prekey = pb.has_signed_prekey_signature = 1;
    pb.has_identity_key = 1;
    pb.registration_id = g.registration_id;
    pb.device_id = g.device_id;
    pb.prekey_id = g.prekey_id;
    pb.prekey = (ProtobufCBinaryData){sizeof pk, pk};
    pb.signed_prekey_id = g.signed_prekey_id;
    pb.signed_prekey = (ProtobufCBinaryData){sizeof spk, spk};
    pb.signed_prekey_signature = (ProtobufCBinaryData){sizeof sig, sig};
    pb.identity_key = (ProtobufCBinaryData){sizeof ik, ik};
    fz_seeds_add(seeds, "long_keys", pack_bundle_pb(&pb), 1);
    /* a field missing; a prekey without its id */
    pb.has_identity_key = 0;
    fz_seeds_add(seeds, "missing_identity", pack_bundle_pb(&pb), 1);
    pb.has_identity_key = 1;
    pb.has_prekey_id = 0;
    fz_seeds_add(seeds, "prekey_without_id", pack_bundle_pb(&pb), 1);
  }

  FZ_ASSERT(whisper_bundle_generate(bob->ctx, 0, &b) == WHISPER_OK, "bundle");
  fz_seeds_add(seeds, "bob_without_prekey", bundle_bytes(&b), 1);

  /* a low-order signed prekey, validly signed by bob's identity */
  {
    uint8_t sig[64];
    whisper_prekey_bundle_t lo = b;
    memset(lo.signed_prekey + 1, 0, 32);
    lo.signed_prekey[1] = 1; /* u = 1: a point of small order */
    FZ_ASSERT(whisper_sign(bob->ctx, bob->ctx->identity.priv, lo.signed_prekey, 33, sig) ==
                  WHISPER_OK,
              "sign");
    memcpy(lo.signed_prekey_signature, sig, 64);
    fz_seeds_add(seeds, "low_order_signed_prekey", bundle_bytes(&lo), 1);
  }

  /* another identity under bob's address: untrusted */
  FZ_ASSERT(whisper_bundle_generate(dave->ctx, 1, &b) == WHISPER_OK, "bundle");
  fz_seeds_add(seeds, "other_identity", bundle_bytes(&b), 1);

  fz_dev_free(bob);
  fz_dev_free(dave);
  return carol;
}

/* --- scenario: alice's session records with bob ----------------------------- */

static void add_record(fz_seeds *seeds, const char *name, fz_dev *d, const char *peer) {
  whisper_buf *r = fz_session_record(d, peer, 1);
  FZ_ASSERT(r != NULL, "no record for %s", name);
  fz_seeds_add(seeds, name, r, 1);
}

fz_dev *fz_scenario_record(fz_seeds *seeds, whisper_buf *msgs[FZ_RECORD_MSGS]) {
  fz_dev *alice = fz_dev_new("alice", 1, 0xA4), *bob = fz_dev_new("bob", 1, 0xB4);
  whisper_buf *m, *w[5];

  fz_connect(alice, bob, 1);
  m = fz_send(alice, "bob", 1, "a0", WHISPER_MSG_PREKEY);
  add_record(seeds, "pending_prekey", alice, "bob");
  fz_recv(bob, "alice", 1, WHISPER_MSG_PREKEY, m, "a0");
  whisper_buf_free(m);
  for (int i = 0; i < 3; i++) w[i] = fz_send(bob, "alice", 1, "w", WHISPER_MSG_WHISPER);
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, w[0], "w");
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, w[2], "w");
  add_record(seeds, "skipped_key", alice, "bob"); /* w[1] skipped */
  m = fz_send(alice, "bob", 1, "a1", WHISPER_MSG_WHISPER);
  fz_recv(bob, "alice", 1, WHISPER_MSG_WHISPER, m, "a1");
  whisper_buf_free(m);
  w[3] = fz_send(bob, "alice", 1, "w3", WHISPER_MSG_WHISPER); /* bob's second ratchet key */
  w[4] = fz_send(bob, "alice", 1, "w4", WHISPER_MSG_WHISPER);
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, w[3], "w3");
  add_record(seeds, "two_receiver_chains", alice, "bob"); /* w[1], w[4] pending */
  add_record(seeds, "bob_side", bob, "alice");

  /* new sessions archive the old one, w[1] and w[4] still pending in it */
  fz_connect(alice, bob, 1);
  add_record(seeds, "one_archived", alice, "bob");
  for (int i = 0; i < 4; i++) fz_connect(alice, bob, i & 1);
  add_record(seeds, "five_archived", alice, "bob");
  /* w[1] promotes the archived state back to current; then w[4] */
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, w[1], "w");
  add_record(seeds, "promoted_from_archive", alice, "bob");
  fz_recv(alice, "bob", 1, WHISPER_MSG_WHISPER, w[4], "w4");
  add_record(seeds, "all_delivered", alice, "bob");

  /* hand-made: empty, and a newer format */
  {
    wh_record r;
    whisper_buf *b = NULL;
    memset(&r, 0, sizeof r);
    FZ_ASSERT(wh_record_encode(&r, &b) == WHISPER_OK, "encode");
    fz_seeds_add(seeds, "empty", b, 1);
    Whisper__Store__RecordStructure rs = WHISPER__STORE__RECORD_STRUCTURE__INIT;
    rs.has_format = 1;
    rs.format = WH_RECORD_FORMAT + 1;
    b = whisper_buf_new(NULL, whisper__store__record_structure__get_packed_size(&rs));
    FZ_ASSERT(b != NULL, "out of memory");
    whisper__store__record_structure__pack(&rs, b->data);
    fz_seeds_add(seeds, "newer_format", b, 1);
  }

  /* the fixed messages: a skipped key, the next on a later chain, and a
   * PreKey message from a session bob starts */
  msgs[0] = w[1];
  msgs[1] = w[4];
  fz_connect(bob, alice, 1);
  msgs[2] = fz_send(bob, "alice", 1, "bob restarts", WHISPER_MSG_PREKEY);
  whisper_buf_free(w[0]);
  whisper_buf_free(w[2]);
  whisper_buf_free(w[3]);
  fz_dev_free(bob);
  return alice;
}
