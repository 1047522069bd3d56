/*
 * fuzz_history_record: the input is stored history: its first byte picks
 * which record(s) the rest of the input replaces, under the real keys, in
 * the store of alice.1, who has a real history (scenario() below):
 *
 *   mode = byte & 7, j = byte >> 3
 *   0  the HISTORY value (a HistoryEntry) of message j % NMSG
 *   1  the MESSAGE_INDEX value (a HistoryRef) of message j % NMSG
 *   2  the OUTBOX value (a HistoryRef) of outbox row j % NOUT
 *   3  the META "history_salt" (target message j % NMSG)
 *   4  the HISTORY value of every message in the conversation of j % NMSG
 *   5  an extra HISTORY row next to message j % NMSG's (same conversation
 *      tag and sort key, another message tag): a row no index points to
 *   6  an extra OUTBOX row next to outbox row j % NOUT
 *   7  the META "outbox_seq" counter (target message j % NMSG)
 *
 * Then, each in its own fz_call bracket (a failing call must change
 * nothing; everything written is restored after each call), on the target
 * message t:
 *
 *   whisper_history_page of t's conversation without a cursor, with t's
 *   (sort key, id) as the cursor, and paged through 2 at a time;
 *   whisper_outbox_page; whisper_history_sent(t);
 *   whisper_history_status_set(t, bob.1, DELIVERED);
 *   whisper_history_status_get(t, bob.2); whisper_history_add_outgoing
 *   with t's id and with a new id (then history_sent of it, in the same
 *   bracket); and whisper_session_decrypt_store of a fixed real message
 *   from bob.1 with a new id and as a redelivery of t (t's conversation,
 *   id and sort key).
 *
 * The library caches the history salt in the context once read: the
 * cache is cleared before each input, as for a context newly opened on
 * the store, so that a planted salt is read.
 *
 * Every code is the one the store's contents call for, worked out from
 * the inner store (the oracle functions below): WHISPER_ECORRUPT when a
 * row the call reads does not decode (a HistoryEntry without its
 * conversation or id, a HistoryRef whose key is not 40 bytes, an index or
 * outbox row pointing nowhere, a salt that is not 16 bytes, an outbox
 * counter that is not 8 bytes), otherwise what the API documents (OK,
 * ENOTFOUND, EDUPLICATE, EINVAL for "sent" on an incoming message; only
 * outgoing messages have an index, so a duplicate outgoing id is found by
 * the index and a redelivered incoming message by its history key). Pages
 * hold exactly the rows the store scan gives, every field compared byte
 * by byte with the stored entry (so every byte of every pointer is read).
 * A success leaves rows that decode (history entries, index and outbox
 * refs that point to an entry, the salt, the counter, the session), and
 * the update the call documents (sent: sort key, out of the outbox, status
 * >= SENT; status: never backwards).
 *
 * Some checks fail on planted rows today, library findings listed in
 * README.md ("Limits"): CONTRACT() checks abort only with
 * FUZZ_HISTORY_STRICT=1; otherwise they are counted and, with
 * FUZZ_VERBOSE=1, printed. They are: the API contract of a page
 * (conversation 1..255 bytes and the one asked for, id
 * 1..WHISPER_MESSAGE_ID_MAX bytes, sender NULL or 1..255 bytes, status
 * PENDING..READ) and of whisper_history_status_get (PENDING..READ): the
 * library passes stored values through unchecked; sent/status updates of
 * a DeliveryStatus stored without its status field (the library sets
 * `status` without `has_status`: the update is lost); an entry holding an
 * unknown field numbered 0, which sent/status repack into one that does
 * not decode; and an outbox counter at 2^64-1, which wraps to sequence 0.
 *
 * gen_corpus builds the same scenario (this file is compiled into it too,
 * its LLVMFuzzerTestOneInput unused there) and writes the seeds with
 * fzh_gen_seeds().
 */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "storage.pb-c.h"

#define TAG_LEN 16
#define HKEY_LEN (TAG_LEN + 8 + TAG_LEN)
#define OKEY_LEN (8 + TAG_LEN)
#define PAGE_LIMIT 64 /* more than the rows of any conversation */
#define MAX_ROWS (PAGE_LIMIT + 4)

static const char SALT_NAME[] = "history_salt";
static const char COUNTER_NAME[] = "outbox_seq";
/* The library draws a new salt from libsodium's global RNG, not from the
 * context's (see README.md): the scenario stores this one first, so that
 * history keys are the same in every run and in gen_corpus. */
static const uint8_t SALT[TAG_LEN] = {0x5a, 0x11, 0x7e, 0x42, 0x93, 0x0c, 0xd8, 0x21,
                                      0x66, 0xb4, 0x3f, 0xe0, 0x07, 0x9d, 0x58, 0xca};

typedef struct hmsg {
  const char *conv, *id, *body;
  int incoming;
  uint8_t hkey[HKEY_LEN]; /* found in the store after the scenario */
  int found;
} hmsg;

enum { O1, O2, O3, O4, O5, B0, B1, B2, G1, G2, NMSG };
static hmsg M[NMSG] = {
    {"bob", "o1", "sent, read by bob.1, delivered to bob.2", 0, {0}, 0},
    {"bob", "o2", "sent, delivered to bob.1", 0, {0}, 0},
    {"bob", "o3", "sent", 0, {0}, 0},
    {"bob", "o4", "pending", 0, {0}, 0},
    {"bob", "o5", "pending, one recipient", 0, {0}, 0},
    {"bob", "b0", "b0 from bob", 1, {0}, 0},
    {"bob", "b1", "b1 from bob", 1, {0}, 0},
    {"bob", "b2", "b2 from bob", 1, {0}, 0},
    {"group", "g1", "to the group, pending", 0, {0}, 0},
    {"group", "g2", "to the group, sent, read by carol", 0, {0}, 0},
};
#define NOUT 3 /* o4, o5, g1 */
static uint8_t OKEY[NOUT][OKEY_LEN];
static int OMSG[NOUT];
static const char FIXED_TEXT[] = "b3 from bob";
static const char NEW_ID[] = "fz-new";

static fz_dev *alice;
static whisper_buf *fixed; /* bob's b3: a real SignalMessage alice has not decrypted */

/* --- contract checks (lenient unless FUZZ_HISTORY_STRICT=1) --------------- */

static int env_on(const char *name) {
  const char *e = getenv(name);
  return e != NULL && *e != '\0' && *e != '0';
}

static unsigned long contract_breaks;

__attribute__((format(printf, 4, 5))) static void contract_fail(const char *file, int line,
                                                                const char *cond,
                                                                const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  static int strict = -1, verbose = -1;
  if (strict < 0) strict = !env_on("FUZZ_HISTORY_LENIENT");
  if (verbose < 0) verbose = env_on("FUZZ_VERBOSE");
  if (strict) fz_die(file, line, cond, "API contract: %s", buf);
  contract_breaks++;
  if (verbose) fprintf(stderr, "  contract broken (%s): %s\n", cond, buf);
}
#define CONTRACT(cond, ...)                                         \
  do {                                                              \
    if (!(cond)) contract_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

/* --- the inner store ----------------------------------------------------------- */

static void be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static const uint8_t *tag_of(int t) { return M[t].hkey + TAG_LEN + 8; }
static uint64_t sort_key_of(int t) { return rd64(M[t].hkey + TAG_LEN); }
static const uint8_t *conv_tag_of(int t) { return M[t].hkey; }

typedef struct row {
  uint8_t key[64];
  size_t key_len;
  whisper_buf *val;
} row;
typedef struct rows {
  row r[MAX_ROWS];
  size_t n;
} rows;

static int rows_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t len) {
  rows *rs = arg;
  FZ_ASSERT(rs->n < MAX_ROWS && key_len <= sizeof rs->r[0].key, "too many rows");
  row *r = &rs->r[rs->n++];
  memcpy(r->key, key, key_len);
  r->key_len = key_len;
  r->val = whisper_buf_new(value, len);
  FZ_ASSERT(r->val != NULL, "out of memory");
  return 0;
}

/* What the store's scan gives (the inner store: nothing watched). */
static void inner_scan(rows *rs, int kind, const uint8_t *prefix, size_t prefix_len,
                       const uint8_t *bound, size_t bound_len, int descending, size_t limit) {
  rs->n = 0;
  whisper_store *s = alice->fs.inner;
  int rc = s->ops.scan(s->user, kind, prefix, prefix_len, bound, bound_len, descending, limit,
                       rows_fn, rs);
  FZ_ASSERT(rc == WHISPER_OK, "inner scan failed: %d", rc);
}

static void rows_free(rows *rs) {
  for (size_t i = 0; i < rs->n; i++) whisper_buf_free(rs->r[i].val);
  rs->n = 0;
}

/* The library's rule for a sane entry (src/protocol/history.c entry_ok):
 * every field in its limits, and no unknown field numbered 0. */
static int entry_sane(const Whisper__Store__HistoryEntry *e) {
  size_t cl = e->conversation ? strlen(e->conversation) : 0;
  if (cl == 0 || cl > 255 || !e->has_id || e->id.len == 0 || e->id.len > WHISPER_MESSAGE_ID_MAX)
    return 0;
  if (e->sender && (strlen(e->sender) == 0 || strlen(e->sender) > 255)) return 0;
  for (size_t i = 0; i < e->n_statuses; i++) {
    const Whisper__Store__DeliveryStatus *d = e->statuses[i];
    if (d->name == NULL || strlen(d->name) == 0 || strlen(d->name) > 255 ||
        d->status > WHISPER_STATUS_OPENED)
      return 0;
  }
  if (e->kind > WHISPER_KIND_ATTACHMENT) return 0;
  if (e->quote && (e->quote->id.len == 0 || e->quote->id.len > WHISPER_MESSAGE_ID_MAX ||
                   (e->quote->sender &&
                    (strlen(e->quote->sender) == 0 || strlen(e->quote->sender) > 255)) ||
                   (e->quote->excerpt && strlen(e->quote->excerpt) > 100)))
    return 0;
  for (size_t i = 0; i < e->n_reactions; i++) {
    const Whisper__Store__Reaction *r = e->reactions[i];
    if (r->reactor == NULL || strlen(r->reactor) == 0 || strlen(r->reactor) > 255 ||
        r->emoji == NULL || strlen(r->emoji) > 64)
      return 0;
  }
  for (size_t i = 0; i < e->base.n_unknown_fields; i++)
    if (e->base.unknown_fields[i].tag == 0) return 0;
  return 1;
}

/* A HistoryEntry as the library accepts one (NULL if it does not). */
static Whisper__Store__HistoryEntry *entry_decode(const whisper_buf *b) {
  if (b == NULL) return NULL;
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(NULL, b->len, b->data);
  if (e != NULL && !entry_sane(e)) {
    whisper__store__history_entry__free_unpacked(e, NULL);
    e = NULL;
  }
  return e;
}

static void entry_free(Whisper__Store__HistoryEntry *e) {
  if (e) whisper__store__history_entry__free_unpacked(e, NULL);
}

/* The 40-byte history key a HistoryRef holds: 1, or 0 if it is corrupt. */
static int ref_decode(const whisper_buf *b, uint8_t hkey[HKEY_LEN]) {
  if (b == NULL) return 0;
  Whisper__Store__HistoryRef *r = whisper__store__history_ref__unpack(NULL, b->len, b->data);
  int ok = r != NULL && r->history_key.len == HKEY_LEN;
  if (ok) memcpy(hkey, r->history_key.data, HKEY_LEN);
  if (r) whisper__store__history_ref__free_unpacked(r, NULL);
  return ok;
}

static Whisper__Store__HistoryEntry *stored_entry(const uint8_t hkey[HKEY_LEN]) {
  whisper_buf *b = fz_get(alice, WHISPER_REC_HISTORY, hkey, HKEY_LEN);
  Whisper__Store__HistoryEntry *e = entry_decode(b);
  whisper_buf_free(b);
  return e;
}

/* --- the oracle ------------------------------------------------------------------ */

enum { SALT_REAL, SALT_OTHER, SALT_BAD };

static int salt_state(void) {
  whisper_buf *b = fz_get(alice, WHISPER_REC_META, (const uint8_t *)SALT_NAME, strlen(SALT_NAME));
  FZ_ASSERT(b != NULL, "the salt is gone");
  int s = b->len != TAG_LEN ? SALT_BAD : memcmp(b->data, SALT, TAG_LEN) ? SALT_OTHER : SALT_REAL;
  whisper_buf_free(b);
  return s;
}

static int counter_ok(void) {
  whisper_buf *b =
      fz_get(alice, WHISPER_REC_META, (const uint8_t *)COUNTER_NAME, strlen(COUNTER_NAME));
  int ok = b == NULL || b->len == 8;
  if (b && b->len == 8) { /* at 2^64-1 the counter is exhausted */
    int all = 1;
    for (int i = 0; i < 8; i++) all &= b->data[i] == 0xff;
    ok = !all;
  }
  whisper_buf_free(b);
  return ok;
}

/* Where message t's index points (salt real): OK, ENOTFOUND or ECORRUPT. */
static int oracle_find(int t, uint8_t hkey[HKEY_LEN]) {
  whisper_buf *b = fz_get(alice, WHISPER_REC_MESSAGE_INDEX, tag_of(t), TAG_LEN);
  int rc = b == NULL ? WHISPER_ENOTFOUND : ref_decode(b, hkey) ? WHISPER_OK : WHISPER_ECORRUPT;
  whisper_buf_free(b);
  return rc;
}

/* Message t's entry, as the update calls load it: OK (and *e) or a code. */
static int oracle_entry(int t, uint8_t hkey[HKEY_LEN], Whisper__Store__HistoryEntry **e) {
  *e = NULL;
  int s = salt_state();
  if (s == SALT_BAD) return WHISPER_ECORRUPT;
  if (s == SALT_OTHER) return WHISPER_ENOTFOUND;
  int rc = oracle_find(t, hkey);
  if (rc != WHISPER_OK) return rc;
  *e = stored_entry(hkey);
  return *e ? WHISPER_OK : WHISPER_ECORRUPT;
}

/* --- page checks -------------------------------------------------------------------- */

static volatile uint8_t sink;

static void read_bytes(const void *p, size_t n) {
  const volatile uint8_t *b = p;
  uint8_t x = 0;
  for (size_t i = 0; i < n; i++) x ^= b[i];
  sink ^= x;
}

/* Reads every byte of a page's message and checks the API contract. */
static void check_contract(const whisper_message_t *m, const char *conv, const char *what) {
  FZ_ASSERT(m->conversation != NULL, "%s: a message without a conversation", what);
  size_t cl = strlen(m->conversation);
  read_bytes(m->conversation, cl + 1);
  FZ_ASSERT(m->id != NULL || m->id_len == 0, "%s: id NULL with length %zu", what, m->id_len);
  if (m->id_len) read_bytes(m->id, m->id_len);
  FZ_ASSERT(m->body != NULL || m->body_len == 0, "%s: body NULL with length %zu", what,
            m->body_len);
  if (m->body_len) read_bytes(m->body, m->body_len);
  size_t sl = 0;
  if (m->sender) read_bytes(m->sender, (sl = strlen(m->sender)) + 1);
  CONTRACT(cl >= 1 && cl <= 255, "%s: a conversation of %zu bytes", what, cl);
  CONTRACT(conv == NULL || strcmp(m->conversation, conv) == 0,
           "%s: a message of another conversation in a page of \"%s\"", what, conv);
  CONTRACT(m->id_len >= 1 && m->id_len <= WHISPER_MESSAGE_ID_MAX, "%s: an id of %zu bytes", what,
           m->id_len);
  CONTRACT(m->sender == NULL || (sl >= 1 && sl <= 255), "%s: a sender of %zu bytes", what, sl);
  CONTRACT(m->status >= WHISPER_STATUS_PENDING && m->status <= WHISPER_STATUS_OPENED,
           "%s: status %d", what, m->status);
}

/* Message m of a page must be stored entry e (every field). */
static void check_msg(const whisper_message_t *m, const Whisper__Store__HistoryEntry *e,
                      const char *conv, const char *what) {
  FZ_ASSERT(m != NULL, "%s: a message is missing", what);
  check_contract(m, conv, what);
  FZ_ASSERT(strcmp(m->conversation, e->conversation) == 0, "%s: conversation differs", what);
  FZ_ASSERT(m->id_len == e->id.len && (m->id_len == 0 || memcmp(m->id, e->id.data, m->id_len) == 0),
            "%s: id differs", what);
  FZ_ASSERT((m->sender == NULL) == (e->sender == NULL) &&
                (m->sender == NULL || strcmp(m->sender, e->sender) == 0),
            "%s: sender differs", what);
  FZ_ASSERT(m->sender_device == e->sender_device && m->sort_key == e->sort_key &&
                m->timestamp_ms == e->timestamp,
            "%s: device, sort key or time differs", what);
  /* a tombstone (deleted for everyone) shows no body */
  size_t want_len = e->deleted ? 0 : e->body.len;
  FZ_ASSERT(m->body_len == want_len &&
                (m->body_len == 0 || memcmp(m->body, e->body.data, m->body_len) == 0),
            "%s: body differs", what);
  /* an outgoing message reads back FAILED if any device failed, else the
   * lowest status stored */
  int failed = 0, lowest = e->n_statuses ? WHISPER_STATUS_OPENED : WHISPER_STATUS_READ;
  for (size_t i = 0; i < e->n_statuses; i++) {
    if (e->statuses[i]->status == WHISPER_STATUS_FAILED) failed = 1;
    else if ((int)e->statuses[i]->status < lowest) lowest = (int)e->statuses[i]->status;
  }
  if (failed) lowest = WHISPER_STATUS_FAILED;
  if (e->sender == NULL)
    FZ_ASSERT(m->status == lowest, "%s: status %d, the stored statuses call for %d", what,
              m->status, lowest);
  else
    FZ_ASSERT(m->status == WHISPER_STATUS_READ, "%s: an incoming message reads %d", what,
              m->status);
}

/* A page must be exactly the entries of `rs`, in order. */
static void check_page(whisper_page *p, const rows *rs, const char *conv, const char *what) {
  size_t n = whisper_page_count(p);
  FZ_ASSERT(n == rs->n, "%s: %zu messages, the store has %zu", what, n, rs->n);
  FZ_ASSERT(whisper_page_get(p, n) == NULL, "%s: message past the end", what);
  for (size_t i = 0; i < n; i++) {
    Whisper__Store__HistoryEntry *e = entry_decode(rs->r[i].val);
    FZ_ASSERT(e != NULL, "%s: page holds an entry that does not decode", what);
    check_msg(whisper_page_get(p, i), e, conv, what);
    entry_free(e);
  }
}

/* The rows a history page reads: OK, or ECORRUPT at an undecodable one.
 * Hidden entries (operations on messages) are read and skipped: the page
 * reads on until it holds `limit` messages. */
static int oracle_history_rows(rows *rs, int t, const uint8_t *bound, size_t limit) {
  inner_scan(rs, WHISPER_REC_HISTORY, conv_tag_of(t), TAG_LEN, bound, bound ? HKEY_LEN : 0, 1,
             limit ? MAX_ROWS - 1 : 0);
  size_t kept = 0, n = rs->n;
  int rc = WHISPER_OK;
  for (size_t i = 0; i < n && kept < limit; i++) {
    Whisper__Store__HistoryEntry *e = entry_decode(rs->r[i].val);
    /* a page holds only entries of its own conversation */
    int ok = e != NULL && strcmp(e->conversation, M[t].conv) == 0;
    int hidden = ok && e->hidden;
    entry_free(e);
    if (!ok) return WHISPER_ECORRUPT; /* (rows_free frees what is left) */
    if (hidden) {
      whisper_buf_free(rs->r[i].val);
      rs->r[i].val = NULL;
      continue;
    }
    if (i != kept) {
      rs->r[kept] = rs->r[i];
      rs->r[i].val = NULL;
    }
    kept++;
  }
  for (size_t i = kept; i < n; i++) { /* not read */
    whisper_buf_free(rs->r[i].val);
    rs->r[i].val = NULL;
  }
  rs->n = kept;
  return rc;
}

/* The outbox rows, replaced by the entries they point to. */
static int oracle_outbox_rows(rows *rs) {
  inner_scan(rs, WHISPER_REC_OUTBOX, NULL, 0, NULL, 0, 0, PAGE_LIMIT);
  int rc = WHISPER_OK;
  for (size_t i = 0; i < rs->n; i++) {
    uint8_t hk[HKEY_LEN];
    int ok = ref_decode(rs->r[i].val, hk);
    whisper_buf_free(rs->r[i].val);
    rs->r[i].val = ok ? fz_get(alice, WHISPER_REC_HISTORY, hk, HKEY_LEN) : NULL;
    if (rc == WHISPER_OK && (!ok || rs->r[i].val == NULL)) rc = WHISPER_ECORRUPT;
    Whisper__Store__HistoryEntry *e = rc == WHISPER_OK ? entry_decode(rs->r[i].val) : NULL;
    if (rc == WHISPER_OK && e == NULL) rc = WHISPER_ECORRUPT;
    entry_free(e);
  }
  return rc;
}

/* --- what a success wrote ---------------------------------------------------------- */

static const char *kind_name(int kind) {
  switch (kind) {
    case WHISPER_REC_HISTORY: return "history entry";
    case WHISPER_REC_MESSAGE_INDEX: return "message index";
    case WHISPER_REC_OUTBOX: return "outbox row";
    case WHISPER_REC_META: return "meta record";
    case WHISPER_REC_SESSION: return "session";
    default: return "record";
  }
}

/* 1 if a planted history entry holds an unknown field numbered 0: protobuf-c
 * accepts its tag when written in more than one byte (0x80 0x00), keeps it,
 * and packs it back as the single byte 0x00, which it then rejects. The
 * library repacks the entries it updates as it loaded them, unknown fields
 * included, so history_sent and history_status turn such an entry into one
 * that does not decode (see README.md, "Limits"). */
static int planted_tag0;

static int has_unknown_tag0(const uint8_t *v, size_t n) {
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(NULL, n, v);
  int found = 0;
  for (size_t i = 0; e != NULL && i < e->base.n_unknown_fields; i++)
    found |= e->base.unknown_fields[i].tag == 0;
  entry_free(e);
  return found;
}

/* Every record the call wrote (still there) must decode; refs must point
 * to an entry. Call before fz_call_end() (which restores them). */
static void check_written(const char *what) {
  fz_store *f = &alice->fs;
  for (size_t i = 0; i < f->ntouched; i++) {
    fz_touch *t = &f->touched[i];
    whisper_buf *now = fz_get(alice, t->kind, t->key, t->key_len);
    if (now == NULL) continue; /* deleted */
    int ok = 1, entry_bad = 0;
    uint8_t hk[HKEY_LEN];
    Whisper__Store__HistoryEntry *e;
    switch (t->kind) {
      case WHISPER_REC_HISTORY:
        e = entry_decode(now);
        ok = t->key_len == HKEY_LEN && e != NULL;
        entry_bad = e == NULL;
        entry_free(e);
        break;
      case WHISPER_REC_MESSAGE_INDEX:
      case WHISPER_REC_OUTBOX:
        ok = t->key_len == (t->kind == WHISPER_REC_OUTBOX ? OKEY_LEN : TAG_LEN) &&
             ref_decode(now, hk);
        if (ok) {
          whisper_buf *eb = fz_get(alice, WHISPER_REC_HISTORY, hk, HKEY_LEN);
          e = entry_decode(eb);
          ok = e != NULL;
          entry_bad = eb != NULL && e == NULL;
          whisper_buf_free(eb);
          entry_free(e);
        }
        break;
      case WHISPER_REC_META:
        if (t->key_len == strlen(SALT_NAME) && memcmp(t->key, SALT_NAME, t->key_len) == 0)
          ok = now->len == TAG_LEN;
        else if (t->key_len == strlen(COUNTER_NAME) &&
                 memcmp(t->key, COUNTER_NAME, t->key_len) == 0)
          ok = now->len == 8;
        break;
      case WHISPER_REC_SESSION: {
        wh_record r;
        ok = wh_record_decode(&r, now->data, now->len) == WHISPER_OK;
        if (ok) wh_record_free(&r);
        break;
      }
      default:
        break;
    }
    whisper_buf_free(now);
    if (entry_bad && planted_tag0)
      CONTRACT(ok, "%s repacked an entry with an unknown field 0 into one that does not decode",
               what);
    else
      FZ_ASSERT(ok, "%s succeeded and left a %s that does not decode", what, kind_name(t->kind));
  }
}

/* --- the scenario -------------------------------------------------------------------- */

static int find_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                   size_t len) {
  (void)arg;
  whisper_buf b = {(uint8_t *)value, len};
  Whisper__Store__HistoryEntry *e = entry_decode(&b);
  FZ_ASSERT(e != NULL && key_len == HKEY_LEN, "the scenario's history does not decode");
  for (int i = 0; i < NMSG; i++)
    if (strcmp(M[i].conv, e->conversation) == 0 && strlen(M[i].id) == e->id.len &&
        memcmp(M[i].id, e->id.data, e->id.len) == 0) {
      memcpy(M[i].hkey, key, HKEY_LEN);
      M[i].found++;
    }
  entry_free(e);
  return 0;
}

static whisper_message_t msg_of(int t, uint64_t sort_key) {
  whisper_message_t m = {.size = sizeof(whisper_message_t), .conversation = M[t].conv,
                         .id = (const uint8_t *)M[t].id,
                         .id_len = strlen(M[t].id),
                         .sort_key = sort_key,
                         .timestamp_ms = FZ_NOW + sort_key,
                         .body = (const uint8_t *)M[t].body,
                         .body_len = strlen(M[t].body)};
  return m;
}

static void expect_ok(int rc, const char *what) {
  FZ_ASSERT(rc == WHISPER_OK, "scenario: %s: %d (%s)", what, rc,
            whisper_ctx_last_error(alice->ctx));
}

static void scenario(void) {
  fz_dev *bob = fz_dev_new("bob", 1, 0xB7);
  whisper_buf *m, *b[4];
  alice = fz_dev_new("alice", 1, 0xA7);
  fz_put_raw(alice, WHISPER_REC_META, (const uint8_t *)SALT_NAME, strlen(SALT_NAME), SALT,
             sizeof SALT);

  fz_connect(alice, bob, 1);
  m = fz_send(alice, "bob", 1, "hi bob", WHISPER_MSG_PREKEY);
  fz_recv(bob, "alice", 1, WHISPER_MSG_PREKEY, m, "hi bob");
  whisper_buf_free(m);

  /* outgoing: o1..o5 to bob's two devices (o5 to one), g1 g2 to bob.1 and carol.1 */
  static const whisper_device_t bobs[2] = {{"bob", 1}, {"bob", 2}};
  static const whisper_device_t grp[2] = {{"bob", 1}, {"carol", 1}};
  for (int t = O1; t <= O5; t++) {
    whisper_message_t om = msg_of(t, (uint64_t)(100 + t));
    expect_ok(whisper_history_add_outgoing(alice->ctx, &om, bobs, t == O5 ? 1 : 2), "add");
  }
  for (int t = G1; t <= G2; t++) {
    whisper_message_t om = msg_of(t, (uint64_t)(100 + t));
    expect_ok(whisper_history_add_outgoing(alice->ctx, &om, grp, 2), "add");
  }
  static const int sent[] = {O1, O2, O3, G2};
  for (size_t i = 0; i < sizeof sent / sizeof sent[0]; i++) {
    int t = sent[i];
    expect_ok(whisper_history_sent(alice->ctx, M[t].conv, (const uint8_t *)M[t].id, 2,
                                   (uint64_t)(2000 + t)),
              "sent");
  }
  expect_ok(whisper_history_status_set(alice->ctx, "bob", (const uint8_t *)"o1", 2, "bob", 1,
                                   WHISPER_STATUS_READ),
            "status");
  expect_ok(whisper_history_status_set(alice->ctx, "bob", (const uint8_t *)"o1", 2, "bob", 2,
                                   WHISPER_STATUS_DELIVERED),
            "status");
  expect_ok(whisper_history_status_set(alice->ctx, "bob", (const uint8_t *)"o2", 2, "bob", 1,
                                   WHISPER_STATUS_DELIVERED),
            "status");
  expect_ok(whisper_history_status_set(alice->ctx, "group", (const uint8_t *)"g2", 2, "carol", 1,
                                   WHISPER_STATUS_READ),
            "status");

  /* incoming: b0..b2 stored with their session; b3 stays for the fuzzed calls */
  for (int i = 0; i < 3; i++) b[i] = fz_send(bob, "alice", 1, M[B0 + i].body, WHISPER_MSG_WHISPER);
  b[3] = fz_send(bob, "alice", 1, FIXED_TEXT, WHISPER_MSG_WHISPER);
  for (int i = 0; i < 3; i++) {
    whisper_message_t meta = msg_of(B0 + i, (uint64_t)(3000 + i));
    meta.body = NULL;
    meta.body_len = 0;
    whisper_buf *pt = NULL;
    expect_ok(whisper_session_decrypt_store(alice->ctx, "bob", 1, WHISPER_MSG_WHISPER,
                                            b[i]->data, b[i]->len, &meta, &pt),
              "decrypt_store");
    FZ_ASSERT(pt->len == strlen(M[B0 + i].body) && memcmp(pt->data, M[B0 + i].body, pt->len) == 0,
              "scenario: wrong plaintext");
    whisper_buf_free(pt);
    whisper_buf_free(b[i]);
  }
  fixed = b[3];
  fz_dev_free(bob);

  /* the keys the library chose */
  whisper_store *s = alice->fs.inner;
  FZ_ASSERT(s->ops.scan(s->user, WHISPER_REC_HISTORY, NULL, 0, NULL, 0, 0, PAGE_LIMIT, find_fn,
                        NULL) == WHISPER_OK,
            "scan");
  for (int i = 0; i < NMSG; i++) FZ_ASSERT(M[i].found == 1, "scenario: %s not stored", M[i].id);
  rows rs;
  inner_scan(&rs, WHISPER_REC_OUTBOX, NULL, 0, NULL, 0, 0, PAGE_LIMIT);
  FZ_ASSERT(rs.n == NOUT, "scenario: %zu outbox rows", rs.n);
  for (size_t r = 0; r < rs.n; r++) {
    uint8_t hk[HKEY_LEN];
    FZ_ASSERT(rs.r[r].key_len == OKEY_LEN && ref_decode(rs.r[r].val, hk), "outbox row");
    memcpy(OKEY[r], rs.r[r].key, OKEY_LEN);
    OMSG[r] = -1;
    for (int i = 0; i < NMSG; i++)
      if (memcmp(M[i].hkey, hk, HKEY_LEN) == 0) OMSG[r] = i;
    FZ_ASSERT(OMSG[r] >= 0, "outbox row %zu points nowhere", r);
  }
  FZ_ASSERT(OMSG[0] == O4 && OMSG[1] == O5 && OMSG[2] == G1, "outbox order");
  rows_free(&rs);
}

/* --- planting ------------------------------------------------------------------------ */

typedef struct planted {
  int kind;
  uint8_t key[64];
  size_t key_len;
  whisper_buf *orig;
  int same; /* the planted value is the original */
} planted;
static planted P[NMSG + 2];
static size_t np;

static void plant(int kind, const uint8_t *key, size_t key_len, const uint8_t *v, size_t n) {
  FZ_ASSERT(np < sizeof P / sizeof P[0] && key_len <= sizeof P[0].key, "plant");
  planted *p = &P[np++];
  p->kind = kind;
  memcpy(p->key, key, key_len);
  p->key_len = key_len;
  p->orig = fz_get(alice, kind, key, key_len);
  p->same = p->orig != NULL && p->orig->len == n && (n == 0 || memcmp(p->orig->data, v, n) == 0);
  if (kind == WHISPER_REC_HISTORY) planted_tag0 |= has_unknown_tag0(v, n);
  fz_put_raw(alice, kind, key, key_len, v, n);
}

static void unplant(void) {
  planted_tag0 = 0;
  while (np > 0) {
    planted *p = &P[--np];
    if (p->orig) {
      fz_put_raw(alice, p->kind, p->key, p->key_len, p->orig->data, p->orig->len);
    } else {
      whisper_store *s = alice->fs.inner;
      FZ_ASSERT(s->ops.del(s->user, p->kind, p->key, p->key_len) == WHISPER_OK, "del");
    }
    whisper_buf_free(p->orig);
    p->orig = NULL;
  }
}

/* Plants the input; returns the target message. */
static int plant_input(const uint8_t *data, size_t size, int *clean) {
  int mode = data[0] & 7, j = data[0] >> 3, t = j % NMSG, r = j % NOUT;
  const uint8_t *v = data + 1;
  size_t n = size - 1;
  uint8_t k[HKEY_LEN];
  switch (mode) {
    case 0: plant(WHISPER_REC_HISTORY, M[t].hkey, HKEY_LEN, v, n); break;
    case 1: plant(WHISPER_REC_MESSAGE_INDEX, tag_of(t), TAG_LEN, v, n); break;
    case 2:
      t = OMSG[r];
      plant(WHISPER_REC_OUTBOX, OKEY[r], OKEY_LEN, v, n);
      break;
    case 3: plant(WHISPER_REC_META, (const uint8_t *)SALT_NAME, strlen(SALT_NAME), v, n); break;
    case 4:
      for (int i = 0; i < NMSG; i++)
        if (strcmp(M[i].conv, M[t].conv) == 0) plant(WHISPER_REC_HISTORY, M[i].hkey, HKEY_LEN, v, n);
      break;
    case 5:
      memcpy(k, M[t].hkey, HKEY_LEN);
      k[HKEY_LEN - 1] ^= 1;
      plant(WHISPER_REC_HISTORY, k, HKEY_LEN, v, n);
      break;
    case 6:
      t = OMSG[r];
      memcpy(k, OKEY[r], OKEY_LEN);
      k[OKEY_LEN - 1] ^= 1;
      plant(WHISPER_REC_OUTBOX, k, OKEY_LEN, v, n);
      break;
    default:
      plant(WHISPER_REC_META, (const uint8_t *)COUNTER_NAME, strlen(COUNTER_NAME), v, n);
      break;
  }
  *clean = 1;
  for (size_t i = 0; i < np; i++) *clean &= P[i].same;
  return t;
}

/* --- the fuzzed calls ------------------------------------------------------------------- */

static const char *err(void) { return whisper_ctx_last_error(alice->ctx); }

/* Without a cursor, or with t's (sort key, id) as the cursor: the bound is
 * then t's own history key. */
static void call_page(int t, int with_cursor) {
  const char *what = with_cursor ? "history_page (cursor)" : "history_page";
  size_t limit = with_cursor ? 3 : PAGE_LIMIT;
  rows rs = {.n = 0};
  int s = salt_state(), want;
  if (s == SALT_BAD) want = WHISPER_ECORRUPT;
  else if (s == SALT_OTHER) want = WHISPER_OK; /* another conversation tag: no rows */
  else want = oracle_history_rows(&rs, t, with_cursor ? M[t].hkey : NULL, limit);
  whisper_page *p = NULL;
  fz_call_begin(alice);
  int rc = whisper_history_page(alice->ctx, M[t].conv, with_cursor ? sort_key_of(t) : 0,
                                with_cursor ? (const uint8_t *)M[t].id : NULL,
                                with_cursor ? strlen(M[t].id) : 0, limit, &p);
  FZ_ASSERT(rc == want, "%s returned %d (%s), the store calls for %d", what, rc, err(), want);
  FZ_ASSERT((rc == WHISPER_OK) == (p != NULL), "%s: rc %d, page %p", what, rc, (void *)p);
  if (rc == WHISPER_OK) check_page(p, &rs, M[t].conv, what);
  fz_call_end(alice, rc, what);
  whisper_page_free(p);
  rows_free(&rs);
}

/* Pages through the conversation two at a time, each cursor the sort key
 * and id of the previous page's last message (the id a pointer into that
 * page, still alive). */
static void call_page_through(int t, int clean) {
  whisper_page *prev = NULL;
  const uint8_t *cursor = NULL;
  uint64_t cursor_sort_key = 0;
  size_t cursor_len = 0, total = 0;
  int done = 0;
  for (int k = 0; k < 8 && !done; k++) {
    whisper_page *p = NULL;
    fz_call_begin(alice);
    int rc = whisper_history_page(alice->ctx, M[t].conv, cursor_sort_key, cursor, cursor_len, 2,
                                  &p);
    int bad_cursor = cursor && (cursor_len == 0 || cursor_len > WHISPER_MESSAGE_ID_MAX);
    FZ_ASSERT(bad_cursor == (rc == WHISPER_EINVAL),
              "history_page with a %zu-byte cursor returned %d (%s)", cursor_len, rc, err());
    FZ_ASSERT(fz_rc_in(rc, 3, WHISPER_OK, WHISPER_ECORRUPT, WHISPER_EINVAL),
              "history_page (paging) returned %d (%s)", rc, err());
    FZ_ASSERT((rc == WHISPER_OK) == (p != NULL), "history_page: rc %d, page %p", rc, (void *)p);
    fz_call_end(alice, rc, "history_page (paging)");
    whisper_page_free(prev);
    prev = p;
    if (rc != WHISPER_OK) break;
    size_t n = whisper_page_count(p);
    FZ_ASSERT(n <= 2, "a page of 2 holds %zu", n);
    for (size_t i = 0; i < n; i++) check_contract(whisper_page_get(p, i), M[t].conv, "paging");
    total += n;
    if (n < 2) done = 1;
    else {
      const whisper_message_t *last = whisper_page_get(p, n - 1);
      cursor = last->id;
      cursor_len = last->id_len;
      cursor_sort_key = last->sort_key;
    }
  }
  whisper_page_free(prev);
  if (clean) {
    size_t want = 0;
    for (int i = 0; i < NMSG; i++) want += strcmp(M[i].conv, M[t].conv) == 0;
    FZ_ASSERT(done && total == want, "paging through \"%s\" gave %zu of %zu messages", M[t].conv,
              total, want);
  }
}

static void call_outbox(void) {
  rows rs = {.n = 0};
  int want = oracle_outbox_rows(&rs);
  whisper_page *p = NULL;
  fz_call_begin(alice);
  int rc = whisper_outbox_page(alice->ctx, PAGE_LIMIT, &p);
  FZ_ASSERT(rc == want, "outbox_page returned %d (%s), the store calls for %d", rc, err(), want);
  FZ_ASSERT((rc == WHISPER_OK) == (p != NULL), "outbox_page: rc %d, page %p", rc, (void *)p);
  if (rc == WHISPER_OK) check_page(p, &rs, NULL, "outbox_page");
  fz_call_end(alice, rc, "outbox_page");
  whisper_page_free(p);
  rows_free(&rs);
}

#define SERVER_SORT_KEY 5000

static void call_sent(int t) {
  uint8_t hk[HKEY_LEN], nk[HKEY_LEN], ok[OKEY_LEN];
  Whisper__Store__HistoryEntry *old;
  int want = oracle_entry(t, hk, &old);
  if (want == WHISPER_OK && old->sender != NULL) want = WHISPER_EINVAL;
  fz_call_begin(alice);
  int rc = whisper_history_sent(alice->ctx, M[t].conv, (const uint8_t *)M[t].id, strlen(M[t].id),
                                SERVER_SORT_KEY);
  FZ_ASSERT(rc == want, "history_sent returned %d (%s), the store calls for %d", rc, err(), want);
  if (rc == WHISPER_OK) {
    check_written("history_sent");
    memcpy(nk, M[t].hkey, TAG_LEN);
    be64(nk + TAG_LEN, SERVER_SORT_KEY);
    memcpy(nk + TAG_LEN + 8, tag_of(t), TAG_LEN);
    uint8_t ik[HKEY_LEN];
    FZ_ASSERT(oracle_find(t, ik) == WHISPER_OK && memcmp(ik, nk, HKEY_LEN) == 0,
              "history_sent: the index does not point to the new key");
    Whisper__Store__HistoryEntry *e = stored_entry(nk);
    /* (an entry with an unknown field 0 is rewritten undecodable: counted
     * by check_written) */
    FZ_ASSERT(e != NULL || planted_tag0, "history_sent: no entry under the new key");
    FZ_ASSERT(e == NULL || (e->sort_key == SERVER_SORT_KEY && e->outbox_seq == 0),
              "history_sent: the entry is not resorted and out of the outbox");
    for (size_t i = 0; e != NULL && i < e->n_statuses; i++)
      CONTRACT(e->statuses[i]->status >= WHISPER_STATUS_SENT,
               "history_sent returned OK and left a stored status %u (below SENT)",
               e->statuses[i]->status);
    entry_free(e);
    if (memcmp(hk, nk, HKEY_LEN) != 0) {
      whisper_buf *gone = fz_get(alice, WHISPER_REC_HISTORY, hk, HKEY_LEN);
      FZ_ASSERT(gone == NULL, "history_sent left the entry under its old key");
    }
    if (old->outbox_seq) {
      be64(ok, old->outbox_seq);
      memcpy(ok + 8, tag_of(t), TAG_LEN);
      whisper_buf *gone = fz_get(alice, WHISPER_REC_OUTBOX, ok, OKEY_LEN);
      FZ_ASSERT(gone == NULL, "history_sent left the message in the outbox");
    }
  }
  fz_call_end(alice, rc, "history_sent");
  entry_free(old);
}

/* The first status of (name, device) in e, or NULL. */
static Whisper__Store__DeliveryStatus *recipient(Whisper__Store__HistoryEntry *e, const char *name,
                                                uint32_t device) {
  for (size_t i = 0; e && i < e->n_statuses; i++)
    if (e->statuses[i]->name && strcmp(e->statuses[i]->name, name) == 0 &&
        e->statuses[i]->device == device)
      return e->statuses[i];
  return NULL;
}

static void call_status(int t) {
  uint8_t hk[HKEY_LEN];
  Whisper__Store__HistoryEntry *old;
  int want = oracle_entry(t, hk, &old);
  Whisper__Store__DeliveryStatus *d = recipient(old, "bob", 1);
  if (want == WHISPER_OK && d == NULL) want = WHISPER_ENOTFOUND;
  fz_call_begin(alice);
  int rc = whisper_history_status_set(alice->ctx, M[t].conv, (const uint8_t *)M[t].id,
                                  strlen(M[t].id), "bob", 1, WHISPER_STATUS_DELIVERED);
  FZ_ASSERT(rc == want, "history_status returned %d (%s), the store calls for %d", rc, err(),
            want);
  if (rc == WHISPER_OK) {
    check_written("history_status");
    Whisper__Store__HistoryEntry *e = stored_entry(hk);
    Whisper__Store__DeliveryStatus *nd = recipient(e, "bob", 1);
    /* DELIVERED moves PENDING, SENT and FAILED forward, never READ or OPENED back */
    uint32_t expect = d->status == WHISPER_STATUS_READ || d->status == WHISPER_STATUS_OPENED
                          ? d->status
                          : WHISPER_STATUS_DELIVERED;
    FZ_ASSERT(nd != NULL || (e == NULL && planted_tag0),
              "history_status: bob.1 is no longer a recipient");
    if (nd != NULL)
      CONTRACT(nd->status == expect, "history_status returned OK and bob.1 has %u stored, want %u",
               nd->status, expect);
    entry_free(e);
  }
  fz_call_end(alice, rc, "history_status");
  entry_free(old);

  /* status_get of bob.2 */
  want = oracle_entry(t, hk, &old);
  d = recipient(old, "bob", 2);
  if (want == WHISPER_OK && d == NULL) want = WHISPER_ENOTFOUND;
  int st = -12345;
  fz_call_begin(alice);
  rc = whisper_history_status_get(alice->ctx, M[t].conv, (const uint8_t *)M[t].id,
                                  strlen(M[t].id), "bob", 2, &st);
  FZ_ASSERT(rc == want, "history_status_get returned %d (%s), the store calls for %d", rc, err(),
            want);
  if (rc == WHISPER_OK) {
    FZ_ASSERT(st == (int)d->status, "history_status_get gave %d, stored %u", st, d->status);
    CONTRACT(st >= WHISPER_STATUS_PENDING && st <= WHISPER_STATUS_OPENED,
             "history_status_get gave status %d", st);
  }
  fz_call_end(alice, rc, "history_status_get");
  entry_free(old);
}

static void call_add(int t, int existing) {
  const char *what = existing ? "add_outgoing (existing id)" : "add_outgoing (new id)";
  whisper_message_t m = msg_of(t, 9000);
  if (!existing) m.id = (const uint8_t *)NEW_ID, m.id_len = strlen(NEW_ID);
  static const whisper_device_t to[1] = {{"bob", 1}};
  uint8_t hk[HKEY_LEN];
  int s = salt_state(), want;
  if (s == SALT_BAD) want = WHISPER_ECORRUPT;
  else if (s == SALT_REAL && existing && (want = oracle_find(t, hk)) != WHISPER_ENOTFOUND)
    want = want == WHISPER_OK ? WHISPER_EDUPLICATE : WHISPER_ECORRUPT;
  else want = counter_ok() ? WHISPER_OK : WHISPER_ECORRUPT; /* incoming ids have no index */
  rows rs = {.n = 0};
  int outbox_before = oracle_outbox_rows(&rs);
  rows_free(&rs);
  fz_call_begin(alice);
  int rc = whisper_history_add_outgoing(alice->ctx, &m, to, 1);
  FZ_ASSERT(rc == want, "%s returned %d (%s), the store calls for %d", what, rc, err(), want);
  if (rc == WHISPER_OK) check_written(what);
  uint64_t seq = 1; /* the new outbox row's sequence (its key's first 8 bytes) */
  for (size_t i = 0; rc == WHISPER_OK && i < alice->fs.ntouched; i++) {
    const fz_touch *w = &alice->fs.touched[i];
    if (w->kind != WHISPER_REC_OUTBOX || w->key_len != OKEY_LEN) continue;
    seq = 0;
    for (int b = 0; b < 8; b++) seq = seq << 8 | w->key[b];
  }
  /* a counter at 2^64-1 wraps: the message gets outbox sequence 0, which
   * history_sent takes for "not in the outbox" (its outbox row is never
   * deleted and ends up pointing nowhere) */
  if (rc == WHISPER_OK)
    CONTRACT(seq != 0, "%s put the message in the outbox with sequence 0 (the counter wrapped)",
             what);
  if (rc == WHISPER_OK && !existing && seq != 0) {
    /* the server takes it: it leaves the outbox, which stays readable */
    int r2 = whisper_history_sent(alice->ctx, m.conversation, m.id, m.id_len, SERVER_SORT_KEY);
    FZ_ASSERT(r2 == WHISPER_OK, "history_sent of the message just added returned %d (%s)", r2,
              err());
    check_written("history_sent after add_outgoing");
    int outbox_after = oracle_outbox_rows(&rs);
    rows_free(&rs);
    CONTRACT(outbox_before != WHISPER_OK || outbox_after == WHISPER_OK,
             "add_outgoing then history_sent left an outbox row pointing nowhere");
  }
  fz_call_end(alice, rc, what);
}

static void call_decrypt_store(int t, int existing) {
  const char *what = existing ? "decrypt_store (existing id)" : "decrypt_store (new id)";
  /* existing: a redelivery of t (same conversation, id and sort key) */
  whisper_message_t meta = {.size = sizeof(whisper_message_t),
                            .conversation = existing ? M[t].conv : "bob",
                            .id = (const uint8_t *)(existing ? M[t].id : "b3"),
                            .id_len = 2,
                            .sort_key = existing ? sort_key_of(t) : 3003,
                            .timestamp_ms = FZ_NOW};
  int s = salt_state(), want;
  if (s == SALT_BAD) want = WHISPER_ECORRUPT;
  else if (s == SALT_REAL && existing) {
    whisper_buf *row = fz_get(alice, WHISPER_REC_HISTORY, M[t].hkey, HKEY_LEN);
    want = row ? WHISPER_EDUPLICATE : WHISPER_OK;
    whisper_buf_free(row);
  } else {
    want = WHISPER_OK;
  }
  whisper_buf *pt = NULL;
  fz_call_begin(alice);
  int rc = whisper_session_decrypt_store(alice->ctx, "bob", 1, WHISPER_MSG_WHISPER, fixed->data,
                                         fixed->len, &meta, &pt);
  FZ_ASSERT(rc == want, "%s returned %d (%s), the store calls for %d", what, rc, err(), want);
  FZ_ASSERT((rc == WHISPER_OK) == (pt != NULL), "%s: rc %d, plaintext %p", what, rc, (void *)pt);
  if (rc == WHISPER_OK) {
    FZ_ASSERT(pt->len == strlen(FIXED_TEXT) && memcmp(pt->data, FIXED_TEXT, pt->len) == 0,
              "%s: wrong plaintext", what);
    check_written(what);
  }
  fz_call_end(alice, rc, what);
  whisper_buf_free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (alice == NULL) scenario();
  if (size < 1) return 0;
  int clean;
  int t = plant_input(data, size, &clean);
  /* as a new context would: the library caches the salt once read */
  alice->ctx->have_history_salt = 0;

  call_page(t, 0);
  call_page(t, 1);
  call_page_through(t, clean);
  call_outbox();
  call_sent(t);
  call_status(t);
  call_add(t, 1);
  call_add(t, 0);
  call_decrypt_store(t, 0);
  call_decrypt_store(t, 1);

  unplant();
  return 0;
}

/* --- seeds (gen_corpus) ---------------------------------------------------------------- */

void fzh_gen_seeds(fz_seeds *s);

static void seed(fz_seeds *s, const char *name, int mode, int j, const uint8_t *v, size_t n) {
  whisper_buf *b = whisper_buf_new(NULL, 1 + n);
  FZ_ASSERT(b != NULL, "out of memory");
  b->data[0] = (uint8_t)(j << 3 | mode);
  if (n) memcpy(b->data + 1, v, n);
  fz_seeds_add(s, name, b, 1);
}

static void seed_buf(fz_seeds *s, const char *name, int mode, int j, whisper_buf *v) {
  FZ_ASSERT(v != NULL, "seed %s: no value", name);
  seed(s, name, mode, j, v->data, v->len);
  whisper_buf_free(v);
}

static whisper_buf *hist_value(int t) {
  return fz_get(alice, WHISPER_REC_HISTORY, M[t].hkey, HKEY_LEN);
}

static whisper_buf *entry_pack(const Whisper__Store__HistoryEntry *e) {
  whisper_buf *b = whisper_buf_new(NULL, whisper__store__history_entry__get_packed_size(e));
  FZ_ASSERT(b != NULL, "out of memory");
  whisper__store__history_entry__pack(e, b->data);
  return b;
}

static whisper_buf *ref_pack(const uint8_t *key, size_t len) {
  Whisper__Store__HistoryRef r = WHISPER__STORE__HISTORY_REF__INIT;
  r.has_history_key = 1;
  r.history_key = (ProtobufCBinaryData){len, (uint8_t *)key};
  whisper_buf *b = whisper_buf_new(NULL, whisper__store__history_ref__get_packed_size(&r));
  FZ_ASSERT(b != NULL, "out of memory");
  whisper__store__history_ref__pack(&r, b->data);
  return b;
}

/* Message t's entry, re-encoded after `edit`. */
static whisper_buf *hist_edited(int t, void (*edit)(Whisper__Store__HistoryEntry *)) {
  whisper_buf *v = hist_value(t);
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(NULL, v->len, v->data);
  FZ_ASSERT(e != NULL, "unpack");
  whisper_buf_free(v);
  char *conv = e->conversation;
  ProtobufCBinaryData id = e->id;
  edit(e);
  v = entry_pack(e);
  e->conversation = conv;
  e->id = id;
  whisper__store__history_entry__free_unpacked(e, NULL);
  return v;
}

static void edit_no_conversation(Whisper__Store__HistoryEntry *e) { e->conversation = NULL; }
static void edit_no_id(Whisper__Store__HistoryEntry *e) { e->has_id = 0; }
static void edit_absurd_status(Whisper__Store__HistoryEntry *e) {
  FZ_ASSERT(e->n_statuses == 2, "o1 has two recipients");
  e->statuses[0]->status = 7;           /* bob.1: above READ */
  e->statuses[1]->status = 0x80000000u; /* bob.2: negative as an int */
}
static uint8_t long_id[100];
static void edit_bad_lengths(Whisper__Store__HistoryEntry *e) {
  static char empty[] = "";
  memset(long_id, 'x', sizeof long_id);
  e->conversation = empty;
  e->id = (ProtobufCBinaryData){sizeof long_id, long_id};
}

void fzh_gen_seeds(fz_seeds *s) {
  whisper_buf *v;
  scenario();
  /* real values */
  seed_buf(s, "hist_sent_read", 0, O1, hist_value(O1));
  seed_buf(s, "hist_pending_in_outbox", 0, O4, hist_value(O4));
  seed_buf(s, "hist_incoming", 0, B0, hist_value(B0));
  seed_buf(s, "hist_group_pending", 0, G1, hist_value(G1));
  seed_buf(s, "index_sent", 1, O2, fz_get(alice, WHISPER_REC_MESSAGE_INDEX, tag_of(O2), TAG_LEN));
  seed_buf(s, "index_for_incoming_b1", 1, B1, ref_pack(M[B1].hkey, HKEY_LEN)); /* none is kept */
  seed_buf(s, "outbox_first", 2, 0, fz_get(alice, WHISPER_REC_OUTBOX, OKEY[0], OKEY_LEN));
  seed(s, "salt_real", 3, O3, SALT, sizeof SALT);
  seed_buf(s, "every_entry_o3", 4, O3, hist_value(O3));
  seed_buf(s, "extra_row_next_to_o2", 5, O2, hist_value(O2));
  seed_buf(s, "extra_outbox_row_to_sent_o3", 6, 1, ref_pack(M[O3].hkey, HKEY_LEN));
  seed_buf(s, "outbox_counter", 7, O4,
           fz_get(alice, WHISPER_REC_META, (const uint8_t *)COUNTER_NAME, strlen(COUNTER_NAME)));
  /* edited */
  v = hist_value(O1);
  seed(s, "hist_truncated", 0, O1, v->data, v->len - 3);
  whisper_buf_free(v);
  seed_buf(s, "hist_no_conversation", 0, O2, hist_edited(O2, edit_no_conversation));
  seed_buf(s, "hist_no_id", 0, O3, hist_edited(O3, edit_no_id));
  seed_buf(s, "hist_absurd_status", 0, O1, hist_edited(O1, edit_absurd_status));
  seed_buf(s, "hist_empty_conv_long_id", 0, O4, hist_edited(O4, edit_bad_lengths));
  seed_buf(s, "index_key_39_bytes", 1, O1, ref_pack(M[O1].hkey, HKEY_LEN - 1));
  seed_buf(s, "index_to_incoming_b0", 1, O1, ref_pack(M[B0].hkey, HKEY_LEN));
  uint8_t k[HKEY_LEN + 1];
  memcpy(k, M[O2].hkey, HKEY_LEN);
  k[HKEY_LEN - 1] ^= 0x80;
  seed_buf(s, "index_points_nowhere", 1, O2, ref_pack(k, HKEY_LEN));
  k[HKEY_LEN - 1] ^= 0x80;
  k[HKEY_LEN] = 0;
  memcpy(k, M[O5].hkey, HKEY_LEN);
  seed_buf(s, "outbox_key_41_bytes", 2, 1, ref_pack(k, HKEY_LEN + 1));
  seed(s, "salt_15_bytes", 3, O1, SALT, sizeof SALT - 1);
  uint8_t other[TAG_LEN];
  memset(other, 0x11, sizeof other);
  seed(s, "salt_other", 3, O4, other, sizeof other);
  uint8_t max[8];
  memset(max, 0xFF, sizeof max);
  seed(s, "outbox_counter_max", 7, O2, max, sizeof max);

  fz_dev_free(alice);
  alice = NULL;
  whisper_buf_free(fixed);
  fixed = NULL;
}
