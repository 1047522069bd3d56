/*
 * fuzz_client: the client engine (include/whisper/client.h) fed frames
 * from a server that says anything. The input's first byte picks the
 * engine's state (fuzz_sync.h: alice.1 connected and waiting for the
 * challenge, for Auth's answer, or logged in with a read receipt, a group
 * ADD, a Send and an Ack out; erin.1 registering; alice.3 linking); the
 * rest are frames for whisper_client_receive(), clock ticks and a few
 * things the app does (trusting a changed identity key and
 * whisper_client_retry(), a send to bob, a send to the group, a link
 * approval: records 0xFF..0xFC, see fuzz_sync.h). alice's
 * store comes from the client world of fuzz_sync.c (registered, sessions
 * with bob and alice.2, a group, two messages in the outbox); the engine
 * is made anew for each input, with a fixed RNG, and the store is put
 * back after it.
 *
 * Asserts:
 *  - whisper_client_receive returns WHISPER_OK or WHISPER_EINVALIDMSG
 *    (the memory store never fails, so a store error means the engine
 *    could not read what it wrote itself); a call that returns
 *    WHISPER_EINVALIDMSG changed no stored byte, committed nothing, and
 *    raised no event and queued no frame; no call leaves a transaction
 *    open or the context on the engine's transaction shim;
 *  - every frame the engine emits (whisper_client_take_frame) decodes as
 *    a Frame of version 1 carrying a request body with a nonzero id, ids
 *    only grow, and its fields pass the server's checks (account names,
 *    16-byte client and group ids, device ids, message types, receipt
 *    statuses, prekeys): a server cannot make the engine send garbage;
 *  - every event is read in full (strings, id and body bytes) and is
 *    consistent: a known type, EV_MESSAGE with conversation, sender and a
 *    16-byte id, EV_STATUS with a 16-byte id and a status, EV_ERROR with a
 *    documented WHISPER_E* code, EV_CATCHING_UP with 0 < done <= total;
 *  - an app call returns a documented code (OK, EINVAL, ESTATE,
 *    EINVALIDKEY) and changes no stored byte when it fails;
 *  - after the input, the engine is freed and made again from the store
 *    (a restart): whisper_client_new succeeds, and the new engine logs in
 *    (challenge, Auth answered Ok) under the same checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sync.h"

static fzs_client_world *W;

static struct {
  whisper_client *c;
  fz_dev *d;
  uint64_t now;
  uint64_t last_id;
  uint64_t auth_id; /* the last Auth the engine sent */
  unsigned long sum; /* bytes read from events */
  /* the last EV_IDENTITY with a key: what the app would trust */
  int have_identity;
  char id_name[65];
  uint32_t id_device;
  uint8_t id_key[WHISPER_PUBLIC_KEY_LEN];
} H;

static int name_ok(const char *s) {
  if (s == NULL) return 0;
  size_t n = strlen(s);
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
          s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

static int dev_ok(uint32_t id) { return id >= 1 && id <= 0x7fffffffu; }

static int key_ok(protobuf_c_boolean has, ProtobufCBinaryData k) {
  return has && k.len == WHISPER_PUBLIC_KEY_LEN && k.data[0] == 5;
}

static void check_prekeys(Whisper__Sync__OneTimePrekey *const *pk, size_t n) {
  FZ_ASSERT(n <= 1000, "%zu one-time prekeys in one frame", n);
  for (size_t i = 0; i < n; i++) {
    FZ_ASSERT(pk[i]->has_id && key_ok(pk[i]->has_key, pk[i]->key), "a bad one-time prekey");
    for (size_t j = 0; j < i; j++) FZ_ASSERT(pk[j]->id != pk[i]->id, "a prekey id twice");
  }
}

static void check_messages(Whisper__Sync__DeviceMessage *const *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    FZ_ASSERT(m[i]->has_device_id && dev_ok(m[i]->device_id), "a message for device %u",
              m[i]->device_id);
    FZ_ASSERT(m[i]->has_type && (m[i]->type == 2 || m[i]->type == 3), "a message of type %u",
              m[i]->type);
    FZ_ASSERT(m[i]->has_body && m[i]->body.len > 0, "an empty message");
    for (size_t j = 0; j < i; j++)
      FZ_ASSERT(m[j]->device_id != m[i]->device_id, "two messages for device %u", m[i]->device_id);
  }
}

/* Whether the plaintext of FZS_APP_PROFILE_SET shows in the bytes. */
static int has_plain(const uint8_t *b, size_t n) {
  static const char *const parts[] = {"about fuzz", "Fuzz"};
  for (size_t k = 0; k < 2; k++)
    for (size_t i = 0, l = strlen(parts[k]); i + l <= n; i++)
      if (memcmp(b + i, parts[k], l) == 0) return 1;
  for (size_t i = 0; i + sizeof fzs_picture <= n; i++)
    if (memcmp(b + i, fzs_picture, sizeof fzs_picture) == 0) return 1;
  return 0;
}

/* A frame the engine sends: the server's field checks (server_*.c). */
static void check_sent(void *arg, const whisper_buf *b) {
  (void)arg;
  fzs_frame *f = fzs_unpack(b->data, b->len);
  FZ_ASSERT(f != NULL, "the engine sent %zu bytes that are not a Frame", b->len);
  FZ_ASSERT(f->has_version && f->version == 1, "the engine sent version %u", f->version);
  FZ_ASSERT(fzs_is_request(f->body_case), "the engine sent a %s", fzs_body_name(f->body_case));
  FZ_ASSERT(f->has_id && f->id > H.last_id, "the engine sent id %llu after %llu",
            (unsigned long long)f->id, (unsigned long long)H.last_id);
  H.last_id = f->id;
  if (fz_verbose()) fprintf(stderr, "    engine -> %s id %llu\n", fzs_body_name(f->body_case),
                            (unsigned long long)f->id);
  switch (f->body_case) {
    case WHISPER__SYNC__FRAME__BODY_REGISTER: {
      const Whisper__Sync__Register *r = f->register_;
      FZ_ASSERT(name_ok(r->account) && r->keys && dev_ok(r->keys->device_id), "a bad Register");
      FZ_ASSERT(!r->has_link_code || r->link_code.len == 16, "a Register with a %zu-byte link code",
                r->link_code.len);
      check_prekeys(r->prekeys, r->n_prekeys);
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_HELLO:
      FZ_ASSERT(name_ok(f->hello->account) && dev_ok(f->hello->device_id), "a bad Hello");
      break;
    case WHISPER__SYNC__FRAME__BODY_AUTH:
      FZ_ASSERT(f->auth->has_signature && f->auth->signature.len == 64, "a bad Auth");
      H.auth_id = f->id;
      break;
    case WHISPER__SYNC__FRAME__BODY_UPLOAD:
      check_prekeys(f->upload->prekeys, f->upload->n_prekeys);
      break;
    case WHISPER__SYNC__FRAME__BODY_FETCH:
      FZ_ASSERT(name_ok(f->fetch->account), "FetchBundles for a bad account name");
      FZ_ASSERT(f->fetch->n_device_ids <= 1024, "FetchBundles for %zu devices",
                f->fetch->n_device_ids);
      for (size_t i = 0; i < f->fetch->n_device_ids; i++)
        FZ_ASSERT(dev_ok(f->fetch->device_ids[i]), "FetchBundles for device %u",
                  f->fetch->device_ids[i]);
      break;
    case WHISPER__SYNC__FRAME__BODY_LIST_DEVICES:
      FZ_ASSERT(name_ok(f->list_devices->account), "ListDevices for a bad account name");
      break;
    case WHISPER__SYNC__FRAME__BODY_SEND: {
      const Whisper__Sync__Send *s = f->send;
      FZ_ASSERT(s->has_client_id && s->client_id.len == 16, "a Send without a 16-byte client id");
      /* what the engine sends: SKDM, RECEIPT (end to end) and MESSAGE (ticks end to end);
       * never TEXT, whose ticks are the server's word */
      FZ_ASSERT(s->has_content && s->content >= 2 && s->content <= 4, "a Send of content %u",
                s->content);
      FZ_ASSERT(!s->has_group_id || s->content == 4, "a group Send of content %u", s->content);
      FZ_ASSERT((s->to != NULL) != (s->has_group_id != 0), "a Send to both or neither");
      if (s->has_group_id) {
        FZ_ASSERT(s->group_id.len == 16 && s->has_body && s->body.len > 0 && s->n_messages == 0 &&
                      s->n_own == 0,
                  "a bad group Send");
      } else {
        FZ_ASSERT(name_ok(s->to) && !s->has_body, "a bad 1:1 Send");
        check_messages(s->messages, s->n_messages);
        check_messages(s->own, s->n_own);
      }
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_ACK:
      FZ_ASSERT(f->ack->has_up_to, "an Ack without up_to");
      break;
    case WHISPER__SYNC__FRAME__BODY_RECEIPT: {
      const Whisper__Sync__Receipt *r = f->receipt;
      FZ_ASSERT(name_ok(r->to), "a Receipt to a bad account name");
      FZ_ASSERT(r->has_status && (r->status == 2 || r->status == 3), "a Receipt of status %u",
                r->status);
      FZ_ASSERT(r->n_client_ids >= 1 && r->n_client_ids <= 1024, "a Receipt with %zu ids",
                r->n_client_ids);
      for (size_t i = 0; i < r->n_client_ids; i++)
        FZ_ASSERT(r->client_ids[i].len == 16, "a Receipt with a %zu-byte id",
                  r->client_ids[i].len);
      FZ_ASSERT(!r->has_group_id || r->group_id.len == 16, "a Receipt with a bad group id");
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_TYPING: {
      const Whisper__Sync__Typing *t = f->typing;
      FZ_ASSERT(t->has_started && (t->to != NULL) != (t->has_group_id != 0), "a bad Typing");
      FZ_ASSERT(t->to ? name_ok(t->to) : t->group_id.len == 16, "a bad Typing");
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_SUBSCRIBE:
      for (size_t i = 0; i < f->subscribe->n_accounts; i++)
        FZ_ASSERT(name_ok(f->subscribe->accounts[i]), "a subscription to a bad account name");
      break;
    case WHISPER__SYNC__FRAME__BODY_GROUP: {
      const Whisper__Sync__GroupOp *g = f->group;
      FZ_ASSERT(g->has_op && g->op >= 1 && g->op <= 5, "a GroupOp %d", g->op);
      FZ_ASSERT(g->has_group_id && g->group_id.len == 16, "a GroupOp without a group id");
      FZ_ASSERT(g->n_members <= 1024, "a GroupOp with %zu members", g->n_members);
      for (size_t i = 0; i < g->n_members; i++)
        FZ_ASSERT(name_ok(g->members[i]), "a GroupOp with a bad member name");
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_LINK_REQUEST:
      FZ_ASSERT(name_ok(f->link_request->account), "a LinkRequest for a bad account name");
      break;
    case WHISPER__SYNC__FRAME__BODY_LINK_APPROVE:
      FZ_ASSERT(f->link_approve->has_link_code, "a LinkApprove without a code");
      break;
    case WHISPER__SYNC__FRAME__BODY_PROFILE_SET: {
      const Whisper__Sync__ProfileSet *p = f->profile_set;
      FZ_ASSERT(p->has_version && p->version > 0 && p->has_ciphertext && p->ciphertext.len > 0 &&
                    p->ciphertext.len <= 66560,
                "a ProfileSet of version %llu with %zu bytes", (unsigned long long)p->version,
                p->ciphertext.len);
      FZ_ASSERT(!has_plain(p->ciphertext.data, p->ciphertext.len), "a ProfileSet holds the profile in the clear");
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_PROFILE_GET:
      FZ_ASSERT(name_ok(f->profile_get->account), "ProfileGet for a bad account name");
      break;
    case WHISPER__SYNC__FRAME__BODY_BLOCK_SET: { /* server_block.c block_check */
      const Whisper__Sync__BlockSet *bs = f->block_set;
      FZ_ASSERT(bs->n_entries <= 1024, "a BlockSet of %zu entries", bs->n_entries);
      for (size_t i = 0; i < bs->n_entries; i++) {
        FZ_ASSERT(name_ok(bs->entries[i]->account) && bs->entries[i]->has_changed_at &&
                      (H.d == NULL || strcmp(bs->entries[i]->account, H.d->name) != 0),
                  "a bad block entry");
        for (size_t k = 0; k < i; k++)
          FZ_ASSERT(strcmp(bs->entries[k]->account, bs->entries[i]->account) != 0, "an account twice in a BlockSet");
      }
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_REPORT: { /* server_block.c report_check */
      const Whisper__Sync__Report *r = f->report;
      FZ_ASSERT(r->conversation && (name_ok(r->conversation) || (r->conversation[0] == '#' &&
                                                                 strlen(r->conversation) == 33)),
                "a Report of a bad conversation");
      FZ_ASSERT(r->n_messages <= 50, "a Report of %zu messages", r->n_messages);
      for (size_t i = 0; i < r->n_messages; i++)
        FZ_ASSERT(r->messages[i]->has_id && r->messages[i]->id.len >= 1 && r->messages[i]->id.len <= 64 &&
                      name_ok(r->messages[i]->sender) && r->messages[i]->text.len <= 2048,
                  "a bad reported message");
      break;
    }
    default:
      break;
  }
  fzs_frame_free(f);
}

static size_t take_frames(void) {
  whisper_buf *b;
  size_t n = 0;
  while (whisper_client_take_frame(H.c, &b)) {
    FZ_ASSERT(b != NULL, "take_frame returned 1 without a frame");
    check_sent(NULL, b);
    whisper_buf_free(b);
    n++;
  }
  return n;
}

static void read_str(const char *s) {
  if (s) H.sum += strlen(s);
}

static void read_bytes(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) H.sum += p[i];
}

static size_t drain_events(void) {
  whisper_client_event_t e;
  size_t n = 0;
  while (whisper_client_take_event(H.c, &e)) {
    n++;
    if (fz_verbose())
      fprintf(stderr, "    event %d conv=%s from=%s.%u status=%d code=%d/%d %s\n", e.type,
              e.conversation ? e.conversation : "", e.from ? e.from : "", e.from_device, e.status,
              e.code, e.server_code, e.message ? e.message : "");
    FZ_ASSERT((e.type >= WHISPER_EV_REGISTERED && e.type <= WHISPER_EV_BLOCKED) ||
                  e.type == WHISPER_EV_CATCHING_UP,
              "event type %d", e.type);
    read_str(e.conversation);
    read_str(e.from);
    read_str(e.message);
    FZ_ASSERT((e.id == NULL) == (e.id_len == 0), "an event id %p of %zu bytes", (void *)e.id,
              e.id_len);
    if (e.id) read_bytes(e.id, e.id_len);
    FZ_ASSERT(e.body != NULL || e.body_len == 0, "an event body of %zu bytes at NULL", e.body_len);
    if (e.body) read_bytes(e.body, e.body_len);
    switch (e.type) {
      case WHISPER_EV_MESSAGE:
        FZ_ASSERT(e.conversation && e.from && e.id && e.id_len == 16 && e.body,
                  "EV_MESSAGE without conversation, sender, 16-byte id or body");
        break;
      case WHISPER_EV_STATUS:
        FZ_ASSERT(e.id && e.id_len == 16 && e.conversation, "EV_STATUS without its message");
        FZ_ASSERT(e.status >= WHISPER_STATUS_SENT && e.status <= WHISPER_STATUS_OPENED &&
                      e.status != WHISPER_STATUS_FAILED,
                  "EV_STATUS %d", e.status);
        break;
      case WHISPER_EV_ERROR:
        FZ_ASSERT(e.code < 0 && fz_rc_known(e.code), "EV_ERROR with code %d", e.code);
        break;
      case WHISPER_EV_REFUSED:
        FZ_ASSERT(e.code < 0 && fz_rc_known(e.code), "EV_REFUSED with code %d", e.code);
        break;
      case WHISPER_EV_TYPING:
      case WHISPER_EV_PRESENCE:
        FZ_ASSERT(e.from != NULL, "event %d without its sender", e.type);
        break;
      case WHISPER_EV_GROUP:
        FZ_ASSERT(e.conversation && e.conversation[0] == '#', "EV_GROUP without its group");
        break;
      case WHISPER_EV_PROFILE:
        FZ_ASSERT(e.from && name_ok(e.from), "EV_PROFILE without its account");
        break;
      case WHISPER_EV_CATCHING_UP: /* the server's count, never below what came */
        FZ_ASSERT(e.done_bytes > 0 && e.done_bytes <= e.total_bytes, "EV_CATCHING_UP %llu of %llu",
                  (unsigned long long)e.done_bytes, (unsigned long long)e.total_bytes);
        break;
      case WHISPER_EV_BLOCKED:
        FZ_ASSERT(e.from && e.conversation && strcmp(e.from, e.conversation) == 0 &&
                      (e.status == 0 || e.status == 1),
                  "EV_BLOCKED without its account or state");
        break;
      case WHISPER_EV_IDENTITY:
        FZ_ASSERT(e.from != NULL, "EV_IDENTITY without its sender");
        if (e.body && e.body_len == WHISPER_PUBLIC_KEY_LEN && strlen(e.from) <= 64) {
          H.have_identity = 1;
          snprintf(H.id_name, sizeof H.id_name, "%s", e.from);
          H.id_device = e.from_device;
          memcpy(H.id_key, e.body, WHISPER_PUBLIC_KEY_LEN);
        }
        break;
      default:
        break;
    }
  }
  return n;
}

static void after_call(const char *what) {
  FZ_ASSERT(!H.d->fs.outer->depth, "%s left a store transaction open", what);
  FZ_ASSERT(H.d->ctx->store == H.d->fs.outer, "%s left the context on the engine's shim", what);
  (void)whisper_client_want_disconnect(H.c);
  (void)whisper_client_next_deadline(H.c);
  (void)whisper_client_want_connect(H.c, H.now);
}

static void op_frame(const uint8_t *p, size_t n) {
  fz_watch_begin(&H.d->fs);
  int rc = whisper_client_receive(H.c, p, n, H.now);
  if (fz_verbose())
    fprintf(stderr, "  receive %zu bytes: %d %s\n", n, rc,
            rc ? whisper_ctx_last_error(H.d->ctx) : "");
  after_call("receive");
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVALIDMSG, "receive returned %d (%s)", rc,
            whisper_ctx_last_error(H.d->ctx));
  if (rc == WHISPER_EINVALIDMSG) {
    FZ_ASSERT(H.d->fs.committed_writes == 0, "an EINVALIDMSG frame committed %u transaction(s)",
              H.d->fs.committed_writes);
    const fz_touch *t = fz_store_changed(&H.d->fs);
    FZ_ASSERT(t == NULL, "an EINVALIDMSG frame changed a record of kind %d", t ? t->kind : 0);
    FZ_ASSERT(drain_events() == 0, "an EINVALIDMSG frame raised events");
    FZ_ASSERT(take_frames() == 0, "an EINVALIDMSG frame made the engine send");
  }
  fz_watch_end(&H.d->fs);
  take_frames();
  drain_events();
}

/* An app call: a documented code; a failure changes no stored byte. */
static void app_end(int rc, const char *what) {
  if (fz_verbose()) fprintf(stderr, "  %s: %d\n", what, rc);
  after_call(what);
  FZ_ASSERT(fz_rc_known(rc), "%s returned %d", what, rc);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVAL || rc == WHISPER_ESTATE ||
                rc == WHISPER_EINVALIDKEY || rc == WHISPER_EBLOCKED,
            "%s returned %d (%s)", what, rc, whisper_ctx_last_error(H.d->ctx));
  if (rc != WHISPER_OK) {
    FZ_ASSERT(H.d->fs.committed_writes == 0 && fz_store_changed(&H.d->fs) == NULL,
              "%s failed (%d) and changed the store", what, rc);
  }
  fz_watch_end(&H.d->fs);
  take_frames();
  drain_events();
}

/* What the app does, between frames (records 0xF7..0xFF). */
static void op_app(uint8_t t) {
  uint8_t token[FZS_LINK_TOKEN_LEN];
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  fz_watch_begin(&H.d->fs);
  switch (t) {
    case 0xFF: /* trusts the last changed identity, then retries what waited */
      if (H.have_identity) {
        int rc = whisper_identity_trust(H.d->ctx, H.id_name, H.id_device, H.id_key,
                                        sizeof H.id_key);
        app_end(rc, "identity_trust");
        fz_watch_begin(&H.d->fs);
      }
      app_end(whisper_client_retry(H.c, H.now), "retry");
      break;
    case 0xFE:
      app_end(whisper_client_send(H.c, "bob", (const uint8_t *)"fuzz", 4, H.now, id), "send");
      break;
    case 0xFD:
      app_end(whisper_client_send_group(H.c, W->group_id, (const uint8_t *)"fuzz", 4, H.now, id),
              "send_group");
      break;
    case FZS_APP_PROFILE_SET:
      app_end(whisper_client_profile_set(H.c, "Fuzz", "about fuzz", fzs_picture, sizeof fzs_picture, H.now),
              "profile_set");
      break;
    case FZS_APP_PROFILE_REFRESH:
      app_end(whisper_client_profile_refresh(H.c, NULL), "profile_refresh");
      break;
    case FZS_APP_BLOCK:
      app_end(whisper_client_block(H.c, "bob", H.now), "block");
      break;
    case FZS_APP_UNBLOCK:
      app_end(whisper_client_unblock(H.c, "bob", H.now), "unblock");
      break;
    case FZS_APP_REPORT:
      app_end(whisper_client_report(H.c, "bob", 3, 0, H.now), "report");
      break;
    default:
      app_end(whisper_client_link_approve(H.c, token, fzs_link_token(W, token)), "link_approve");
      break;
  }
}

static void op_tick(unsigned half_seconds) {
  H.now += (uint64_t)half_seconds * 500;
  if (fz_verbose()) fprintf(stderr, "  tick at +%llu ms\n", (unsigned long long)(H.now - FZS_CT0));
  whisper_client_tick(H.c, H.now);
  after_call("tick");
  take_frames();
  drain_events();
}

/* The engine comes back from the store the input left and logs in. */
static void restart(void) {
  whisper_client *c2 = NULL;
  int rc = whisper_client_new(&c2, H.d->ctx, &W->cfg);
  FZ_ASSERT(rc == WHISPER_OK, "after the input, whisper_client_new fails: %d (%s)", rc,
            whisper_ctx_last_error(H.d->ctx));
  H.c = c2;
  H.last_id = 0;
  H.auth_id = 0;
  whisper_client_connected(c2, H.now);
  after_call("connected");
  take_frames();
  whisper_buf *b = fzs_challenge();
  op_frame(b->data, b->len);
  whisper_buf_free(b);
  if (H.auth_id) {
    b = fzs_ok(H.auth_id, 1);
    op_frame(b->data, b->len);
    whisper_buf_free(b);
  }
  drain_events();
}

static void collect(void *arg, const whisper_buf *b) { check_sent(arg, b); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (W == NULL) W = fzs_client_world_new();
  if (size == 0) return 0;
  memset(&H, 0, sizeof H);
  int mode = data[0] % FZS_CLIENT_MODES;
  H.c = fzs_client_start(W, mode, &H.d, collect, NULL);
  H.now = FZS_CT0;
  after_call("start");
  drain_events();
  size_t i = 1;
  while (i < size) {
    uint8_t t = data[i++];
    if (t >= FZS_APP_MIN) {
      op_app(t);
      continue;
    }
    if (t & 0x80) {
      op_tick(t & 0x7f);
      continue;
    }
    size_t n = (size_t)t << 8;
    if (i < size) n |= data[i++];
    if (n > size - i) n = size - i;
    op_frame(data + i, n);
    i += n;
  }
  whisper_client_disconnected(H.c, H.now);
  after_call("disconnected");
  FZ_ASSERT(take_frames() == 0, "frames to take after the connection closed");
  drain_events();
  whisper_client_free(H.c);
  FZ_ASSERT(H.d->ctx->store == H.d->fs.outer, "the context is left on the engine's shim");
  restart();
  fzs_client_end(H.d, H.c);
  H.c = NULL;
  return 0;
}
