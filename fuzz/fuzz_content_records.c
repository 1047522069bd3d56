/*
 * fuzz_content_records: what history keeps for message content
 * (src/protocol/history.c), planted in alice's store and used.
 *
 * The first input byte picks the record (& 1):
 *   0 PENDING  a PendingOps list (operations that came before their
 *              message), at the pending key of bob's message "m1" in
 *              conversation "bob"; then bob's message m1 is stored
 *              (wh_history_incoming_put_ex, which applies what waited),
 *              and one more operation is kept for a message not stored
 *              ("m2": wh_history_apply reads the list and adds to it).
 *   1 ENTRY    a HistoryEntry in place of bob's stored message "m0" (the
 *              target an operation finds by its sender tag); then an
 *              edit, a reaction and a delete are applied to it
 *              (wh_history_apply), and a history page is read.
 * Each call runs in its own transaction, bracketed by fz_call_begin/_end:
 * every code is a documented one, a failing call changes nothing, no
 * transaction is left open. A stored message read back after the calls
 * decodes as history does (a page of the conversation reads or fails with
 * ECORRUPT, never crashes). Everything is put back after each input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static fz_dev *alice;
static uint8_t m0_hkey[40];

static whisper_message_t meta(const char *id, uint64_t seq) {
  whisper_message_t m = {.size = sizeof(whisper_message_t),
                         .conversation = "bob", .id = (const uint8_t *)id, .id_len = strlen(id),
                         .sort_key = seq, .timestamp_ms = 1700000000000ULL + seq};
  return m;
}

static int in_txn(int (*fn)(void *), void *arg) {
  int rc = wh_begin(alice->ctx);
  if (rc != WHISPER_OK) return rc;
  return wh_finish(alice->ctx, fn(arg));
}

static int put_m0(void *arg) {
  (void)arg;
  whisper_message_t m = meta("m0", 10);
  wh_entry_extra x = {.kind = WHISPER_KIND_TEXT};
  return wh_history_incoming_put_ex(alice->ctx, &m, "bob", 1, (const uint8_t *)"hello", 5, &x);
}

static int put_m1(void *arg) {
  (void)arg;
  whisper_message_t m = meta("m1", 11);
  wh_entry_extra x = {.kind = WHISPER_KIND_TEXT};
  return wh_history_incoming_put_ex(alice->ctx, &m, "bob", 1, (const uint8_t *)"second", 6, &x);
}

typedef struct apply_arg {
  const char *id;
  wh_history_op op;
  int pending;
} apply_arg;

static int apply(void *arg) {
  apply_arg *a = arg;
  return wh_history_apply(alice->ctx, "bob", "bob", (const uint8_t *)a->id, strlen(a->id), &a->op,
                          &a->pending);
}

/* The HISTORY key of m0: found by scanning the conversation (one row). */
static int first_key(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value, size_t len) {
  (void)value, (void)len;
  if (key_len == sizeof m0_hkey) memcpy(arg, key, key_len);
  return 1;
}

static void setup(void) {
  alice = fz_dev_new("alice", 1, 0xA1);
  FZ_ASSERT(in_txn(put_m0, NULL) == WHISPER_OK, "storing m0");
  /* where m0 is: its sender tag's index */
  whisper_page *p = NULL;
  FZ_ASSERT(whisper_history_page(alice->ctx, "bob", 0, NULL, 0, 10, &p) == WHISPER_OK, "page");
  FZ_ASSERT(whisper_page_count(p) == 1, "one message");
  whisper_page_free(p);
  alice->fs.inner->ops.scan(alice->fs.inner->user, WHISPER_REC_HISTORY, NULL, 0, NULL, 0, 0, 1,
                            first_key, m0_hkey);
}

static void page_reads(const char *what) {
  whisper_page *p = NULL;
  fz_call_begin(alice);
  int rc = whisper_history_page(alice->ctx, "bob", 0, NULL, 0, 50, &p);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_ECORRUPT, "%s: page returned %d", what, rc);
  for (size_t i = 0; i < whisper_page_count(p); i++) {
    const whisper_message_t *m = whisper_page_get(p, i);
    FZ_ASSERT(m->n_reactions <= 1024 && (m->n_reactions == 0 || m->reactions != NULL), "reactions");
    for (size_t k = 0; k < m->n_reactions; k++)
      FZ_ASSERT(WHISPER_MESSAGE_REACTION(m, k)->reactor && WHISPER_MESSAGE_REACTION(m, k)->emoji && WHISPER_MESSAGE_REACTION(m, k)->emoji[0],
                "a reaction without its reactor or emoji");
    FZ_ASSERT(!m->deleted || m->body_len == 0, "a deleted message with a body");
  }
  whisper_page_free(p);
  fz_call_end(alice, rc, what);
}

static void run_op(const char *id, int kind, const char *text, const char *what) {
  apply_arg a = {id, {kind, "carol", 1700000000500ULL, (const uint8_t *)text, strlen(text),
                      kind == WH_OP_EDIT ? 900000 : 0}, 0};
  fz_call_begin(alice);
  int rc = in_txn(apply, &a);
  FZ_ASSERT(fz_rc_in(rc, 5, WHISPER_OK, WHISPER_EDENIED, WHISPER_ECORRUPT, WHISPER_EINVAL,
                     WHISPER_ENOMEM),
            "%s returned %d", what, rc);
  fz_call_end(alice, rc, what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (alice == NULL) setup();
  if (size < 1) return 0;
  int which = data[0] & 1;
  fz_journal_begin(&alice->fs);
  if (which == 0) {
    uint8_t key[16];
    FZ_ASSERT(wh_history_pending_key(alice->ctx, "bob", "bob", (const uint8_t *)"m1", 2, key) == WHISPER_OK,
              "key");
    fz_put_raw(alice, WHISPER_REC_MESSAGE_INDEX, key, sizeof key, data + 1, size - 1);
    fz_call_begin(alice);
    int rc = in_txn(put_m1, NULL);
    FZ_ASSERT(fz_rc_in(rc, 3, WHISPER_OK, WHISPER_ECORRUPT, WHISPER_ENOMEM), "storing m1 returned %d", rc);
    if (rc == WHISPER_OK) { /* (fz_call_end puts it back) */
      whisper_buf *left = fz_get(alice, WHISPER_REC_MESSAGE_INDEX, key, sizeof key);
      FZ_ASSERT(left == NULL, "what waited for m1 is still there after m1 came");
    }
    fz_call_end(alice, rc, "store m1");
    /* one more for a message not stored: the planted list is read and grown */
    uint8_t key2[16];
    FZ_ASSERT(wh_history_pending_key(alice->ctx, "bob", "bob", (const uint8_t *)"m2", 2, key2) ==
                  WHISPER_OK,
              "key");
    fz_put_raw(alice, WHISPER_REC_MESSAGE_INDEX, key2, sizeof key2, data + 1, size - 1);
    run_op("m2", WH_OP_REACT, "👍", "react to m2 (pending)");
    page_reads("page after pending");
  } else {
    fz_put_raw(alice, WHISPER_REC_HISTORY, m0_hkey, sizeof m0_hkey, data + 1, size - 1);
    run_op("m0", WH_OP_EDIT, "edited", "edit m0");
    run_op("m0", WH_OP_REACT, "❤️", "react to m0");
    run_op("m0", WH_OP_DELETE, "", "delete m0");
    page_reads("page after ops");
  }
  fz_journal_restore(&alice->fs);
  return 0;
}
