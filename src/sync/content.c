/*
 * Message content (e2e.Content inside the Payload): replies, forwards,
 * reactions, edits, deletes for everyone and call signalling, as the app
 * asks for them. The receiving side is in inbox.c (on_content).
 *
 * A text (with a quote, a reply; with a count, a forward) is a message:
 * history shows it. A reaction, edit or delete is an operation on another
 * message: this device applies it at once, in the transaction that puts
 * it in the outbox as a hidden entry (sent like a message, never shown),
 * and every receiver applies it when it comes, or when its message comes
 * if it came first (history.c keeps it). Call signalling is a hidden
 * entry too: only the event shows.
 *
 * Nothing here is taken on the server's word: a receiver finds the target
 * by its sender and id, with the sender the session authenticated, so an
 * edit or delete reaches only its author's own messages.
 */
#include <string.h>

#include "sync/sync_internal.h"

/* --- the format ---------------------------------------------------------------------------------- */

static int utf8_ok(const char *s, size_t max) {
  size_t n = strlen(s);
  return n <= max && wh_utf8_valid((const uint8_t *)s, n);
}

static int id_ok(const ProtobufCBinaryData *b) {
  return b->len >= 1 && b->len <= WHISPER_MESSAGE_ID_MAX;
}

static int sender_ok(const char *s) { return s == NULL || wh_account_ok(s); }

/* protobuf-c reads an unknown field numbered 0 but cannot write it back:
 * a Content holding one, at any depth (a pointer, a block entry), is
 * malformed. */
static int no_tag0(const ProtobufCMessage *m) {
  if (m == NULL) return 1;
  for (size_t i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) return 0;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned f = 0; f < d->n_fields; f++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[f];
    if (fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *at = (const char *)m + fd->offset;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + fd->quantifier_offset);
      ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)at;
      for (size_t k = 0; k < n; k++)
        if (!no_tag0(v[k])) return 0;
    } else if (!no_tag0(*(ProtobufCMessage *const *)at)) {
      return 0;
    }
  }
  return 1;
}

static int opt_utf8(const char *s, size_t max) { return s == NULL || utf8_ok(s, max); }

/* A pointer the engine can use: a blob id the URL path takes, a key, a
 * digest, sizes in range; the metadata within the limits client.h gives. */
int sy_attachment_ok(const Whisper__E2e__AttachmentPointer *p) {
  if (p == NULL || !no_tag0(&p->base) || p->blob_id == NULL || p->blob_id[0] == 0 ||
      strlen(p->blob_id) > 128 || p->key.len != WHISPER_ATTACHMENT_KEY_LEN ||
      p->digest.len != WHISPER_ATTACHMENT_DIGEST_LEN || p->size > WHISPER_ATTACHMENT_SIZE_MAX ||
      (p->has_plaintext_hash && p->plaintext_hash.len != WHISPER_ATTACHMENT_DIGEST_LEN) ||
      p->thumbnail.len > WHISPER_MEDIA_THUMBNAIL_MAX || !opt_utf8(p->content_type, WHISPER_MEDIA_TYPE_MAX) ||
      !opt_utf8(p->file_name, WHISPER_MEDIA_NAME_MAX) || !opt_utf8(p->caption, WHISPER_MEDIA_CAPTION_MAX) ||
      (p->file_name && strchr(p->file_name, '/')))
    return 0;
  for (const char *s = p->blob_id; *s; s++) /* it goes into a URL path */
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '_'))
      return 0;
  if (p->incremental_mac.len) /* the decryptor checks the rest */
    return p->chunk_size >= 16 && p->chunk_size <= WHISPER_ATTACHMENT_CHUNK_MAX &&
           p->incremental_mac.len % 32 == 0;
  return 1;
}

Whisper__E2e__Content *sy_content_parse(const uint8_t *data, size_t len) {
  Whisper__E2e__Content *ct = whisper__e2e__content__unpack(&wh_pb_alloc, len, data);
  if (ct == NULL) return NULL;
  int ok = no_tag0(&ct->base); /* (every message inside it too) */
  if (ok) switch (ct->kind) {
  case WHISPER__E2E__CONTENT__KIND__TEXT:
    ok = ct->text != NULL && utf8_ok(ct->text, SY_TEXT_MAX) &&
         (ct->quote == NULL ||
          (ct->quote->has_id && id_ok(&ct->quote->id) && sender_ok(ct->quote->sender) &&
           (ct->quote->excerpt == NULL || utf8_ok(ct->quote->excerpt, WH_EXCERPT_MAX))));
    break;
  case WHISPER__E2E__CONTENT__KIND__REACTION:
  case WHISPER__E2E__CONTENT__KIND__EDIT:
  case WHISPER__E2E__CONTENT__KIND__DELETE:
    ok = ct->target && ct->target->has_id && id_ok(&ct->target->id) && sender_ok(ct->target->sender);
    if (ct->kind == WHISPER__E2E__CONTENT__KIND__REACTION)
      ok = ok && ct->emoji && utf8_ok(ct->emoji, WH_EMOJI_MAX);
    if (ct->kind == WHISPER__E2E__CONTENT__KIND__EDIT)
      ok = ok && ct->text && utf8_ok(ct->text, SY_TEXT_MAX);
    break;
  case WHISPER__E2E__CONTENT__KIND__ATTACHMENT:
    ok = sy_attachment_ok(ct->attachment);
    break;
  case WHISPER__E2E__CONTENT__KIND__OPENED:
    ok = ct->target && ct->target->has_id && id_ok(&ct->target->id) && sender_ok(ct->target->sender) &&
         ct->text && utf8_ok(ct->text, WH_NAME_MAX);
    break;
  case WHISPER__E2E__CONTENT__KIND__CALL:
    ok = ct->call && ct->call->has_call_id && ct->call->call_id.len == WHISPER_CALL_ID_LEN &&
         ct->call->type >= WHISPER_CALL_OFFER && ct->call->type <= WHISPER_CALL_BUSY &&
         ct->call->data.len <= WHISPER_CALL_DATA_MAX;
    break;
  default: /* a kind of a newer version: kept as it came */
    break;
  }
  if (!ok) {
    whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
    return NULL;
  }
  return ct;
}

int sy_content_known(uint32_t kind) {
  return kind == WHISPER__E2E__CONTENT__KIND__TEXT || kind == WHISPER__E2E__CONTENT__KIND__REACTION ||
         kind == WHISPER__E2E__CONTENT__KIND__EDIT || kind == WHISPER__E2E__CONTENT__KIND__DELETE ||
         kind == WHISPER__E2E__CONTENT__KIND__CALL || kind == WHISPER__E2E__CONTENT__KIND__ATTACHMENT;
}

static int pack(const Whisper__E2e__Content *ct, whisper_buf **out) {
  size_t n = whisper__e2e__content__get_packed_size(ct);
  if ((*out = whisper_buf_new(NULL, n)) == NULL) return WHISPER_ENOMEM;
  whisper__e2e__content__pack(ct, (*out)->data);
  return WHISPER_OK;
}

/* The longest prefix of s (n bytes) of at most max bytes that ends on a
 * character boundary. */
static size_t cut_utf8(const uint8_t *s, size_t n, size_t max) {
  if (n <= max) return n;
  size_t k = max;
  while (k > 0 && (s[k] & 0xC0) == 0x80) k--;
  return k;
}

/* --- what the app does ------------------------------------------------------------------------- */

static int check_conv(whisper_client *c, const char *conv) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (conv == NULL || (!wh_group_conv_parse(conv, gid) && (!wh_account_ok(conv) || strcmp(conv, c->account) == 0)))
    return sy_fail(c, WHISPER_EINVAL, "a conversation is an account name or a group's conversation");
  return WHISPER_OK;
}

const char *sy_local_sender(const whisper_client *c, const char *sender) {
  return sender == NULL || strcmp(sender, c->account) == 0 ? NULL : sender;
}

static int check_target(whisper_client *c, const uint8_t *id, size_t id_len, const char *sender) {
  if (id == NULL || id_len == 0 || id_len > WHISPER_MESSAGE_ID_MAX || !sender_ok(sender))
    return sy_fail(c, WHISPER_EINVAL, "a message is named by its id (1-64 bytes) and sender's account");
  return WHISPER_OK;
}

/* A message of history to quote or forward. */
static int read_message(whisper_client *c, const char *conv, const char *sender, const uint8_t *id,
                        size_t id_len, int attachments, wh_found *f) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  rc = wh_finish(c->ctx, wh_history_lookup(c->ctx, conv, sy_local_sender(c, sender), id, id_len, f));
  if (rc == WHISPER_OK && f->hidden) {
    wh_found_free(f);
    rc = WHISPER_ENOTFOUND;
  }
  if (rc == WHISPER_ENOTFOUND) return sy_fail(c, rc, "no such message in that conversation");
  if (rc == WHISPER_OK && (f->deleted || (f->kind != WHISPER_KIND_TEXT && !attachments) ||
                           (f->kind != WHISPER_KIND_TEXT && f->kind != WHISPER_KIND_ATTACHMENT))) {
    int deleted = f->deleted;
    wh_found_free(f);
    return sy_fail(c, WHISPER_EDENIED, deleted ? "that message was deleted" : "that message is not a text");
  }
  return rc;
}

static int send_text(whisper_client *c, const char *conv, const uint8_t *body, size_t len,
                     const Whisper__E2e__Quote *q, uint32_t forwarded, uint64_t now_ms,
                     uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  if (len > SY_TEXT_MAX || !wh_utf8_valid(body, len) || (len && memchr(body, 0, len)))
    return sy_fail(c, WHISPER_EINVAL, "a text is UTF-8 without NUL, at most %u bytes", SY_TEXT_MAX);
  char *text = malloc(len + 1);
  if (text == NULL) return WHISPER_ENOMEM;
  if (len) memcpy(text, body, len);
  text[len] = 0;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__TEXT;
  ct.text = text;
  ct.quote = (Whisper__E2e__Quote *)q;
  if (forwarded) ct.has_forwarded = 1, ct.forwarded = forwarded;
  whisper_buf *packed = NULL;
  int rc = pack(&ct, &packed);
  if (rc == WHISPER_OK) {
    wh_entry_extra x = {.kind = WHISPER_KIND_TEXT, .content = packed->data, .content_len = packed->len,
                        .forwarded = forwarded};
    if (q) {
      x.quote_id = q->id.data;
      x.quote_id_len = q->id.len;
      x.quote_sender = q->sender;
      x.quote_excerpt = q->excerpt;
    }
    rc = sy_enqueue(c, conv, body, len, &x, NULL, now_ms, id_out);
  }
  whisper_buf_free(packed);
  wh_wipe(text, len);
  free(text);
  return rc;
}

int whisper_client_reply(whisper_client *c, const char *conversation, const uint8_t *quoted_id,
                         size_t quoted_id_len, const char *quoted_sender, const uint8_t *body,
                         size_t body_len, uint64_t now_ms, uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  if (c == NULL) return WHISPER_EINVAL;
  int rc = check_conv(c, conversation);
  if (rc == WHISPER_OK) rc = check_target(c, quoted_id, quoted_id_len, quoted_sender);
  if (rc == WHISPER_OK && ((body == NULL && body_len) || id_out == NULL))
    rc = sy_fail(c, WHISPER_EINVAL, "reply needs a body and id_out");
  wh_found f;
  if (rc == WHISPER_OK) rc = read_message(c, conversation, quoted_sender, quoted_id, quoted_id_len, 1, &f);
  if (rc != WHISPER_OK) return rc;
  size_t ex = cut_utf8(f.body ? f.body->data : NULL, f.body ? f.body->len : 0, WH_EXCERPT_MAX);
  char excerpt[WH_EXCERPT_MAX + 1];
  if (ex) memcpy(excerpt, f.body->data, ex);
  excerpt[ex] = 0;
  wh_found_free(&f);
  Whisper__E2e__Quote q = WHISPER__E2E__QUOTE__INIT;
  q.has_id = 1;
  q.id = (ProtobufCBinaryData){quoted_id_len, (uint8_t *)quoted_id};
  q.sender = (char *)(sy_local_sender(c, quoted_sender) ? quoted_sender : c->account);
  q.excerpt = excerpt;
  rc = send_text(c, conversation, body, body_len, &q, 0, now_ms, id_out);
  wh_wipe(excerpt, sizeof excerpt);
  return rc;
}

/* A forward of an attachment: its pointer with the count, unless it is
 * view-once or its key is gone (opened, deleted). */
static int forward_attachment(whisper_client *c, const char *to, const whisper_buf *content,
                              uint32_t times, uint64_t now_ms, uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  Whisper__E2e__Content *ct =
      content ? whisper__e2e__content__unpack(&wh_pb_alloc, content->len, content->data) : NULL;
  int rc = WHISPER_OK;
  if (ct == NULL || ct->attachment == NULL || ct->attachment->key.len != WHISPER_ATTACHMENT_KEY_LEN)
    rc = sy_fail(c, WHISPER_EDENIED, "that attachment was opened or deleted");
  else if (ct->attachment->flags & WHISPER_MEDIA_VIEW_ONCE)
    rc = sy_fail(c, WHISPER_EDENIED, "a view-once attachment cannot be forwarded");
  whisper_buf *packed = NULL;
  if (rc == WHISPER_OK) {
    ct->has_forwarded = 1;
    ct->forwarded = times;
    ct->has_at_ms = 0;
    rc = pack(ct, &packed);
  }
  if (rc == WHISPER_OK) {
    const char *caption = ct->attachment->caption ? ct->attachment->caption : "";
    wh_entry_extra x = {.kind = WHISPER_KIND_ATTACHMENT, .content = packed->data,
                        .content_len = packed->len, .forwarded = times};
    rc = sy_enqueue(c, to, (const uint8_t *)caption, strlen(caption), &x, NULL, now_ms, id_out);
  }
  whisper_buf_free(packed);
  if (ct) whisper__e2e__content__free_unpacked(ct, &wh_pb_alloc);
  return rc;
}

int whisper_client_forward(whisper_client *c, const char *to_conversation, const char *from_conversation,
                           const uint8_t *id, size_t id_len, const char *sender, uint64_t now_ms,
                           uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  if (c == NULL) return WHISPER_EINVAL;
  int rc = check_conv(c, to_conversation);
  if (rc == WHISPER_OK) rc = check_conv(c, from_conversation);
  if (rc == WHISPER_OK) rc = check_target(c, id, id_len, sender);
  if (rc == WHISPER_OK && id_out == NULL) rc = sy_fail(c, WHISPER_EINVAL, "id_out is NULL");
  wh_found f;
  if (rc == WHISPER_OK) rc = read_message(c, from_conversation, sender, id, id_len, 1, &f);
  if (rc != WHISPER_OK) return rc;
  uint32_t times = f.forwarded < UINT32_MAX ? f.forwarded + 1 : f.forwarded;
  if (f.kind == WHISPER_KIND_ATTACHMENT) { /* the pointer again: nothing is uploaded */
    rc = forward_attachment(c, to_conversation, f.content, times, now_ms, id_out);
    wh_found_free(&f);
    return rc;
  }
  rc = send_text(c, to_conversation, f.body ? f.body->data : NULL, f.body ? f.body->len : 0, NULL,
                 times, now_ms, id_out);
  wh_found_free(&f);
  return rc;
}

/* An operation on message (id, sender) of conv: applied here and sent. */
static int send_op(whisper_client *c, const char *conv, const uint8_t *id, size_t id_len,
                   const char *sender, uint32_t kind, const char *text, uint64_t window,
                   uint64_t now_ms) {
  Whisper__E2e__Target t = WHISPER__E2E__TARGET__INIT;
  t.has_id = 1;
  t.id = (ProtobufCBinaryData){id_len, (uint8_t *)id};
  t.sender = (char *)sy_local_sender(c, sender); /* absent: the sender's own */
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = kind;
  ct.target = &t;
  ct.has_at_ms = 1;
  ct.at_ms = now_ms;
  if (kind == WHISPER__E2E__CONTENT__KIND__REACTION) ct.emoji = (char *)text;
  if (kind == WHISPER__E2E__CONTENT__KIND__EDIT) ct.text = (char *)text;
  whisper_buf *packed = NULL;
  int rc = pack(&ct, &packed);
  if (rc != WHISPER_OK) return rc;
  wh_history_op op = {kind == WHISPER__E2E__CONTENT__KIND__REACTION ? WH_OP_REACT
                      : kind == WHISPER__E2E__CONTENT__KIND__EDIT   ? WH_OP_EDIT
                                                                    : WH_OP_DELETE,
                      c->account, now_ms, (const uint8_t *)text, text ? strlen(text) : 0, window};
  wh_entry_extra x = {.content = packed->data, .content_len = packed->len, .hidden = 1};
  sy_target tg = {sy_local_sender(c, sender), id, id_len, &op};
  uint8_t oid[WHISPER_CLIENT_ID_LEN];
  rc = sy_enqueue(c, conv, NULL, 0, &x, &tg, now_ms, oid);
  whisper_buf_free(packed);
  return rc;
}

int whisper_client_react(whisper_client *c, const char *conversation, const uint8_t *id, size_t id_len,
                         const char *sender, const char *emoji, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  int rc = check_conv(c, conversation);
  if (rc == WHISPER_OK) rc = check_target(c, id, id_len, sender);
  if (rc == WHISPER_OK && (emoji == NULL || !utf8_ok(emoji, WH_EMOJI_MAX)))
    rc = sy_fail(c, WHISPER_EINVAL, "a reaction is one emoji (UTF-8, at most %d bytes)", WH_EMOJI_MAX);
  if (rc != WHISPER_OK) return rc;
  return send_op(c, conversation, id, id_len, sender, WHISPER__E2E__CONTENT__KIND__REACTION, emoji, 0,
                 now_ms);
}

int whisper_client_edit(whisper_client *c, const char *conversation, const uint8_t *id, size_t id_len,
                        const uint8_t *body, size_t body_len, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  int rc = check_conv(c, conversation);
  if (rc == WHISPER_OK) rc = check_target(c, id, id_len, NULL);
  if (rc == WHISPER_OK && ((body == NULL && body_len) || body_len > SY_TEXT_MAX ||
                           !wh_utf8_valid(body, body_len) || (body_len && memchr(body, 0, body_len))))
    rc = sy_fail(c, WHISPER_EINVAL, "an edit's text is UTF-8 without NUL, at most %u bytes", SY_TEXT_MAX);
  if (rc != WHISPER_OK) return rc;
  char *text = malloc(body_len + 1);
  if (text == NULL) return WHISPER_ENOMEM;
  if (body_len) memcpy(text, body, body_len);
  text[body_len] = 0;
  rc = send_op(c, conversation, id, id_len, NULL, WHISPER__E2E__CONTENT__KIND__EDIT, text,
               WHISPER_EDIT_WINDOW_MS, now_ms);
  wh_wipe(text, body_len);
  free(text);
  return rc;
}

int whisper_client_delete(whisper_client *c, const char *conversation, const uint8_t *id, size_t id_len,
                          uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  int rc = check_conv(c, conversation);
  if (rc == WHISPER_OK) rc = check_target(c, id, id_len, NULL);
  if (rc != WHISPER_OK) return rc;
  return send_op(c, conversation, id, id_len, NULL, WHISPER__E2E__CONTENT__KIND__DELETE, NULL,
                 c->cfg.delete_window_ms, now_ms);
}

int whisper_client_call(whisper_client *c, const char *to, int type,
                        const uint8_t call_id[WHISPER_CALL_ID_LEN], const uint8_t *data, size_t data_len,
                        uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  if (!wh_account_ok(to) || strcmp(to, c->account) == 0 || type < WHISPER_CALL_OFFER ||
      type > WHISPER_CALL_BUSY || call_id == NULL || (data == NULL && data_len) ||
      data_len > WHISPER_CALL_DATA_MAX)
    return sy_fail(c, WHISPER_EINVAL, "call needs another account, a WHISPER_CALL_* type, a call id "
                                      "and at most %d bytes of data", WHISPER_CALL_DATA_MAX);
  Whisper__E2e__Call call = WHISPER__E2E__CALL__INIT;
  call.has_call_id = call.has_type = call.has_data = 1;
  call.call_id = (ProtobufCBinaryData){WHISPER_CALL_ID_LEN, (uint8_t *)call_id};
  call.type = (uint32_t)type;
  call.data = (ProtobufCBinaryData){data_len, (uint8_t *)data};
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__CALL;
  ct.call = &call;
  whisper_buf *packed = NULL;
  int rc = pack(&ct, &packed);
  if (rc != WHISPER_OK) return rc;
  wh_entry_extra x = {.content = packed->data, .content_len = packed->len, .hidden = 1};
  uint8_t oid[WHISPER_CLIENT_ID_LEN];
  rc = sy_enqueue(c, to, NULL, 0, &x, NULL, now_ms, oid);
  whisper_buf_free(packed);
  return rc;
}
