/*
 * Per-conversation flags (mute, archive, pin), kept in step across the
 * account's devices: a SETTINGS content sent to this account's other
 * devices only (a Send to oneself), the newest setting by the setting
 * device's clock winning; and the mutes told to the server
 * (PresenceSet.mutes, at each login and on each change) so that it wakes
 * no device for a muted conversation.
 */
#include "sync/sync_internal.h"
#include "versioned.h"

#define FLAGS_MAX 10000 /* conversations with a flag */

static const uint8_t FLAGS_KEY[] = "f";

static Whisper__Client__ConversationFlags *flags_load(whisper_client *c, int *rc) {
  whisper_buf *b = NULL;
  *rc = sy_rec_get(c, FLAGS_KEY, 1, &b);
  if (*rc == WHISPER_ENOTFOUND) {
    *rc = WHISPER_OK;
    return NULL;
  }
  if (*rc != WHISPER_OK) return NULL;
  Whisper__Client__ConversationFlags *f =
      whisper__client__conversation_flags__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (f == NULL) *rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored conversation flags are corrupt");
  return f;
}

static const Whisper__E2e__Settings *find(const Whisper__Client__ConversationFlags *f, const char *conv) {
  for (size_t i = 0; f && i < f->n_conversations; i++)
    if (f->conversations[i]->conversation && strcmp(f->conversations[i]->conversation, conv) == 0)
      return f->conversations[i];
  return NULL;
}

static void to_flags(const Whisper__E2e__Settings *s, whisper_conversation_flags_t *out) {
  memset(out, 0, sizeof *out);
  out->size = sizeof *out;
  if (s == NULL) return;
  out->muted_until_ms = s->muted ? (s->muted_until ? s->muted_until : WHISPER_MUTE_FOREVER) : 0;
  out->archived = s->archived;
  out->pinned = s->pinned;
}


/* Stores `s` for its conversation unless what is held is newer: 1 if it
 * was taken, 0 if not, or an error. In the caller's transaction. */
static int flags_take(whisper_client *c, const Whisper__E2e__Settings *s) {
  int rc;
  Whisper__Client__ConversationFlags *f = flags_load(c, &rc);
  if (rc != WHISPER_OK) return rc;
  const Whisper__E2e__Settings *held = find(f, s->conversation);
  if (held && held->changed_at >= s->changed_at) {
    if (f) whisper__client__conversation_flags__free_unpacked(f, &wh_pb_alloc);
    return 0;
  }
  size_t n = f ? f->n_conversations : 0, k = 0;
  Whisper__E2e__Settings **all = calloc(n + 1, sizeof *all);
  if (all == NULL) rc = WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++)
    if (f->conversations[i] != held) all[k++] = f->conversations[i];
  /* a conversation without flags keeps its time (an older setting that
   * comes late must not bring a flag back) */
  if (rc == WHISPER_OK) all[k++] = (Whisper__E2e__Settings *)s;
  if (rc == WHISPER_OK && k > FLAGS_MAX) rc = sy_fail(c, WHISPER_EINVAL, "too many conversations with flags");
  if (rc == WHISPER_OK) {
    Whisper__Client__ConversationFlags nf = WHISPER__CLIENT__CONVERSATION_FLAGS__INIT;
    nf.n_conversations = k;
    nf.conversations = all;
    rc = sy_rec_put_msg(c, FLAGS_KEY, 1, &nf.base);
  }
  free(all);
  if (f) whisper__client__conversation_flags__free_unpacked(f, &wh_pb_alloc);
  return rc == WHISPER_OK ? 1 : rc;
}

int whisper_client_conversation_flags_get(whisper_client *c, const char *conversation,
                                      whisper_conversation_flags_t *caller) {
  if (c == NULL) return WHISPER_EINVAL;
  if (conversation == NULL || caller == NULL || strlen(conversation) == 0 ||
      strlen(conversation) > WH_NAME_MAX)
    return sy_fail(c, WHISPER_EINVAL, "conversation_flags needs a conversation and out");
  int size_rc = WH_SIZE_CHECK(c->ctx, "out", caller->size, whisper_conversation_flags_t,
                          WHISPER_CONVERSATION_FLAGS);
  if (size_rc != WHISPER_OK) return size_rc;
  whisper_conversation_flags_t flags, *out = &flags;
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__ConversationFlags *f = flags_load(c, &rc);
  rc = wh_finish(c->ctx, rc);
  if (rc == WHISPER_OK) {
    to_flags(find(f, conversation), out);
    wh_versioned_out(caller, out, sizeof *out); /* the fields both sides have */
  }
  if (f) whisper__client__conversation_flags__free_unpacked(f, &wh_pb_alloc);
  return rc == WHISPER_OK ? wh_ok(c->ctx) : rc;
}

/* PresenceSet{mutes}: every conversation muted now. */
void sy_mutes_flush(whisper_client *c) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return;
  Whisper__Client__ConversationFlags *f = flags_load(c, &rc);
  wh_finish(c->ctx, rc);
  if (rc != WHISPER_OK) return;
  size_t n = f ? f->n_conversations : 0, k = 0;
  Whisper__Sync__MuteList__Mute *ms = calloc(n + 1, sizeof *ms);
  Whisper__Sync__MuteList__Mute **mp = calloc(n + 1, sizeof *mp);
  for (size_t i = 0; ms && mp && i < n && k < 1000; i++) {
    whisper_conversation_flags_t fl;
    to_flags(f->conversations[i], &fl);
    if (fl.muted_until_ms <= c->now) continue;
    whisper__sync__mute_list__mute__init(&ms[k]);
    ms[k].conversation = f->conversations[i]->conversation;
    ms[k].has_until_ms = 1;
    ms[k].until_ms = fl.muted_until_ms;
    mp[k] = &ms[k];
    k++;
  }
  if (ms && mp) {
    Whisper__Sync__MuteList ml = WHISPER__SYNC__MUTE_LIST__INIT;
    ml.n_mutes = k;
    ml.mutes = mp;
    Whisper__Sync__PresenceSet p = WHISPER__SYNC__PRESENCE_SET__INIT;
    p.mutes = &ml;
    Whisper__Sync__Frame fr = WHISPER__SYNC__FRAME__INIT;
    fr.body_case = WHISPER__SYNC__FRAME__BODY_PRESENCE_SET;
    fr.presence_set = &p;
    sy_queue(c, &fr, RQ_PRESENCE_SET, 1, NULL);
  }
  free(ms);
  free(mp);
  if (f) whisper__client__conversation_flags__free_unpacked(f, &wh_pb_alloc);
}

int whisper_client_conversation_flags_set(whisper_client *c, const char *conversation,
                                          const whisper_conversation_flags_t *in, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (conversation == NULL || in == NULL ||
      (!wh_group_conv_parse(conversation, gid) && !wh_account_ok(conversation)))
    return sy_fail(c, WHISPER_EINVAL, "a conversation is an account name or a group's conversation");
  int size_rc = WH_SIZE_CHECK(c->ctx, "flags", in->size, whisper_conversation_flags_t,
                          WHISPER_CONVERSATION_FLAGS);
  if (size_rc != WHISPER_OK) return size_rc;
  whisper_conversation_flags_t copy, *flags = &copy; /* the fields both sides have */
  wh_versioned_in(&copy, sizeof copy, in);
  c->now = now_ms;
  Whisper__E2e__Settings s = WHISPER__E2E__SETTINGS__INIT;
  s.conversation = (char *)conversation;
  s.has_muted = s.has_archived = s.has_pinned = s.has_changed_at = 1;
  s.muted = flags->muted_until_ms != 0;
  if (s.muted && flags->muted_until_ms != WHISPER_MUTE_FOREVER) s.has_muted_until = 1, s.muted_until = flags->muted_until_ms;
  s.archived = flags->archived != 0;
  s.pinned = flags->pinned != 0;
  s.changed_at = now_ms;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = ct.has_at_ms = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__SETTINGS;
  ct.at_ms = now_ms;
  ct.settings = &s;
  size_t len = whisper__e2e__content__get_packed_size(&ct);
  uint8_t *packed = malloc(len ? len : 1);
  if (packed == NULL) return WHISPER_ENOMEM;
  whisper__e2e__content__pack(&ct, packed);
  /* taken here, then to the other devices (a Send to oneself) */
  int rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) {
    int took = flags_take(c, &s);
    rc = took < 0 ? took : WHISPER_OK;
  }
  rc = sy_txn_end(c, rc);
  if (rc == WHISPER_OK) {
    wh_entry_extra x = {.content = packed, .content_len = len, .hidden = 1};
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    rc = sy_enqueue(c, c->account, NULL, 0, &x, NULL, now_ms, id);
  }
  free(packed);
  if (rc == WHISPER_OK && c->logged_in) sy_mutes_flush(c);
  return rc == WHISPER_OK ? wh_ok(c->ctx) : rc;
}

int sy_settings_receive(whisper_client *c, const Whisper__E2e__Settings *s) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (s->conversation == NULL || (!wh_group_conv_parse(s->conversation, gid) && !wh_account_ok(s->conversation)))
    return WHISPER_EINVAL;
  if (!s->has_changed_at) return WHISPER_EINVAL;
  return flags_take(c, s);
}
