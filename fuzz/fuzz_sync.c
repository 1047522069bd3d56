/* The sync protocol targets' shared machinery: see fuzz_sync.h. */
#include "fuzz_sync.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.pb-c.h"
#include "protocol/pb.h"
#include "sync/sync_internal.h"

const uint8_t fzs_picture[16] = "fz profile pic.";

/* --- frames ---------------------------------------------------------------- */

whisper_buf *fzs_pack(fzs_frame *f, uint64_t id) {
  if (!f->has_version) {
    f->has_version = 1;
    f->version = 1;
  }
  if (id) {
    f->has_id = 1;
    f->id = id;
  }
  size_t n = whisper__sync__frame__get_packed_size(f);
  whisper_buf *b = whisper_buf_new(NULL, n);
  FZ_ASSERT(b != NULL, "out of memory");
  FZ_ASSERT(whisper__sync__frame__pack(f, b->data) == n, "pack size");
  return b;
}

fzs_frame *fzs_unpack(const uint8_t *b, size_t n) {
  return whisper__sync__frame__unpack(&wh_pb_alloc, n, b);
}

void fzs_frame_free(fzs_frame *f) {
  if (f) whisper__sync__frame__free_unpacked(f, &wh_pb_alloc);
}

int fzs_is_request(int b) {
  return (b >= WHISPER__SYNC__FRAME__BODY_REGISTER && b <= WHISPER__SYNC__FRAME__BODY_PUBLISH) ||
         b == WHISPER__SYNC__FRAME__BODY_PROFILE_SET || b == WHISPER__SYNC__FRAME__BODY_PROFILE_GET ||
         b == WHISPER__SYNC__FRAME__BODY_BLOCK_SET || b == WHISPER__SYNC__FRAME__BODY_REPORT ||
         b == WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH;
}

int fzs_is_server_body(int b) {
  return (b >= WHISPER__SYNC__FRAME__BODY_CHALLENGE && b <= WHISPER__SYNC__FRAME__BODY_PONG) ||
         b == WHISPER__SYNC__FRAME__BODY_PROFILE || b == WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN;
}

int fzs_is_push(int b) {
  return b == WHISPER__SYNC__FRAME__BODY_CHALLENGE || b == WHISPER__SYNC__FRAME__BODY_DELIVER ||
         b == WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY ||
         b == WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE ||
         b == WHISPER__SYNC__FRAME__BODY_PRESENCE;
}

const char *fzs_body_name(int b) {
  static const char *req[] = {"Register", "Hello", "Auth", "UploadPrekeys", "FetchBundles",
                              "ListDevices", "Send", "Ack", "Receipt", "Typing", "PresenceSet",
                              "PresenceSubscribe", "GroupOp", "LinkRequest", "LinkApprove", "Ping",
                              "PublishDevices"};
  static const char *srv[] = {"Challenge", "Ok", "Error", "Bundles", "Devices", "Sent",
                              "StaleDevices", "Deliver", "QueueEmpty", "TypingNotice",
                              "PresenceNotice", "GroupInfo", "LinkCode", "Pong"};
  if (b == WHISPER__SYNC__FRAME__BODY_PROFILE_SET) return "ProfileSet";
  if (b == WHISPER__SYNC__FRAME__BODY_PROFILE_GET) return "ProfileGet";
  if (b == WHISPER__SYNC__FRAME__BODY_PROFILE) return "Profile";
  if (b == WHISPER__SYNC__FRAME__BODY_BLOCK_SET) return "BlockSet";
  if (b == WHISPER__SYNC__FRAME__BODY_REPORT) return "Report";
  if (b == WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH) return "UploadAuth";
  if (b == WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN) return "UploadToken";
  if (fzs_is_request(b)) return req[b - WHISPER__SYNC__FRAME__BODY_REGISTER];
  if (fzs_is_server_body(b)) return srv[b - WHISPER__SYNC__FRAME__BODY_CHALLENGE];
  return b == 0 ? "(no body)" : "(unknown body)";
}

/* The public key of d's one-time prekey `id`. */
static void prekey_pub(fz_dev *d, uint32_t id, uint8_t pub[WHISPER_PUBLIC_KEY_LEN]) {
  wh_keypair kp;
  FZ_ASSERT(wh_load_prekey(d->ctx, WHISPER_REC_PREKEY, id, &kp, NULL, NULL) == WHISPER_OK,
            "prekey %u of %s", id, d->name);
  memcpy(pub, kp.pub, WHISPER_PUBLIC_KEY_LEN);
  wh_wipe(&kp, sizeof kp);
}

/* Register with `n_prekeys` new one-time prekeys of d, signed by d. */
whisper_buf *fzs_register(fz_dev *d, uint64_t id, uint32_t n_prekeys, const uint8_t *link_code) {
  static const char ctx_str[] = "whisper-register-v1";
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  uint8_t msg[sizeof ctx_str + 64 + 5 + WHISPER_PUBLIC_KEY_LEN], sig[WHISPER_SIGNATURE_LEN];
  uint8_t pubs[16][WHISPER_PUBLIC_KEY_LEN];
  Whisper__Sync__OneTimePrekey pk[16], *pkp[16];
  uint32_t first = 0;
  size_t an = strlen(d->name);
  FZ_ASSERT(n_prekeys <= 16 && an <= 64, "register: too many prekeys or a long name");
  FZ_ASSERT(whisper_bundle_generate(d->ctx, 0, &b) == WHISPER_OK, "bundle_make %s", d->name);
  if (n_prekeys)
    FZ_ASSERT(whisper_prekeys_generate(d->ctx, n_prekeys, &first) == WHISPER_OK, "prekeys");
  for (uint32_t i = 0; i < n_prekeys; i++) {
    whisper__sync__one_time_prekey__init(&pk[i]);
    prekey_pub(d, first + i, pubs[i]);
    pk[i].has_id = pk[i].has_key = 1;
    pk[i].id = first + i;
    pk[i].key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, pubs[i]};
    pkp[i] = &pk[i];
  }
  uint8_t *p = msg;
  memcpy(p, ctx_str, sizeof ctx_str - 1), p += sizeof ctx_str - 1;
  memcpy(p, d->name, an), p += an;
  *p++ = 0;
  wh_be32(p, d->device_id), p += 4;
  memcpy(p, b.identity_key, WHISPER_PUBLIC_KEY_LEN), p += WHISPER_PUBLIC_KEY_LEN;
  FZ_ASSERT(wh_local_identity(d->ctx) == WHISPER_OK, "identity");
  FZ_ASSERT(whisper_sign(d->ctx, d->ctx->identity.priv, msg, (size_t)(p - msg), sig) == WHISPER_OK,
            "sign");
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  k.has_device_id = k.has_registration_id = k.has_identity_key = 1;
  k.has_signed_prekey_id = k.has_signed_prekey = k.has_signed_prekey_signature = 1;
  k.device_id = d->device_id;
  k.registration_id = b.registration_id;
  k.identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.identity_key};
  k.signed_prekey_id = b.signed_prekey_id;
  k.signed_prekey = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.signed_prekey};
  k.signed_prekey_signature =
      (ProtobufCBinaryData){WHISPER_SIGNATURE_LEN, b.signed_prekey_signature};
  Whisper__Sync__Register r = WHISPER__SYNC__REGISTER__INIT;
  r.account = (char *)d->name;
  r.keys = &k;
  r.n_prekeys = n_prekeys;
  r.prekeys = pkp;
  r.has_signature = 1;
  r.signature = (ProtobufCBinaryData){sizeof sig, sig};
  if (link_code) {
    r.has_link_code = 1;
    r.link_code = (ProtobufCBinaryData){16, (uint8_t *)link_code};
  }
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_REGISTER;
  f.register_ = &r;
  return fzs_pack(&f, id);
}

whisper_buf *fzs_hello(uint64_t id, const char *account, uint32_t device) {
  Whisper__Sync__Hello h = WHISPER__SYNC__HELLO__INIT;
  h.account = (char *)account;
  h.has_device_id = h.has_protocol = 1;
  h.device_id = device;
  h.protocol = 1;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_HELLO;
  f.hello = &h;
  return fzs_pack(&f, id);
}

whisper_buf *fzs_auth(fz_dev *d, uint64_t id, const uint8_t *nonce, size_t nonce_len,
                      uint64_t resume_after) {
  static const char ctx_str[] = "whisper-login-v1";
  uint8_t msg[sizeof ctx_str + 64], sig[WHISPER_SIGNATURE_LEN];
  FZ_ASSERT(nonce_len <= 64, "nonce");
  memcpy(msg, ctx_str, sizeof ctx_str - 1);
  memcpy(msg + sizeof ctx_str - 1, nonce, nonce_len);
  FZ_ASSERT(wh_local_identity(d->ctx) == WHISPER_OK, "identity");
  FZ_ASSERT(whisper_sign(d->ctx, d->ctx->identity.priv, msg, sizeof ctx_str - 1 + nonce_len, sig) ==
                WHISPER_OK,
            "sign");
  Whisper__Sync__Auth a = WHISPER__SYNC__AUTH__INIT;
  a.has_signature = a.has_resume_after = 1;
  a.signature = (ProtobufCBinaryData){sizeof sig, sig};
  a.resume_after = resume_after;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_AUTH;
  f.auth = &a;
  return fzs_pack(&f, id);
}

/* --- scripts ---------------------------------------------------------------- */

void fzs_put(fzs_script *s, const void *p, size_t n) {
  if (s->len + n > s->cap) {
    s->cap = (s->len + n) * 2 + 64;
    s->data = realloc(s->data, s->cap);
    FZ_ASSERT(s->data != NULL, "out of memory");
  }
  if (n) memcpy(s->data + s->len, p, n);
  s->len += n;
}

void fzs_put_byte(fzs_script *s, uint8_t b) { fzs_put(s, &b, 1); }

whisper_buf *fzs_take(fzs_script *s) {
  whisper_buf *b = whisper_buf_new(s->data, s->len);
  FZ_ASSERT(b != NULL, "out of memory");
  free(s->data);
  memset(s, 0, sizeof *s);
  return b;
}

static void op_recv_flags(fzs_script *s, int slot, const whisper_buf *frame, uint8_t flags) {
  FZ_ASSERT(frame->len <= 0xffff, "frame too long for a script");
  fzs_put_byte(s, (uint8_t)(flags | FZS_OP_RECV << 2 | slot));
  fzs_put_byte(s, (uint8_t)(frame->len >> 8));
  fzs_put_byte(s, (uint8_t)frame->len);
  fzs_put(s, frame->data, frame->len);
}

void fzs_op_recv(fzs_script *s, int slot, const whisper_buf *frame) {
  op_recv_flags(s, slot, frame, 0);
}

void fzs_op_recv_deferred(fzs_script *s, int slot, const whisper_buf *frame) {
  op_recv_flags(s, slot, frame, FZS_DEFER);
}

void fzs_op(fzs_script *s, int kind, int slot, int arg) {
  fzs_put_byte(s, (uint8_t)(kind << 2 | slot));
  if (arg >= 0) fzs_put_byte(s, (uint8_t)arg);
}

void fzs_client_frame(fzs_script *s, const whisper_buf *frame) {
  FZ_ASSERT(frame->len <= 0x7fff, "frame too long for a script");
  fzs_put_byte(s, (uint8_t)(frame->len >> 8));
  fzs_put_byte(s, (uint8_t)frame->len);
  fzs_put(s, frame->data, frame->len);
}

void fzs_client_tick(fzs_script *s, unsigned half_seconds) {
  FZ_ASSERT(half_seconds < FZS_APP_MIN - 0x80, "tick");
  fzs_put_byte(s, (uint8_t)(0x80 | half_seconds));
}

/* --- the server world --------------------------------------------------------- */

void fzs_server_config(whisper_server_config_t *cfg) {
  static const whisper_server_config_t init = WHISPER_SERVER_CONFIG_INIT;
  *cfg = init;
  cfg->max_frame = 2048;
  cfg->max_group_members = 3;
  cfg->max_devices = 3;
  cfg->max_prekeys = 8;
  cfg->rate_per_sec = 20;
  cfg->rate_burst = 60;
  cfg->deliver_window = 4;
  cfg->max_mailbox = 12;
  cfg->max_reports = 2;
  /* a share of 8: mailboxes cross half a share (their share records
   * counted) and empty again (none kept), and senders meet the limit */
  cfg->sender_max_entries = 8;
}

/* A server driven by whole requests (the world's builder). */
typedef struct drv {
  whisper_server *srv;
  uint64_t now;
  uint8_t nonce[16][32];
} drv;

/* Drains the output; returns the answer to (conn, id) if there is one. */
static fzs_frame *drv_drain(drv *v, uint64_t conn, uint64_t id) {
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  fzs_frame *answer = NULL;
  while (whisper_server_take_output(v->srv, &o) > 0) {
    if (o.action != WHISPER_SERVER_SEND) continue;
    fzs_frame *f = fzs_unpack(o.frame, o.frame_len);
    FZ_ASSERT(f != NULL, "the server sent a frame that does not parse");
    if (f->body_case == WHISPER__SYNC__FRAME__BODY_CHALLENGE && o.conn < 16 &&
        f->challenge->nonce.len == 32)
      memcpy(v->nonce[o.conn], f->challenge->nonce.data, 32);
    if (answer == NULL && o.conn == conn && !fzs_is_push(f->body_case) &&
        (f->has_id ? f->id : 0) == id) {
      answer = f;
      continue;
    }
    fzs_frame_free(f);
  }
  return answer;
}

static fzs_frame *drv_feed(drv *v, uint64_t conn, whisper_buf *b) {
  fzs_frame *req = fzs_unpack(b->data, b->len);
  FZ_ASSERT(req != NULL, "a request that does not parse");
  uint64_t id = req->id;
  fzs_frame_free(req);
  int rc = whisper_server_receive(v->srv, conn, b->data, b->len, v->now);
  FZ_ASSERT(rc == WHISPER_OK, "receive: %d (%s)", rc, whisper_server_last_error(v->srv));
  whisper_buf_free(b);
  return drv_drain(v, conn, id);
}

/* Feeds and expects an answer of body `body` (freed). */
static void drv_expect(drv *v, uint64_t conn, whisper_buf *b, int body, const char *what) {
  fzs_frame *a = drv_feed(v, conn, b);
  FZ_ASSERT(a != NULL && (int)a->body_case == body, "%s: got %s (error %u: %s)", what,
            a ? fzs_body_name(a->body_case) : "nothing",
            a && a->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? a->error->code : 0,
            a && a->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && a->error->message
                ? a->error->message
                : "");
  fzs_frame_free(a);
}

static void drv_open(drv *v, uint64_t conn) {
  FZ_ASSERT(whisper_server_connected(v->srv, conn, v->now) == WHISPER_OK, "open");
  fzs_frame_free(drv_drain(v, 0, 0));
}

static uint64_t drv_id = 100;

static void drv_login(drv *v, uint64_t conn, fz_dev *d) {
  drv_expect(v, conn, fzs_hello(++drv_id, d->name, d->device_id), WHISPER__SYNC__FRAME__BODY_OK,
             "hello");
  drv_expect(v, conn, fzs_auth(d, ++drv_id, v->nonce[conn], 32, 0), WHISPER__SYNC__FRAME__BODY_OK,
             "auth");
}

static whisper_buf *link_request(uint64_t id, const char *account) {
  Whisper__Sync__LinkRequest lr = WHISPER__SYNC__LINK_REQUEST__INIT;
  lr.account = (char *)account;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_REQUEST;
  f.link_request = &lr;
  return fzs_pack(&f, id);
}

static whisper_buf *link_approve(uint64_t id, const uint8_t *code) {
  Whisper__Sync__LinkApprove la = WHISPER__SYNC__LINK_APPROVE__INIT;
  la.has_link_code = 1;
  la.link_code = (ProtobufCBinaryData){16, (uint8_t *)code};
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_APPROVE;
  f.link_approve = &la;
  return fzs_pack(&f, id);
}

static whisper_buf *group_op(uint64_t id, int op, const uint8_t *gid, const char *const *members,
                             size_t n) {
  Whisper__Sync__GroupOp g = WHISPER__SYNC__GROUP_OP__INIT;
  g.has_op = g.has_group_id = 1;
  g.op = (Whisper__Sync__GroupOp__Op)op;
  g.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  g.n_members = n;
  g.members = (char **)members;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_GROUP;
  f.group = &g;
  return fzs_pack(&f, id);
}

/* A 1:1 Send of alice's (fake) ciphertexts: one for each of `to`'s devices
 * and, in `own`, for her other devices. */
static whisper_buf *send_direct(uint64_t id, const uint8_t *client_id, const char *to,
                                const uint32_t *to_devs, const uint32_t *to_regids, size_t n_to,
                                const uint32_t *own_devs, size_t n_own, const char *body) {
  Whisper__Sync__DeviceMessage dm[8], *dmp[8], om[8], *omp[8];
  FZ_ASSERT(n_to <= 8 && n_own <= 8, "too many devices");
  for (size_t i = 0; i < n_to; i++) {
    whisper__sync__device_message__init(&dm[i]);
    dm[i].has_device_id = dm[i].has_type = dm[i].has_body = 1;
    dm[i].device_id = to_devs[i];
    dm[i].type = WHISPER_MSG_WHISPER;
    dm[i].body = (ProtobufCBinaryData){strlen(body), (uint8_t *)body};
    if (to_regids && to_regids[i]) {
      dm[i].has_registration_id = 1;
      dm[i].registration_id = to_regids[i];
    }
    dmp[i] = &dm[i];
  }
  for (size_t i = 0; i < n_own; i++) {
    whisper__sync__device_message__init(&om[i]);
    om[i].has_device_id = om[i].has_type = om[i].has_body = 1;
    om[i].device_id = own_devs[i];
    om[i].type = WHISPER_MSG_PREKEY;
    om[i].body = (ProtobufCBinaryData){strlen(body), (uint8_t *)body};
    omp[i] = &om[i];
  }
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.has_client_id = s.has_content = 1;
  s.client_id = (ProtobufCBinaryData){16, (uint8_t *)client_id};
  s.to = (char *)to;
  s.n_messages = n_to;
  s.messages = dmp;
  s.n_own = n_own;
  s.own = omp;
  s.content = WHISPER__SYNC__CONTENT__CONTENT_TEXT;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &s;
  return fzs_pack(&f, id);
}

static const uint8_t server_group_id[16] = "fz-server-group";

static uint32_t regid_of(fz_dev *d) {
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  FZ_ASSERT(whisper_bundle_generate(d->ctx, 0, &b) == WHISPER_OK, "bundle_make");
  return b.registration_id;
}

fzs_server_world *fzs_server_world_new(void) {
  static const struct {
    const char *name;
    uint32_t id;
    uint8_t seed;
  } devs[FZS_NDEV] = {{"alice", 1, 0x51}, {"alice", 2, 0x52}, {"bob", 1, 0x53},
                      {"carol", 1, 0x54}, {"dave", 1, 0x55},  {"alice", 3, 0x56},
                      {"alice", 4, 0x57}, {"erin", 2, 0x58}};
  fzs_server_world *w = calloc(1, sizeof *w);
  FZ_ASSERT(w != NULL, "out of memory");
  for (int i = 0; i < FZS_NDEV; i++) w->dev[i] = fz_dev_new(devs[i].name, devs[i].id, devs[i].seed);
  fz_store_open(&w->fs);
  fzs_server_config(&w->cfg);
  memset(w->rng.seed, 0x5E, sizeof w->rng.seed);
  memcpy(w->group_id, server_group_id, 16);

  drv v = {0};
  v.now = FZ_NOW;
  FZ_ASSERT(whisper_server_new(&v.srv, w->fs.outer, &w->cfg) == WHISPER_OK, "server_new");
  whisper_server_rng_set(v.srv, fz_rng_fn, &w->rng);

  /* alice.1, bob.1 and carol.1 register on one connection */
  drv_open(&v, 1);
  int regs[] = {FZS_ALICE1, FZS_BOB1, FZS_CAROL1};
  for (int i = 0; i < 3; i++) {
    fz_dev *d = w->dev[regs[i]];
    whisper_buf *r = fzs_register(d, ++drv_id, 3, NULL);
    /* the first of the prekeys just made */
    fzs_frame *rf = fzs_unpack(r->data, r->len);
    w->prekey_first[regs[i]] = rf->register_->prekeys[0]->id;
    fzs_frame_free(rf);
    drv_expect(&v, 1, r, WHISPER__SYNC__FRAME__BODY_OK, "register");
  }
  /* alice.1 logs in; alice.2 joins through a link code alice.1 approves */
  drv_open(&v, 2);
  drv_login(&v, 2, w->dev[FZS_ALICE1]);
  drv_open(&v, 3);
  fzs_frame *lc = drv_feed(&v, 3, link_request(++drv_id, "alice"));
  FZ_ASSERT(lc && lc->body_case == WHISPER__SYNC__FRAME__BODY_LINK_CODE, "link code");
  uint8_t code1[16];
  memcpy(code1, lc->link_code->link_code.data, 16);
  fzs_frame_free(lc);
  {
    whisper_buf *r = fzs_register(w->dev[FZS_ALICE2], ++drv_id, 3, code1);
    uint64_t held_id = drv_id;
    fzs_frame *rf = fzs_unpack(r->data, r->len);
    w->prekey_first[FZS_ALICE2] = rf->register_->prekeys[0]->id;
    fzs_frame_free(rf);
    fzs_frame *a = drv_feed(&v, 3, r);
    FZ_ASSERT(a == NULL, "a Register with an unapproved code was answered");
    whisper_buf *ap = link_approve(++drv_id, code1);
    int rc = whisper_server_receive(v.srv, 2, ap->data, ap->len, v.now);
    FZ_ASSERT(rc == WHISPER_OK, "approve: %d (%s)", rc, whisper_server_last_error(v.srv));
    whisper_buf_free(ap);
    a = drv_drain(&v, 3, held_id);
    FZ_ASSERT(a && a->body_case == WHISPER__SYNC__FRAME__BODY_OK, "held register not answered");
    fzs_frame_free(a);
  }
  /* alice's group with bob and carol */
  {
    const char *members[] = {"bob", "carol"};
    drv_expect(&v, 2, group_op(++drv_id, WHISPER__SYNC__GROUP_OP__OP__CREATE, w->group_id, members, 2),
               WHISPER__SYNC__FRAME__BODY_GROUP_INFO, "group create");
  }
  /* alice.1 acks her copy of the group notice */
  {
    Whisper__Sync__Ack a = WHISPER__SYNC__ACK__INIT;
    a.has_up_to = 1;
    a.up_to = 1;
    fzs_frame f = WHISPER__SYNC__FRAME__INIT;
    f.body_case = WHISPER__SYNC__FRAME__BODY_ACK;
    f.ack = &a;
    drv_expect(&v, 2, fzs_pack(&f, ++drv_id), WHISPER__SYNC__FRAME__BODY_OK, "ack");
  }
  /* five messages to bob (copies to alice.2) */
  {
    uint32_t to = 1, reg = regid_of(w->dev[FZS_BOB1]), own = 2;
    for (int i = 0; i < FZS_MAILBOX; i++) {
      memset(w->sent_ids[i], 0xA0 + i, 16);
      char body[16];
      snprintf(body, sizeof body, "ct-%d", i);
      drv_expect(&v, 2, send_direct(++drv_id, w->sent_ids[i], "bob", &to, &reg, 1, &own, 1, body),
                 WHISPER__SYNC__FRAME__BODY_SENT, "send");
    }
  }
  /* two more codes for alice, not approved: the seeds use them */
  drv_open(&v, 4);
  lc = drv_feed(&v, 4, link_request(++drv_id, "alice"));
  FZ_ASSERT(lc && lc->body_case == WHISPER__SYNC__FRAME__BODY_LINK_CODE, "link code");
  memcpy(w->link_code, lc->link_code->link_code.data, 16);
  fzs_frame_free(lc);
  lc = drv_feed(&v, 4, link_request(++drv_id, "alice"));
  FZ_ASSERT(lc && lc->body_case == WHISPER__SYNC__FRAME__BODY_LINK_CODE, "link code");
  memcpy(w->link_code2, lc->link_code->link_code.data, 16);
  fzs_frame_free(lc);
  for (uint64_t c = 1; c <= 4; c++) whisper_server_disconnected(v.srv, c, v.now);
  fzs_frame_free(drv_drain(&v, 0, 0));
  whisper_server_free(v.srv);
  return w;
}

void fzs_server_world_free(fzs_server_world *w) {
  if (w == NULL) return;
  for (int i = 0; i < FZS_NDEV; i++) fz_dev_free(w->dev[i]);
  fz_store_close(&w->fs);
  free(w);
}

/* --- the client world: a scripted server ---------------------------------------- */

const uint8_t fzs_nonce[32] = {0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                               0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                               0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

static const uint8_t client_link_code[16] = "fz-link-code-016";

/* The devices of an account on the scripted server. */
static int account_devs(fzs_client_world *w, const char *acct, fz_dev **out) {
  if (strcmp(acct, "alice") == 0) {
    out[0] = w->alice;
    out[1] = w->alice2;
    return 2;
  }
  if (strcmp(acct, "bob") == 0) {
    out[0] = w->bob;
    return 1;
  }
  if (strcmp(acct, "carol") == 0) {
    out[0] = w->carol;
    return 1;
  }
  return -1;
}

whisper_buf *fzs_ok(uint64_t id, int with_left) {
  Whisper__Sync__Ok ok = WHISPER__SYNC__OK__INIT;
  if (with_left) {
    ok.has_prekeys_left = 1;
    ok.prekeys_left = 50;
  }
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_OK;
  f.ok = &ok;
  return fzs_pack(&f, id);
}

whisper_buf *fzs_error(uint64_t id, uint32_t code, const char *msg) {
  Whisper__Sync__Error e = WHISPER__SYNC__ERROR__INIT;
  e.has_code = 1;
  e.code = code;
  e.message = (char *)msg;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_ERROR;
  f.error = &e;
  if (id) {
    f.has_id = 1;
    f.id = id;
  }
  return fzs_pack(&f, 0);
}

whisper_buf *fzs_challenge(void) {
  Whisper__Sync__Challenge ch = WHISPER__SYNC__CHALLENGE__INIT;
  ch.has_nonce = 1;
  ch.nonce = (ProtobufCBinaryData){sizeof fzs_nonce, (uint8_t *)fzs_nonce};
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_CHALLENGE;
  f.challenge = &ch;
  return fzs_pack(&f, 0);
}

static whisper_buf *bundles_frame(fzs_client_world *w, uint64_t id, const char *acct,
                                  const uint32_t *ids, size_t n_ids) {
  fz_dev *devs[4];
  int n = account_devs(w, acct, devs);
  Whisper__Sync__Bundle b[4], *bp[4];
  Whisper__Sync__DeviceKeys k[4];
  Whisper__Sync__OneTimePrekey p[4];
  whisper_prekey_bundle_t wb[4];
  size_t nb = 0;
  for (int i = 0; i < n; i++) {
    int wanted = n_ids == 0;
    for (size_t j = 0; j < n_ids; j++) wanted |= ids[j] == devs[i]->device_id;
    if (!wanted || devs[i] == w->alice) continue;
    wb[nb].size = sizeof wb[nb];
    FZ_ASSERT(whisper_bundle_generate(devs[i]->ctx, 1, &wb[nb]) == WHISPER_OK, "bundle");
    whisper__sync__bundle__init(&b[nb]);
    whisper__sync__device_keys__init(&k[nb]);
    whisper__sync__one_time_prekey__init(&p[nb]);
    k[nb].has_device_id = k[nb].has_registration_id = k[nb].has_identity_key = 1;
    k[nb].has_signed_prekey_id = k[nb].has_signed_prekey = k[nb].has_signed_prekey_signature = 1;
    k[nb].device_id = wb[nb].device_id;
    k[nb].registration_id = wb[nb].registration_id;
    k[nb].identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, wb[nb].identity_key};
    k[nb].signed_prekey_id = wb[nb].signed_prekey_id;
    k[nb].signed_prekey = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, wb[nb].signed_prekey};
    k[nb].signed_prekey_signature =
        (ProtobufCBinaryData){WHISPER_SIGNATURE_LEN, wb[nb].signed_prekey_signature};
    p[nb].has_id = p[nb].has_key = 1;
    p[nb].id = wb[nb].prekey_id;
    p[nb].key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, wb[nb].prekey};
    b[nb].keys = &k[nb];
    b[nb].prekey = &p[nb];
    bp[nb] = &b[nb];
    nb++;
  }
  Whisper__Sync__Bundles bs = WHISPER__SYNC__BUNDLES__INIT;
  bs.account = (char *)acct;
  bs.n_bundles = nb;
  bs.bundles = bp;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_BUNDLES;
  f.bundles = &bs;
  return fzs_pack(&f, id);
}

/* A Deliver push (the caller fills the entry; seq set here). */
static whisper_buf *deliver_frame(Whisper__Sync__Deliver *d, uint64_t seq) {
  d->has_seq = 1;
  d->seq = seq;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_DELIVER;
  f.deliver = d;
  return fzs_pack(&f, 0);
}

int fzs_respond(fzs_client_world *w, const fzs_frame *req, whisper_buf **out) {
  uint64_t id = req->id;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  switch (req->body_case) {
    case WHISPER__SYNC__FRAME__BODY_REGISTER:
      out[0] = fzs_ok(id, 0);
      return 1;
    case WHISPER__SYNC__FRAME__BODY_HELLO:
      return 0; /* answered only when refused */
    case WHISPER__SYNC__FRAME__BODY_AUTH:
    case WHISPER__SYNC__FRAME__BODY_UPLOAD:
      out[0] = fzs_ok(id, 1);
      return 1;
    case WHISPER__SYNC__FRAME__BODY_LIST_DEVICES: {
      fz_dev *devs[4];
      uint32_t ids[4];
      int n = account_devs(w, req->list_devices->account, devs);
      if (n < 0) {
        out[0] = fzs_error(id, 6, "no such account");
        return 1;
      }
      for (int i = 0; i < n; i++) ids[i] = devs[i]->device_id;
      Whisper__Sync__Devices d = WHISPER__SYNC__DEVICES__INIT;
      d.account = req->list_devices->account;
      d.n_device_ids = (size_t)n;
      d.device_ids = ids;
      f.body_case = WHISPER__SYNC__FRAME__BODY_DEVICES;
      f.devices = &d;
      out[0] = fzs_pack(&f, id);
      return 1;
    }
    case WHISPER__SYNC__FRAME__BODY_FETCH: {
      fz_dev *devs[4];
      if (account_devs(w, req->fetch->account, devs) < 0) {
        out[0] = fzs_error(id, 6, "no such account");
        return 1;
      }
      out[0] = bundles_frame(w, id, req->fetch->account, req->fetch->device_ids,
                             req->fetch->n_device_ids);
      return 1;
    }
    case WHISPER__SYNC__FRAME__BODY_SEND: {
      Whisper__Sync__Sent s = WHISPER__SYNC__SENT__INIT;
      s.has_client_id = s.has_server_ts = s.has_server_seq = 1;
      s.client_id = req->send->client_id;
      s.server_ts = FZ_NOW;
      s.server_seq = ++w->server_seq;
      f.body_case = WHISPER__SYNC__FRAME__BODY_SENT;
      f.sent = &s;
      out[0] = fzs_pack(&f, id);
      return 1;
    }
    case WHISPER__SYNC__FRAME__BODY_GROUP: {
      const Whisper__Sync__GroupOp *g = req->group;
      char *members[8];
      size_t n = 0;
      members[n++] = (char *)"alice";
      for (size_t i = 0; i < g->n_members && n < 8; i++) members[n++] = g->members[i];
      Whisper__Sync__GroupInfo gi = WHISPER__SYNC__GROUP_INFO__INIT;
      gi.has_group_id = 1;
      gi.group_id = g->group_id;
      gi.n_members = n;
      gi.members = members;
      f.body_case = WHISPER__SYNC__FRAME__BODY_GROUP_INFO;
      f.group_info = &gi;
      out[0] = fzs_pack(&f, id);
      if (g->op != WHISPER__SYNC__GROUP_OP__OP__CREATE) return 1;
      /* the membership notice every member's devices get */
      Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
      d.has_kind = d.has_sender_device = d.has_server_ts = d.has_server_seq = d.has_group_id = 1;
      d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP;
      d.sender = "alice";
      d.sender_device = 1;
      d.server_ts = FZ_NOW;
      d.server_seq = ++w->server_seq;
      d.group_id = g->group_id;
      d.n_members = n;
      d.members = members;
      out[1] = deliver_frame(&d, ++w->last_seq);
      return 2;
    }
    case WHISPER__SYNC__FRAME__BODY_LINK_REQUEST: {
      Whisper__Sync__LinkCode lc = WHISPER__SYNC__LINK_CODE__INIT;
      lc.has_link_code = 1;
      lc.link_code = (ProtobufCBinaryData){16, (uint8_t *)client_link_code};
      f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_CODE;
      f.link_code = &lc;
      out[0] = fzs_pack(&f, id);
      return 1;
    }
    case WHISPER__SYNC__FRAME__BODY_PING: {
      Whisper__Sync__Pong p = WHISPER__SYNC__PONG__INIT;
      p.has_nonce = req->ping->has_nonce;
      p.nonce = req->ping->nonce;
      f.body_case = WHISPER__SYNC__FRAME__BODY_PONG;
      f.pong = &p;
      out[0] = fzs_pack(&f, id);
      return 1;
    }
    case WHISPER__SYNC__FRAME__BODY_PROFILE_SET: {
      const Whisper__Sync__ProfileSet *ps = req->profile_set;
      if (ps->version <= w->profile_version) {
        out[0] = fzs_error(id, 11, "not newer");
        return 1;
      }
      whisper_buf_free(w->profile);
      w->profile = whisper_buf_new(ps->ciphertext.data, ps->ciphertext.len);
      w->profile_version = ps->version;
      out[0] = fzs_ok(id, 1);
      return 1;
    }
    case WHISPER__SYNC__FRAME__BODY_PROFILE_GET: {
      if (w->profile == NULL || strcmp(req->profile_get->account, "alice") != 0) {
        out[0] = fzs_error(id, 6, "no profile for that account");
        return 1;
      }
      Whisper__Sync__Profile p = WHISPER__SYNC__PROFILE__INIT;
      p.account = "alice";
      p.has_ciphertext = p.has_version = 1;
      p.ciphertext = (ProtobufCBinaryData){w->profile->len, w->profile->data};
      p.version = w->profile_version;
      f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE;
      f.profile = &p;
      out[0] = fzs_pack(&f, id);
      return 1;
    }
    default: /* Ack, Receipt, Typing, PresenceSet, PresenceSubscribe, LinkApprove */
      out[0] = fzs_ok(id, 1);
      return 1;
  }
}

/* An engine and the scripted server, until neither has anything to say. */
typedef struct run {
  fzs_client_world *w;
  whisper_client *c;
  uint64_t now;
  fzs_script *rec; /* records the frames fed, if not NULL */
  /* the answer of a request, if not the scripted one (NULL: scripted);
   * returns how many frames it put in out */
  int (*variant)(struct run *r, const fzs_frame *req, whisper_buf **out);
  void *arg;
  int n_variant; /* variants applied */
  /* the last EV_IDENTITY with a key (what FZS_APP_RETRY trusts) */
  int have_identity;
  char id_name[65];
  uint32_t id_device;
  uint8_t id_key[WHISPER_PUBLIC_KEY_LEN];
} run;

static void events_drop_run(whisper_client *c, run *r) {
  whisper_client_event_t e;
  while (whisper_client_take_event(c, &e)) {
    if (fz_verbose())
      fprintf(stderr, "    event %d conv=%s from=%s.%u code=%d/%d %s\n", e.type,
              e.conversation ? e.conversation : "", e.from ? e.from : "", e.from_device, e.code,
              e.server_code, e.message ? e.message : "");
    if (r && e.type == WHISPER_EV_IDENTITY && e.from && strlen(e.from) <= 64 && e.body &&
        e.body_len == WHISPER_PUBLIC_KEY_LEN) {
      r->have_identity = 1;
      snprintf(r->id_name, sizeof r->id_name, "%s", e.from);
      r->id_device = e.from_device;
      memcpy(r->id_key, e.body, WHISPER_PUBLIC_KEY_LEN);
    }
  }
}

static void events_drop(whisper_client *c) { events_drop_run(c, NULL); }

static void run_feed(run *r, whisper_buf *b) {
  if (r->rec) fzs_client_frame(r->rec, b);
  int rc = whisper_client_receive(r->c, b->data, b->len, r->now);
  FZ_ASSERT(rc == WHISPER_OK, "scripted frame refused: %d", rc);
  whisper_buf_free(b);
  events_drop_run(r->c, r);
}

/* Answers everything the engine sends, until it is quiet. */
static void run_quiet(run *r) {
  for (int guard = 0; guard < 200; guard++) {
    whisper_buf *b;
    if (!whisper_client_take_frame(r->c, &b)) return;
    fzs_frame *req = fzs_unpack(b->data, b->len);
    FZ_ASSERT(req != NULL, "the engine sent a frame that does not parse");
    whisper_buf *out[4] = {NULL};
    int n = -1;
    if (r->variant) n = r->variant(r, req, out);
    if (n < 0) n = fzs_respond(r->w, req, out);
    if (fz_verbose())
      fprintf(stderr, "  engine -> %s id %llu; %d answer(s)\n", fzs_body_name(req->body_case),
              (unsigned long long)req->id, n);
    fzs_frame_free(req);
    whisper_buf_free(b);
    for (int i = 0; i < n; i++) run_feed(r, out[i]);
  }
  FZ_ASSERT(0, "the engine and the scripted server never went quiet");
}

static const whisper_client_config_t *client_cfg(fzs_client_world *w) { return &w->cfg; }

size_t fzs_link_token(fzs_client_world *w, uint8_t out[FZS_LINK_TOKEN_LEN]) {
  static const uint8_t code[16] = "fz-approve-code!";
  uint8_t pub[WHISPER_PUBLIC_KEY_LEN];
  FZ_ASSERT(whisper_identity_get(w->alice3->ctx, pub, NULL, NULL, NULL) == WHISPER_OK, "alice.3");
  out[0] = 1;
  wh_be32(out + 1, 3);
  memcpy(out + 5, pub, sizeof pub);
  out[38] = 5;
  memcpy(out + 39, "alice", 5);
  memcpy(out + 44, code, sizeof code);
  return FZS_LINK_TOKEN_LEN;
}

/* An app record of fuzz_client (FZS_APP_*), done and recorded. */
static void run_app(run *r, uint8_t t) {
  uint8_t token[FZS_LINK_TOKEN_LEN];
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  int rc = WHISPER_OK;
  if (r->rec) fzs_put_byte(r->rec, t);
  if (t == FZS_APP_RETRY) {
    if (r->have_identity)
      rc = whisper_identity_trust(r->w->alice->ctx, r->id_name, r->id_device, r->id_key,
                                  sizeof r->id_key);
    FZ_ASSERT(rc == WHISPER_OK, "trust: %d", rc);
    rc = whisper_client_retry(r->c, r->now);
  } else if (t == FZS_APP_SEND) {
    rc = whisper_client_send(r->c, "bob", (const uint8_t *)"fuzz", 4, r->now, id);
  } else if (t == FZS_APP_SEND_GROUP) {
    rc = whisper_client_send_group(r->c, r->w->group_id, (const uint8_t *)"fuzz", 4, r->now, id);
  } else if (t == FZS_APP_PROFILE_SET) {
    rc = whisper_client_profile_set(r->c, "Fuzz", "about fuzz", fzs_picture, sizeof fzs_picture, r->now);
  } else if (t == FZS_APP_PROFILE_REFRESH) {
    rc = whisper_client_profile_refresh(r->c, NULL);
  } else if (t == FZS_APP_BLOCK) {
    rc = whisper_client_block(r->c, "bob", r->now);
  } else if (t == FZS_APP_UNBLOCK) {
    rc = whisper_client_unblock(r->c, "bob", r->now);
  } else if (t == FZS_APP_REPORT) {
    rc = whisper_client_report(r->c, "bob", 3, 0, r->now);
  } else {
    rc = whisper_client_link_approve(r->c, token, fzs_link_token(r->w, token));
  }
  FZ_ASSERT(rc == WHISPER_OK || (rc == WHISPER_EBLOCKED && t == FZS_APP_SEND), "app record %02x: %d", t, rc);
  events_drop_run(r->c, r);
}

fzs_client_world *fzs_client_world_new(void) {
  fzs_client_world *w = calloc(1, sizeof *w);
  FZ_ASSERT(w != NULL, "out of memory");
  static const whisper_client_config_t init = WHISPER_CLIENT_CONFIG_INIT;
  w->cfg = init;
  w->cfg.prekey_batch = 5;
  w->cfg.prekey_low = 3;
  w->alice = fz_dev_new("alice", 1, 0xC1);
  w->alice2 = fz_dev_new("alice", 2, 0xC2);
  w->bob = fz_dev_new("bob", 1, 0xC3);
  w->carol = fz_dev_new("carol", 1, 0xC4);
  w->mallory = fz_dev_new("bob", 1, 0xC5);
  w->erin = fz_dev_new("erin", 1, 0xC6);
  w->alice3 = fz_dev_new("alice", 3, 0xC7);

  run r = {w, NULL, FZ_NOW, NULL, NULL, NULL, 0, 0, "", 0, {0}};
  FZ_ASSERT(whisper_client_new(&r.c, w->alice->ctx, client_cfg(w)) == WHISPER_OK, "client_new");
  whisper_client_connected(r.c, r.now);
  run_feed(&r, fzs_challenge());
  run_quiet(&r); /* registers, logs in, uploads nothing more */
  FZ_ASSERT(whisper_client_send(r.c, "bob", (const uint8_t *)"hello bob", 9, r.now, w->sent_id) ==
                WHISPER_OK,
            "send");
  run_quiet(&r);
  const char *members[] = {"bob"};
  FZ_ASSERT(whisper_client_group_create(r.c, members, 1, r.now, w->group_id) == WHISPER_OK,
            "group_create");
  run_quiet(&r);
  FZ_ASSERT(whisper_client_send_group(r.c, w->group_id, (const uint8_t *)"hello group", 11, r.now,
                                      w->group_sent_id) == WHISPER_OK,
            "send_group");
  run_quiet(&r);
  whisper_client_disconnected(r.c, r.now);
  /* offline: two messages and two operations wait */
  FZ_ASSERT(whisper_client_send(r.c, "bob", (const uint8_t *)"pending", 7, r.now, w->pending_id) ==
                WHISPER_OK,
            "send");
  FZ_ASSERT(whisper_client_send(r.c, "carol", (const uint8_t *)"hi carol", 8, r.now, w->carol_id) ==
                WHISPER_OK,
            "send");
  memset(w->read_id, 0x77, 16);
  FZ_ASSERT(whisper_client_mark_read(r.c, "bob", "bob", (const uint8_t(*)[16])w->read_id, 1, r.now) ==
                WHISPER_OK,
            "mark_read");
  const char *add[] = {"carol"};
  FZ_ASSERT(whisper_client_group_add(r.c, w->group_id, add, 1, r.now) == WHISPER_OK, "group_add");
  events_drop(r.c);
  whisper_client_free(r.c);
  return w;
}

void fzs_client_world_free(fzs_client_world *w) {
  if (w == NULL) return;
  whisper_buf_free(w->profile);
  fz_dev_free(w->alice);
  fz_dev_free(w->alice2);
  fz_dev_free(w->bob);
  fz_dev_free(w->carol);
  fz_dev_free(w->mallory);
  fz_dev_free(w->erin);
  fz_dev_free(w->alice3);
  free(w);
}

static void take_all(whisper_client *c, void (*sent)(void *, const whisper_buf *), void *arg) {
  whisper_buf *b;
  while (whisper_client_take_frame(c, &b)) {
    if (sent) sent(arg, b);
    whisper_buf_free(b);
  }
}

static void feed_setup(whisper_client *c, whisper_buf *b) {
  int rc = whisper_client_receive(c, b->data, b->len, FZS_CT0);
  FZ_ASSERT(rc == WHISPER_OK, "setup frame refused: %d", rc);
  whisper_buf_free(b);
}

whisper_client *fzs_client_start(fzs_client_world *w, int mode, fz_dev **dev_out,
                                 void (*sent)(void *arg, const whisper_buf *frame), void *arg) {
  fz_dev *d = mode == FZS_MODE_REGISTER ? w->erin : mode == FZS_MODE_LINK ? w->alice3 : w->alice;
  whisper_client *c = NULL;
  d->rng.counter = UINT64_C(1) << 40;
  d->ctx->have_history_salt = 0; /* read as a new context would */
  fz_journal_begin(&d->fs);
  int rc = whisper_client_new(&c, d->ctx, client_cfg(w));
  FZ_ASSERT(rc == WHISPER_OK, "client_new: %d (%s)", rc, whisper_ctx_last_error(d->ctx));
  whisper_client_connected(c, FZS_CT0);
  take_all(c, sent, arg);
  if (mode == FZS_MODE_AUTH || mode == FZS_MODE_ONLINE) {
    feed_setup(c, fzs_challenge());
    take_all(c, sent, arg);
  }
  if (mode == FZS_MODE_ONLINE) {
    feed_setup(c, fzs_ok(2, 1));
    take_all(c, sent, arg);
  }
  *dev_out = d;
  return c;
}

void fzs_client_end(fz_dev *d, whisper_client *c) {
  whisper_client_free(c);
  fz_journal_restore(&d->fs);
}

/* --- seeds: fuzz_server ----------------------------------------------------------- */

/* Frames of the seeds (ids are the fuzzer's; any nonzero id will do). */
static whisper_buf *profile_set_frame(uint64_t id, const uint8_t *ct, size_t n, uint64_t version) {
  Whisper__Sync__ProfileSet p = WHISPER__SYNC__PROFILE_SET__INIT;
  p.has_ciphertext = n > 0;
  p.ciphertext = (ProtobufCBinaryData){n, (uint8_t *)ct};
  p.has_version = version > 0;
  p.version = version;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE_SET;
  f.profile_set = &p;
  return fzs_pack(&f, id);
}

static whisper_buf *profile_get_frame(uint64_t id, const char *account) {
  Whisper__Sync__ProfileGet p = WHISPER__SYNC__PROFILE_GET__INIT;
  p.account = (char *)account;
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE_GET;
  f.profile_get = &p;
  return fzs_pack(&f, id);
}

static whisper_buf *simple(int body, void *msg, uint64_t id) {
  fzs_frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = (Whisper__Sync__Frame__BodyCase)body;
  /* every body pointer shares the union's storage */
  f.hello = msg;
  return fzs_pack(&f, id);
}

static whisper_buf *ack_frame(uint64_t id, uint64_t up_to) {
  Whisper__Sync__Ack a = WHISPER__SYNC__ACK__INIT;
  a.has_up_to = 1;
  a.up_to = up_to;
  return simple(WHISPER__SYNC__FRAME__BODY_ACK, &a, id);
}

static whisper_buf *receipt_frame(uint64_t id, const char *to, uint32_t status,
                                  const uint8_t (*ids)[16], size_t n, const uint8_t *gid) {
  ProtobufCBinaryData cids[8];
  for (size_t i = 0; i < n; i++) cids[i] = (ProtobufCBinaryData){16, (uint8_t *)ids[i]};
  Whisper__Sync__Receipt r = WHISPER__SYNC__RECEIPT__INIT;
  r.to = (char *)to;
  r.has_status = 1;
  r.status = status;
  r.n_client_ids = n;
  r.client_ids = cids;
  if (gid) {
    r.has_group_id = 1;
    r.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  }
  return simple(WHISPER__SYNC__FRAME__BODY_RECEIPT, &r, id);
}

static whisper_buf *typing_frame(uint64_t id, const char *to, const uint8_t *gid, int started) {
  Whisper__Sync__Typing t = WHISPER__SYNC__TYPING__INIT;
  t.to = (char *)to;
  if (gid) {
    t.has_group_id = 1;
    t.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  }
  t.has_started = 1;
  t.started = started;
  return simple(WHISPER__SYNC__FRAME__BODY_TYPING, &t, id);
}

static whisper_buf *presence_set_frame(uint64_t id, int visible, int receipts) {
  Whisper__Sync__PresenceSet p = WHISPER__SYNC__PRESENCE_SET__INIT;
  p.has_online_visible = p.has_read_receipts = 1;
  p.online_visible = visible;
  p.read_receipts = receipts;
  return simple(WHISPER__SYNC__FRAME__BODY_PRESENCE_SET, &p, id);
}

/* PresenceSet{mutes}: bob muted for good, a group until a time */
static whisper_buf *presence_mutes_frame(uint64_t id) {
  Whisper__Sync__MuteList__Mute m[2] = {WHISPER__SYNC__MUTE_LIST__MUTE__INIT,
                                        WHISPER__SYNC__MUTE_LIST__MUTE__INIT};
  Whisper__Sync__MuteList__Mute *mp[2] = {&m[0], &m[1]};
  m[0].conversation = "bob";
  m[0].has_until_ms = m[1].has_until_ms = 1;
  m[0].until_ms = UINT64_MAX;
  m[1].conversation = "#00112233445566778899aabbccddeeff";
  m[1].until_ms = FZ_NOW + 3600000;
  Whisper__Sync__MuteList ml = WHISPER__SYNC__MUTE_LIST__INIT;
  ml.n_mutes = 2;
  ml.mutes = mp;
  Whisper__Sync__PresenceSet p = WHISPER__SYNC__PRESENCE_SET__INIT;
  p.mutes = &ml;
  return simple(WHISPER__SYNC__FRAME__BODY_PRESENCE_SET, &p, id);
}

static whisper_buf *subscribe_frame(uint64_t id, const char *const *accts, size_t n) {
  Whisper__Sync__PresenceSubscribe p = WHISPER__SYNC__PRESENCE_SUBSCRIBE__INIT;
  p.n_accounts = n;
  p.accounts = (char **)accts;
  return simple(WHISPER__SYNC__FRAME__BODY_SUBSCRIBE, &p, id);
}

static whisper_buf *fetch_frame(uint64_t id, const char *acct, const uint32_t *ids, size_t n) {
  Whisper__Sync__FetchBundles fb = WHISPER__SYNC__FETCH_BUNDLES__INIT;
  fb.account = (char *)acct;
  fb.n_device_ids = n;
  fb.device_ids = (uint32_t *)ids;
  return simple(WHISPER__SYNC__FRAME__BODY_FETCH, &fb, id);
}

static whisper_buf *list_frame(uint64_t id, const char *acct) {
  Whisper__Sync__ListDevices l = WHISPER__SYNC__LIST_DEVICES__INIT;
  l.account = (char *)acct;
  return simple(WHISPER__SYNC__FRAME__BODY_LIST_DEVICES, &l, id);
}

static whisper_buf *ping_frame(uint64_t id, uint64_t nonce) {
  Whisper__Sync__Ping p = WHISPER__SYNC__PING__INIT;
  p.has_nonce = 1;
  p.nonce = nonce;
  return simple(WHISPER__SYNC__FRAME__BODY_PING, &p, id);
}

/* UploadPrekeys: n one-time prekeys of d and, with `rotate`, a new signed
 * prekey (id 7) validly signed by d's identity key. */
static whisper_buf *upload_frame(fz_dev *d, uint64_t id, uint32_t n, int rotate) {
  uint8_t pubs[8][WHISPER_PUBLIC_KEY_LEN];
  Whisper__Sync__OneTimePrekey pk[8], *pkp[8];
  uint32_t first = 0;
  FZ_ASSERT(n <= 8, "upload");
  if (n) FZ_ASSERT(whisper_prekeys_generate(d->ctx, n, &first) == WHISPER_OK, "prekeys");
  for (uint32_t i = 0; i < n; i++) {
    whisper__sync__one_time_prekey__init(&pk[i]);
    prekey_pub(d, first + i, pubs[i]);
    pk[i].has_id = pk[i].has_key = 1;
    pk[i].id = first + i;
    pk[i].key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, pubs[i]};
    pkp[i] = &pk[i];
  }
  Whisper__Sync__UploadPrekeys u = WHISPER__SYNC__UPLOAD_PREKEYS__INIT;
  u.n_prekeys = n;
  u.prekeys = pkp;
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  if (rotate) {
    FZ_ASSERT(whisper_signed_prekey_generate(d->ctx, 7, FZ_NOW) == WHISPER_OK, "spk");
    FZ_ASSERT(whisper_bundle_generate(d->ctx, 0, &b) == WHISPER_OK, "bundle");
    k.has_identity_key = k.has_signed_prekey_id = k.has_signed_prekey = 1;
    k.has_signed_prekey_signature = 1;
    k.identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.identity_key};
    k.signed_prekey_id = b.signed_prekey_id;
    k.signed_prekey = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.signed_prekey};
    k.signed_prekey_signature =
        (ProtobufCBinaryData){WHISPER_SIGNATURE_LEN, b.signed_prekey_signature};
    u.signed_ = &k;
  }
  return simple(WHISPER__SYNC__FRAME__BODY_UPLOAD, &u, id);
}

static whisper_buf *group_send_frame(uint64_t id, const uint8_t *client_id, const uint8_t *gid,
                                     const char *body) {
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.has_client_id = s.has_content = s.has_group_id = s.has_body = 1;
  s.client_id = (ProtobufCBinaryData){16, (uint8_t *)client_id};
  s.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  s.body = (ProtobufCBinaryData){strlen(body), (uint8_t *)body};
  s.content = WHISPER__SYNC__CONTENT__CONTENT_TEXT;
  return simple(WHISPER__SYNC__FRAME__BODY_SEND, &s, id);
}

/* A SignedDeviceList of `account`: entries (ids[i], the identity key of
 * keys[i]), signed by `signer` over "whisper-devices-v1" || body (with
 * `bad_sig`, one bit of the signature flipped). */
static whisper_buf *device_list(fz_dev *signer, const char *account, uint64_t version,
                                const uint32_t *ids, fz_dev *const *keys, size_t n, int bad_sig) {
  static const char ctx_str[] = "whisper-devices-v1";
  Whisper__E2e__ListedDevice ld[8], *ldp[8];
  uint8_t pubs[8][WHISPER_PUBLIC_KEY_LEN], body[512], msg[sizeof ctx_str + 512];
  uint8_t sig[WHISPER_SIGNATURE_LEN];
  FZ_ASSERT(n <= 8, "device_list");
  for (size_t i = 0; i < n; i++) {
    whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
    FZ_ASSERT(whisper_bundle_generate(keys[i]->ctx, 0, &b) == WHISPER_OK, "bundle_make");
    memcpy(pubs[i], b.identity_key, WHISPER_PUBLIC_KEY_LEN);
    whisper__e2e__listed_device__init(&ld[i]);
    ld[i].has_device_id = ld[i].has_identity_key = 1;
    ld[i].device_id = ids[i];
    ld[i].identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, pubs[i]};
    ldp[i] = &ld[i];
  }
  Whisper__E2e__DeviceListBody lb = WHISPER__E2E__DEVICE_LIST_BODY__INIT;
  lb.account = (char *)account;
  lb.has_version = 1;
  lb.version = version;
  lb.n_devices = n;
  lb.devices = ldp;
  size_t bn = whisper__e2e__device_list_body__get_packed_size(&lb);
  FZ_ASSERT(bn <= sizeof body, "device_list body");
  whisper__e2e__device_list_body__pack(&lb, body);
  memcpy(msg, ctx_str, sizeof ctx_str - 1);
  memcpy(msg + sizeof ctx_str - 1, body, bn);
  FZ_ASSERT(wh_local_identity(signer->ctx) == WHISPER_OK, "identity");
  FZ_ASSERT(whisper_sign(signer->ctx, signer->ctx->identity.priv, msg, sizeof ctx_str - 1 + bn,
                         sig) == WHISPER_OK,
            "sign");
  if (bad_sig) sig[9] ^= 4;
  Whisper__E2e__SignedDeviceList sl = WHISPER__E2E__SIGNED_DEVICE_LIST__INIT;
  sl.has_body = sl.has_signature = 1;
  sl.body = (ProtobufCBinaryData){bn, body};
  sl.signature = (ProtobufCBinaryData){sizeof sig, sig};
  whisper_buf *out = whisper_buf_new(NULL, whisper__e2e__signed_device_list__get_packed_size(&sl));
  FZ_ASSERT(out != NULL, "out of memory");
  whisper__e2e__signed_device_list__pack(&sl, out->data);
  return out;
}

static whisper_buf *publish_frame(uint64_t id, const whisper_buf *list) {
  Whisper__Sync__PublishDevices p = WHISPER__SYNC__PUBLISH_DEVICES__INIT;
  p.has_signed_list = 1;
  p.signed_list = (ProtobufCBinaryData){list->len, list->data};
  return simple(WHISPER__SYNC__FRAME__BODY_PUBLISH, &p, id);
}

static whisper_buf *link_approve_list(uint64_t id, const uint8_t *code, const whisper_buf *list) {
  Whisper__Sync__LinkApprove la = WHISPER__SYNC__LINK_APPROVE__INIT;
  la.has_link_code = la.has_signed_list = 1;
  la.link_code = (ProtobufCBinaryData){16, (uint8_t *)code};
  la.signed_list = (ProtobufCBinaryData){list->len, list->data};
  return simple(WHISPER__SYNC__FRAME__BODY_LINK_APPROVE, &la, id);
}

/* A SignedGroupChange for `gid` (the signature is not the server's to
 * check: 64 bytes of 0x5A); *hash (if not NULL) gets SHA-256 of its body. */
static whisper_buf *group_change(const uint8_t *gid, uint64_t version, const uint8_t *prev,
                                 const char *const *members, size_t n, uint8_t *hash) {
  Whisper__E2e__GroupChangeBody gb = WHISPER__E2E__GROUP_CHANGE_BODY__INIT;
  uint8_t body[512], sig[WHISPER_SIGNATURE_LEN];
  gb.has_group_id = gb.has_version = gb.has_author_device = 1;
  gb.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  gb.version = version;
  if (prev) {
    gb.has_prev = 1;
    gb.prev = (ProtobufCBinaryData){32, (uint8_t *)prev};
  }
  gb.n_members = gb.n_admins = n;
  gb.members = gb.admins = (char **)members;
  gb.author = "alice";
  gb.author_device = 1;
  size_t bn = whisper__e2e__group_change_body__get_packed_size(&gb);
  FZ_ASSERT(bn <= sizeof body, "group_change body");
  whisper__e2e__group_change_body__pack(&gb, body);
  if (hash) crypto_hash_sha256(hash, body, bn);
  memset(sig, 0x5A, sizeof sig);
  Whisper__E2e__SignedGroupChange sc = WHISPER__E2E__SIGNED_GROUP_CHANGE__INIT;
  sc.has_body = sc.has_signature = 1;
  sc.body = (ProtobufCBinaryData){bn, body};
  sc.signature = (ProtobufCBinaryData){sizeof sig, sig};
  whisper_buf *out = whisper_buf_new(NULL, whisper__e2e__signed_group_change__get_packed_size(&sc));
  FZ_ASSERT(out != NULL, "out of memory");
  whisper__e2e__signed_group_change__pack(&sc, out->data);
  return out;
}

/* A GroupOp carrying `change` (freed here). */
static whisper_buf *group_op_change(uint64_t id, int op, const uint8_t *gid,
                                    const char *const *members, size_t n, whisper_buf *change) {
  whisper_buf *b = group_op(id, op, gid, members, n);
  fzs_frame *f = fzs_unpack(b->data, b->len);
  f->group->has_change = 1;
  f->group->change = (ProtobufCBinaryData){change->len, change->data};
  whisper_buf_free(b);
  b = fzs_pack(f, 0);
  f->group->has_change = 0; /* the bytes are change's, not the frame's */
  f->group->change = (ProtobufCBinaryData){0, NULL};
  fzs_frame_free(f);
  whisper_buf_free(change);
  return b;
}

/* Adds the frame to the script as a RECV on `slot` and frees it. */
static void recv_take(fzs_script *s, int slot, whisper_buf *b) {
  fzs_op_recv(s, slot, b);
  whisper_buf_free(b);
}

static void add_script(fz_seeds *seeds, const char *name, fzs_script *s) {
  fz_seeds_add(seeds, name, fzs_take(s), 1);
}

/* In-place edits of frames (the bytes stay the unpacked frame's own). */
static whisper_buf *repack(fzs_frame *f, whisper_buf *old) {
  whisper_buf_free(old);
  whisper_buf *b = fzs_pack(f, 0);
  fzs_frame_free(f);
  return b;
}

/* Auth with a signature of `len` bytes, all 0x11. */
static whisper_buf *edit_auth(whisper_buf *b, size_t len) {
  fzs_frame *f = fzs_unpack(b->data, b->len);
  FZ_ASSERT(len <= f->auth->signature.len, "edit_auth");
  f->auth->signature.len = len;
  memset(f->auth->signature.data, 0x11, len);
  return repack(f, b);
}

/* Hello with another protocol (0: none) or without its device id. */
static whisper_buf *edit_hello(whisper_buf *b, uint32_t protocol, int with_device) {
  fzs_frame *f = fzs_unpack(b->data, b->len);
  f->hello->has_protocol = protocol != 0;
  f->hello->protocol = protocol;
  f->hello->has_device_id = with_device;
  return repack(f, b);
}

/* 1: a 63-byte signature; 2: a 15-byte link code; 3: a bad signature. */
static whisper_buf *edit_register(whisper_buf *b, int how) {
  fzs_frame *f = fzs_unpack(b->data, b->len);
  Whisper__Sync__Register *r = f->register_;
  if (how == 1) r->signature.len = 63;
  if (how == 2) r->link_code.len = 15;
  if (how == 3) r->signature.data[5] ^= 0x20;
  return repack(f, b);
}

/* 1: a 15-byte client id; 2: a 15-byte group id. */
static whisper_buf *edit_receipt(whisper_buf *b, int how) {
  fzs_frame *f = fzs_unpack(b->data, b->len);
  if (how == 1) f->receipt->client_ids[0].len = 15;
  if (how == 2) f->receipt->group_id.len = 15;
  return repack(f, b);
}

/* 1: the signed prekey without its signature; 2: another identity key;
 * 3: a prekey id twice. */
static whisper_buf *edit_upload(whisper_buf *b, int how) {
  fzs_frame *f = fzs_unpack(b->data, b->len);
  Whisper__Sync__UploadPrekeys *u = f->upload;
  if (how == 1) u->signed_->has_signed_prekey_signature = 0;
  if (how == 2) u->signed_->identity_key.data[7] ^= 1;
  if (how == 3) u->prekeys[1]->id = u->prekeys[0]->id;
  return repack(f, b);
}

static whisper_buf *block_set_frame(uint64_t id, const char *const *accounts, const int *blocked,
                                    const uint64_t *at, size_t n) {
  Whisper__Sync__BlockEntry e[8], *ep[8];
  FZ_ASSERT(n <= 8, "block_set_frame");
  for (size_t i = 0; i < n; i++) {
    whisper__sync__block_entry__init(&e[i]);
    e[i].account = (char *)accounts[i];
    e[i].has_blocked = e[i].has_changed_at = 1;
    e[i].blocked = blocked[i];
    e[i].changed_at = at[i];
    ep[i] = &e[i];
  }
  Whisper__Sync__BlockSet b = WHISPER__SYNC__BLOCK_SET__INIT;
  b.n_entries = n;
  b.entries = ep;
  return simple(WHISPER__SYNC__FRAME__BODY_BLOCK_SET, &b, id);
}

static whisper_buf *report_frame(uint64_t id, const char *conv, size_t n, int blocked) {
  Whisper__Sync__ReportedMessage m[4], *mp[4];
  FZ_ASSERT(n <= 4, "report_frame");
  for (size_t i = 0; i < n; i++) {
    whisper__sync__reported_message__init(&m[i]);
    m[i].has_id = m[i].has_sent_at_ms = m[i].has_text = 1;
    m[i].id = (ProtobufCBinaryData){16, (uint8_t *)"fz-reported-msg"};
    m[i].sender = i % 2 ? "bob" : "alice";
    m[i].sent_at_ms = FZ_NOW + i;
    m[i].text = (ProtobufCBinaryData){5, (uint8_t *)"spam!"};
    if (i == 2) m[i].has_truncated = m[i].truncated = 1;
    if (i == 3) m[i].has_deleted = m[i].deleted = 1, m[i].text.len = 0;
    mp[i] = &m[i];
  }
  Whisper__Sync__Report r = WHISPER__SYNC__REPORT__INIT;
  r.conversation = (char *)conv;
  r.n_messages = n;
  r.messages = mp;
  if (blocked) r.has_blocked = r.blocked = 1;
  return simple(WHISPER__SYNC__FRAME__BODY_REPORT, &r, id);
}

/* The builders other targets' seeds use (fuzz_sync.h). */
uint32_t fzs_regid(fz_dev *d) { return regid_of(d); }
whisper_buf *fzs_send_direct(uint64_t id, const uint8_t *client_id, const char *to,
                             const uint32_t *to_devs, const uint32_t *to_regids, size_t n_to,
                             const uint32_t *own_devs, size_t n_own, const char *body) {
  return send_direct(id, client_id, to, to_devs, to_regids, n_to, own_devs, n_own, body);
}
whisper_buf *fzs_typing(uint64_t id, const char *to, const uint8_t *gid, int started) {
  return typing_frame(id, to, gid, started);
}
whisper_buf *fzs_presence_set(uint64_t id, int visible, int receipts) {
  return presence_set_frame(id, visible, receipts);
}
whisper_buf *fzs_subscribe(uint64_t id, const char *const *accts, size_t n) {
  return subscribe_frame(id, accts, n);
}
whisper_buf *fzs_ack(uint64_t id, uint64_t up_to) { return ack_frame(id, up_to); }

void fzs_gen_server_seeds(fz_seeds *seeds) {
  fzs_server_world *w = fzs_server_world_new();
  fzs_script s = {0};
  const uint32_t bob1 = 1, alice2 = 2, bob2 = 2;
  uint32_t bob_reg = regid_of(w->dev[FZS_BOB1]);
  const uint8_t cid[16] = "fz-client-id-01", cid2[16] = "fz-client-id-02";
  /* slot 0: alice.1, slot 1: bob.1 (logged in), slot 2: open, slot 3: closed */

  /* 1:1 sends: exact lists, again (idempotent), stale lists, to an unknown account */
  recv_take(&s, 0, send_direct(1, cid, "bob", &bob1, &bob_reg, 1, &alice2, 1, "hello"));
  recv_take(&s, 0, send_direct(2, cid, "bob", &bob1, &bob_reg, 1, &alice2, 1, "hello"));
  recv_take(&s, 0, send_direct(3, cid2, "bob", &bob2, NULL, 1, NULL, 0, "stale"));
  recv_take(&s, 0, send_direct(4, cid2, "zed", &bob1, NULL, 1, NULL, 0, "nobody"));
  add_script(seeds, "send_direct", &s);

  /* a message to oneself (other devices), then bob acks and reads */
  recv_take(&s, 0, send_direct(1, cid, "alice", &alice2, NULL, 1, NULL, 0, "note"));
  recv_take(&s, 1, ack_frame(1, 3));
  recv_take(&s, 1, receipt_frame(2, "alice", 3, (const uint8_t(*)[16])w->sent_ids, 3, NULL));
  recv_take(&s, 1, ack_frame(3, 100));
  add_script(seeds, "ack_receipt", &s);

  /* the mailbox fills up (limit 12) */
  for (int i = 0; i < 8; i++) {
    uint8_t id[16];
    memset(id, 0x30 + i, 16);
    recv_take(&s, 0, send_direct((uint64_t)i + 1, id, "bob", &bob1, &bob_reg, 1, &alice2, 1, "x"));
  }
  add_script(seeds, "mailbox_full", &s);

  /* groups: a message, then admin operations, a leave, info */
  {
    const char *dave[] = {"dave"}, *carol[] = {"carol"}, *bob[] = {"bob"}, *alice[] = {"alice"};
    uint8_t g2[16];
    memset(g2, 0x62, 16);
    recv_take(&s, 0, group_send_frame(1, cid, w->group_id, "skm"));
    recv_take(&s, 1, group_send_frame(2, cid2, w->group_id, "skm from bob"));
    recv_take(&s, 0, group_op(3, WHISPER__SYNC__GROUP_OP__OP__ADMIN, w->group_id, bob, 1));
    recv_take(&s, 1, group_op(4, WHISPER__SYNC__GROUP_OP__OP__REMOVE, w->group_id, carol, 1));
    recv_take(&s, 1, group_op(5, WHISPER__SYNC__GROUP_OP__OP__ADD, w->group_id, dave, 1));
    recv_take(&s, 0, group_op(6, WHISPER__SYNC__GROUP_OP__OP__REMOVE, w->group_id, alice, 1));
    recv_take(&s, 1, group_op(7, WHISPER__SYNC__GROUP_OP__OP__INFO, w->group_id, NULL, 0));
    recv_take(&s, 1, group_op(8, WHISPER__SYNC__GROUP_OP__OP__CREATE, g2, carol, 1));
    add_script(seeds, "groups", &s);
  }
  {
    const char *alice[] = {"alice"}, *bob[] = {"bob"};
    recv_take(&s, 1, group_op(1, WHISPER__SYNC__GROUP_OP__OP__REMOVE, w->group_id, bob, 1));
    recv_take(&s, 0, group_op(2, WHISPER__SYNC__GROUP_OP__OP__REMOVE, w->group_id, alice, 1));
    recv_take(&s, 0, group_op(3, WHISPER__SYNC__GROUP_OP__OP__INFO, w->group_id, NULL, 0));
    add_script(seeds, "group_leave", &s);
  }

  /* typing and presence between the two online devices */
  {
    const char *subs[] = {"bob", "carol", "alice"};
    recv_take(&s, 0, subscribe_frame(1, subs, 3));
    recv_take(&s, 1, typing_frame(1, "alice", NULL, 1));
    recv_take(&s, 1, typing_frame(2, "alice", NULL, 1));
    recv_take(&s, 1, typing_frame(3, NULL, w->group_id, 0));
    recv_take(&s, 1, presence_set_frame(4, 0, 0));
    recv_take(&s, 1, receipt_frame(5, "alice", 3, (const uint8_t(*)[16])w->sent_ids, 1, NULL));
    fzs_op(&s, FZS_OP_CLOSE, 1, -1);
    fzs_op(&s, FZS_OP_TICK, 0, 200); /* past the presence grace and the heartbeat */
    add_script(seeds, "typing_presence", &s);
  }

  /* block lists: bob blocks alice (her send to him goes nowhere, her typing
   * neither, bob looks offline to her); an older word; self and twice are
   * refused; unblocked later. Reports: three (the store keeps 2), one of a
   * group conversation, a malformed one */
  {
    const char *alice[] = {"alice"}, *bob[] = {"bob"}, *two[] = {"alice", "alice"};
    const int yes[] = {1, 1}, no[] = {0};
    const uint64_t t1[] = {FZ_NOW + 100, FZ_NOW + 100}, t0[] = {FZ_NOW}, t2[] = {FZ_NOW + 200};
    const char *subs[] = {"bob"};
    char gconv[WHISPER_GROUP_CONVERSATION_LEN + 1];
    whisper_client_group_conversation(w->group_id, gconv);
    recv_take(&s, 1, block_set_frame(1, alice, yes, t1, 1));
    recv_take(&s, 0, subscribe_frame(2, subs, 1));
    recv_take(&s, 0, send_direct(3, cid, "bob", &bob1, &bob_reg, 1, &alice2, 1, "blocked"));
    recv_take(&s, 0, typing_frame(4, "bob", NULL, 1));
    recv_take(&s, 1, block_set_frame(5, alice, no, t0, 1)); /* older: changes nothing */
    recv_take(&s, 1, block_set_frame(6, bob, yes, t1, 1));  /* itself: malformed */
    recv_take(&s, 1, block_set_frame(7, two, yes, t1, 2));  /* twice: malformed */
    recv_take(&s, 1, report_frame(8, "alice", 4, 1));
    recv_take(&s, 1, report_frame(9, gconv, 1, 0));
    recv_take(&s, 0, report_frame(10, "bob", 2, 0));
    recv_take(&s, 0, report_frame(11, "#00", 1, 0));
    recv_take(&s, 1, block_set_frame(12, alice, no, t2, 1));
    recv_take(&s, 0, send_direct(13, cid2, "bob", &bob1, &bob_reg, 1, &alice2, 1, "unblocked"));
    add_script(seeds, "block_report", &s);
  }

  /* the prekey directory */
  {
    uint32_t two = 2;
    recv_take(&s, 0, fetch_frame(1, "bob", NULL, 0));
    recv_take(&s, 0, fetch_frame(2, "bob", &bob1, 1));
    recv_take(&s, 0, fetch_frame(3, "alice", &two, 1));
    recv_take(&s, 0, fetch_frame(4, "nobody", NULL, 0));
    recv_take(&s, 0, list_frame(5, "alice"));
    recv_take(&s, 1, upload_frame(w->dev[FZS_BOB1], 6, 4, 1));
    recv_take(&s, 1, upload_frame(w->dev[FZS_BOB1], 7, 8, 0));
    add_script(seeds, "prekeys", &s);
  }

  /* registration: a new account (and again: Ok), an existing device, a link */
  recv_take(&s, 2, fzs_register(w->dev[FZS_DAVE1], 1, 2, NULL));
  recv_take(&s, 2, fzs_register(w->dev[FZS_DAVE1], 2, 0, NULL));
  recv_take(&s, 2, fzs_register(w->dev[FZS_ALICE3], 3, 0, NULL));
  fzs_op(&s, FZS_OP_LOGIN, 2, FZS_DAVE1);
  add_script(seeds, "register", &s);

  recv_take(&s, 2, fzs_register(w->dev[FZS_ALICE3], 1, 2, w->link_code));
  recv_take(&s, 0, link_approve(2, w->link_code));
  fzs_op(&s, FZS_OP_LOGIN, 2, FZS_ALICE3);
  recv_take(&s, 2, list_frame(3, "alice"));
  add_script(seeds, "link_approve", &s);

  /* a held registration whose code lapses (its own LinkRequest and pings
   * keep the connection past the auth timeout) */
  recv_take(&s, 2, link_request(1, "alice"));
  recv_take(&s, 2, fzs_register(w->dev[FZS_ALICE3], 1, 0, w->link_code));
  for (int i = 0; i < 14; i++) {
    fzs_op(&s, FZS_OP_TICK, 0, 127 + 3); /* 45 s */
    recv_take(&s, 2, ping_frame((uint64_t)i + 2, 0));
  }
  add_script(seeds, "link_expire", &s);

  /* logins: a second login of alice.1 closes the first; a wrong device; a
   * resume past the mailbox */
  fzs_op(&s, FZS_OP_LOGIN, 2, FZS_ALICE1);
  fzs_op(&s, FZS_OP_OPEN, 3, -1);
  fzs_op(&s, FZS_OP_LOGIN, 3, FZS_ALICE2 | 3 << 3);
  fzs_op(&s, FZS_OP_OPEN, 0, -1);
  fzs_op(&s, FZS_OP_LOGIN, 0, FZS_DAVE1);
  recv_take(&s, 3, ack_frame(9, 2));
  add_script(seeds, "logins", &s);

  /* refusals: malformed three times (closed), a bad version (closed),
   * requests before login, Auth before Hello, a ping, a big frame */
  {
    uint8_t junk[] = {0xff, 0xff, 0xff};
    whisper_buf jb = {junk, sizeof junk};
    fzs_op_recv(&s, 2, &jb);
    recv_take(&s, 2, ping_frame(7, 77));
    recv_take(&s, 2, list_frame(8, "bob"));
    recv_take(&s, 2, fzs_auth(w->dev[FZS_BOB1], 9, fzs_nonce, 32, 0));
    fzs_op_recv(&s, 0, &jb);
    fzs_op_recv(&s, 0, &jb);
    fzs_op_recv(&s, 0, &jb);
    whisper_buf *v2 = ping_frame(10, 1);
    v2->data[1] = 2; /* version 2 */
    fzs_op_recv(&s, 1, v2);
    whisper_buf_free(v2);
    uint8_t big[2100];
    memset(big, 0, sizeof big);
    whisper_buf bb = {big, sizeof big};
    fzs_op_recv(&s, 2, &bb);
    add_script(seeds, "refusals", &s);
  }

  /* login refusals: a bad signature (closed), malformed Hellos, Hello
   * when logged in, a short Auth signature */
  {
    uint8_t sig[64];
    memset(sig, 0x11, sizeof sig);
    recv_take(&s, 2, fzs_hello(1, "alice", 1));
    recv_take(&s, 2, edit_auth(fzs_auth(w->dev[FZS_ALICE1], 2, fzs_nonce, 32, 0), 64));
    fzs_op(&s, FZS_OP_OPEN, 2, -1);
    recv_take(&s, 2, edit_hello(fzs_hello(3, "alice", 1), 2, 1));
    recv_take(&s, 2, edit_hello(fzs_hello(4, "alice", 1), 1, 0));
    recv_take(&s, 2, fzs_hello(5, "Alice!", 1));
    recv_take(&s, 0, fzs_hello(6, "alice", 1));
    recv_take(&s, 2, fzs_hello(7, "bob", 1));
    recv_take(&s, 2, edit_auth(fzs_auth(w->dev[FZS_BOB1], 8, fzs_nonce, 32, 0), 63));
    add_script(seeds, "login_refusals", &s);
  }

  /* registration refusals: signature length, link code length, a bad
   * signature, a new account's device 2, too many prekeys */
  recv_take(&s, 2, edit_register(fzs_register(w->dev[FZS_DAVE1], 1, 1, NULL), 1));
  recv_take(&s, 2, edit_register(fzs_register(w->dev[FZS_ALICE3], 2, 0, w->link_code), 2));
  recv_take(&s, 2, edit_register(fzs_register(w->dev[FZS_DAVE1], 3, 0, NULL), 3));
  recv_take(&s, 2, fzs_register(w->dev[FZS_ERIN2], 4, 0, NULL));
  recv_take(&s, 2, fzs_register(w->dev[FZS_DAVE1], 5, 9, NULL));
  recv_take(&s, 2, fzs_register(w->dev[FZS_ALICE4], 6, 0, NULL));
  add_script(seeds, "register_refusals", &s);

  /* alice.3 and alice.4 link: the fourth device is over the limit (3) */
  recv_take(&s, 2, fzs_register(w->dev[FZS_ALICE3], 1, 1, w->link_code));
  recv_take(&s, 0, link_approve(2, w->link_code));
  fzs_op(&s, FZS_OP_OPEN, 3, -1);
  recv_take(&s, 3, fzs_register(w->dev[FZS_ALICE4], 1, 1, w->link_code2));
  recv_take(&s, 0, link_approve(3, w->link_code2));
  add_script(seeds, "too_many_devices", &s);

  /* group limits (3 members) and non-members */
  {
    const char *dave[] = {"dave"}, *three[] = {"alice", "carol", "dave"}, *carol[] = {"carol"};
    const char *four[] = {"alice", "bob", "carol", "dave"};
    uint8_t g3[16];
    memset(g3, 0x63, 16);
    recv_take(&s, 2, fzs_register(w->dev[FZS_DAVE1], 1, 0, NULL));
    recv_take(&s, 0, group_op(2, WHISPER__SYNC__GROUP_OP__OP__ADD, w->group_id, dave, 1));
    recv_take(&s, 1, group_op(3, WHISPER__SYNC__GROUP_OP__OP__CREATE, g3, three, 3));
    recv_take(&s, 1, group_op(4, WHISPER__SYNC__GROUP_OP__OP__CREATE, g3, four, 4));
    recv_take(&s, 1, group_op(5, WHISPER__SYNC__GROUP_OP__OP__CREATE, g3, carol, 1));
    recv_take(&s, 0, typing_frame(6, NULL, g3, 1));
    recv_take(&s, 0, group_send_frame(7, cid, g3, "not a member"));
    whisper_buf *t = typing_frame(8, NULL, g3, 1);
    fzs_frame *tf = fzs_unpack(t->data, t->len);
    tf->typing->group_id.len = 15;
    whisper_buf_free(t);
    recv_take(&s, 0, fzs_pack(tf, 0));
    fzs_frame_free(tf);
    recv_take(&s, 0, group_op(9, WHISPER__SYNC__GROUP_OP__OP__ADMIN, w->group_id, dave, 1));
    add_script(seeds, "group_limits", &s);
  }

  /* receipt and upload refusals; a subscription repeated */
  {
    const char *bob[] = {"bob"};
    const uint8_t(*ids)[16] = (const uint8_t(*)[16])w->sent_ids;
    /* (three malformed frames in a row close a connection: others between) */
    recv_take(&s, 1, receipt_frame(1, "alice", 3, ids, 0, NULL));
    recv_take(&s, 1, edit_receipt(receipt_frame(2, "alice", 3, ids, 1, NULL), 1));
    recv_take(&s, 1, receipt_frame(3, "alice", 3, ids, 1, w->group_id));
    recv_take(&s, 1, edit_receipt(receipt_frame(4, "alice", 3, ids, 1, w->group_id), 2));
    recv_take(&s, 1, receipt_frame(5, "alice", 4, ids, 1, NULL));
    recv_take(&s, 1, receipt_frame(6, "nobody", 2, ids, 1, NULL));
    recv_take(&s, 1, edit_upload(upload_frame(w->dev[FZS_BOB1], 7, 1, 1), 1));
    recv_take(&s, 1, edit_upload(upload_frame(w->dev[FZS_BOB1], 8, 0, 1), 2));
    recv_take(&s, 1, edit_upload(upload_frame(w->dev[FZS_BOB1], 9, 2, 0), 3));
    recv_take(&s, 0, subscribe_frame(10, bob, 1));
    recv_take(&s, 0, subscribe_frame(11, bob, 1));
    add_script(seeds, "receipt_upload_refusals", &s);
  }

  /* acks of direct and group messages: two receipt batches for alice */
  recv_take(&s, 1, ack_frame(1, 4));
  recv_take(&s, 0, group_send_frame(2, cid, w->group_id, "skm"));
  recv_take(&s, 1, ack_frame(3, 7));
  add_script(seeds, "ack_group_receipts", &s);

  /* output left queued when a connection closes */
  {
    whisper_buf *b = ack_frame(1, 4);
    fzs_op_recv_deferred(&s, 1, b);
    whisper_buf_free(b);
  }
  fzs_op(&s, FZS_OP_CLOSE, 1, -1);
  {
    whisper_buf *b = group_send_frame(2, cid, w->group_id, "skm");
    fzs_op_recv_deferred(&s, 0, b);
    whisper_buf_free(b);
  }
  fzs_op(&s, FZS_OP_CLOSE, 0, -1);
  fzs_op(&s, FZS_OP_OPEN, 1, -1);
  fzs_op(&s, FZS_OP_LOGIN, 1, FZS_BOB1);
  add_script(seeds, "drop_output", &s);

  /* signed device lists: device 2 may not publish, a bad signature, a
   * list without device 1; version 1 names both devices (again: a stale
   * version), version 2 leaves alice.2 out: removed (its connection
   * closes, its login fails), and the directory follows */
  {
    fz_dev *a1 = w->dev[FZS_ALICE1], *a2 = w->dev[FZS_ALICE2];
    const uint32_t ids12[] = {1, 2}, ids1[] = {1}, ids2[] = {2};
    fz_dev *const keys12[] = {a1, a2}, *const keys1[] = {a1}, *const keys2[] = {a2};
    whisper_buf *v1 = device_list(a1, "alice", 1, ids12, keys12, 2, 0);
    fzs_op(&s, FZS_OP_LOGIN, 2, FZS_ALICE2);
    recv_take(&s, 2, publish_frame(1, v1));
    whisper_buf *l = device_list(a1, "alice", 1, ids12, keys12, 2, 1);
    recv_take(&s, 0, publish_frame(2, l));
    whisper_buf_free(l);
    l = device_list(a1, "alice", 1, ids2, keys2, 1, 0);
    recv_take(&s, 0, publish_frame(3, l));
    whisper_buf_free(l);
    recv_take(&s, 0, publish_frame(4, v1));
    recv_take(&s, 0, publish_frame(5, v1));
    recv_take(&s, 1, list_frame(6, "alice"));
    l = device_list(a1, "alice", 2, ids1, keys1, 1, 0);
    recv_take(&s, 0, publish_frame(7, l));
    whisper_buf_free(l);
    fzs_op(&s, FZS_OP_OPEN, 3, -1);
    fzs_op(&s, FZS_OP_LOGIN, 3, FZS_ALICE2);
    recv_take(&s, 1, fetch_frame(8, "alice", NULL, 0));
    recv_take(&s, 1, send_direct(9, cid, "alice", ids12, NULL, 2, NULL, 0, "to both"));
    recv_take(&s, 1, group_send_frame(10, cid2, w->group_id, "skm"));
    whisper_buf_free(v1);
    add_script(seeds, "publish_devices", &s);
  }

  /* a link approved with a signed list: alice.3 (listed) is added and the
   * list stored; alice.4 on a list naming another key for device 4 is
   * refused */
  {
    fz_dev *a1 = w->dev[FZS_ALICE1], *a2 = w->dev[FZS_ALICE2], *a3 = w->dev[FZS_ALICE3];
    const uint32_t ids123[] = {1, 2, 3}, ids14[] = {1, 4};
    fz_dev *const keys123[] = {a1, a2, a3}, *const keys14[] = {a1, a3};
    whisper_buf *l = device_list(a1, "alice", 1, ids123, keys123, 3, 0);
    recv_take(&s, 2, fzs_register(a3, 1, 1, w->link_code));
    recv_take(&s, 0, link_approve_list(2, w->link_code, l));
    whisper_buf_free(l);
    fzs_op(&s, FZS_OP_LOGIN, 2, FZS_ALICE3);
    recv_take(&s, 2, list_frame(3, "alice"));
    fzs_op(&s, FZS_OP_OPEN, 3, -1);
    recv_take(&s, 3, fzs_register(w->dev[FZS_ALICE4], 4, 1, w->link_code2));
    l = device_list(a1, "alice", 2, ids14, keys14, 2, 0);
    recv_take(&s, 0, link_approve_list(5, w->link_code2, l));
    whisper_buf_free(l);
    add_script(seeds, "link_signed_list", &s);
  }

  /* signed group changes: a creation at version 1, a change that does
   * not follow (prev), one that does, INFO with the latest */
  {
    const char *ab[] = {"alice", "bob"}, *abc[] = {"alice", "bob", "carol"};
    const char *bob[] = {"bob"}, *carol[] = {"carol"};
    uint8_t g4[16], h1[32], zero[32] = {0};
    memset(g4, 0x64, 16);
    recv_take(&s, 0, group_op_change(1, WHISPER__SYNC__GROUP_OP__OP__CREATE, g4, bob, 1,
                                     group_change(g4, 1, NULL, ab, 2, h1)));
    recv_take(&s, 0, group_op_change(2, WHISPER__SYNC__GROUP_OP__OP__ADD, g4, carol, 1,
                                     group_change(g4, 2, zero, abc, 3, NULL)));
    recv_take(&s, 0, group_op_change(3, WHISPER__SYNC__GROUP_OP__OP__ADD, g4, carol, 1,
                                     group_change(g4, 2, h1, abc, 3, NULL)));
    recv_take(&s, 1, group_op(4, WHISPER__SYNC__GROUP_OP__OP__INFO, g4, NULL, 0));
    recv_take(&s, 0, group_op_change(5, WHISPER__SYNC__GROUP_OP__OP__ADD, w->group_id, carol, 1,
                                     group_change(w->group_id, 2, h1, abc, 3, NULL)));
    add_script(seeds, "group_changes", &s);
  }

  /* rate limit: a burst of pings */
  for (int i = 0; i < 70; i++) recv_take(&s, 0, ping_frame((uint64_t)i + 1, (uint64_t)i));
  add_script(seeds, "rate_limit", &s);

  /* profiles: alice sets one (then a newer one, the same again, malformed
   * ones), bob reads hers and asks for one nobody set, a connection not
   * logged in asks; alice.2 logs in and sets a newer one */
  {
    uint8_t blob[300], big[1900];
    memset(blob, 0xB1, sizeof blob);
    memset(big, 0xB2, sizeof big);
    recv_take(&s, 0, profile_set_frame(1, blob, sizeof blob, 1));
    recv_take(&s, 0, profile_set_frame(2, blob, 100, 2));
    recv_take(&s, 0, profile_set_frame(3, blob, sizeof blob, 2)); /* not newer: ERR_STATE */
    recv_take(&s, 0, profile_set_frame(4, blob, sizeof blob, 0)); /* no version */
    recv_take(&s, 0, profile_set_frame(5, blob, 0, 3));           /* no ciphertext */
    recv_take(&s, 1, profile_get_frame(6, "alice"));
    recv_take(&s, 1, profile_get_frame(7, "bob"));                /* none: ERR_NOT_FOUND */
    recv_take(&s, 1, profile_get_frame(8, "Not a name"));
    recv_take(&s, 2, profile_get_frame(9, "alice"));              /* not logged in */
    fzs_op(&s, FZS_OP_LOGIN, 2, FZS_ALICE2);
    recv_take(&s, 2, profile_set_frame(10, big, sizeof big, 7));
    recv_take(&s, 1, profile_get_frame(11, "alice"));
    add_script(seeds, "profiles", &s);
  }

  /* timers: silent connections close; reopen */
  fzs_op(&s, FZS_OP_TICK, 0, 100);
  fzs_op(&s, FZS_OP_TICK, 0, 131);
  fzs_op(&s, FZS_OP_OPEN, 1, -1);
  fzs_op(&s, FZS_OP_LOGIN, 1, FZS_BOB1);
  recv_take(&s, 1, ack_frame(1, 6));
  fzs_op(&s, FZS_OP_TICK, 0, 135);
  add_script(seeds, "timers", &s);

  fzs_server_world_free(w);
}

/* --- seeds: fuzz_client ----------------------------------------------------------------- */

typedef struct variant_tbl {
  int body;          /* the request it answers */
  int nth;           /* its nth occurrence (0: every one) */
  int seen;
  whisper_buf *(*make)(fzs_client_world *w, const fzs_frame *req);
} variant_tbl;

static int table_variant(run *r, const fzs_frame *req, whisper_buf **out) {
  variant_tbl *t = r->arg;
  for (; t && t->make; t++) {
    if ((int)req->body_case != t->body) continue;
    t->seen++;
    if (t->nth && t->seen != t->nth) continue;
    out[0] = t->make(r->w, req);
    r->n_variant++;
    return out[0] ? 1 : 0;
  }
  return -1;
}

/* A seed: the engine of `mode`, optional frames first (taken), then the
 * scripted server answers everything (with the variants). */
static void client_seed(fz_seeds *seeds, fzs_client_world *w, const char *name, int mode,
                        whisper_buf **first, size_t n_first, variant_tbl *tbl,
                        const uint8_t *apps, size_t n_apps) {
  fzs_script s = {0};
  fz_dev *d;
  fzs_put_byte(&s, (uint8_t)mode);
  run r = {w, NULL, FZS_CT0, &s, tbl ? table_variant : NULL, tbl, 0, 0, "", 0, {0}};
  /* the requests sent during the start stay unanswered; what the frames
   * given make the engine send is answered */
  r.c = fzs_client_start(w, mode, &d, NULL, NULL);
  for (size_t i = 0; i < n_first; i++) run_feed(&r, first[i]);
  run_quiet(&r);
  for (size_t i = 0; i < n_apps; i++) {
    run_app(&r, apps[i]);
    run_quiet(&r);
  }
  events_drop(r.c);
  fzs_client_end(d, r.c);
  fz_seeds_add(seeds, name, fzs_take(&s), 1);
}

/* The requests an engine of `mode` has out after its start. */
typedef struct pending {
  fzs_frame *f[16];
  size_t n;
} pending;

static void pending_add(void *arg, const whisper_buf *b) {
  pending *p = arg;
  if (p->n < 16) p->f[p->n++] = fzs_unpack(b->data, b->len);
}

static void pending_free(pending *p) {
  for (size_t i = 0; i < p->n; i++) fzs_frame_free(p->f[i]);
  p->n = 0;
}

/* Like client_seed, but first answers the requests the engine sent during
 * its start (those fzs_client_start took). */
static void client_seed_answering(fz_seeds *seeds, fzs_client_world *w, const char *name, int mode,
                                  whisper_buf **first, size_t n_first, variant_tbl *tbl,
                                  const uint8_t *apps, size_t n_apps) {
  fzs_script s = {0};
  fz_dev *d;
  pending p = {0};
  fzs_put_byte(&s, (uint8_t)mode);
  run r = {w, NULL, FZS_CT0, &s, tbl ? table_variant : NULL, tbl, 0, 0, "", 0, {0}};
  r.c = fzs_client_start(w, mode, &d, pending_add, &p);
  for (size_t i = 0; i < n_first; i++) run_feed(&r, first[i]);
  for (size_t i = 0; i < p.n; i++) {
    whisper_buf *out[4] = {NULL};
    int n = -1;
    /* Hello and Auth were answered by the start in FZS_MODE_ONLINE */
    if (p.f[i] == NULL || (mode == FZS_MODE_ONLINE && p.f[i]->id <= 2)) continue;
    if (r.variant) n = r.variant(&r, p.f[i], out);
    if (n < 0) n = fzs_respond(w, p.f[i], out);
    for (int k = 0; k < n; k++) run_feed(&r, out[k]);
    run_quiet(&r);
  }
  pending_free(&p);
  run_quiet(&r);
  for (size_t i = 0; i < n_apps; i++) {
    run_app(&r, apps[i]);
    run_quiet(&r);
  }
  events_drop(r.c);
  fzs_client_end(d, r.c);
  fz_seeds_add(seeds, name, fzs_take(&s), 1);
}

static whisper_buf *v_stale(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  static uint32_t missing[] = {2};
  Whisper__Sync__StaleDevices sd = WHISPER__SYNC__STALE_DEVICES__INIT;
  sd.account = req->send->to ? req->send->to : "bob";
  sd.n_missing = 1;
  sd.missing = missing;
  sd.n_stale = 1;
  sd.stale = missing + 0;
  return simple(WHISPER__SYNC__FRAME__BODY_STALE, &sd, req->id);
}

static whisper_buf *v_stale_bob1(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  static uint32_t one[] = {1};
  Whisper__Sync__StaleDevices sd = WHISPER__SYNC__STALE_DEVICES__INIT;
  sd.account = "bob";
  sd.n_stale = 1;
  sd.stale = one;
  return simple(WHISPER__SYNC__FRAME__BODY_STALE, &sd, req->id);
}

/* Bundles for bob made of mallory's keys (another identity as bob.1). */
static whisper_buf *v_mallory_bundles(fzs_client_world *w, const fzs_frame *req) {
  const Whisper__Sync__FetchBundles *fb = req->fetch;
  if (strcmp(fb->account, "bob") != 0)
    return bundles_frame(w, req->id, fb->account, fb->device_ids, fb->n_device_ids);
  fz_dev *bob = w->bob;
  w->bob = w->mallory;
  whisper_buf *b = bundles_frame(w, req->id, "bob", fb->device_ids, fb->n_device_ids);
  w->bob = bob;
  return b;
}

static whisper_buf *v_rate(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  whisper_buf *b = fzs_error(req->id, 9, "over the rate limit");
  fzs_frame *f = fzs_unpack(b->data, b->len);
  f->has_retry_ms = 1;
  f->retry_ms = 1500;
  whisper_buf_free(b);
  b = fzs_pack(f, 0);
  fzs_frame_free(f);
  return b;
}

static whisper_buf *v_not_found(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  return fzs_error(req->id, 6, "no such thing");
}

static whisper_buf *v_auth(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  return fzs_error(req->id, 4, "the signature does not verify");
}

static whisper_buf *v_exists(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  return fzs_error(req->id, 5, "that device is registered");
}

static whisper_buf *v_none(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  (void)req;
  return NULL;
}

/* The scripted server holds a newer profile of alice's already (another
 * device's, of version 9, sealed under another key): ERR_STATE, and the
 * fetch that follows gets that one (refused: not under alice's key). */
static whisper_buf *v_not_newer(fzs_client_world *w, const fzs_frame *req) {
  static const uint8_t other_key[32] = "fz another device's profile key";
  fz_rng seal_rng = {{0x5F}, 0}; /* the same nonce every run */
  wh_rng rng = {fz_rng_fn, &seal_rng};
  whisper_buf_free(w->profile);
  w->profile = NULL;
  FZ_ASSERT(sy_profile_seal(&rng, other_key, "alice", 9, (const uint8_t *)"Other", 5, (const uint8_t *)"", 0,
                            NULL, 0, &w->profile) == WHISPER_OK,
            "seal");
  w->profile_version = 9;
  return fzs_error(req->id, 11, "the stored profile's version is not below this one");
}

static whisper_buf *v_wrong_body(fzs_client_world *w, const fzs_frame *req) {
  (void)w;
  Whisper__Sync__QueueEmpty q = WHISPER__SYNC__QUEUE_EMPTY__INIT;
  return simple(WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY, &q, req->id);
}

/* A 1:1 message entry from (from) to alice.1: plaintext `pt` (len bytes). */
static whisper_buf *message_entry_pt(fzs_client_world *w, fz_dev *from, uint64_t seq, int prekey,
                                     const uint8_t *pt, size_t len, const char *conversation_to,
                                     int content, uint8_t cid_byte) {
  whisper_buf *m = NULL;
  int type = 0;
  if (prekey) fz_connect(from, w->alice, 0); /* 0: nothing written to alice's store */
  FZ_ASSERT(whisper_session_encrypt(from->ctx, "alice", 1, pt, len, FZ_NOW, &type, &m) == WHISPER_OK,
            "encrypt");
  uint8_t cid[16];
  memset(cid, cid_byte, 16);
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_server_seq = d.has_client_id = 1;
  d.has_type = d.has_body = d.has_content = 1;
  d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE;
  d.sender = (char *)from->name;
  d.sender_device = from->device_id;
  d.server_ts = FZ_NOW + 5;
  d.server_seq = 1000 + seq;
  d.client_id = (ProtobufCBinaryData){16, cid};
  d.type = (uint32_t)type;
  d.body = (ProtobufCBinaryData){m->len, m->data};
  d.conversation_to = (char *)conversation_to;
  d.content = (uint32_t)content;
  whisper_buf *f = deliver_frame(&d, seq);
  whisper_buf_free(m);
  return f;
}

static whisper_buf *message_entry(fzs_client_world *w, fz_dev *from, uint64_t seq, int prekey,
                                  const char *text, const char *conversation_to, int content,
                                  uint8_t cid_byte) {
  return message_entry_pt(w, from, seq, prekey, (const uint8_t *)text, strlen(text),
                          conversation_to, content, cid_byte);
}

/* alice.2's block list (bob blocked at `at`) to alice's devices only, as
 * src/sync/block.c sends it: an e2e.Content BLOCK in a Payload to "alice". */
static whisper_buf *own_block_entry(fzs_client_world *w, uint64_t seq, int prekey, int blocked,
                                    uint64_t at, uint8_t cid_byte) {
  Whisper__E2e__BlockEntry e = WHISPER__E2E__BLOCK_ENTRY__INIT, *ep = &e;
  e.account = "bob";
  e.has_blocked = e.has_changed_at = 1;
  e.blocked = blocked;
  e.changed_at = at;
  Whisper__E2e__Block blk = WHISPER__E2E__BLOCK__INIT;
  blk.n_entries = 1;
  blk.entries = &ep;
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = ct.has_at_ms = 1;
  ct.version = 1;
  ct.kind = WHISPER__E2E__CONTENT__KIND__BLOCK;
  ct.at_ms = at;
  ct.block = &blk;
  uint8_t content[256], pt[512], cid[16];
  size_t cn = whisper__e2e__content__get_packed_size(&ct);
  FZ_ASSERT(cn <= sizeof content, "own_block_entry content");
  whisper__e2e__content__pack(&ct, content);
  memset(cid, cid_byte, 16);
  Whisper__E2e__Payload p = WHISPER__E2E__PAYLOAD__INIT;
  p.to = "alice";
  p.has_body = p.has_sent_at_ms = p.has_content = p.has_id = 1; /* (an empty body, as sy_payload_make) */
  p.sent_at_ms = at;
  p.content = (ProtobufCBinaryData){cn, content};
  p.id = (ProtobufCBinaryData){16, cid};
  size_t pn = whisper__e2e__payload__get_packed_size(&p);
  FZ_ASSERT(pn <= sizeof pt, "own_block_entry payload");
  whisper__e2e__payload__pack(&p, pt);
  return message_entry_pt(w, w->alice2, seq, prekey, pt, pn, "alice",
                          WHISPER__SYNC__CONTENT__CONTENT_MESSAGE, cid_byte);
}

static whisper_buf *receipt_entry(uint64_t seq, const char *from, uint32_t dev, uint32_t status,
                                  const uint8_t *id1, const uint8_t *id2) {
  ProtobufCBinaryData ids[2] = {{16, (uint8_t *)id1}, {16, (uint8_t *)id2}};
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_status = 1;
  d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_RECEIPT;
  d.sender = (char *)from;
  d.sender_device = dev;
  d.server_ts = FZ_NOW + 6;
  d.status = status;
  d.n_client_ids = id2 ? 2 : 1;
  d.client_ids = ids;
  return deliver_frame(&d, seq);
}

static whisper_buf *group_entry(uint64_t seq, const uint8_t *gid, const char *const *members,
                                size_t n, const char *const *removed, size_t nr) {
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_server_seq = d.has_group_id = 1;
  d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP;
  d.sender = "bob";
  d.sender_device = 1;
  d.server_ts = FZ_NOW + 7;
  d.server_seq = 2000 + seq;
  d.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  d.n_members = n;
  d.members = (char **)members;
  d.n_removed = nr;
  d.removed = (char **)removed;
  return deliver_frame(&d, seq);
}

void fzs_gen_client_seeds(fz_seeds *seeds) {
  fzs_client_world *w = fzs_client_world_new();
  uint64_t seq = w->last_seq;

  /* the scripted server answers everything: login, ops, both messages */
  client_seed_answering(seeds, w, "online_answer_all", FZS_MODE_ONLINE, NULL, 0, NULL, NULL, 0);
  {
    whisper_buf *ch = fzs_challenge();
    client_seed_answering(seeds, w, "hello_answer_all", FZS_MODE_HELLO, &ch, 1, NULL, NULL, 0);
  }
  client_seed_answering(seeds, w, "auth_ok", FZS_MODE_AUTH, NULL, 0, NULL, NULL, 0);
  {
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_AUTH, 0, 0, v_auth}, {0, 0, 0, NULL}};
    client_seed_answering(seeds, w, "auth_refused", FZS_MODE_AUTH, NULL, 0, t, NULL, 0);
  }
  {
    whisper_buf *ch = fzs_challenge();
    client_seed_answering(seeds, w, "register_answer_all", FZS_MODE_REGISTER, &ch, 1, NULL, NULL, 0);
  }
  {
    whisper_buf *ch = fzs_challenge();
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_REGISTER, 0, 0, v_exists}, {0, 0, 0, NULL}};
    client_seed_answering(seeds, w, "register_exists", FZS_MODE_REGISTER, &ch, 1, t, NULL, 0);
  }
  {
    whisper_buf *ch = fzs_challenge();
    client_seed_answering(seeds, w, "link_answer_all", FZS_MODE_LINK, &ch, 1, NULL, NULL, 0);
  }
  {
    whisper_buf *ch = fzs_challenge();
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_REGISTER, 1, 0, v_auth}, {0, 0, 0, NULL}};
    client_seed_answering(seeds, w, "link_expired", FZS_MODE_LINK, &ch, 1, t, NULL, 0);
  }
  /* sends that meet stale lists, the rate limit, refusals */
  {
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_SEND, 1, 0, v_stale}, {0, 0, 0, NULL}};
    client_seed_answering(seeds, w, "send_stale", FZS_MODE_ONLINE, NULL, 0, t, NULL, 0);
  }
  {
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_SEND, 1, 0, v_rate},
                       {WHISPER__SYNC__FRAME__BODY_GROUP, 1, 0, v_not_found},
                       {WHISPER__SYNC__FRAME__BODY_RECEIPT, 1, 0, v_wrong_body},
                       {0, 0, 0, NULL}};
    client_seed_answering(seeds, w, "refusals", FZS_MODE_ONLINE, NULL, 0, t, NULL, 0);
  }
  {
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_LIST_DEVICES, 0, 0, v_not_found},
                       {WHISPER__SYNC__FRAME__BODY_ACK, 0, 0, v_none},
                       {0, 0, 0, NULL}};
    client_seed_answering(seeds, w, "carol_unknown", FZS_MODE_ONLINE, NULL, 0, t, NULL, 0);
  }

  /* mailbox entries (online, nothing else answered) */
  {
    whisper_buf *f[4];
    f[0] = message_entry(w, w->bob, seq + 1, 1, "from bob", NULL, 1, 0x11);
    f[1] = message_entry(w, w->bob, seq + 2, 0, "again", NULL, 1, 0x12);
    f[2] = message_entry(w, w->bob, seq + 1, 0, "dup", NULL, 1, 0x11); /* a redelivery */
    Whisper__Sync__QueueEmpty q = WHISPER__SYNC__QUEUE_EMPTY__INIT;
    q.has_last_seq = 1;
    q.last_seq = seq + 2;
    f[3] = simple(WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY, &q, 0);
    client_seed(seeds, w, "deliver_messages", FZS_MODE_ONLINE, f, 4, NULL, NULL, 0);
  }
  {
    whisper_buf *f[1];
    f[0] = message_entry(w, w->alice2, seq + 1, 1, "note to bob", "bob", 1, 0x21);
    client_seed(seeds, w, "deliver_own_copy", FZS_MODE_ONLINE, f, 1, NULL, NULL, 0);
  }
  {
    /* bob's sender key through 1:1 (CONTENT_SKDM), then his group message */
    whisper_buf *f[2];
    whisper_envelope_t env = WHISPER_ENVELOPE_INIT;
    whisper_device_t dev = {"alice", 1};
    fz_connect(w->bob, w->alice, 0);
    FZ_ASSERT(whisper_sender_key_distribute(w->bob->ctx, w->group_id, &dev, 1, FZ_NOW, &env) ==
                      WHISPER_OK &&
                  env.status == WHISPER_OK,
              "distribute");
    Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
    uint8_t cid[16];
    memset(cid, 0x31, 16);
    d.has_kind = d.has_sender_device = d.has_client_id = d.has_type = d.has_body = 1;
    d.has_content = d.has_server_seq = 1;
    d.kind = WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE;
    d.sender = "bob";
    d.sender_device = 1;
    d.server_seq = 3001;
    d.client_id = (ProtobufCBinaryData){16, cid};
    d.type = (uint32_t)env.type;
    d.body = (ProtobufCBinaryData){env.body->len, env.body->data};
    d.content = WHISPER__SYNC__CONTENT__CONTENT_SKDM;
    f[0] = deliver_frame(&d, seq + 1);
    whisper_buf_free(env.body);
    whisper_buf *ct = NULL;
    FZ_ASSERT(whisper_sender_key_encrypt(w->bob->ctx, w->group_id, (const uint8_t *)"group hi", 8, &ct) ==
                  WHISPER_OK,
              "sender_key_encrypt");
    memset(cid, 0x32, 16);
    d.type = 7;
    d.body = (ProtobufCBinaryData){ct->len, ct->data};
    d.content = WHISPER__SYNC__CONTENT__CONTENT_TEXT;
    d.has_group_id = 1;
    d.group_id = (ProtobufCBinaryData){16, w->group_id};
    d.server_seq = 3002;
    f[1] = deliver_frame(&d, seq + 2);
    whisper_buf_free(ct);
    client_seed(seeds, w, "deliver_group", FZS_MODE_ONLINE, f, 2, NULL, NULL, 0);
  }
  {
    /* another identity as bob.1: held (EV_IDENTITY), not acked */
    whisper_buf *f[2];
    f[0] = message_entry(w, w->mallory, seq + 1, 1, "i am bob", NULL, 1, 0x41);
    f[1] = message_entry(w, w->bob, seq + 2, 0, "after", NULL, 1, 0x42);
    client_seed(seeds, w, "deliver_untrusted", FZS_MODE_ONLINE, f, 2, NULL, NULL, 0);
  }
  {
    whisper_buf *f[3];
    f[0] = receipt_entry(seq + 1, "bob", 1, 2, w->sent_id, w->group_sent_id);
    f[1] = receipt_entry(seq + 2, "bob", 1, 3, w->sent_id, NULL);
    f[2] = receipt_entry(seq + 3, "bob", 1, 2, w->sent_id, NULL); /* backwards: nothing */
    client_seed(seeds, w, "deliver_receipts", FZS_MODE_ONLINE, f, 3, NULL, NULL, 0);
  }
  {
    const char *m3[] = {"alice", "bob", "carol"}, *m2[] = {"alice", "bob"}, *gone[] = {"carol"};
    const char *m1[] = {"bob"}, *me[] = {"alice"};
    whisper_buf *f[3];
    f[0] = group_entry(seq + 1, w->group_id, m3, 3, NULL, 0);
    f[1] = group_entry(seq + 2, w->group_id, m2, 2, gone, 1); /* someone left: rotate */
    f[2] = group_entry(seq + 3, w->group_id, m1, 1, me, 1);   /* alice removed */
    client_seed(seeds, w, "deliver_group_changes", FZS_MODE_ONLINE, f, 3, NULL, NULL, 0);
  }
  {
    /* pushes: typing (1:1 and group, then stopped), presence, an error */
    whisper_buf *f[5];
    Whisper__Sync__TypingNotice t = WHISPER__SYNC__TYPING_NOTICE__INIT;
    t.from = "bob";
    t.has_from_device = t.has_started = t.has_expires_ms = 1;
    t.from_device = 1;
    t.started = 1;
    t.expires_ms = FZS_CT0 + 6000;
    f[0] = simple(WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE, &t, 0);
    t.has_group_id = 1;
    t.group_id = (ProtobufCBinaryData){16, w->group_id};
    f[1] = simple(WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE, &t, 0);
    t.started = 0;
    f[2] = simple(WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE, &t, 0);
    Whisper__Sync__PresenceNotice p = WHISPER__SYNC__PRESENCE_NOTICE__INIT;
    p.account = "bob";
    p.has_online = p.has_last_seen_ms = 1;
    p.last_seen_ms = FZ_NOW;
    f[3] = simple(WHISPER__SYNC__FRAME__BODY_PRESENCE, &p, 0);
    f[4] = fzs_error(0, 12, "the server's store failed");
    client_seed(seeds, w, "pushes", FZS_MODE_ONLINE, f, 5, NULL, NULL, 0);
  }
  {
    /* hello refused; then a stray answer */
    whisper_buf *f[2];
    f[0] = fzs_error(1, 2, "this server speaks protocol 1");
    f[1] = fzs_ok(99, 1);
    client_seed(seeds, w, "hello_refused", FZS_MODE_HELLO, f, 2, NULL, NULL, 0);
  }
  /* the app trusts the changed key and retries: the held entry decrypts */
  {
    whisper_buf *f[2];
    const uint8_t apps[] = {FZS_APP_RETRY};
    f[0] = message_entry(w, w->mallory, seq + 1, 1, "i am bob, trust me", NULL, 1, 0x51);
    f[1] = message_entry(w, w->bob, seq + 2, 0, "after", NULL, 1, 0x52);
    client_seed(seeds, w, "untrusted_retry", FZS_MODE_ONLINE, f, 2, NULL, apps, 1);
  }
  /* bob.1 is stale; the server hands out another identity's bundle for
   * it: the conversation waits for trust, then the app trusts and retries */
  {
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_SEND, 1, 0, v_stale_bob1},
                       {WHISPER__SYNC__FRAME__BODY_FETCH, 0, 0, v_mallory_bundles},
                       {0, 0, 0, NULL}};
    const uint8_t apps[] = {FZS_APP_RETRY};
    client_seed_answering(seeds, w, "bundles_untrusted", FZS_MODE_ONLINE, NULL, 0, t, apps, 1);
  }
  /* the app sets alice's profile (uploaded, the key to bob and the group,
   * and to alice.2), and fetches it back, twice */
  {
    const uint8_t apps[] = {FZS_APP_PROFILE_SET, FZS_APP_PROFILE_REFRESH, FZS_APP_PROFILE_SET,
                            FZS_APP_PROFILE_REFRESH};
    client_seed_answering(seeds, w, "app_profile", FZS_MODE_ONLINE, NULL, 0, NULL, apps, 4);
    whisper_buf_free(w->profile);
    w->profile = NULL;
    w->profile_version = 0;
  }
  /* the server holds another device's newer one: the upload gets
   * ERR_STATE, the fetch brings one that is not under alice's key */
  {
    variant_tbl t[] = {{WHISPER__SYNC__FRAME__BODY_PROFILE_SET, 1, 0, v_not_newer}, {0, 0, 0, NULL}};
    const uint8_t apps[] = {FZS_APP_PROFILE_SET, FZS_APP_PROFILE_REFRESH};
    client_seed_answering(seeds, w, "app_profile_raced", FZS_MODE_ONLINE, NULL, 0, t, apps, 2);
    whisper_buf_free(w->profile);
    w->profile = NULL;
    w->profile_version = 0;
  }
  /* the app sends to the group, to bob, and approves a link code */
  {
    const uint8_t apps[] = {FZS_APP_SEND_GROUP, FZS_APP_SEND, FZS_APP_LINK_APPROVE};
    client_seed_answering(seeds, w, "app_sends", FZS_MODE_ONLINE, NULL, 0, NULL, apps, 3);
  }
  /* block and report (last: the seeds before stay as they were) */
  {
    /* alice.2 blocked bob (her block list, to alice's devices only): bob's
     * next message is dropped, a send to him refused; then an older word
     * (unblocked before) changes nothing */
    whisper_buf *f[3];
    const uint8_t apps[] = {FZS_APP_SEND};
    f[0] = own_block_entry(w, seq + 1, 1, 1, FZ_NOW + 10, 0x61);
    f[1] = message_entry(w, w->bob, seq + 2, 1, "from a blocked bob", NULL, 4, 0x62);
    f[2] = own_block_entry(w, seq + 3, 0, 0, FZ_NOW + 5, 0x63);
    client_seed(seeds, w, "deliver_own_block", FZS_MODE_ONLINE, f, 3, NULL, apps, 1);
  }
  {
    /* the app blocks bob (BlockSet, and the list to alice's other devices),
     * sends to him (refused), reports the conversation, unblocks */
    const uint8_t apps[] = {FZS_APP_BLOCK, FZS_APP_SEND, FZS_APP_REPORT, FZS_APP_UNBLOCK};
    client_seed_answering(seeds, w, "app_block_report", FZS_MODE_ONLINE, NULL, 0, NULL, apps, 4);
  }
  fzs_client_world_free(w);
}

/* --- seeds: fuzz_sync_frame -------------------------------------------------------- */

void fzs_gen_frame_seeds(fz_seeds *seeds) {
  fz_dev *d = fz_dev_new("dave", 1, 0x61);
  const uint8_t cid[16] = "fz-client-id-01", gid[16] = "fz-server-group";
  const uint32_t one = 1;
  const char *members[] = {"bob", "carol"};
  fz_seeds_add(seeds, "register", fzs_register(d, 1, 2, NULL), 1);
  fz_seeds_add(seeds, "register_link", fzs_register(d, 2, 0, cid), 1);
  fz_seeds_add(seeds, "hello", fzs_hello(3, "dave", 1), 1);
  fz_seeds_add(seeds, "auth", fzs_auth(d, 4, fzs_nonce, 32, 5), 1);
  fz_seeds_add(seeds, "upload", upload_frame(d, 5, 2, 1), 1);
  fz_seeds_add(seeds, "fetch", fetch_frame(6, "bob", &one, 1), 1);
  fz_seeds_add(seeds, "list", list_frame(7, "bob"), 1);
  fz_seeds_add(seeds, "send", send_direct(8, cid, "bob", &one, &one, 1, &one, 1, "ct"), 1);
  fz_seeds_add(seeds, "send_group", group_send_frame(9, cid, gid, "skm"), 1);
  fz_seeds_add(seeds, "ack", ack_frame(10, 3), 1);
  fz_seeds_add(seeds, "receipt", receipt_frame(11, "bob", 3, &cid, 1, gid), 1);
  fz_seeds_add(seeds, "typing", typing_frame(12, NULL, gid, 1), 1);
  fz_seeds_add(seeds, "presence_set", presence_set_frame(13, 1, 0), 1);
  fz_seeds_add(seeds, "presence_mutes", presence_mutes_frame(13), 1);
  fz_seeds_add(seeds, "subscribe", subscribe_frame(14, members, 2), 1);
  fz_seeds_add(seeds, "group_op", group_op(15, WHISPER__SYNC__GROUP_OP__OP__CREATE, gid, members, 2), 1);
  fz_seeds_add(seeds, "link_request", link_request(16, "dave"), 1);
  fz_seeds_add(seeds, "link_approve", link_approve(17, cid), 1);
  fz_seeds_add(seeds, "ping", ping_frame(18, 9), 1);
  {
    const char *accts[] = {"bob", "carol"};
    const int blocked[] = {1, 0};
    const uint64_t at[] = {FZ_NOW, FZ_NOW + 1};
    fz_seeds_add(seeds, "block_set", block_set_frame(25, accts, blocked, at, 2), 1);
    fz_seeds_add(seeds, "report", report_frame(26, "bob", 4, 1), 1);
  }
  {
    fz_dev *const keys[] = {d};
    whisper_buf *l = device_list(d, "dave", 1, &one, keys, 1, 0);
    fz_seeds_add(seeds, "publish", publish_frame(22, l), 1);
    fz_seeds_add(seeds, "link_approve_list", link_approve_list(23, cid, l), 1);
    whisper_buf_free(l);
    fz_seeds_add(seeds, "group_op_change",
                 group_op_change(24, WHISPER__SYNC__GROUP_OP__OP__CREATE, gid, members, 2,
                                 group_change(gid, 1, NULL, members, 2, NULL)),
                 1);
  }
  fz_seeds_add(seeds, "challenge", fzs_challenge(), 1);
  fz_seeds_add(seeds, "error", fzs_error(19, 9, "over the rate limit"), 1);
  {
    const char *m2[] = {"alice", "bob"};
    fz_seeds_add(seeds, "deliver_group", group_entry(3, gid, m2, 2, members, 1), 1);
    fz_seeds_add(seeds, "deliver_receipt", receipt_entry(4, "bob", 1, 3, cid, gid), 1);
  }
  {
    uint32_t two = 2;
    Whisper__Sync__StaleDevices sd = WHISPER__SYNC__STALE_DEVICES__INIT;
    sd.account = "bob";
    sd.n_missing = sd.n_extra = 1;
    sd.missing = (uint32_t *)&one;
    sd.extra = &two;
    fz_seeds_add(seeds, "stale", simple(WHISPER__SYNC__FRAME__BODY_STALE, &sd, 20), 1);
  }
  {
    Whisper__Sync__Sent s = WHISPER__SYNC__SENT__INIT;
    s.has_client_id = s.has_server_seq = s.has_server_ts = 1;
    s.client_id = (ProtobufCBinaryData){16, (uint8_t *)cid};
    s.server_seq = 42;
    s.server_ts = FZ_NOW;
    fz_seeds_add(seeds, "sent", simple(WHISPER__SYNC__FRAME__BODY_SENT, &s, 21), 1);
  }
  {
    uint8_t ct[64];
    memset(ct, 0xC7, sizeof ct);
    fz_seeds_add(seeds, "profile_set", profile_set_frame(25, ct, sizeof ct, 3), 1);
    fz_seeds_add(seeds, "profile_get", profile_get_frame(26, "bob"), 1);
    Whisper__Sync__Profile pr = WHISPER__SYNC__PROFILE__INIT;
    pr.account = "bob";
    pr.has_ciphertext = pr.has_version = 1;
    pr.ciphertext = (ProtobufCBinaryData){sizeof ct, ct};
    pr.version = 3;
    fz_seeds_add(seeds, "profile", simple(WHISPER__SYNC__FRAME__BODY_PROFILE, &pr, 26), 1);
  }
  fz_dev_free(d);
}
