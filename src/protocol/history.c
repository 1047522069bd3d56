/*
 * Message history, delivery status and the outbox, on the ordered kinds of
 * the store interface.
 *
 *   conversation tag = BLAKE2b-128(salt, "c" || conversation)
 *   message tag      = BLAKE2b-128(salt, "m" || conversation || 0 || id)
 *   HISTORY key      = conversation tag || sort key (8, BE) || message tag
 *   MESSAGE_INDEX    = message tag -> HISTORY key (outgoing messages only:
 *                      sent() and status() find them by id)
 *   sender tag       = BLAKE2b-128(salt, "s" || conversation || 0 || sender || 0 || id)
 *                      -> HISTORY key (incoming messages: an edit, delete or
 *                      reaction finds its target by who sent it and its id,
 *                      so a sender reaches only its own messages)
 *   pending tag      = BLAKE2b-128(salt, "p" || conversation || 0 || sender || 0 || id)
 *                      -> PendingOps (sender "" for this account's own):
 *                      operations that came before their message
 *   OUTBOX key       = outbox sequence (8, BE) || message tag -> HISTORY key
 *
 * The salt is a random 16 bytes kept (sealed) in the store, so the tags
 * that order rows say nothing about names or ids.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pb.h"
#include "versioned.h"
#include "storage.pb-c.h"
#include "whisper/history.h"

#define TAG_LEN 16
#define HKEY_LEN (TAG_LEN + 8 + TAG_LEN)
static const char META_SALT[] = "history_salt";
static const char META_OUTBOX[] = "outbox_seq";

typedef struct tags {
  uint8_t conv[TAG_LEN], msg[TAG_LEN];
} tags;

static void be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) out[i] = (uint8_t)v;
}

static uint64_t rd64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

static int need_scan(whisper_ctx *ctx) {
  if (ctx->store->ops.version < 2)
    return wh_fail(ctx, WHISPER_EINVAL, "this store cannot keep history (store interface 1)");
  return WHISPER_OK;
}

/* The salt: cached in the context once read back from the store (a salt
 * made in a transaction that rolls back must not outlive it), else read,
 * else made (on first use). */
static int history_salt(whisper_ctx *ctx, uint8_t salt[TAG_LEN]) {
  if (ctx->have_history_salt) {
    memcpy(salt, ctx->history_salt, TAG_LEN);
    return WHISPER_OK;
  }
  whisper_buf *b = NULL;
  ctx->have_conv_tag = 0; /* made with the salt cached before, if any */
  int rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)META_SALT, strlen(META_SALT), &b);
  if (rc == WHISPER_OK) {
    if (b->len == TAG_LEN) {
      memcpy(salt, b->data, TAG_LEN);
      memcpy(ctx->history_salt, b->data, TAG_LEN);
      ctx->have_history_salt = 1;
    } else {
      rc = wh_fail(ctx, WHISPER_ECORRUPT, "the history salt is corrupt");
    }
    whisper_buf_free(b);
    return rc;
  }
  if (rc != WHISPER_ENOTFOUND) return rc;
  if (wh_random(&ctx->rng, salt, TAG_LEN) != 0)
    return wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
  rc = wh_put(ctx, WHISPER_REC_META, (const uint8_t *)META_SALT, strlen(META_SALT), salt, TAG_LEN);
  /* no history without a salt: none older than the search index to index */
  return rc == WHISPER_OK ? wh_search_fresh(ctx) : rc;
}

/* The tags of (conversation, id); the conversation's is kept in the
 * context while the salt is. */
static int make_tags(whisper_ctx *ctx, tags *t, const char *conv, const uint8_t *id, size_t id_len) {
  uint8_t salt[TAG_LEN];
  int rc = history_salt(ctx, salt);
  if (rc != WHISPER_OK) return rc;
  crypto_generichash_state h;
  size_t conv_len = strlen(conv);
  if (ctx->have_conv_tag && strcmp(ctx->conv_tag_name, conv) == 0) {
    memcpy(t->conv, ctx->conv_tag, TAG_LEN);
  } else {
    crypto_generichash_init(&h, salt, TAG_LEN, TAG_LEN);
    crypto_generichash_update(&h, (const uint8_t *)"c", 1);
    crypto_generichash_update(&h, (const uint8_t *)conv, conv_len);
    crypto_generichash_final(&h, t->conv, TAG_LEN);
    ctx->have_conv_tag = 0;
    if (ctx->have_history_salt && conv_len < sizeof ctx->conv_tag_name) {
      memcpy(ctx->conv_tag_name, conv, conv_len + 1);
      memcpy(ctx->conv_tag, t->conv, TAG_LEN);
      ctx->have_conv_tag = 1;
    }
  }
  if (id) {
    static const uint8_t zero = 0;
    crypto_generichash_init(&h, salt, TAG_LEN, TAG_LEN);
    crypto_generichash_update(&h, (const uint8_t *)"m", 1);
    crypto_generichash_update(&h, (const uint8_t *)conv, conv_len);
    crypto_generichash_update(&h, &zero, 1);
    crypto_generichash_update(&h, id, id_len);
    crypto_generichash_final(&h, t->msg, TAG_LEN);
  }
  sodium_memzero(salt, sizeof salt);
  return WHISPER_OK;
}

/* The sender tag ('s') or pending tag ('p') of (conversation, sender, id);
 * sender NULL: this account's own (pending tags only). */
static int who_tag(whisper_ctx *ctx, char what, const char *conv, const char *sender,
                   const uint8_t *id, size_t id_len, uint8_t out[TAG_LEN]) {
  uint8_t salt[TAG_LEN];
  int rc = history_salt(ctx, salt);
  if (rc != WHISPER_OK) return rc;
  static const uint8_t zero = 0;
  crypto_generichash_state h;
  crypto_generichash_init(&h, salt, TAG_LEN, TAG_LEN);
  crypto_generichash_update(&h, (const uint8_t *)&what, 1);
  crypto_generichash_update(&h, (const uint8_t *)conv, strlen(conv));
  crypto_generichash_update(&h, &zero, 1);
  if (sender) crypto_generichash_update(&h, (const uint8_t *)sender, strlen(sender));
  crypto_generichash_update(&h, &zero, 1);
  crypto_generichash_update(&h, id, id_len);
  crypto_generichash_final(&h, out, TAG_LEN);
  sodium_memzero(salt, sizeof salt);
  return WHISPER_OK;
}

static void history_key(uint8_t out[HKEY_LEN], const tags *t, uint64_t sort_key) {
  memcpy(out, t->conv, TAG_LEN);
  be64(out + TAG_LEN, sort_key);
  memcpy(out + TAG_LEN + 8, t->msg, TAG_LEN);
}

static int put_ref(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
                   const uint8_t hkey[HKEY_LEN]) {
  Whisper__Store__HistoryRef r = WHISPER__STORE__HISTORY_REF__INIT;
  r.has_history_key = 1;
  r.history_key = (ProtobufCBinaryData){HKEY_LEN, (uint8_t *)hkey};
  return wh_put_msg(ctx, kind, key, key_len, &r.base);
}

/* Where the message with tag `msg` is: WHISPER_ENOTFOUND if nowhere. */
static int find(whisper_ctx *ctx, const uint8_t msg[TAG_LEN], uint8_t hkey[HKEY_LEN]) {
  whisper_buf *b;
  int rc = wh_get(ctx, WHISPER_REC_MESSAGE_INDEX, msg, TAG_LEN, &b);
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__HistoryRef *r = whisper__store__history_ref__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  rc = r && r->history_key.len == HKEY_LEN ? WHISPER_OK
                                           : wh_fail(ctx, WHISPER_ECORRUPT, "a message index is corrupt");
  if (rc == WHISPER_OK) memcpy(hkey, r->history_key.data, HKEY_LEN);
  if (r) whisper__store__history_ref__free_unpacked(r, &wh_pb_alloc);
  return rc;
}

/* Is a decoded entry sane? Every field an app will read is in its limits,
 * and it can be written back (protobuf-c reads an unknown field numbered 0
 * but cannot write it). */
static int entry_ok(const Whisper__Store__HistoryEntry *e, const char *conversation) {
  size_t cl = e->conversation ? strlen(e->conversation) : 0;
  if (cl == 0 || cl > WH_NAME_MAX || (conversation && strcmp(e->conversation, conversation) != 0))
    return 0;
  if (!e->has_id || e->id.len == 0 || e->id.len > WHISPER_MESSAGE_ID_MAX) return 0;
  if (e->sender && (strlen(e->sender) == 0 || strlen(e->sender) > WH_NAME_MAX)) return 0;
  for (size_t i = 0; i < e->n_statuses; i++) {
    const Whisper__Store__DeliveryStatus *d = e->statuses[i];
    if (d->name == NULL || strlen(d->name) == 0 || strlen(d->name) > WH_NAME_MAX ||
        d->status > WHISPER_STATUS_OPENED)
      return 0;
  }
  if (e->kind > WHISPER_KIND_ATTACHMENT) return 0;
  if (e->quote && (e->quote->id.len == 0 || e->quote->id.len > WHISPER_MESSAGE_ID_MAX ||
                   (e->quote->sender && (strlen(e->quote->sender) == 0 ||
                                         strlen(e->quote->sender) > WH_NAME_MAX)) ||
                   (e->quote->excerpt && strlen(e->quote->excerpt) > WH_EXCERPT_MAX)))
    return 0;
  for (size_t i = 0; i < e->n_reactions; i++) {
    const Whisper__Store__Reaction *r = e->reactions[i];
    if (r->reactor == NULL || strlen(r->reactor) == 0 || strlen(r->reactor) > WH_NAME_MAX ||
        r->emoji == NULL || strlen(r->emoji) > WH_EMOJI_MAX)
      return 0;
  }
  for (size_t i = 0; i < e->base.n_unknown_fields; i++)
    if (e->base.unknown_fields[i].tag == 0) return 0;
  return 1;
}

/* An outgoing message's status: FAILED if it failed for any recipient
 * device (a loss never reads back as a delivery), else the lowest (READ
 * when there is none). */
static int status_of(const Whisper__Store__HistoryEntry *e) {
  int lowest = e->n_statuses ? WHISPER_STATUS_OPENED : WHISPER_STATUS_READ;
  for (size_t i = 0; i < e->n_statuses; i++) {
    if (e->statuses[i]->status == WHISPER_STATUS_FAILED) return WHISPER_STATUS_FAILED;
    if ((int)e->statuses[i]->status < lowest) lowest = (int)e->statuses[i]->status;
  }
  return lowest;
}

static int entry_load(whisper_ctx *ctx, const uint8_t hkey[HKEY_LEN], Whisper__Store__HistoryEntry **e) {
  whisper_buf *b;
  int rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &b);
  if (rc == WHISPER_ENOTFOUND) return wh_fail(ctx, WHISPER_ECORRUPT, "a message index points nowhere");
  if (rc != WHISPER_OK) return rc;
  *e = whisper__store__history_entry__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (*e == NULL || !entry_ok(*e, NULL)) {
    if (*e) whisper__store__history_entry__free_unpacked(*e, &wh_pb_alloc);
    *e = NULL;
    return wh_fail(ctx, WHISPER_ECORRUPT, "a history entry is corrupt");
  }
  return WHISPER_OK;
}

static int check_message(whisper_ctx *ctx, const whisper_message_t *m) {
  if (m == NULL || m->conversation == NULL || strlen(m->conversation) == 0 ||
      strlen(m->conversation) > WH_NAME_MAX || m->id == NULL || m->id_len == 0 ||
      m->id_len > WHISPER_MESSAGE_ID_MAX || (m->body == NULL && m->body_len))
    return wh_fail(ctx, WHISPER_EINVAL,
                   "a message needs a conversation (1-255 bytes) and an id (1-64 bytes)");
  return WHISPER_OK;
}

/* Stores entry `e` under the key for `t` and its sort key, and, for an
 * outgoing message, its index. */
static int entry_store(whisper_ctx *ctx, const tags *t, Whisper__Store__HistoryEntry *e,
                       uint8_t hkey[HKEY_LEN]) {
  history_key(hkey, t, e->sort_key);
  int rc = wh_put_msg(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &e->base);
  if (rc == WHISPER_OK && e->sender == NULL)
    rc = put_ref(ctx, WHISPER_REC_MESSAGE_INDEX, t->msg, TAG_LEN, hkey);
  return rc;
}

static void entry_from(Whisper__Store__HistoryEntry *e, const whisper_message_t *m,
                       const uint8_t *body, size_t body_len) {
  e->conversation = (char *)m->conversation;
  e->has_id = 1;
  e->id = (ProtobufCBinaryData){m->id_len, (uint8_t *)m->id};
  e->has_sort_key = e->has_timestamp = e->has_body = 1;
  e->sort_key = m->sort_key;
  e->timestamp = m->timestamp_ms;
  e->body = (ProtobufCBinaryData){body_len, (uint8_t *)body};
}

/* The next outbox sequence number (a counter in the store). */
static int next_outbox_seq(whisper_ctx *ctx, uint64_t *seq) {
  whisper_buf *b;
  uint8_t be[8];
  *seq = 0;
  int rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)META_OUTBOX, strlen(META_OUTBOX), &b);
  if (rc == WHISPER_OK) {
    if (b->len == 8) *seq = rd64(b->data);
    else rc = wh_fail(ctx, WHISPER_ECORRUPT, "the outbox counter is corrupt");
    whisper_buf_free(b);
  } else if (rc == WHISPER_ENOTFOUND) {
    rc = WHISPER_OK;
  }
  if (rc != WHISPER_OK) return rc;
  if (*seq == UINT64_MAX) return wh_fail(ctx, WHISPER_ECORRUPT, "the outbox counter is exhausted");
  be64(be, ++*seq);
  return wh_put(ctx, WHISPER_REC_META, (const uint8_t *)META_OUTBOX, strlen(META_OUTBOX), be, 8);
}

static int pending_run(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                       size_t id_len, const uint8_t hkey[HKEY_LEN]);
static void entry_extra(Whisper__Store__HistoryEntry *e, Whisper__Store__QuoteRef *q,
                        const wh_entry_extra *x);
static int extra_check(whisper_ctx *ctx, const wh_entry_extra *x);

int wh_message_in(whisper_ctx *ctx, const whisper_message_t *in, const char *what,
                  whisper_message_t *out) {
  if (in == NULL) return wh_fail(ctx, WHISPER_EINVAL, "%s is NULL", what);
  int rc = WH_SIZE_CHECK(ctx, what, in->size, whisper_message_t, WHISPER_MESSAGE);
  if (rc != WHISPER_OK) return rc;
  wh_versioned_in(out, sizeof *out, in);
  return WHISPER_OK;
}

int whisper_history_add_outgoing(whisper_ctx *ctx, const whisper_message_t *in,
                                 const whisper_device_t *recipients, size_t n) {
  whisper_message_t m;
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_message_in(ctx, in, "m", &m);
  return rc == WHISPER_OK ? wh_history_outgoing_put(ctx, &m, recipients, n, NULL) : rc;
}

int wh_history_outgoing_put(whisper_ctx *ctx, const whisper_message_t *m,
                            const whisper_device_t *recipients, size_t n, const wh_entry_extra *x) {
  tags t;
  uint8_t hkey[HKEY_LEN], okey[8 + TAG_LEN];
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = need_scan(ctx);
  if (rc == WHISPER_OK) rc = check_message(ctx, m);
  if (rc == WHISPER_OK) rc = extra_check(ctx, x);
  if (rc != WHISPER_OK) return rc;
  if ((recipients == NULL && n) || n > 100000)
    return wh_fail(ctx, WHISPER_EINVAL, "bad recipient list");
  for (size_t i = 0; i < n; i++) {
    wh_addr a;
    if ((rc = wh_addr_make(ctx, &a, recipients[i].name, recipients[i].device_id)) != WHISPER_OK)
      return rc;
  }
  Whisper__Store__DeliveryStatus *st = calloc(n ? n : 1, sizeof *st);
  Whisper__Store__DeliveryStatus **stp = calloc(n ? n : 1, sizeof *stp);
  if (st == NULL || stp == NULL) {
    free(st);
    free(stp);
    return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    whisper__store__delivery_status__init(&st[i]);
    st[i].name = (char *)recipients[i].name;
    st[i].has_device = st[i].has_status = 1;
    st[i].device = recipients[i].device_id;
    st[i].status = WHISPER_STATUS_PENDING;
    stp[i] = &st[i];
  }
  if ((rc = wh_begin(ctx)) != WHISPER_OK) goto done;
  rc = make_tags(ctx, &t, m->conversation, m->id, m->id_len);
  if (rc == WHISPER_OK) {
    rc = find(ctx, t.msg, hkey);
    if (rc == WHISPER_OK) rc = wh_fail(ctx, WHISPER_EDUPLICATE, "that message id is already stored");
    else if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  }
  uint64_t seq = 0;
  if (rc == WHISPER_OK) rc = next_outbox_seq(ctx, &seq);
  if (rc == WHISPER_OK) {
    Whisper__Store__HistoryEntry e = WHISPER__STORE__HISTORY_ENTRY__INIT;
    Whisper__Store__QuoteRef q;
    entry_from(&e, m, m->body, m->body_len);
    entry_extra(&e, &q, x);
    e.n_statuses = n;
    e.statuses = stp;
    e.has_outbox_seq = 1;
    e.outbox_seq = seq;
    rc = entry_store(ctx, &t, &e, hkey);
  }
  /* queued for the search index (search.c: one row, indexed later), then
   * what another device of this account did to it before it came (an
   * edit queues it again) */
  if (rc == WHISPER_OK && !(x && x->hidden) && m->body_len)
    rc = wh_search_queue(ctx, hkey, m->timestamp_ms);
  if (rc == WHISPER_OK && !(x && x->hidden))
    rc = pending_run(ctx, m->conversation, NULL, m->id, m->id_len, hkey);
  if (rc == WHISPER_OK) {
    be64(okey, seq);
    memcpy(okey + 8, t.msg, TAG_LEN);
    rc = put_ref(ctx, WHISPER_REC_OUTBOX, okey, sizeof okey, hkey);
  }
  rc = wh_finish(ctx, rc);
done:
  free(st);
  free(stp);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* Store failures end a batch; message failures only skip the message. */
static int is_store_failure(int rc) {
  return rc == WHISPER_ESTORE || rc == WHISPER_ENOMEM || rc == WHISPER_EBUSY ||
         rc == WHISPER_ECORRUPT || rc == WHISPER_ERANDOM || rc == WHISPER_EINTERNAL;
}

/* The history row of an incoming message, added only if none is there:
 * run by the decryption before it keeps the session's new state. */
typedef struct incoming_row {
  const tags *t;
  const whisper_message_t *meta;
  const char *sender;
  uint32_t device_id;
  int taken; /* set when the row's key was taken: a message stored before */
} incoming_row;

static int dup_stored(whisper_ctx *ctx) {
  return wh_fail(ctx, WHISPER_EDUPLICATE, "message already received (stored before)");
}

/* The entry of an incoming message from (sender, device_id). */
static void incoming_entry(Whisper__Store__HistoryEntry *e, const whisper_message_t *meta,
                           const char *sender, uint32_t device_id, const uint8_t *pt,
                           size_t pt_len) {
  entry_from(e, meta, pt, pt_len);
  e->sender = (char *)sender;
  e->has_sender_device = 1;
  e->sender_device = device_id;
}

static int incoming_add(whisper_ctx *ctx, void *arg, const whisper_buf *pt) {
  incoming_row *in = arg;
  uint8_t hkey[HKEY_LEN];
  Whisper__Store__HistoryEntry e = WHISPER__STORE__HISTORY_ENTRY__INIT;
  incoming_entry(&e, in->meta, in->sender, in->device_id, pt->data, pt->len);
  history_key(hkey, in->t, in->meta->sort_key);
  int rc = wh_add_msg(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &e.base);
  if (rc == WHISPER_OK) /* queued for the index (search.c) */
    rc = pt->len ? wh_search_queue(ctx, hkey, in->meta->timestamp_ms) : WHISPER_OK;
  if (rc != WHISPER_EDUPLICATE) return rc;
  in->taken = 1;
  return dup_stored(ctx);
}

/* 1 if the history has a row for `t` at `sort_key` (a message stored
 * before); WHISPER_OK (0) if not; else a store error. */
static int stored_before(whisper_ctx *ctx, const tags *t, uint64_t sort_key) {
  uint8_t hkey[HKEY_LEN];
  whisper_buf *seen = NULL;
  history_key(hkey, t, sort_key);
  int rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &seen);
  whisper_buf_free(seen);
  if (rc == WHISPER_OK) return 1;
  return rc == WHISPER_ENOTFOUND ? WHISPER_OK : rc;
}

/* One incoming message inside the caller's transaction. A SignalMessage
 * is decrypted first and its row added only if the key is free (one
 * lookup, the insert's own); a stored message's keys are used up, so its
 * redelivery fails in the ratchet, and a message that fails to decrypt is
 * looked up so a redelivery still reads as one. A PreKeySignalMessage
 * consumes a one-time prekey as it decrypts, so it is looked up first. */
static int decrypt_store_in_txn(whisper_ctx *ctx, const wh_addr *a, const char *name,
                                uint32_t device_id, int type, const uint8_t *body, size_t body_len,
                                const whisper_message_t *meta, whisper_buf **pt) {
  tags t;
  int rc = make_tags(ctx, &t, meta->conversation, meta->id, meta->id_len);
  if (rc != WHISPER_OK) return rc;
  if (type == WHISPER_MSG_PREKEY && (rc = stored_before(ctx, &t, meta->sort_key)) != WHISPER_OK)
    return rc == 1 ? dup_stored(ctx) : rc;
  incoming_row in = {&t, meta, name, device_id, 0};
  rc = wh_session_decrypt_then(ctx, a, type, body, body_len, pt, incoming_add, &in);
  if (rc == WHISPER_OK || type == WHISPER_MSG_PREKEY || is_store_failure(rc) || in.taken)
    return rc;
  /* a lookup that finds nothing leaves the decryption's sentence */
  int seen = stored_before(ctx, &t, meta->sort_key);
  if (seen == 1) return dup_stored(ctx);
  return seen != WHISPER_OK ? seen : rc;
}

int whisper_session_decrypt_store(whisper_ctx *ctx, const char *name, uint32_t device_id, int type,
                                  const uint8_t *body, size_t body_len,
                                  const whisper_message_t *meta, whisper_buf **plaintext_out) {
  whisper_incoming_t in;
  memset(&in, 0, sizeof in);
  in.size = sizeof in;
  in.name = name;
  in.device_id = device_id;
  in.type = type;
  in.body = body;
  in.body_len = body_len;
  if (plaintext_out) *plaintext_out = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_message_in(ctx, meta, "meta", &in.meta); /* the fields both sides have */
  if (rc != WHISPER_OK) return rc;
  rc = whisper_session_decrypt_batch(ctx, &in, 1);
  if (rc == WHISPER_OK) rc = in.result;
  if (rc != WHISPER_OK) return rc;
  if (plaintext_out) *plaintext_out = in.plaintext;
  else whisper_buf_free(in.plaintext);
  return WHISPER_OK;
}

int whisper_session_decrypt_batch(whisper_ctx *ctx, whisper_incoming_t *msgs, size_t n) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = need_scan(ctx);
  if (rc != WHISPER_OK) return rc;
  if (msgs == NULL && n) return wh_fail(ctx, WHISPER_EINVAL, "msgs is NULL");
  /* A versioned array: stepped by the caller's element size, which every
   * element repeats; only the fields this library knows are touched. */
  size_t esz = n ? msgs[0].size : sizeof *msgs;
  if ((rc = WH_SIZE_CHECK(ctx, "msgs[0]", esz, whisper_incoming_t, WHISPER_INCOMING)) != WHISPER_OK)
    return rc;
  if (n > SIZE_MAX / esz) return wh_fail(ctx, WHISPER_EINVAL, "too many messages");
#define IN_AT(i) ((whisper_incoming_t *)((unsigned char *)msgs + (i) * esz))
  for (size_t i = 1; i < n; i++)
    if (IN_AT(i)->size != esz)
      return wh_fail(ctx, WHISPER_EINVAL,
                     "msgs[%zu].size is %zu, not msgs[0].size (%zu): every element of the "
                     "array must have the same size",
                     i, IN_AT(i)->size, esz);
  /* each element ends with its versioned whisper_message_t: the same size
   * in every element, within it */
  size_t msz = n ? IN_AT(0)->meta.size : sizeof msgs->meta;
  if (msz < WHISPER_MESSAGE_SIZE_1_0 || msz > esz - offsetof(whisper_incoming_t, meta))
    return wh_fail(ctx, WHISPER_EINVAL,
                   "msgs[0].meta.size is %zu, not a whisper_message_t's (at least %zu) within "
                   "msgs[0].size: initialize each element with WHISPER_INCOMING_INIT",
                   msz, (size_t)WHISPER_MESSAGE_SIZE_1_0);
  for (size_t i = 1; i < n; i++)
    if (IN_AT(i)->meta.size != msz)
      return wh_fail(ctx, WHISPER_EINVAL,
                     "msgs[%zu].meta.size is %zu, not msgs[0].meta.size (%zu): every element "
                     "of the array must have the same sizes",
                     i, IN_AT(i)->meta.size, msz);
  for (size_t i = 0; i < n; i++) IN_AT(i)->result = WHISPER_EINTERNAL, IN_AT(i)->plaintext = NULL;
  if ((rc = wh_local_identity(ctx)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  if (n > 1 && (rc = wh_record_cache_begin(ctx)) != WHISPER_OK) return wh_finish(ctx, rc);
  char last[256] = "";
  for (size_t i = 0; i < n && rc == WHISPER_OK; i++) {
    whisper_incoming_t *m = IN_AT(i);
    whisper_message_t meta; /* the fields both sides have */
    wh_versioned_in(&meta, sizeof meta, &m->meta);
    wh_addr a;
    int r = check_message(ctx, &meta);
    if (r == WHISPER_OK)
      r = wh_session_decrypt_check(ctx, &a, m->name, m->device_id, m->type, m->body, m->body_len,
                                   &m->plaintext);
    if (r == WHISPER_OK)
      r = decrypt_store_in_txn(ctx, &a, m->name, m->device_id, m->type, m->body, m->body_len,
                               &meta, &m->plaintext);
    m->result = r;
    if (r != WHISPER_OK) snprintf(last, sizeof last, "%s", ctx->last_error);
    if (is_store_failure(r)) rc = r;
  }
  int flushed = wh_record_cache_end(ctx, rc == WHISPER_OK);
  if (rc == WHISPER_OK) rc = flushed;
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) {
    for (size_t i = 0; i < n; i++) {
      whisper_incoming_t *m = IN_AT(i);
      whisper_buf_free(m->plaintext);
      m->plaintext = NULL;
      if (m->result == WHISPER_OK) m->result = rc;
    }
    return rc;
  }
#undef IN_AT
  if (last[0]) {
    snprintf(ctx->last_error, sizeof ctx->last_error, "%s", last);
    return WHISPER_OK;
  }
  return wh_ok(ctx);
}

/* Loads the entry of (conversation, id) for an update. */
static int entry_find(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len, tags *t,
                      uint8_t hkey[HKEY_LEN], Whisper__Store__HistoryEntry **e) {
  *e = NULL;
  int rc = make_tags(ctx, t, conv, id, id_len);
  if (rc == WHISPER_OK) rc = find(ctx, t->msg, hkey);
  if (rc == WHISPER_ENOTFOUND) return wh_fail(ctx, rc, "no such message in that conversation");
  if (rc == WHISPER_OK) rc = entry_load(ctx, hkey, e);
  return rc;
}

static int check_ref(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len) {
  whisper_message_t m = {.size = sizeof m, .conversation = conv, .id = id, .id_len = id_len};
  int rc = need_scan(ctx);
  return rc == WHISPER_OK ? check_message(ctx, &m) : rc;
}

int whisper_history_sent(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                         uint64_t server_sort_key) {
  tags t;
  uint8_t hkey[HKEY_LEN], nkey[HKEY_LEN];
  Whisper__Store__HistoryEntry *e = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = check_ref(ctx, conv, id, id_len);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = entry_find(ctx, conv, id, id_len, &t, hkey, &e);
  if (rc == WHISPER_OK && e->sender != NULL)
    rc = wh_fail(ctx, WHISPER_EINVAL, "not an outgoing message");
  if (rc == WHISPER_OK) {
    if (e->outbox_seq) {
      uint8_t okey[8 + TAG_LEN];
      be64(okey, e->outbox_seq);
      memcpy(okey + 8, t.msg, TAG_LEN);
      rc = wh_del(ctx, WHISPER_REC_OUTBOX, okey, sizeof okey);
      e->outbox_seq = 0;
      e->has_outbox_seq = 0;
    }
    for (size_t i = 0; i < e->n_statuses; i++)
      if (e->statuses[i]->status < WHISPER_STATUS_SENT) {
        e->statuses[i]->status = WHISPER_STATUS_SENT;
        e->statuses[i]->has_status = 1;
      }
    e->sort_key = server_sort_key;
    e->has_sort_key = 1;
    history_key(nkey, &t, server_sort_key);
    if (rc == WHISPER_OK && memcmp(nkey, hkey, HKEY_LEN) != 0)
      rc = wh_del(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN);
    if (rc == WHISPER_OK) rc = entry_store(ctx, &t, e, nkey);
  }
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

static int status_op(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                     const char *recipient, uint32_t device, int set, int *status) {
  tags t;
  uint8_t hkey[HKEY_LEN];
  Whisper__Store__HistoryEntry *e = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = check_ref(ctx, conv, id, id_len);
  if (rc != WHISPER_OK) return rc;
  if (recipient == NULL) return wh_fail(ctx, WHISPER_EINVAL, "recipient is NULL");
  if (set && (*status < WHISPER_STATUS_PENDING || *status > WHISPER_STATUS_OPENED))
    return wh_fail(ctx, WHISPER_EINVAL, "unknown status %d", *status);
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = entry_find(ctx, conv, id, id_len, &t, hkey, &e);
  Whisper__Store__DeliveryStatus *d = NULL;
  for (size_t i = 0; rc == WHISPER_OK && i < e->n_statuses && d == NULL; i++)
    if (e->statuses[i]->name && strcmp(e->statuses[i]->name, recipient) == 0 &&
        e->statuses[i]->device == device)
      d = e->statuses[i];
  if (rc == WHISPER_OK && d == NULL)
    rc = wh_fail(ctx, WHISPER_ENOTFOUND, "%s.%u is not a recipient of that message", recipient, device);
  if (rc == WHISPER_OK && !set) *status = (int)d->status;
  int wrote = 0;
  /* FAILED only replaces PENDING or SENT (a delivered message never fails);
   * DELIVERED and READ replace FAILED (it came after all) */
  int forward = d == NULL                           ? 0
                : d->status == WHISPER_STATUS_FAILED
                    ? *status == WHISPER_STATUS_DELIVERED || *status == WHISPER_STATUS_READ ||
                          *status == WHISPER_STATUS_OPENED
                    : (uint32_t)*status > d->status &&
                          (*status != WHISPER_STATUS_FAILED || d->status < WHISPER_STATUS_DELIVERED);
  if (rc == WHISPER_OK && set && forward) {
    d->status = (uint32_t)*status;
    d->has_status = 1;
    rc = wh_put_msg(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &e->base);
    wrote = 1;
  }
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  /* an answer of "no such message or recipient" wrote nothing: it ends
   * the transaction without rolling back one the caller joined it to */
  if (rc == WHISPER_ENOTFOUND && !wrote) {
    int cr = wh_finish(ctx, WHISPER_OK);
    return cr == WHISPER_OK ? rc : cr;
  }
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int whisper_history_status_set(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                           const char *recipient, uint32_t device_id, int status) {
  return status_op(ctx, conv, id, id_len, recipient, device_id, 1, &status);
}

int whisper_history_status_get(whisper_ctx *ctx, const char *conv, const uint8_t *id,
                               size_t id_len, const char *recipient, uint32_t device_id,
                               int *status) {
  if (status == NULL) return ctx ? wh_fail(ctx, WHISPER_EINVAL, "status is NULL") : WHISPER_EINVAL;
  return status_op(ctx, conv, id, id_len, recipient, device_id, 0, status);
}

/* --- pages ------------------------------------------------------------------------------ */

struct whisper_page {
  whisper_message_t *msgs;
  Whisper__Store__HistoryEntry **entries;
  whisper_reaction_t **reactions; /* per message (NULL: none) */
  size_t n, cap;
};

typedef struct collect {
  whisper_page *page;
  whisper_ctx *ctx;
  int rc;
  int by_ref;               /* values are HistoryRefs (the outbox) */
  const char *conversation; /* every entry must be of this one (NULL: any) */
  size_t limit;             /* messages to collect */
} collect;

static int page_add(collect *c, const uint8_t *value, size_t len) {
  whisper_page *p = c->page;
  Whisper__Store__HistoryEntry *e = whisper__store__history_entry__unpack(&wh_pb_alloc, len, value);
  if (e == NULL || !entry_ok(e, c->conversation)) {
    if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
    c->rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "a history entry is corrupt");
    return 1;
  }
  if (e->hidden && !c->by_ref) { /* an operation, sent but never shown */
    whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
    return 0;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    whisper_message_t *m = realloc(p->msgs, cap * sizeof *m);
    if (m) p->msgs = m;
    Whisper__Store__HistoryEntry **es = m ? realloc(p->entries, cap * sizeof *es) : NULL;
    if (es) p->entries = es;
    whisper_reaction_t **rs = es ? realloc(p->reactions, cap * sizeof *rs) : NULL;
    if (rs) p->reactions = rs;
    if (m == NULL || es == NULL || rs == NULL) {
      whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
      c->rc = WHISPER_ENOMEM;
      return 1;
    }
    p->cap = cap;
  }
  whisper_reaction_t *rs = NULL;
  size_t nr = 0;
  for (size_t i = 0; i < e->n_reactions; i++) nr += e->reactions[i]->emoji[0] != 0;
  if (nr && (rs = calloc(nr, sizeof *rs)) == NULL) {
    whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
    c->rc = WHISPER_ENOMEM;
    return 1;
  }
  nr = 0;
  for (size_t i = 0; i < e->n_reactions; i++) /* a removed one is kept, not shown */
    if (e->reactions[i]->emoji[0])
      rs[nr++] = (whisper_reaction_t){sizeof *rs, e->reactions[i]->reactor,
                                      e->reactions[i]->emoji, e->reactions[i]->at};
  whisper_message_t *m = &p->msgs[p->n];
  memset(m, 0, sizeof *m);
  m->size = sizeof *m; /* the library's: the caller checks it before newer fields */
  m->conversation = e->conversation;
  m->id = e->id.data;
  m->id_len = e->id.len;
  m->sender = e->sender;
  m->sender_device = e->sender_device;
  m->sort_key = e->sort_key;
  m->timestamp_ms = e->timestamp;
  m->body = e->body.data;
  m->body_len = e->body.len;
  m->status = e->sender == NULL ? status_of(e) : WHISPER_STATUS_READ;
  m->kind = (int)e->kind;
  m->edited_ms = e->edited_at;
  m->deleted = e->deleted;
  m->forwarded = e->forwarded;
  if (e->quote) {
    m->quote_id = e->quote->id.data;
    m->quote_id_len = e->quote->id.len;
    m->quote_sender = e->quote->sender;
    m->quote_excerpt = e->quote->excerpt ? e->quote->excerpt : "";
  }
  m->reactions = rs;
  m->n_reactions = nr;
  if (e->deleted) { /* a tombstone shows nothing of what was there */
    m->body = NULL;
    m->body_len = 0;
    m->quote_id = NULL;
    m->quote_id_len = 0;
    m->quote_sender = m->quote_excerpt = NULL;
    m->n_reactions = 0;
  }
  p->reactions[p->n] = rs;
  p->entries[p->n++] = e;
  return c->limit && p->n >= c->limit;
}

static int collect_fn(void *arg, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t len) {
  collect *c = arg;
  (void)key;
  (void)key_len;
  if (!c->by_ref) return page_add(c, value, len);
  Whisper__Store__HistoryRef *r = whisper__store__history_ref__unpack(&wh_pb_alloc, len, value);
  if (r == NULL || r->history_key.len != HKEY_LEN) {
    if (r) whisper__store__history_ref__free_unpacked(r, &wh_pb_alloc);
    c->rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "an outbox entry is corrupt");
    return 1;
  }
  whisper_buf *b = NULL;
  int rc = wh_get(c->ctx, WHISPER_REC_HISTORY, r->history_key.data, HKEY_LEN, &b);
  whisper__store__history_ref__free_unpacked(r, &wh_pb_alloc);
  if (rc != WHISPER_OK) {
    c->rc = rc == WHISPER_ENOTFOUND ? WHISPER_ECORRUPT : rc;
    return 1;
  }
  int stop = page_add(c, b->data, b->len);
  whisper_buf_free(b);
  return stop;
}

static int page_run(whisper_ctx *ctx, int kind, const char *conversation, const uint8_t *prefix,
                    size_t prefix_len, const uint8_t *bound, size_t bound_len, int descending,
                    size_t limit, whisper_page **out) {
  whisper_page *p = calloc(1, sizeof *p);
  if (p == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  collect c = {p, ctx, WHISPER_OK, kind == WHISPER_REC_OUTBOX, conversation, limit};
  /* operations in history are skipped: read on until `limit` messages */
  int rc = ctx->store->ops.scan(ctx->store->user, kind, prefix, prefix_len, bound, bound_len,
                                descending, c.by_ref || limit == 0 ? limit : SIZE_MAX, collect_fn, &c);
  if (rc == WHISPER_OK) rc = c.rc;
  if (rc != WHISPER_OK) {
    whisper_page_free(p);
    return wh_fail(ctx, rc, "reading history failed (%s)", whisper_strerror(rc));
  }
  *out = p;
  return WHISPER_OK;
}

int whisper_history_page(whisper_ctx *ctx, const char *conv, uint64_t before_sort_key,
                         const uint8_t *before, size_t before_len, size_t limit,
                         whisper_page **out) {
  tags t;
  uint8_t bound[HKEY_LEN];
  if (ctx == NULL) return WHISPER_EINVAL;
  if (out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  *out = NULL;
  int rc = need_scan(ctx);
  if (rc == WHISPER_OK && (conv == NULL || strlen(conv) == 0 || strlen(conv) > WH_NAME_MAX))
    rc = wh_fail(ctx, WHISPER_EINVAL, "bad conversation");
  if (rc == WHISPER_OK && before && (before_len == 0 || before_len > WHISPER_MESSAGE_ID_MAX))
    rc = wh_fail(ctx, WHISPER_EINVAL, "bad cursor");
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = make_tags(ctx, &t, conv, before, before_len);
  if (rc == WHISPER_OK && before) history_key(bound, &t, before_sort_key);
  if (rc == WHISPER_OK)
    rc = page_run(ctx, WHISPER_REC_HISTORY, conv, t.conv, TAG_LEN, before ? bound : NULL, HKEY_LEN,
                  1, limit, out);
  rc = wh_finish(ctx, rc); /* read-only; the salt may have been made */
  if (rc != WHISPER_OK) {
    whisper_page_free(*out);
    *out = NULL;
    return rc;
  }
  return wh_ok(ctx);
}

int whisper_outbox_page(whisper_ctx *ctx, size_t limit, whisper_page **out) {
  if (ctx == NULL) return WHISPER_EINVAL;
  if (out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  *out = NULL;
  int rc = need_scan(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = page_run(ctx, WHISPER_REC_OUTBOX, NULL, NULL, 0, NULL, 0, 0, limit, out);
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) {
    whisper_page_free(*out);
    *out = NULL;
    return rc;
  }
  return wh_ok(ctx);
}

size_t whisper_page_count(const whisper_page *p) { return p ? p->n : 0; }

const whisper_message_t *whisper_page_get(const whisper_page *p, size_t i) {
  return p && i < p->n ? &p->msgs[i] : NULL;
}

const whisper_reaction_t *whisper_message_reaction(const whisper_message_t *m, size_t i) {
  if (m == NULL || m->reactions == NULL || i >= m->n_reactions) return NULL;
  return WHISPER_MESSAGE_REACTION(m, i);
}

void whisper_page_free(whisper_page *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->n; i++) {
    whisper__store__history_entry__free_unpacked(p->entries[i], &wh_pb_alloc);
    free(p->reactions[i]);
  }
  free(p->reactions);
  free(p->entries);
  free(p->msgs);
  free(p);
}

/* --- content: replies, forwards, edits, deletes, reactions (internal.h) ------------------- */

/* Sets the content fields of a new entry from `x` (q: storage for its quote). */
static void entry_extra(Whisper__Store__HistoryEntry *e, Whisper__Store__QuoteRef *q,
                        const wh_entry_extra *x) {
  if (x == NULL) return;
  if (x->kind) e->has_kind = 1, e->kind = (uint32_t)x->kind;
  if (x->content) {
    e->has_content = 1;
    e->content = (ProtobufCBinaryData){x->content_len, (uint8_t *)x->content};
  }
  if (x->quote_id) {
    whisper__store__quote_ref__init(q);
    q->has_id = 1;
    q->id = (ProtobufCBinaryData){x->quote_id_len, (uint8_t *)x->quote_id};
    q->sender = (char *)x->quote_sender;
    q->excerpt = (char *)x->quote_excerpt;
    e->quote = q;
  }
  if (x->forwarded) e->has_forwarded = 1, e->forwarded = x->forwarded;
  if (x->hidden) e->has_hidden = e->hidden = 1;
}

static int extra_check(whisper_ctx *ctx, const wh_entry_extra *x) {
  if (x == NULL) return WHISPER_OK;
  if (x->kind < WHISPER_KIND_TEXT || x->kind > WHISPER_KIND_ATTACHMENT ||
      (x->content == NULL && x->content_len) ||
      (x->quote_id && (x->quote_id_len == 0 || x->quote_id_len > WHISPER_MESSAGE_ID_MAX)) ||
      (x->quote_sender && (strlen(x->quote_sender) == 0 || strlen(x->quote_sender) > WH_NAME_MAX)) ||
      (x->quote_excerpt && strlen(x->quote_excerpt) > WH_EXCERPT_MAX))
    return wh_fail(ctx, WHISPER_EINVAL, "bad message content");
  return WHISPER_OK;
}

/* The entry of (conv, sender, id): an incoming one by its sender tag, this
 * account's own (sender NULL) by its index. WHISPER_ENOTFOUND if none. */
static int target_find(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                       size_t id_len, uint8_t hkey[HKEY_LEN], Whisper__Store__HistoryEntry **e) {
  tags t;
  *e = NULL;
  int rc;
  if (sender == NULL) {
    rc = make_tags(ctx, &t, conv, id, id_len);
    if (rc == WHISPER_OK) rc = find(ctx, t.msg, hkey);
  } else {
    uint8_t st[TAG_LEN];
    rc = who_tag(ctx, 's', conv, sender, id, id_len, st);
    if (rc == WHISPER_OK) rc = find(ctx, st, hkey);
  }
  if (rc != WHISPER_OK) return rc;
  whisper_buf *b = NULL;
  rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &b);
  if (rc != WHISPER_OK) return rc; /* an index left by a removed placeholder: not there */
  *e = whisper__store__history_entry__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (*e == NULL || !entry_ok(*e, conv) || (sender && ((*e)->sender == NULL ||
                                                       strcmp((*e)->sender, sender) != 0)) ||
      (sender == NULL && (*e)->sender != NULL)) {
    if (*e) whisper__store__history_entry__free_unpacked(*e, &wh_pb_alloc);
    *e = NULL;
    return wh_fail(ctx, WHISPER_ECORRUPT, "a history entry is corrupt");
  }
  return WHISPER_OK;
}

static int too_late(const Whisper__Store__HistoryEntry *e, const wh_history_op *op) {
  return op->window && op->at > e->timestamp && op->at - e->timestamp > op->window;
}

/* A copy of n bytes (NUL-terminated) from the unpack allocator, so that a
 * decoded entry that holds it frees it (and wipes it) as its own. */
static void *pb_dup(const void *src, size_t n) {
  uint8_t *d = wh_pb_alloc.alloc(NULL, n + 1);
  if (d == NULL) return NULL;
  if (n) memcpy(d, src, n);
  d[n] = 0;
  return d;
}

static void pb_free(void *p) { wh_pb_alloc.free(NULL, p); }

/* Applies `op` to the decoded entry `e` (everything it puts in e is e's to
 * free): WHISPER_OK (changed, or already so: *changed 0), WHISPER_EDENIED,
 * WHISPER_ENOMEM. */
static int op_on(whisper_ctx *ctx, Whisper__Store__HistoryEntry *e, const wh_history_op *op,
                 int *changed) {
  *changed = 0;
  if (e->hidden) return wh_fail(ctx, WHISPER_EDENIED, "that is not a message");
  if (e->deleted)
    return op->kind == WH_OP_DELETE ? WHISPER_OK
                                    : wh_fail(ctx, WHISPER_EDENIED, "that message was deleted for everyone");
  switch (op->kind) {
  case WH_OP_EDIT: {
    if (e->kind != WHISPER_KIND_TEXT) return wh_fail(ctx, WHISPER_EDENIED, "only a text can be edited");
    if (too_late(e, op)) return wh_fail(ctx, WHISPER_EDENIED, "too late to edit that message");
    if (op->at <= e->edited_at) return WHISPER_OK; /* a newer edit is in */
    uint8_t *body = pb_dup(op->text, op->text_len);
    if (body == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    pb_free(e->body.data);
    e->body = (ProtobufCBinaryData){op->text_len, body};
    e->has_body = e->has_edited_at = 1;
    e->edited_at = op->at;
    *changed = 1;
    return WHISPER_OK;
  }
  case WH_OP_OPENED:
    if (e->kind != WHISPER_KIND_ATTACHMENT || !e->has_content) return WHISPER_OK; /* (already) */
    wh_wipe(e->content.data, e->content.len); /* the key goes with it */
    pb_free(e->content.data);
    e->content = (ProtobufCBinaryData){0, NULL};
    e->has_content = 0;
    wh_wipe(e->body.data, e->body.len);
    pb_free(e->body.data);
    e->body = (ProtobufCBinaryData){0, NULL};
    *changed = 1;
    return WHISPER_OK;
  case WH_OP_DELETE:
    if (too_late(e, op)) return wh_fail(ctx, WHISPER_EDENIED, "too late to delete that message");
    pb_free(e->body.data);
    e->body = (ProtobufCBinaryData){0, NULL};
    if (e->has_content) { /* an attachment's key goes too */
      wh_wipe(e->content.data, e->content.len);
      pb_free(e->content.data);
      e->content = (ProtobufCBinaryData){0, NULL};
      e->has_content = 0;
    }
    if (e->quote) whisper__store__quote_ref__free_unpacked(e->quote, &wh_pb_alloc);
    e->quote = NULL;
    for (size_t i = 0; i < e->n_reactions; i++)
      whisper__store__reaction__free_unpacked(e->reactions[i], &wh_pb_alloc);
    pb_free(e->reactions);
    e->reactions = NULL;
    e->n_reactions = 0;
    e->has_deleted = e->deleted = 1;
    *changed = 1;
    return WHISPER_OK;
  case WH_OP_REACT: {
    Whisper__Store__Reaction *r = NULL;
    for (size_t i = 0; i < e->n_reactions && r == NULL; i++)
      if (strcmp(e->reactions[i]->reactor, op->author) == 0) r = e->reactions[i];
    if (r && r->at >= op->at) return WHISPER_OK; /* a newer reaction is in */
    char *emoji = pb_dup(op->text, op->text_len);
    if (emoji == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    if (r == NULL) {
      if (e->n_reactions >= WH_REACTORS_MAX) {
        pb_free(emoji);
        return wh_fail(ctx, WHISPER_EDENIED, "too many reactions to that message");
      }
      Whisper__Store__Reaction **rs = wh_pb_alloc.alloc(NULL, (e->n_reactions + 1) * sizeof *rs);
      r = rs ? wh_pb_alloc.alloc(NULL, sizeof *r) : NULL;
      char *who = r ? pb_dup(op->author, strlen(op->author)) : NULL;
      if (who == NULL) {
        pb_free(r);
        pb_free(rs);
        pb_free(emoji);
        return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
      }
      whisper__store__reaction__init(r);
      r->reactor = who;
      if (e->n_reactions) memcpy(rs, e->reactions, e->n_reactions * sizeof *rs);
      rs[e->n_reactions++] = r;
      pb_free(e->reactions);
      e->reactions = rs;
    }
    pb_free(r->emoji);
    r->emoji = emoji;
    r->has_at = 1;
    r->at = op->at;
    *changed = 1;
    return WHISPER_OK;
  }
  default:
    return wh_fail(ctx, WHISPER_EINVAL, "unknown operation");
  }
}

/* Applies op to the stored entry e at hkey (in the caller's transaction);
 * frees e. */
static int apply_to(whisper_ctx *ctx, const uint8_t hkey[HKEY_LEN], Whisper__Store__HistoryEntry *e,
                    const wh_history_op *op) {
  int changed = 0;
  /* an edit or delete changes the words search finds: the old ones out
   * (if indexed yet), and an edit queued again (its new text indexed later) */
  whisper_buf *old = NULL;
  if ((op->kind == WH_OP_EDIT || op->kind == WH_OP_DELETE) &&
      (old = whisper_buf_new(e->body.data, e->body.len)) == NULL) {
    whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
    return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  }
  int rc = op_on(ctx, e, op, &changed);
  if (rc == WHISPER_OK && changed) rc = wh_put_msg(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &e->base);
  if (rc == WHISPER_OK && changed && old) {
    whisper_message_t m = {.size = sizeof(whisper_message_t),
                           .conversation = e->conversation, .id = e->id.data, .id_len = e->id.len,
                           .sort_key = e->sort_key, .timestamp_ms = e->timestamp};
    rc = wh_search_remove(ctx, &m, old->data, old->len);
    if (rc == WHISPER_OK && op->kind == WH_OP_EDIT && e->body.len)
      rc = wh_search_queue(ctx, hkey, e->timestamp);
  }
  whisper_buf_free(old);
  whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  return rc;
}

int wh_history_lookup(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                      size_t id_len, wh_found *out) {
  uint8_t hkey[HKEY_LEN];
  Whisper__Store__HistoryEntry *e = NULL;
  memset(out, 0, sizeof *out);
  if (id == NULL || id_len == 0 || id_len > WHISPER_MESSAGE_ID_MAX)
    return wh_fail(ctx, WHISPER_EINVAL, "bad message id");
  int rc = target_find(ctx, conv, sender, id, id_len, hkey, &e);
  if (rc != WHISPER_OK) return rc;
  if ((out->body = whisper_buf_new(e->body.data, e->body.len)) == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK && e->has_content &&
      (out->content = whisper_buf_new(e->content.data, e->content.len)) == NULL)
    rc = WHISPER_ENOMEM;
  out->kind = (int)e->kind;
  out->deleted = e->deleted;
  out->hidden = e->hidden;
  out->forwarded = e->forwarded;
  whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  return rc;
}

int wh_history_pending_key(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                           size_t id_len, uint8_t out[TAG_LEN]) {
  return who_tag(ctx, 'p', conv, sender, id, id_len, out);
}

void wh_found_free(wh_found *f) {
  whisper_buf_free(f->body);
  whisper_buf_free(f->content);
  f->body = f->content = NULL;
}

/* Keeps op until its message comes (at most WH_PENDING_MAX per message:
 * the oldest go). */
static int pending_add(whisper_ctx *ctx, const uint8_t ptag[TAG_LEN], const wh_history_op *op) {
  whisper_buf *b = NULL;
  Whisper__Store__PendingOps *old = NULL;
  int rc = wh_get(ctx, WHISPER_REC_MESSAGE_INDEX, ptag, TAG_LEN, &b);
  if (rc == WHISPER_OK) {
    old = whisper__store__pending_ops__unpack(&wh_pb_alloc, b->len, b->data);
    whisper_buf_free(b);
    /* a corrupt list only loses what waited in it */
  } else if (rc != WHISPER_ENOTFOUND) {
    return rc;
  }
  size_t n = old ? old->n_ops : 0, skip = n >= WH_PENDING_MAX ? n - WH_PENDING_MAX + 1 : 0;
  Whisper__Store__PendingOps__Op **ops = calloc(n - skip + 1, sizeof *ops), one;
  if (ops == NULL) {
    if (old) whisper__store__pending_ops__free_unpacked(old, &wh_pb_alloc);
    return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  }
  for (size_t i = skip; i < n; i++) ops[i - skip] = old->ops[i];
  whisper__store__pending_ops__op__init(&one);
  one.has_kind = one.has_at = one.has_text = one.has_window = 1;
  one.kind = (uint32_t)op->kind;
  one.author = (char *)op->author;
  one.at = op->at;
  one.text = (ProtobufCBinaryData){op->text_len, (uint8_t *)op->text};
  one.window = op->window;
  ops[n - skip] = &one;
  Whisper__Store__PendingOps po = WHISPER__STORE__PENDING_OPS__INIT;
  po.n_ops = n - skip + 1;
  po.ops = ops;
  rc = wh_put_msg(ctx, WHISPER_REC_MESSAGE_INDEX, ptag, TAG_LEN, &po.base);
  free(ops);
  if (old) whisper__store__pending_ops__free_unpacked(old, &wh_pb_alloc);
  return rc;
}

int wh_history_apply(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                     size_t id_len, const wh_history_op *op, int *pending) {
  uint8_t hkey[HKEY_LEN], ptag[TAG_LEN];
  Whisper__Store__HistoryEntry *e = NULL;
  *pending = 0;
  if (id == NULL || id_len == 0 || id_len > WHISPER_MESSAGE_ID_MAX ||
      (op->kind == WH_OP_REACT && (op->author == NULL || op->text_len > WH_EMOJI_MAX)))
    return wh_fail(ctx, WHISPER_EINVAL, "bad operation");
  int rc = target_find(ctx, conv, sender, id, id_len, hkey, &e);
  if (rc == WHISPER_OK) return apply_to(ctx, hkey, e, op);
  if (rc != WHISPER_ENOTFOUND) return rc;
  if ((rc = who_tag(ctx, 'p', conv, sender, id, id_len, ptag)) != WHISPER_OK) return rc;
  *pending = 1;
  return pending_add(ctx, ptag, op);
}

/* Applies what waited for (conv, sender, id), just stored at hkey. An op
 * refused now (too late, not a text) is dropped. */
static int pending_run(whisper_ctx *ctx, const char *conv, const char *sender, const uint8_t *id,
                       size_t id_len, const uint8_t hkey[HKEY_LEN]) {
  uint8_t ptag[TAG_LEN];
  whisper_buf *b = NULL;
  int rc = who_tag(ctx, 'p', conv, sender, id, id_len, ptag);
  if (rc == WHISPER_OK) rc = wh_get(ctx, WHISPER_REC_MESSAGE_INDEX, ptag, TAG_LEN, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__PendingOps *po = whisper__store__pending_ops__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  for (size_t i = 0; po && i < po->n_ops && rc == WHISPER_OK; i++) {
    const Whisper__Store__PendingOps__Op *o = po->ops[i];
    wh_history_op op = {(int)o->kind, o->author, o->at, o->text.data, o->text.len, o->window};
    if ((op.kind == WH_OP_REACT && (o->author == NULL || o->text.len > WH_EMOJI_MAX)) ||
        (op.kind != WH_OP_EDIT && op.kind != WH_OP_DELETE && op.kind != WH_OP_REACT))
      continue;
    whisper_buf *cur = NULL;
    Whisper__Store__HistoryEntry *e = NULL;
    if ((rc = wh_get(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &cur)) != WHISPER_OK) break;
    e = whisper__store__history_entry__unpack(&wh_pb_alloc, cur->len, cur->data);
    whisper_buf_free(cur);
    if (e == NULL) {
      rc = wh_fail(ctx, WHISPER_ECORRUPT, "a history entry is corrupt");
      break;
    }
    int r = apply_to(ctx, hkey, e, &op);
    if (r != WHISPER_EDENIED && r != WHISPER_EINVAL) rc = r;
  }
  if (po) whisper__store__pending_ops__free_unpacked(po, &wh_pb_alloc);
  if (rc == WHISPER_OK) rc = wh_del(ctx, WHISPER_REC_MESSAGE_INDEX, ptag, TAG_LEN);
  return rc == WHISPER_ENOTFOUND ? WHISPER_OK : rc;
}

/* --- for group decrypt-and-store and the client engine (internal.h) ---------------------- */

int wh_history_incoming_check(whisper_ctx *ctx, const whisper_message_t *meta) {
  tags t;
  int rc = need_scan(ctx);
  if (rc == WHISPER_OK) rc = check_message(ctx, meta);
  if (rc == WHISPER_OK) rc = make_tags(ctx, &t, meta->conversation, meta->id, meta->id_len);
  if (rc == WHISPER_OK) rc = stored_before(ctx, &t, meta->sort_key);
  return rc == 1 ? dup_stored(ctx) : rc;
}

int wh_history_incoming_put(whisper_ctx *ctx, const whisper_message_t *meta, const char *sender,
                            uint32_t device_id, const uint8_t *pt, size_t pt_len) {
  return wh_history_incoming_put_ex(ctx, meta, sender, device_id, pt, pt_len, NULL);
}

int wh_history_incoming_put_ex(whisper_ctx *ctx, const whisper_message_t *meta, const char *sender,
                               uint32_t device_id, const uint8_t *pt, size_t pt_len,
                               const wh_entry_extra *x) {
  tags t;
  uint8_t hkey[HKEY_LEN];
  int rc = extra_check(ctx, x);
  if (rc == WHISPER_OK) rc = make_tags(ctx, &t, meta->conversation, meta->id, meta->id_len);
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__HistoryEntry e = WHISPER__STORE__HISTORY_ENTRY__INIT;
  Whisper__Store__QuoteRef q;
  incoming_entry(&e, meta, sender, device_id, pt, pt_len);
  entry_extra(&e, &q, x);
  rc = entry_store(ctx, &t, &e, hkey);
  if (rc == WHISPER_OK && pt_len) rc = wh_search_queue(ctx, hkey, meta->timestamp_ms); /* search.c */
  /* without content (a placeholder, a notice, the decrypt-and-store API):
   * nothing acts on it */
  if (x == NULL) return rc;
  /* found by its sender and id; then what came for it before it */
  uint8_t st[TAG_LEN];
  if (rc == WHISPER_OK && (rc = who_tag(ctx, 's', meta->conversation, sender, meta->id,
                                        meta->id_len, st)) == WHISPER_OK)
    rc = put_ref(ctx, WHISPER_REC_MESSAGE_INDEX, st, TAG_LEN, hkey);
  if (rc == WHISPER_OK) rc = pending_run(ctx, meta->conversation, sender, meta->id, meta->id_len, hkey);
  return rc;
}

int wh_history_outgoing_get(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                            whisper_buf **body, uint64_t *timestamp_ms) {
  return wh_history_outgoing_get_ex(ctx, conv, id, id_len, body, NULL, timestamp_ms);
}

int wh_history_outgoing_get_ex(whisper_ctx *ctx, const char *conv, const uint8_t *id,
                               size_t id_len, whisper_buf **body, whisper_buf **content,
                               uint64_t *timestamp_ms) {
  tags t;
  uint8_t hkey[HKEY_LEN];
  Whisper__Store__HistoryEntry *e = NULL;
  *body = NULL;
  if (content) *content = NULL;
  int rc = check_ref(ctx, conv, id, id_len);
  if (rc == WHISPER_OK) rc = entry_find(ctx, conv, id, id_len, &t, hkey, &e);
  if (rc == WHISPER_OK && e->sender != NULL) rc = wh_fail(ctx, WHISPER_EINVAL, "not an outgoing message");
  if (rc == WHISPER_OK && (*body = whisper_buf_new(e->body.data, e->body.len)) == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK && content && e->has_content &&
      (*content = whisper_buf_new(e->content.data, e->content.len)) == NULL)
    rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK) *timestamp_ms = e->timestamp;
  if (rc != WHISPER_OK) {
    whisper_buf_free(*body);
    *body = NULL;
  }
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  return rc;
}

void wh_page_content(const whisper_page *p, size_t i, const uint8_t **content, size_t *len,
                     int *hidden) {
  *content = NULL;
  *len = 0;
  *hidden = p && i < p->n && p->entries[i]->hidden;
  if (p && i < p->n && p->entries[i]->has_content) {
    *content = p->entries[i]->content.data;
    *len = p->entries[i]->content.len;
  }
}

int wh_history_incoming_del(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                            uint64_t sort_key) {
  tags t;
  uint8_t hkey[HKEY_LEN];
  int rc = make_tags(ctx, &t, conv, id, id_len);
  if (rc != WHISPER_OK) return rc;
  history_key(hkey, &t, sort_key);
  rc = wh_search_forget(ctx, hkey); /* search.c */
  if (rc == WHISPER_OK) rc = wh_del(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN);
  return rc == WHISPER_ENOTFOUND ? WHISPER_OK : rc;
}

int wh_history_recipients(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                          const whisper_device_t *devs, size_t n, int exact) {
  tags t;
  uint8_t hkey[HKEY_LEN];
  Whisper__Store__HistoryEntry *e = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = check_ref(ctx, conv, id, id_len);
  if (rc != WHISPER_OK) return rc;
  if ((devs == NULL && n) || n > 100000) return wh_fail(ctx, WHISPER_EINVAL, "bad recipient list");
  for (size_t i = 0; i < n; i++) {
    wh_addr a;
    if ((rc = wh_addr_make(ctx, &a, devs[i].name, devs[i].device_id)) != WHISPER_OK) return rc;
  }
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = entry_find(ctx, conv, id, id_len, &t, hkey, &e);
  if (rc == WHISPER_OK && e->sender != NULL)
    rc = wh_fail(ctx, WHISPER_EINVAL, "not an outgoing message");
  size_t cap = (e ? e->n_statuses : 0) + n, m = 0, fresh = 0;
  Whisper__Store__DeliveryStatus **keep = NULL, *add = NULL;
  if (rc == WHISPER_OK && ((keep = calloc(cap ? cap : 1, sizeof *keep)) == NULL ||
                           (add = calloc(n ? n : 1, sizeof *add)) == NULL))
    rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  int changed = 0;
  for (size_t i = 0; rc == WHISPER_OK && i < e->n_statuses; i++) {
    Whisper__Store__DeliveryStatus *d = e->statuses[i];
    int listed = !exact;
    for (size_t j = 0; !listed && j < n; j++)
      listed = strcmp(devs[j].name, d->name) == 0 && devs[j].device_id == d->device;
    if (listed) keep[m++] = d;
    else changed = 1;
  }
  for (size_t j = 0; rc == WHISPER_OK && j < n; j++) {
    int have = 0;
    for (size_t i = 0; !have && i < e->n_statuses; i++)
      have = strcmp(devs[j].name, e->statuses[i]->name) == 0 && devs[j].device_id == e->statuses[i]->device;
    for (size_t i = 0; !have && i < fresh; i++)
      have = strcmp(devs[j].name, add[i].name) == 0 && devs[j].device_id == add[i].device;
    if (have) continue;
    Whisper__Store__DeliveryStatus *d = &add[fresh++];
    whisper__store__delivery_status__init(d);
    d->name = (char *)devs[j].name;
    d->has_device = d->has_status = 1;
    d->device = devs[j].device_id;
    d->status = e->outbox_seq ? WHISPER_STATUS_PENDING : WHISPER_STATUS_SENT;
    keep[m++] = d;
    changed = 1;
  }
  if (rc == WHISPER_OK && changed) {
    Whisper__Store__DeliveryStatus **old = e->statuses;
    size_t n_old = e->n_statuses;
    e->statuses = keep;
    e->n_statuses = m;
    rc = wh_put_msg(ctx, WHISPER_REC_HISTORY, hkey, HKEY_LEN, &e->base);
    e->statuses = old;
    e->n_statuses = n_old;
  }
  free(keep);
  free(add);
  if (e) whisper__store__history_entry__free_unpacked(e, &wh_pb_alloc);
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* --- for search.c (internal.h) ----------------------------------------------------------- */

int wh_history_salt(whisper_ctx *ctx, uint8_t salt[TAG_LEN]) { return history_salt(ctx, salt); }

int wh_history_tags(whisper_ctx *ctx, const char *conv, const uint8_t *id, size_t id_len,
                    uint8_t conv_tag[TAG_LEN], uint8_t msg_tag[TAG_LEN]) {
  tags t;
  int rc = make_tags(ctx, &t, conv, id, id_len);
  if (rc == WHISPER_OK) memcpy(conv_tag, t.conv, TAG_LEN);
  if (rc == WHISPER_OK && id) memcpy(msg_tag, t.msg, TAG_LEN);
  return rc;
}

whisper_page *wh_page_new(void) { return calloc(1, sizeof(whisper_page)); }

int wh_page_add(whisper_ctx *ctx, whisper_page *p, const uint8_t *entry, size_t len) {
  collect c = {p, ctx, WHISPER_OK, 0, NULL, 0};
  page_add(&c, entry, len);
  return c.rc;
}
