/* History, statuses, the outbox, decrypt-and-store and batches, on the
 * memory store, on the SQLite store (with a restart) and on a store whose
 * table is of version 2 (no add: the library reads before it writes). */
#include <unistd.h>

#include "internal.h"
#include "test.h"

#define NOW 1700000000000ULL

static char dbdir[128];
static const uint8_t KEY[32] = "history test store key .........";

typedef struct dev {
  whisper_store *st, *inner; /* inner: the memory store behind a version-2 table */
  whisper_ctx *ctx;
  char path[256];
} dev;

enum { MEMORY, SQLITE, V2 };

static void dev_open(dev *d, int sqlite, const char *file) {
  d->inner = NULL;
  if (sqlite == V2) {
    CHECK_RC(whisper_store_memory_new(&d->inner), WHISPER_OK);
    whisper_store_ops v2 = d->inner->ops;
    v2.version = 2;
    v2.destroy = NULL;
    CHECK_RC(whisper_store_new(&d->st, &v2, d->inner->user), WHISPER_OK);
    CHECK(d->st->ops.add == NULL);
  } else if (sqlite) {
    whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
    o.key = KEY;
    o.key_len = 32;
    snprintf(d->path, sizeof d->path, "%s/%s", dbdir, file);
    CHECK_RC(whisper_store_sqlite_open(&d->st, d->path, &o, NULL), WHISPER_OK);
  } else {
    CHECK_RC(whisper_store_memory_new(&d->st), WHISPER_OK);
  }
  whisper_ctx_new(&d->ctx, d->st);
}

static void dev_close(dev *d) {
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->st);
  whisper_store_free(d->inner);
}

static whisper_message_t msg(const char *conv, const char *id, uint64_t sort_key, const char *body) {
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = conv, .id = (const uint8_t *)id, .id_len = strlen(id),
                         .sort_key = sort_key, .timestamp_ms = NOW + sort_key,
                         .body = (const uint8_t *)body, .body_len = strlen(body)};
  return m;
}

static void test_outgoing(int sqlite) {
  dev a;
  dev_open(&a, sqlite, "out.db");
  whisper_identity_generate(a.ctx, "alice", 1, 0, NOW);
  whisper_device_t to[2] = {{"bob", 1}, {"bob", 2}};
  char id[16], body[32];
  for (int i = 0; i < 30; i++) {
    snprintf(id, sizeof id, "m%02d", i);
    snprintf(body, sizeof body, "hello %d", i);
    whisper_message_t m = msg("bob", id, (uint64_t)(1000 + i), body);
    CHECK_RC(whisper_history_add_outgoing(a.ctx, &m, to, 2), WHISPER_OK);
  }
  whisper_message_t dup = msg("bob", "m05", 1, "again");
  CHECK_RC(whisper_history_add_outgoing(a.ctx, &dup, to, 2), WHISPER_EDUPLICATE);
  whisper_message_t other = msg("carol", "m05", 1, "same id, other conversation");
  CHECK_RC(whisper_history_add_outgoing(a.ctx, &other, to, 1), WHISPER_OK);
  /* a versioned struct (docs/api.md): a size below 1.0's is refused,
   * nothing stored; a later caller's bigger struct is read up to the
   * fields the library knows (its newer one, garbage here, ignored) */
  whisper_message_t old = msg("erin", "v1", 5, "old");
  old.size = 0;
  CHECK_RC(whisper_history_add_outgoing(a.ctx, &old, to, 1), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(a.ctx), "WHISPER_MESSAGE_INIT") != NULL);
  old.size = WHISPER_MESSAGE_SIZE_1_0 - 1;
  CHECK_RC(whisper_history_add_outgoing(a.ctx, &old, to, 1), WHISPER_EINVAL);
  struct later_message {
    whisper_message_t m;
    uint64_t newer;
  } later;
  memset(&later, 0x5a, sizeof later);
  later.m = msg("erin", "v2", 6, "newer caller");
  later.m.size = sizeof later;
  CHECK_RC(whisper_history_add_outgoing(a.ctx, &later.m, to, 1), WHISPER_OK);
  CHECK(later.newer == 0x5a5a5a5a5a5a5a5aull);
  whisper_page *p = NULL;
  CHECK_RC(whisper_history_page(a.ctx, "erin", 0, NULL, 0, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1); /* v2 only */
  const whisper_message_t *v2 = whisper_page_get(p, 0);
  CHECK(v2 && v2->id_len == 2 && memcmp(v2->id, "v2", 2) == 0 && v2->body_len == 12 &&
        memcmp(v2->body, "newer caller", 12) == 0);
  /* a message read back carries the library's size */
  CHECK(v2 && v2->size == sizeof(whisper_message_t));
  whisper_page_free(p);
  CHECK_RC(whisper_history_sent(a.ctx, "erin", (const uint8_t *)"v2", 2, 7), WHISPER_OK);
  CHECK_RC(whisper_outbox_page(a.ctx, 100, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 31);
  const whisper_message_t *first = whisper_page_get(p, 0);
  CHECK(first && first->id_len == 3 && memcmp(first->id, "m00", 3) == 0);
  CHECK(first && first->status == WHISPER_STATUS_PENDING && first->sender == NULL);
  whisper_page_free(p);
  /* the server takes the first 10: sent, out of the outbox, sorted by its sequence */
  for (int i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "m%02d", i);
    CHECK_RC(whisper_history_sent(a.ctx, "bob", (const uint8_t *)id, 3, (uint64_t)(5000 + i)), WHISPER_OK);
  }
  CHECK_RC(whisper_history_sent(a.ctx, "bob", (const uint8_t *)"m00", 3, 5000), WHISPER_OK); /* again */
  CHECK_RC(whisper_history_sent(a.ctx, "bob", (const uint8_t *)"nope", 4, 1), WHISPER_ENOTFOUND);
  CHECK_RC(whisper_outbox_page(a.ctx, 100, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 21);
  whisper_page_free(p);
  /* statuses per device, the message's status is the lowest, never backwards */
  int st = -1;
  CHECK_RC(whisper_history_status_get(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 2, &st), WHISPER_OK);
  CHECK(st == WHISPER_STATUS_SENT);
  CHECK_RC(whisper_history_status_set(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 1, WHISPER_STATUS_READ), WHISPER_OK);
  CHECK_RC(whisper_history_status_set(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 1, WHISPER_STATUS_DELIVERED), WHISPER_OK);
  CHECK_RC(whisper_history_status_get(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 1, &st), WHISPER_OK);
  CHECK(st == WHISPER_STATUS_READ);
  CHECK_RC(whisper_history_status_set(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 2, WHISPER_STATUS_DELIVERED), WHISPER_OK);
  CHECK_RC(whisper_history_status_set(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 3, WHISPER_STATUS_READ), WHISPER_ENOTFOUND);
  CHECK_RC(whisper_history_status_set(a.ctx, "bob", (const uint8_t *)"m03", 3, "bob", 1, 9), WHISPER_EINVAL);
  /* pages: newest first by sort key; the 10 sent ones (5000+) are newest */
  CHECK_RC(whisper_history_page(a.ctx, "bob", 0, NULL, 0, 10, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 10);
  const whisper_message_t *m0 = whisper_page_get(p, 0);
  CHECK(m0 && memcmp(m0->id, "m09", 3) == 0 && m0->sort_key == 5009);
  const whisper_message_t *m6 = whisper_page_get(p, 6);
  CHECK(m6 && memcmp(m6->id, "m03", 3) == 0 && m6->status == WHISPER_STATUS_DELIVERED);
  CHECK(whisper_page_get(p, 10) == NULL);
  const whisper_message_t *last = whisper_page_get(p, 9);
  uint8_t cursor[8];
  memcpy(cursor, last->id, last->id_len);
  size_t cursor_len = last->id_len;
  uint64_t cursor_key = last->sort_key;
  whisper_page_free(p);
  int seen = 10;
  uint64_t prev = 5000;
  while (1) {
    CHECK_RC(whisper_history_page(a.ctx, "bob", cursor_key, cursor, cursor_len, 7, &p), WHISPER_OK);
    size_t n = whisper_page_count(p);
    for (size_t i = 0; i < n; i++) {
      const whisper_message_t *m = whisper_page_get(p, i);
      CHECK(m->sort_key < prev);
      prev = m->sort_key;
      CHECK(strcmp(m->conversation, "bob") == 0);
    }
    seen += (int)n;
    if (n == 0) {
      whisper_page_free(p);
      break;
    }
    last = whisper_page_get(p, n - 1);
    memcpy(cursor, last->id, last->id_len);
    cursor_len = last->id_len;
    cursor_key = last->sort_key;
    whisper_page_free(p);
  }
  CHECK(seen == 30);
  CHECK_RC(whisper_history_page(a.ctx, "bob", 0, (const uint8_t *)"zzz", 0, 5, &p), WHISPER_EINVAL);
  CHECK_RC(whisper_history_page(a.ctx, "carol", 0, NULL, 0, 5, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 1);
  whisper_page_free(p);
  CHECK_RC(whisper_history_page(a.ctx, "dave", 0, NULL, 0, 5, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 0);
  whisper_page_free(p);
  dev_close(&a);
}

/* `acked`: bob answered alice's first message before she sends these, so
 * they are SignalMessages (decrypted, then added if the id is free), not
 * PreKeySignalMessages (looked up first). */
static void test_incoming(int sqlite, int acked) {
  dev a, b;
  whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
  char text[32];
  snprintf(text, sizeof text, "a%d.db", acked);
  dev_open(&a, sqlite, text);
  snprintf(text, sizeof text, "b%d.db", acked);
  dev_open(&b, sqlite, text);
  whisper_identity_generate(a.ctx, "alice", 1, 0, NOW);
  whisper_identity_generate(b.ctx, "bob", 1, 0, NOW);
  whisper_bundle_generate(b.ctx, 1, &bundle);
  whisper_session_start(a.ctx, "bob", 1, &bundle, NOW);
  if (acked) {
    whisper_buf *hi = NULL, *pt = NULL;
    int t = 0;
    CHECK_RC(whisper_session_encrypt(a.ctx, "bob", 1, (const uint8_t *)"hi", 2, NOW, &t, &hi), WHISPER_OK);
    CHECK_RC(whisper_session_decrypt(b.ctx, "alice", 1, t, hi->data, hi->len, &pt), WHISPER_OK);
    whisper_buf_free(hi);
    whisper_buf_free(pt);
    CHECK_RC(whisper_session_encrypt(b.ctx, "alice", 1, (const uint8_t *)"yo", 2, NOW, &t, &hi), WHISPER_OK);
    CHECK_RC(whisper_session_decrypt(a.ctx, "bob", 1, t, hi->data, hi->len, &pt), WHISPER_OK);
    whisper_buf_free(hi);
    whisper_buf_free(pt);
  }
  whisper_buf *ms[120];
  int ts[120];
  for (int i = 0; i < 120; i++) {
    snprintf(text, sizeof text, "msg %d", i);
    CHECK(whisper_session_encrypt(a.ctx, "bob", 1, (const uint8_t *)text, strlen(text), NOW, &ts[i], &ms[i]) == 0);
    CHECK(ts[i] == (acked ? WHISPER_MSG_WHISPER : WHISPER_MSG_PREKEY));
  }
  /* one at a time, then a replay under the same id */
  whisper_message_t meta = msg("alice", "id-0", 100, "");
  whisper_buf *pt = NULL;
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[0], ms[0]->data, ms[0]->len, &meta, &pt), WHISPER_OK);
  CHECK(pt && pt->len == 5 && memcmp(pt->data, "msg 0", 5) == 0);
  whisper_buf_free(pt);
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[1], ms[1]->data, ms[1]->len, &meta, NULL), WHISPER_EDUPLICATE);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "stored before") != NULL);
  /* a redelivery of the stored message itself (its keys are used up), and
   * one that no longer decrypts at all: both read as stored before */
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[0], ms[0]->data, ms[0]->len, &meta, NULL), WHISPER_EDUPLICATE);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "stored before") != NULL);
  whisper_buf *junk = whisper_buf_new(ms[0]->data, ms[0]->len);
  junk->data[junk->len - 12] ^= 1; /* inside the inner ciphertext or MAC */
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[0], junk->data, junk->len, &meta, NULL), WHISPER_EDUPLICATE);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "stored before") != NULL);
  whisper_buf_free(junk);
  /* while under a new id a failure says what failed */
  junk = whisper_buf_new(ms[110]->data, ms[110]->len);
  junk->data[junk->len - 12] ^= 1;
  whisper_message_t fresh = msg("alice", "id-junk", 99, "");
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[110], junk->data, junk->len, &fresh, NULL), WHISPER_EINVALIDMSG);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "stored before") == NULL);
  whisper_buf_free(junk);
  /* meta is versioned: a size below 1.0's is refused before anything is
   * decrypted (message 1 still decrypts below) */
  fresh = msg("alice", "id-1", 101, "");
  fresh.size = 0;
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[1], ms[1]->data, ms[1]->len, &fresh, NULL), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "WHISPER_MESSAGE_INIT") != NULL);
  fresh.size = WHISPER_MESSAGE_SIZE_1_0 - 1;
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[1], ms[1]->data, ms[1]->len, &fresh, NULL), WHISPER_EINVAL);
  /* the refused ones changed nothing: message 1 still decrypts as itself */
  meta = msg("alice", "id-1", 101, "");
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[1], ms[1]->data, ms[1]->len, &meta, NULL), WHISPER_OK);
  /* a replayed ciphertext under a new id is a duplicate for the session */
  meta = msg("alice", "id-1b", 102, "");
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[1], ms[1]->data, ms[1]->len, &meta, NULL), WHISPER_EDUPLICATE);
  if (sqlite == SQLITE) { /* the guard survives a restart */
    dev_close(&b);
    snprintf(text, sizeof text, "b%d.db", acked);
    dev_open(&b, 1, text);
    meta = msg("alice", "id-0", 100, "");
    CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[2], ms[2]->data, ms[2]->len, &meta, NULL), WHISPER_EDUPLICATE);
  }
  /* a batch of 100 (2..101): one tampered, one with a repeated id */
  whisper_incoming_t in[100];
  char ids[100][16];
  memset(in, 0, sizeof in);
  whisper_buf *bad = whisper_buf_new(ms[50]->data, ms[50]->len);
  bad->data[bad->len - 12] ^= 1; /* inside the inner ciphertext or MAC */
  for (int i = 0; i < 100; i++) {
    int k = i + 2;
    snprintf(ids[i], sizeof ids[i], "id-%d", k);
    in[i].size = sizeof in[i];
    in[i].name = "alice";
    in[i].device_id = 1;
    in[i].type = ts[k];
    in[i].body = k == 50 ? bad->data : ms[k]->data;
    in[i].body_len = ms[k]->len;
    in[i].meta = msg("alice", ids[i], (uint64_t)(100 + k), "");
  }
  in[70].meta = msg("alice", "id-1", 101, ""); /* a redelivery of a stored message */
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, in, 100), WHISPER_OK);
  int ok = 0;
  for (int i = 0; i < 100; i++) {
    if (i == 48) CHECK_RC(in[i].result, WHISPER_EINVALIDMSG);
    else if (i == 70) CHECK_RC(in[i].result, WHISPER_EDUPLICATE);
    else ok += in[i].result == WHISPER_OK;
    if (in[i].result == WHISPER_OK) {
      snprintf(text, sizeof text, "msg %d", i + 2);
      CHECK(in[i].plaintext->len == strlen(text) && memcmp(in[i].plaintext->data, text, strlen(text)) == 0);
    }
    whisper_buf_free(in[i].plaintext);
  }
  CHECK(ok == 98);
  whisper_buf_free(bad);
  /* the untampered 50 and the 72 under fresh ids still work: the failed ones changed nothing */
  meta = msg("alice", "id-50", 150, "");
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[50], ms[50]->data, ms[50]->len, &meta, NULL), WHISPER_OK);
  meta = msg("alice", "id-72", 172, "");
  CHECK_RC(whisper_session_decrypt_store(b.ctx, "alice", 1, ts[72], ms[72]->data, ms[72]->len, &meta, NULL), WHISPER_OK);
  /* history holds every stored message with its sender, newest first */
  whisper_page *p;
  CHECK_RC(whisper_history_page(b.ctx, "alice", 0, NULL, 0, 1000, &p), WHISPER_OK);
  CHECK(whisper_page_count(p) == 102);
  const whisper_message_t *top = whisper_page_get(p, 0);
  CHECK(top && top->sort_key == 201 && strcmp(top->sender, "alice") == 0 && top->sender_device == 1);
  CHECK(top && top->body_len == 7 && memcmp(top->body, "msg 101", 7) == 0);
  whisper_page_free(p);
  /* a versioned array (docs/api.md): an element size below 1.0's, or one
   * that differs between elements, is refused before anything is read past
   * the first element's size or changed */
  whisper_incoming_t two[2];
  char vids[3][16];
  memset(two, 0, sizeof two);
  for (int i = 0; i < 2; i++) {
    snprintf(vids[i], sizeof vids[i], "id-v%d", i);
    two[i].name = "alice";
    two[i].device_id = 1;
    two[i].type = ts[103 + i];
    two[i].body = ms[103 + i]->data;
    two[i].body_len = ms[103 + i]->len;
    two[i].meta = msg("alice", vids[i], (uint64_t)(300 + i), "");
    two[i].result = 12345;
  }
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL); /* size 0 */
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "WHISPER_INCOMING_INIT") != NULL);
  two[0].size = two[1].size = WHISPER_INCOMING_SIZE_1_0 - 1;
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL);
  two[0].size = sizeof two[0];
  two[1].size = sizeof two[0] + 8;
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "same size") != NULL);
  CHECK(two[0].result == 12345 && two[1].result == 12345 && two[0].plaintext == NULL);
  /* the embedded whisper_message_t is versioned too: below 1.0's, bigger
   * than its element, or differing between elements, refused the same way */
  two[1].size = sizeof two[0];
  two[0].meta.size = 0;
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "meta.size") != NULL);
  two[0].meta.size = two[1].meta.size = WHISPER_MESSAGE_SIZE_1_0 - 1;
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL);
  two[0].meta.size = two[1].meta.size = sizeof two[0].meta + 8; /* past the element */
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL);
  two[0].meta.size = sizeof two[0].meta;
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, two, 2), WHISPER_EINVAL);
  CHECK(strstr(whisper_ctx_last_error(b.ctx), "same sizes") != NULL);
  CHECK(two[0].result == 12345 && two[1].result == 12345 && two[0].plaintext == NULL);
  /* a later caller whose whisper_message_t grew: its element is bigger by
   * as much (meta is last), and the newer part of meta is left alone */
  struct later_meta {
    whisper_incoming_t in;
    uint64_t meta_newer; /* the tail of the later, bigger meta */
  } lm[3];
  memset(lm, 0, sizeof lm);
  for (int i = 0; i < 3; i++) {
    snprintf(vids[i], sizeof vids[i], "id-m%d", i);
    lm[i].in.size = sizeof lm[i];
    lm[i].in.name = "alice";
    lm[i].in.device_id = 1;
    lm[i].in.type = ts[106 + i];
    lm[i].in.body = ms[106 + i]->data;
    lm[i].in.body_len = ms[106 + i]->len;
    lm[i].in.meta = msg("lm", vids[i], (uint64_t)(310 + i), "");
    lm[i].in.meta.size = sizeof lm[i].in.meta + sizeof lm[i].meta_newer;
    lm[i].meta_newer = 0x5eed0100u + (uint64_t)i;
  }
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, &lm[0].in, 3), WHISPER_OK);
  for (int i = 0; i < 3; i++) {
    snprintf(text, sizeof text, "msg %d", 106 + i);
    CHECK_RC(lm[i].in.result, WHISPER_OK);
    CHECK(lm[i].in.plaintext && lm[i].in.plaintext->len == strlen(text) &&
          memcmp(lm[i].in.plaintext->data, text, strlen(text)) == 0);
    CHECK(lm[i].meta_newer == 0x5eed0100u + (uint64_t)i);
    whisper_buf_free(lm[i].in.plaintext);
  }
  whisper_page *lp = NULL;
  CHECK_RC(whisper_history_page(b.ctx, "lm", 0, NULL, 0, 10, &lp), WHISPER_OK);
  CHECK(whisper_page_count(lp) == 3); /* stored under the ids and sort keys of the meta */
  const whisper_message_t *lm0 = whisper_page_get(lp, 2);
  CHECK(lm0 && lm0->sort_key == 310 && lm0->id_len == 5 && memcmp(lm0->id, "id-m0", 5) == 0);
  whisper_page_free(lp);
  /* a later caller's bigger element type: stepped by its size, and its
   * newer field left alone */
  struct later_incoming {
    whisper_incoming_t in;
    uint64_t newer;
  } big[3];
  memset(big, 0, sizeof big);
  for (int i = 0; i < 3; i++) {
    snprintf(vids[i], sizeof vids[i], "id-v%d", i);
    big[i].in.size = sizeof big[i];
    big[i].in.name = "alice";
    big[i].in.device_id = 1;
    big[i].in.type = ts[103 + i];
    big[i].in.body = ms[103 + i]->data;
    big[i].in.body_len = ms[103 + i]->len;
    big[i].in.meta = msg("alice", vids[i], (uint64_t)(300 + i), "");
    big[i].newer = 0x5eed0000u + (uint64_t)i;
  }
  CHECK_RC(whisper_session_decrypt_batch(b.ctx, &big[0].in, 3), WHISPER_OK);
  for (int i = 0; i < 3; i++) {
    snprintf(text, sizeof text, "msg %d", 103 + i);
    CHECK_RC(big[i].in.result, WHISPER_OK);
    CHECK(big[i].in.plaintext && big[i].in.plaintext->len == strlen(text) &&
          memcmp(big[i].in.plaintext->data, text, strlen(text)) == 0);
    CHECK(big[i].newer == 0x5eed0000u + (uint64_t)i);
    whisper_buf_free(big[i].in.plaintext);
  }
  for (int i = 0; i < 120; i++) whisper_buf_free(ms[i]);
  dev_close(&a);
  dev_close(&b);
}

/* --- a batch from many senders at once ----------------------------------------------------- */

/* A memory store that counts the session records written. */
typedef struct counting {
  whisper_store *in;
  int session_puts, identity_gets;
} counting;

static int c_begin(void *u) { return ((counting *)u)->in->ops.begin(((counting *)u)->in->user); }
static int c_commit(void *u) { return ((counting *)u)->in->ops.commit(((counting *)u)->in->user); }
static void c_rollback(void *u) { ((counting *)u)->in->ops.rollback(((counting *)u)->in->user); }
static int c_get(void *u, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  if (kind == WHISPER_REC_REMOTE_IDENTITY) ((counting *)u)->identity_gets++;
  return ((counting *)u)->in->ops.get(((counting *)u)->in->user, kind, k, n, out);
}
static int c_put(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  if (kind == WHISPER_REC_SESSION) ((counting *)u)->session_puts++;
  return ((counting *)u)->in->ops.put(((counting *)u)->in->user, kind, k, n, v, vn);
}
static int c_del(void *u, int kind, const uint8_t *k, size_t n) {
  return ((counting *)u)->in->ops.del(((counting *)u)->in->user, kind, k, n);
}
static int c_scan(void *u, int kind, const uint8_t *p, size_t pn, const uint8_t *b, size_t bn,
                  int desc, size_t limit, whisper_scan_fn fn, void *arg) {
  counting *c = u;
  return c->in->ops.scan(c->in->user, kind, p, pn, b, bn, desc, limit, fn, arg);
}
static int c_add(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  return ((counting *)u)->in->ops.add(((counting *)u)->in->user, kind, k, n, v, vn);
}

/* Twelve senders' messages interleaved in one batch: each session record
 * is read once and written once (more senders than a batch kept records
 * for made it write one out and read another back, message after
 * message). */
#define MANY 12
static void test_batch_many_senders(void) {
  counting cs = {NULL, 0, 0};
  CHECK_RC(whisper_store_memory_new(&cs.in), WHISPER_OK);
  whisper_store_ops ops = cs.in->ops;
  ops.begin = c_begin, ops.commit = c_commit, ops.rollback = c_rollback, ops.get = c_get;
  ops.put = c_put, ops.del = c_del, ops.scan = c_scan, ops.add = c_add, ops.destroy = NULL;
  ops.savepoint = NULL, ops.release = NULL, ops.rollback_to = NULL;
  ops.version = 3;
  whisper_store *bst;
  whisper_ctx *bob;
  CHECK_RC(whisper_store_new(&bst, &ops, &cs), WHISPER_OK);
  CHECK_RC(whisper_ctx_new(&bob, bst), WHISPER_OK);
  CHECK_RC(whisper_identity_generate(bob, "bob", 1, 0, NOW), WHISPER_OK);
  dev s[MANY];
  char names[MANY][8];
  whisper_buf *ms[MANY][3];
  int ts[MANY][3];
  for (int i = 0; i < MANY; i++) {
    whisper_prekey_bundle_t bundle = WHISPER_PREKEY_BUNDLE_INIT;
    snprintf(names[i], sizeof names[i], "s%02d", i);
    dev_open(&s[i], MEMORY, names[i]);
    whisper_identity_generate(s[i].ctx, names[i], 1, 0, NOW);
    CHECK_RC(whisper_bundle_generate(bob, (uint32_t)i + 1, &bundle), WHISPER_OK);
    CHECK_RC(whisper_session_start(s[i].ctx, "bob", 1, &bundle, NOW), WHISPER_OK);
    for (int k = 0; k < 3; k++)
      CHECK_RC(whisper_session_encrypt(s[i].ctx, "bob", 1, (const uint8_t *)"hello", 5, NOW, &ts[i][k],
                                       &ms[i][k]), WHISPER_OK);
  }
  whisper_incoming_t in[3 * MANY];
  char ids[3 * MANY][16];
  memset(in, 0, sizeof in);
  for (int k = 0, n = 0; k < 3; k++)
    for (int i = 0; i < MANY; i++, n++) {
      snprintf(ids[n], sizeof ids[n], "id-%d", n);
      in[n].size = sizeof in[n];
      in[n].name = names[i];
      in[n].device_id = 1;
      in[n].type = ts[i][k];
      in[n].body = ms[i][k]->data;
      in[n].body_len = ms[i][k]->len;
      in[n].meta = msg(names[i], ids[n], (uint64_t)n + 1, "");
    }
  cs.session_puts = 0;
  CHECK_RC(whisper_session_decrypt_batch(bob, in, 3 * MANY), WHISPER_OK);
  for (int n = 0; n < 3 * MANY; n++) {
    CHECK_RC(in[n].result, WHISPER_OK);
    whisper_buf_free(in[n].plaintext);
  }
  CHECK(cs.session_puts == MANY);
  /* answered (their sessions acknowledged), then three more each: the
   * identity each sender's messages come with is read once a batch */
  for (int i = 0; i < MANY; i++) {
    whisper_buf *ct = NULL, *pt = NULL;
    int t = 0;
    CHECK_RC(whisper_session_encrypt(bob, names[i], 1, (const uint8_t *)"yo", 2, NOW, &t, &ct), WHISPER_OK);
    CHECK_RC(whisper_session_decrypt(s[i].ctx, "bob", 1, t, ct->data, ct->len, &pt), WHISPER_OK);
    whisper_buf_free(ct);
    whisper_buf_free(pt);
    for (int k = 0; k < 3; k++) {
      whisper_buf_free(ms[i][k]);
      CHECK_RC(whisper_session_encrypt(s[i].ctx, "bob", 1, (const uint8_t *)"again", 5, NOW, &ts[i][k],
                                       &ms[i][k]), WHISPER_OK);
      CHECK(ts[i][k] == WHISPER_MSG_WHISPER);
    }
  }
  for (int k = 0, n = 0; k < 3; k++)
    for (int i = 0; i < MANY; i++, n++) {
      snprintf(ids[n], sizeof ids[n], "id2-%d", n);
      in[n].type = ts[i][k];
      in[n].body = ms[i][k]->data;
      in[n].body_len = ms[i][k]->len;
      in[n].meta = msg(names[i], ids[n], (uint64_t)n + 100, "");
      in[n].plaintext = NULL;
    }
  cs.session_puts = cs.identity_gets = 0;
  CHECK_RC(whisper_session_decrypt_batch(bob, in, 3 * MANY), WHISPER_OK);
  for (int n = 0; n < 3 * MANY; n++) {
    CHECK_RC(in[n].result, WHISPER_OK);
    whisper_buf_free(in[n].plaintext);
  }
  CHECK(cs.session_puts == MANY && cs.identity_gets == MANY);
  for (int i = 0; i < MANY; i++) {
    for (int k = 0; k < 3; k++) whisper_buf_free(ms[i][k]);
    dev_close(&s[i]);
  }
  whisper_ctx_free(bob);
  whisper_store_free(bst);
  whisper_store_free(cs.in);
}

int main(void) {
  snprintf(dbdir, sizeof dbdir, "/tmp/whisper-test-history-XXXXXX");
  if (mkdtemp(dbdir) == NULL) return 2;
  for (int store = MEMORY; store <= V2; store++) {
    test_outgoing(store);
    test_incoming(store, 0);
    test_incoming(store, 1);
  }
  test_batch_many_senders();
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dbdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dbdir);
  return test_done();
}
