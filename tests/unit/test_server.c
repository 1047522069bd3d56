/* The server core (server.h), driven with real frames (protobuf-c) and
 * real keys: registration, login, prekeys, sends, delivery, acks,
 * receipts, groups, typing, presence, linking, limits, timers, store
 * failures and restarts, on the memory store and on SQLite. */
#include <protobuf-c/protobuf-c.h>
#include <sodium.h>
#include <unistd.h>

#include "e2e.pb-c.h"
#include "internal.h"
#include "sync.pb-c.h"
#include "test.h"
#include "whisper/server.h"

#define T0 1700000000000ULL
#define MAXC 64
#define QLEN 2048

typedef Whisper__Sync__Frame Frame;

/* --- the output of the server, per connection ----------------------------- */

typedef struct box {
  Frame *q[QLEN];
  int head, n;
  int closed;
} box;

static box boxes[MAXC];

typedef struct push_rec {
  char account[65];
  uint32_t device;
  uint64_t depth;
} push_rec;

static push_rec pushes[256];
static int n_pushes;

static void drain(whisper_server *srv) {
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(srv, &o) > 0) {
    if (o.action == WHISPER_SERVER_PUSH) {
      if (n_pushes < 256) {
        snprintf(pushes[n_pushes].account, 65, "%s", o.account);
        pushes[n_pushes].device = o.device_id;
        pushes[n_pushes++].depth = o.mailbox_depth;
      }
      continue;
    }
    CHECK(o.conn > 0 && o.conn < MAXC);
    if (o.conn == 0 || o.conn >= MAXC) continue;
    box *b = &boxes[o.conn];
    if (o.action == WHISPER_SERVER_DISCONNECT) {
      b->closed = 1;
      continue;
    }
    Frame *f = whisper__sync__frame__unpack(NULL, o.frame_len, o.frame);
    CHECK(f != NULL && f->has_version && f->version == 1);
    if (f && b->n < QLEN) b->q[(b->head + b->n++) % QLEN] = f;
  }
}

static Frame *pop(uint64_t conn) {
  box *b = &boxes[conn];
  if (b->n == 0) return NULL;
  Frame *f = b->q[b->head];
  b->head = (b->head + 1) % QLEN;
  b->n--;
  return f;
}

static void fr_free(Frame *f) {
  if (f) whisper__sync__frame__free_unpacked(f, NULL);
}

static void box_reset(uint64_t conn) {
  Frame *f;
  while ((f = pop(conn)) != NULL) fr_free(f);
  boxes[conn].closed = 0;
}

static int pending(uint64_t conn) { return boxes[conn].n; }

#define EXPECT(conn, body) expect_(conn, WHISPER__SYNC__FRAME__BODY_##body, __LINE__)
static Frame *expect_(uint64_t conn, int body, int line) {
  Frame *f = pop(conn);
  if (f == NULL) {
    t_fail++;
    fprintf(stderr, "line %d: conn %d: no frame, wanted body %d\n", line, (int)conn, body);
    return NULL;
  }
  if ((int)f->body_case != body) {
    t_fail++;
    fprintf(stderr, "line %d: conn %d: got body %d (error %u: %s), wanted %d\n", line, (int)conn,
            f->body_case, f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error->code : 0,
            f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && f->error->message ? f->error->message : "",
            body);
    fr_free(f);
    return NULL;
  }
  t_pass++;
  return f;
}

#define EXPECT_ERR(conn, code) expect_err_(conn, code, __LINE__)
static uint64_t expect_err_(uint64_t conn, unsigned code, int line) {
  Frame *f = expect_(conn, WHISPER__SYNC__FRAME__BODY_ERROR, line);
  uint64_t retry = 0;
  if (f) {
    if (f->error->code != code) {
      t_fail++;
      fprintf(stderr, "line %d: error %u (%s), wanted %u\n", line, f->error->code,
              f->error->message ? f->error->message : "", code);
    } else {
      t_pass++;
    }
    retry = f->retry_ms;
  }
  fr_free(f);
  return retry;
}

#define EXPECT_OK(conn) expect_ok_(conn, __LINE__)
static uint32_t expect_ok_(uint64_t conn, int line) {
  Frame *f = expect_(conn, WHISPER__SYNC__FRAME__BODY_OK, line);
  uint32_t left = f && f->ok->has_prekeys_left ? f->ok->prekeys_left : UINT32_MAX;
  fr_free(f);
  return left;
}

#define EXPECT_NONE(conn) expect_none_(conn, __LINE__)
static void expect_none_(uint64_t conn, int line) {
  if (pending(conn) == 0) {
    t_pass++;
    return;
  }
  t_fail++;
  Frame *f = pop(conn);
  fprintf(stderr, "line %d: conn %d: unexpected frame, body %d\n", line, (int)conn, f->body_case);
  fr_free(f);
  box_reset(conn);
}

/* --- the server under test ------------------------------------------------ */

typedef struct srvt {
  whisper_store *st;
  whisper_server *srv;
  uint64_t now;
  int rc; /* of the last receive */
  test_rng rng;
} srvt;

static uint64_t next_id = 1;

/* Every request the tests send, kept as a corpus for the mutation test. */
#define CORPUS_MAX 512
static uint8_t *corpus[CORPUS_MAX];
static size_t corpus_len[CORPUS_MAX], n_corpus;

static void corpus_add(const uint8_t *b, size_t n) {
  if (n_corpus == CORPUS_MAX || n == 0) return;
  corpus[n_corpus] = malloc(n);
  memcpy(corpus[n_corpus], b, n);
  corpus_len[n_corpus++] = n;
}

static void srvt_open(srvt *t, whisper_store *st, const whisper_server_config_t *cfg) {
  memset(t, 0, sizeof *t);
  memset(boxes, 0, sizeof boxes);
  n_pushes = 0;
  t->st = st;
  t->now = T0;
  memset(t->rng.seed, 0x5e, 32);
  CHECK_RC(whisper_server_new(&t->srv, st, cfg), WHISPER_OK);
  whisper_server_rng_set(t->srv, test_rng_fn, &t->rng);
}

static void srvt_close(srvt *t) {
  whisper_server_free(t->srv);
  whisper_store_free(t->st);
  for (int i = 0; i < MAXC; i++) box_reset((uint64_t)i);
}

static whisper_store *mem_store(void) {
  whisper_store *st;
  whisper_store_memory_new(&st);
  return st;
}

static void feed(srvt *t, uint64_t conn, const uint8_t *b, size_t n) {
  t->rc = whisper_server_receive(t->srv, conn, b, n, t->now);
  drain(t->srv);
}

/* Sends a request frame: version 1 and a fresh id unless set. */
static uint64_t req(srvt *t, uint64_t conn, Frame *f) {
  if (!f->has_version) {
    f->has_version = 1;
    f->version = 1;
  }
  if (!f->has_id) {
    f->has_id = 1;
    f->id = next_id++;
  }
  size_t n = whisper__sync__frame__get_packed_size(f);
  uint8_t *b = malloc(n + 1);
  whisper__sync__frame__pack(f, b);
  corpus_add(b, n);
  feed(t, conn, b, n);
  free(b);
  return f->id;
}

static void tick(srvt *t) {
  whisper_server_tick(t->srv, t->now);
  drain(t->srv);
}

/* --- devices -------------------------------------------------------------- */

typedef struct dev {
  char name[65];
  uint32_t id, regid;
  whisper_keypair_t ik;
  whisper_store *st;
  whisper_ctx *ctx;
  test_rng rng;
  uint64_t conn;
  uint8_t nonce[32];
} dev;

static void dev_init(dev *d, const char *name, uint32_t id, uint8_t seed) {
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  d->id = id;
  d->regid = 100 + seed;
  memset(d->rng.seed, seed, 32);
  whisper_store_memory_new(&d->st);
  whisper_ctx_new(&d->ctx, d->st);
  whisper_ctx_rng_set(d->ctx, test_rng_fn, &d->rng);
  CHECK_RC(whisper_keypair_generate(d->ctx, &d->ik), WHISPER_OK);
  CHECK_RC(whisper_identity_import(d->ctx, name, id, d->regid, &d->ik), WHISPER_OK);
  CHECK_RC(whisper_signed_prekey_generate(d->ctx, 1, T0), WHISPER_OK);
}

static void dev_free(dev *d) {
  whisper_keypair_wipe(&d->ik);
  whisper_ctx_free(d->ctx);
  whisper_store_free(d->st);
}

static void dev_connect(srvt *t, dev *d, uint64_t conn) {
  box_reset(conn);
  CHECK_RC(whisper_server_connected(t->srv, conn, t->now), WHISPER_OK);
  drain(t->srv);
  d->conn = conn;
  Frame *f = EXPECT(conn, CHALLENGE);
  if (f) {
    CHECK(f->challenge->nonce.len == 32 && !f->has_id);
    memcpy(d->nonce, f->challenge->nonce.data, 32);
  }
  fr_free(f);
}

enum { BAD_NONE = 0, BAD_SIG = 1, BAD_SPK_SIG = 2, BAD_KEY = 3 };

/* Sends Frame{version 1, a fresh id, register = r's encoding followed by
 * `extra` (fields protobuf-c reads but would not write so)}. */
static uint64_t req_register_raw(srvt *t, uint64_t conn, const Whisper__Sync__Register *r,
                                 const uint8_t *extra, size_t extra_len) {
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.has_version = f.has_id = 1;
  f.version = 1;
  f.id = next_id++;
  const ProtobufCFieldDescriptor *fd =
      protobuf_c_message_descriptor_get_field_by_name(&whisper__sync__frame__descriptor, "register");
  size_t hn = whisper__sync__frame__get_packed_size(&f);
  size_t rn = whisper__sync__register__get_packed_size(r), body = rn + extra_len;
  uint8_t *b = malloc(hn + 20 + body), *p = b;
  p += whisper__sync__frame__pack(&f, p);
  for (uint64_t v = (uint64_t)fd->id << 3 | 2; ; v >>= 7) { /* tag, length-delimited */
    *p++ = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
    if (v <= 0x7f) break;
  }
  for (uint64_t v = body; ; v >>= 7) {
    *p++ = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
    if (v <= 0x7f) break;
  }
  p += whisper__sync__register__pack(r, p);
  memcpy(p, extra, extra_len);
  p += extra_len;
  /* protobuf-c reads it: a Register with the extra fields as unknown ones */
  Frame *u = whisper__sync__frame__unpack(NULL, (size_t)(p - b), b);
  CHECK(u && u->body_case == WHISPER__SYNC__FRAME__BODY_REGISTER &&
        u->register_->base.n_unknown_fields > 0);
  fr_free(u);
  corpus_add(b, (size_t)(p - b));
  feed(t, conn, b, (size_t)(p - b));
  free(b);
  return f.id;
}

/* Register{account, keys, prekeys (ids first_pk..), signature, link_code},
 * with `extra` bytes (if any) appended to the Register's encoding. */
static uint64_t dev_register_x(srvt *t, dev *d, int n_prekeys, uint32_t first_pk,
                               const uint8_t *code, int bad, const uint8_t *extra,
                               size_t extra_len) {
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  CHECK_RC(whisper_bundle_generate(d->ctx, 0, &b), WHISPER_OK);
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  k.has_device_id = k.has_registration_id = k.has_identity_key = k.has_signed_prekey_id = 1;
  k.has_signed_prekey = k.has_signed_prekey_signature = 1;
  k.device_id = d->id;
  k.registration_id = d->regid;
  k.identity_key = (ProtobufCBinaryData){bad == BAD_KEY ? 32 : 33, d->ik.pub};
  k.signed_prekey_id = b.signed_prekey_id;
  k.signed_prekey = (ProtobufCBinaryData){33, b.signed_prekey};
  if (bad == BAD_SPK_SIG) b.signed_prekey_signature[5] ^= 1;
  k.signed_prekey_signature = (ProtobufCBinaryData){64, b.signed_prekey_signature};
  Whisper__Sync__OneTimePrekey pk[16], *pkp[16];
  whisper_keypair_t kp[16];
  for (int i = 0; i < n_prekeys; i++) {
    whisper_keypair_generate(d->ctx, &kp[i]);
    whisper__sync__one_time_prekey__init(&pk[i]);
    pk[i].has_id = pk[i].has_key = 1;
    pk[i].id = first_pk + (uint32_t)i;
    pk[i].key = (ProtobufCBinaryData){33, kp[i].pub};
    pkp[i] = &pk[i];
  }
  uint8_t msg[200], sig[64];
  size_t n = 0, an = strlen(d->name);
  memcpy(msg, "whisper-register-v1", 19);
  n = 19;
  memcpy(msg + n, d->name, an);
  n += an;
  msg[n++] = 0;
  wh_be32(msg + n, d->id);
  n += 4;
  memcpy(msg + n, d->ik.pub, 33);
  n += 33;
  CHECK_RC(whisper_sign(d->ctx, d->ik.priv, msg, n, sig), WHISPER_OK);
  if (bad == BAD_SIG) sig[10] ^= 1;
  Whisper__Sync__Register r = WHISPER__SYNC__REGISTER__INIT;
  r.account = d->name;
  r.keys = &k;
  r.n_prekeys = (size_t)n_prekeys;
  r.prekeys = pkp;
  r.has_signature = 1;
  r.signature = (ProtobufCBinaryData){64, sig};
  if (code) {
    r.has_link_code = 1;
    r.link_code = (ProtobufCBinaryData){16, (uint8_t *)code};
  }
  if (extra) return req_register_raw(t, d->conn, &r, extra, extra_len);
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_REGISTER;
  f.register_ = &r;
  return req(t, d->conn, &f);
}

static uint64_t dev_register(srvt *t, dev *d, int n_prekeys, uint32_t first_pk, const uint8_t *code,
                             int bad) {
  return dev_register_x(t, d, n_prekeys, first_pk, code, bad, NULL, 0);
}

static uint64_t dev_hello(srvt *t, dev *d) {
  Whisper__Sync__Hello h = WHISPER__SYNC__HELLO__INIT;
  h.account = d->name;
  h.has_device_id = h.has_protocol = 1;
  h.device_id = d->id;
  h.protocol = 1;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_HELLO;
  f.hello = &h;
  return req(t, d->conn, &f);
}

static uint64_t dev_auth(srvt *t, dev *d, uint64_t resume_after, int bad) {
  uint8_t msg[16 + 32], sig[64];
  memcpy(msg, "whisper-login-v1", 16);
  memcpy(msg + 16, d->nonce, 32);
  CHECK_RC(whisper_sign(d->ctx, d->ik.priv, msg, sizeof msg, sig), WHISPER_OK);
  if (bad) sig[3] ^= 0x40;
  Whisper__Sync__Auth a = WHISPER__SYNC__AUTH__INIT;
  a.has_signature = a.has_resume_after = 1;
  a.signature = (ProtobufCBinaryData){64, sig};
  a.resume_after = resume_after;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_AUTH;
  f.auth = &a;
  return req(t, d->conn, &f);
}

/* Connects and logs in; the backlog that follows stays in the box. */
static void dev_login(srvt *t, dev *d, uint64_t conn, uint64_t resume_after) {
  dev_connect(t, d, conn);
  dev_hello(t, d);
  EXPECT_OK(conn);
  dev_auth(t, d, resume_after, 0);
  EXPECT_OK(conn);
}

/* A new account's device 1: registered, logged in, its empty backlog read. */
static void dev_up(srvt *t, dev *d, uint64_t conn, int n_prekeys) {
  dev_connect(t, d, conn);
  dev_register(t, d, n_prekeys, 1, NULL, BAD_NONE);
  EXPECT_OK(conn);
  dev_hello(t, d);
  EXPECT_OK(conn);
  dev_auth(t, d, 0, 0);
  EXPECT_OK(conn);
  fr_free(EXPECT(conn, QUEUE_EMPTY));
}

static uint64_t link_request(srvt *t, uint64_t conn, const char *account) {
  Whisper__Sync__LinkRequest l = WHISPER__SYNC__LINK_REQUEST__INIT;
  l.account = (char *)account;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_REQUEST;
  f.link_request = &l;
  return req(t, conn, &f);
}

static uint64_t link_approve(srvt *t, uint64_t conn, const uint8_t code[16]) {
  Whisper__Sync__LinkApprove l = WHISPER__SYNC__LINK_APPROVE__INIT;
  l.has_link_code = 1;
  l.link_code = (ProtobufCBinaryData){16, (uint8_t *)code};
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_APPROVE;
  f.link_approve = &l;
  return req(t, conn, &f);
}

static int get_link_code(uint64_t conn, uint8_t code[16]) {
  Frame *f = EXPECT(conn, LINK_CODE);
  int ok = f && f->link_code->link_code.len == 16;
  if (ok) memcpy(code, f->link_code->link_code.data, 16);
  fr_free(f);
  return ok;
}

/* Adds device `d` to its account through the link flow, approved by
 * `approver` (logged in); then logs `d` in on `conn`. */
static void dev_link(srvt *t, dev *d, uint64_t conn, dev *approver) {
  uint8_t code[16] = {0};
  dev_connect(t, d, conn);
  link_request(t, conn, d->name);
  CHECK(get_link_code(conn, code));
  uint64_t rid = dev_register(t, d, 2, 1, code, BAD_NONE);
  EXPECT_NONE(conn); /* held until approved */
  link_approve(t, approver->conn, code);
  EXPECT_OK(approver->conn);
  Frame *f = EXPECT(conn, OK);
  CHECK(f && f->id == rid);
  fr_free(f);
  dev_hello(t, d);
  EXPECT_OK(conn);
  dev_auth(t, d, 0, 0);
  EXPECT_OK(conn);
  fr_free(EXPECT(conn, QUEUE_EMPTY));
}

/* --- requests ------------------------------------------------------------- */

static void cid_make(uint8_t cid[16], int n) {
  memset(cid, 0, 16);
  cid[0] = 0xC1;
  cid[15] = (uint8_t)n;
  cid[14] = (uint8_t)(n >> 8);
}

typedef struct target {
  uint32_t device;
  uint32_t regid; /* 0: not given */
} target;

/* Set: send_direct's Sends name this client id in Send.after (pipelined). */
static const uint8_t *g_send_after;

/* A 1:1 Send: one ciphertext per target of `to` and of the own account. */
static const uint8_t *g_after; /* send_direct: the Send's `after` (g_after_len bytes), or NULL */
static size_t g_after_len;

/* Set: send_direct's ciphertexts are these g_body_len bytes. */
static const uint8_t *g_body;
static size_t g_body_len;

static uint64_t send_direct(srvt *t, dev *from, const char *to, const uint8_t cid[16],
                            const target *tt, size_t n, const target *own, size_t n_own,
                            int content) {
  Whisper__Sync__DeviceMessage m[16], *mp[16], o[16], *op[16];
  uint8_t body[16][8];
  for (size_t i = 0; i < n + n_own; i++) {
    const target *x = i < n ? &tt[i] : &own[i - n];
    Whisper__Sync__DeviceMessage *dm = i < n ? &m[i] : &o[i - n];
    whisper__sync__device_message__init(dm);
    dm->has_device_id = dm->has_type = dm->has_body = 1;
    dm->device_id = x->device;
    dm->type = 3;
    memcpy(body[i], "ct-dev-", 7);
    body[i][7] = (uint8_t)('0' + x->device);
    dm->body = g_body ? (ProtobufCBinaryData){g_body_len, (uint8_t *)g_body}
                      : (ProtobufCBinaryData){8, body[i]};
    if (x->regid) {
      dm->has_registration_id = 1;
      dm->registration_id = x->regid;
    }
    if (i < n)
      mp[i] = dm;
    else
      op[i - n] = dm;
  }
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.has_client_id = s.has_content = 1;
  s.client_id = (ProtobufCBinaryData){16, (uint8_t *)cid};
  s.to = (char *)to;
  s.n_messages = n;
  s.messages = mp;
  s.n_own = n_own;
  s.own = op;
  s.content = (uint32_t)content;
  if (g_send_after) { /* pipelined */
    s.has_after = 1;
    s.after = (ProtobufCBinaryData){16, (uint8_t *)g_send_after};
  } else if (g_after) { /* a given after, of any length */
    s.has_after = 1;
    s.after = (ProtobufCBinaryData){g_after_len, (uint8_t *)g_after};
  }
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &s;
  return req(t, from->conn, &f);
}

static uint64_t send_group(srvt *t, dev *from, const uint8_t gid[16], const uint8_t cid[16]) {
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.has_client_id = s.has_content = s.has_group_id = s.has_body = 1;
  s.client_id = (ProtobufCBinaryData){16, (uint8_t *)cid};
  s.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  s.body = (ProtobufCBinaryData){5, (uint8_t *)"skmsg"};
  s.content = 1;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &s;
  return req(t, from->conn, &f);
}

static uint64_t ack(srvt *t, uint64_t conn, uint64_t up_to) {
  Whisper__Sync__Ack a = WHISPER__SYNC__ACK__INIT;
  a.has_up_to = 1;
  a.up_to = up_to;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_ACK;
  f.ack = &a;
  return req(t, conn, &f);
}

static uint64_t ping(srvt *t, uint64_t conn) {
  Whisper__Sync__Ping p = WHISPER__SYNC__PING__INIT;
  p.has_nonce = 1;
  p.nonce = 77;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PING;
  f.ping = &p;
  return req(t, conn, &f);
}

static uint64_t group_op(srvt *t, uint64_t conn, int op, const uint8_t gid[16],
                         const char *const *members, size_t n) {
  Whisper__Sync__GroupOp g = WHISPER__SYNC__GROUP_OP__INIT;
  g.has_op = g.has_group_id = 1;
  g.op = (Whisper__Sync__GroupOp__Op)op;
  g.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  g.members = (char **)members;
  g.n_members = n;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_GROUP;
  f.group = &g;
  return req(t, conn, &f);
}

static uint64_t fetch(srvt *t, uint64_t conn, const char *account, const uint32_t *ids, size_t n) {
  Whisper__Sync__FetchBundles b = WHISPER__SYNC__FETCH_BUNDLES__INIT;
  b.account = (char *)account;
  b.device_ids = (uint32_t *)ids;
  b.n_device_ids = n;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_FETCH;
  f.fetch = &b;
  return req(t, conn, &f);
}

static uint64_t list_devices(srvt *t, uint64_t conn, const char *account) {
  Whisper__Sync__ListDevices l = WHISPER__SYNC__LIST_DEVICES__INIT;
  l.account = (char *)account;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LIST_DEVICES;
  f.list_devices = &l;
  return req(t, conn, &f);
}

static uint64_t receipt(srvt *t, uint64_t conn, const char *to, uint32_t status,
                        const uint8_t (*ids)[16], size_t n) {
  ProtobufCBinaryData b[8];
  for (size_t i = 0; i < n; i++) b[i] = (ProtobufCBinaryData){16, (uint8_t *)ids[i]};
  Whisper__Sync__Receipt r = WHISPER__SYNC__RECEIPT__INIT;
  r.to = (char *)to;
  r.has_status = 1;
  r.status = status;
  r.client_ids = b;
  r.n_client_ids = n;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_RECEIPT;
  f.receipt = &r;
  return req(t, conn, &f);
}

static uint64_t presence_set(srvt *t, uint64_t conn, int has_visible, int visible, int has_rr,
                             int rr) {
  Whisper__Sync__PresenceSet p = WHISPER__SYNC__PRESENCE_SET__INIT;
  p.has_online_visible = has_visible;
  p.online_visible = visible;
  p.has_read_receipts = has_rr;
  p.read_receipts = rr;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PRESENCE_SET;
  f.presence_set = &p;
  return req(t, conn, &f);
}

static uint64_t subscribe(srvt *t, uint64_t conn, const char *const *accounts, size_t n) {
  Whisper__Sync__PresenceSubscribe s = WHISPER__SYNC__PRESENCE_SUBSCRIBE__INIT;
  s.accounts = (char **)accounts;
  s.n_accounts = n;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SUBSCRIBE;
  f.subscribe = &s;
  return req(t, conn, &f);
}

static uint64_t typing(srvt *t, uint64_t conn, const char *to, const uint8_t *gid, int started) {
  Whisper__Sync__Typing ty = WHISPER__SYNC__TYPING__INIT;
  ty.to = (char *)to;
  if (gid) {
    ty.has_group_id = 1;
    ty.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  }
  ty.has_started = 1;
  ty.started = started;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_TYPING;
  f.typing = &ty;
  return req(t, conn, &f);
}

/* --- signed device lists and group changes -------------------------------- */

/* One entry of a device list: a device id and the device whose key it
 * names (NULL: a key of 33 bytes of 0x05 0x11..., well-formed but nobody's). */
typedef struct listed {
  uint32_t id;
  const dev *key_of;
} listed;

enum { LIST_OK = 0, LIST_BAD_SIG = 1, LIST_NO_SIG = 2 };

/* SignedDeviceList{body = DeviceListBody{account, version, entries},
 * signature by `signer` over "whisper-devices-v1" || body}; returns its
 * length in out (at most 2048 bytes). */
static size_t dlist_make(uint8_t out[2048], const dev *signer, const char *account,
                         uint64_t version, const listed *e, size_t n, int bad) {
  Whisper__E2e__ListedDevice ld[16], *ldp[16];
  static uint8_t nobody[33] = {0x05, 0x11, 0x22};
  for (size_t i = 0; i < n; i++) {
    whisper__e2e__listed_device__init(&ld[i]);
    ld[i].has_device_id = ld[i].has_identity_key = 1;
    ld[i].device_id = e[i].id;
    ld[i].identity_key = (ProtobufCBinaryData){33, e[i].key_of ? (uint8_t *)e[i].key_of->ik.pub : nobody};
    ldp[i] = &ld[i];
  }
  Whisper__E2e__DeviceListBody b = WHISPER__E2E__DEVICE_LIST_BODY__INIT;
  b.account = (char *)account;
  b.has_version = 1;
  b.version = version;
  b.n_devices = n;
  b.devices = ldp;
  uint8_t body[1024], msg[1100], sig[64];
  size_t bn = whisper__e2e__device_list_body__pack(&b, body);
  memcpy(msg, "whisper-devices-v1", 18);
  memcpy(msg + 18, body, bn);
  CHECK_RC(whisper_sign(signer->ctx, signer->ik.priv, msg, 18 + bn, sig), WHISPER_OK);
  if (bad == LIST_BAD_SIG) sig[7] ^= 1;
  Whisper__E2e__SignedDeviceList s = WHISPER__E2E__SIGNED_DEVICE_LIST__INIT;
  s.has_body = 1;
  s.body = (ProtobufCBinaryData){bn, body};
  s.has_signature = bad != LIST_NO_SIG;
  s.signature = (ProtobufCBinaryData){64, sig};
  return whisper__e2e__signed_device_list__pack(&s, out);
}

static uint64_t publish(srvt *t, uint64_t conn, const uint8_t *list, size_t n) {
  Whisper__Sync__PublishDevices p = WHISPER__SYNC__PUBLISH_DEVICES__INIT;
  p.has_signed_list = 1;
  p.signed_list = (ProtobufCBinaryData){n, (uint8_t *)list};
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PUBLISH;
  f.publish = &p;
  return req(t, conn, &f);
}

static uint64_t link_approve_list(srvt *t, uint64_t conn, const uint8_t code[16],
                                  const uint8_t *list, size_t n) {
  Whisper__Sync__LinkApprove l = WHISPER__SYNC__LINK_APPROVE__INIT;
  l.has_link_code = l.has_signed_list = 1;
  l.link_code = (ProtobufCBinaryData){16, (uint8_t *)code};
  l.signed_list = (ProtobufCBinaryData){n, (uint8_t *)list};
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_APPROVE;
  f.link_approve = &l;
  return req(t, conn, &f);
}

/* 1 if `got` holds exactly the n bytes of `want`. */
static int same_bytes(protobuf_c_boolean has, ProtobufCBinaryData got, const uint8_t *want,
                      size_t n) {
  return has && got.len == n && memcmp(got.data, want, n) == 0;
}

/* The next Devices: its ids in order (n of them) and its signed list
 * (list NULL: none). */
#define EXPECT_DEVICES(conn, ids, n, list, ln) expect_devices_(conn, ids, n, list, ln, __LINE__)
static void expect_devices_(uint64_t conn, const uint32_t *ids, size_t n, const uint8_t *list,
                            size_t ln, int line) {
  Frame *f = expect_(conn, WHISPER__SYNC__FRAME__BODY_DEVICES, line);
  if (f == NULL) return;
  int ok = f->devices->n_device_ids == n &&
           (list ? same_bytes(f->devices->has_signed_list, f->devices->signed_list, list, ln)
                 : !f->devices->has_signed_list);
  for (size_t i = 0; ok && i < n; i++) ok = f->devices->device_ids[i] == ids[i];
  if (!ok) fprintf(stderr, "line %d: Devices differs\n", line);
  CHECK(ok);
  fr_free(f);
}

/* SignedGroupChange{body = GroupChangeBody{gid, version, prev (NULL:
 * none), members, author alice.1}, a signature nobody checks}; *body_hash
 * (if not NULL) gets SHA-256 of the body. */
/* A change by alice.1, signed with its identity key (the server checks
 * that a change is signed by the device that sends it). */
static const dev *change_signer;

static size_t change_make(uint8_t out[1024], const uint8_t gid[16], uint64_t version,
                          const uint8_t *prev, const char *const *members, size_t n,
                          uint8_t *body_hash) {
  Whisper__E2e__GroupChangeBody b = WHISPER__E2E__GROUP_CHANGE_BODY__INIT;
  b.has_group_id = b.has_version = b.has_author_device = 1;
  b.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  b.version = version;
  if (prev) {
    b.has_prev = 1;
    b.prev = (ProtobufCBinaryData){32, (uint8_t *)prev};
  }
  b.members = (char **)members;
  b.n_members = n;
  b.author = "alice";
  b.author_device = 1;
  uint8_t body[512], sig[64];
  size_t bn = whisper__e2e__group_change_body__pack(&b, body);
  if (body_hash) crypto_hash_sha256(body_hash, body, bn);
  uint8_t msg[16 + 512];
  memcpy(msg, "whisper-group-v1", 16);
  memcpy(msg + 16, body, bn);
  CHECK(change_signer != NULL);
  if (change_signer)
    CHECK_RC(whisper_sign(change_signer->ctx, change_signer->ik.priv, msg, 16 + bn, sig), WHISPER_OK);
  Whisper__E2e__SignedGroupChange s = WHISPER__E2E__SIGNED_GROUP_CHANGE__INIT;
  s.has_body = s.has_signature = 1;
  s.body = (ProtobufCBinaryData){bn, body};
  s.signature = (ProtobufCBinaryData){64, sig};
  return whisper__e2e__signed_group_change__pack(&s, out);
}

static uint64_t group_op_change(srvt *t, uint64_t conn, int op, const uint8_t gid[16],
                                const char *const *members, size_t n, const uint8_t *change,
                                size_t cn) {
  Whisper__Sync__GroupOp g = WHISPER__SYNC__GROUP_OP__INIT;
  g.has_op = g.has_group_id = g.has_change = 1;
  g.op = (Whisper__Sync__GroupOp__Op)op;
  g.group_id = (ProtobufCBinaryData){16, (uint8_t *)gid};
  g.members = (char **)members;
  g.n_members = n;
  g.change = (ProtobufCBinaryData){cn, (uint8_t *)change};
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_GROUP;
  f.group = &g;
  return req(t, conn, &f);
}

/* The next Sent; its server_seq (0 if none). */
#define EXPECT_SENT(conn, ts_out) expect_sent_(conn, ts_out, __LINE__)
static uint64_t expect_sent_(uint64_t conn, uint64_t *ts, int line) {
  Frame *f = expect_(conn, WHISPER__SYNC__FRAME__BODY_SENT, line);
  uint64_t seq = f ? f->sent->server_seq : 0;
  if (f && ts) *ts = f->sent->server_ts;
  fr_free(f);
  return seq;
}

/* The next Deliver: checks its kind and mailbox seq (0: any). */
#define EXPECT_DELIVER(conn, kind, seq) expect_deliver_(conn, kind, seq, __LINE__)
static Whisper__Sync__Deliver *expect_deliver_(uint64_t conn, uint32_t kind, uint64_t seq, int line) {
  static Frame *last;
  fr_free(last);
  last = expect_(conn, WHISPER__SYNC__FRAME__BODY_DELIVER, line);
  if (last == NULL) return NULL;
  if (last->deliver->kind != kind || (seq && last->deliver->seq != seq)) {
    t_fail++;
    fprintf(stderr, "line %d: deliver kind %u seq %llu, wanted kind %u seq %llu\n", line,
            last->deliver->kind, (unsigned long long)last->deliver->seq, kind,
            (unsigned long long)seq);
    return NULL;
  }
  t_pass++;
  return last->deliver;
}

static uint64_t expect_queue_empty(uint64_t conn) {
  Frame *f = EXPECT(conn, QUEUE_EMPTY);
  uint64_t s = f ? f->queue_empty->last_seq : UINT64_MAX;
  fr_free(f);
  return s;
}

static whisper_server_stats_t stats(srvt *t) {
  whisper_server_stats_t s = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(t->srv, &s);
  return s;
}

/* ========================================================================= */

static void test_register(void) {
  srvt t;
  dev a, a_again, a2;
  srvt_open(&t, mem_store(), NULL);
  dev_init(&a, "alice", 1, 1);
  dev_connect(&t, &a, 1);

  /* malformed: bad name, short key; a bad signature, a bad signed prekey */
  dev_register(&t, &a, 0, 1, NULL, BAD_KEY);
  EXPECT_ERR(1, 1);
  dev_register(&t, &a, 0, 1, NULL, BAD_SIG);
  EXPECT_ERR(1, 4);
  dev_register(&t, &a, 0, 1, NULL, BAD_SPK_SIG);
  EXPECT_ERR(1, 4);
  dev dbad;
  dev_init(&dbad, "Alice", 1, 9);
  dbad.conn = 1;
  dev_register(&t, &dbad, 0, 1, NULL, BAD_NONE);
  EXPECT_ERR(1, 1);
  dev_free(&dbad);

  /* nothing was registered by the refused ones */
  dev_hello(&t, &a);
  EXPECT_OK(1);
  dev_auth(&t, &a, 0, 0);
  EXPECT_ERR(1, 4);
  CHECK(boxes[1].closed);

  /* good, then the same again (a lost answer) is Ok, another key is not */
  dev_connect(&t, &a, 2);
  dev_register(&t, &a, 3, 1, NULL, BAD_NONE);
  EXPECT_OK(2);
  dev_register(&t, &a, 3, 1, NULL, BAD_NONE);
  EXPECT_OK(2);
  dev_init(&a_again, "alice", 1, 2);
  a_again.conn = 2;
  dev_register(&t, &a_again, 0, 1, NULL, BAD_NONE);
  EXPECT_ERR(2, 5);
  /* a second device needs a link code */
  dev_init(&a2, "alice", 2, 3);
  a2.conn = 2;
  dev_register(&t, &a2, 0, 1, NULL, BAD_NONE);
  EXPECT_ERR(2, 5);
  /* registering does not log in */
  list_devices(&t, 2, "alice");
  EXPECT_ERR(2, 4);
  CHECK(!boxes[2].closed);
  dev_free(&a);
  dev_free(&a_again);
  dev_free(&a2);
  srvt_close(&t);
}

static void test_login(void) {
  srvt t;
  dev a, b;
  srvt_open(&t, mem_store(), NULL);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  whisper_server_stats_t s = stats(&t);
  CHECK(s.connections == 1 && s.authenticated == 1);
  CHECK(whisper_server_conn_authenticated(t.srv, 1) == 1);
  CHECK(whisper_server_conn_authenticated(t.srv, 2) == 0); /* unknown */
  CHECK(whisper_server_conn_authenticated(NULL, 1) == 0);

  /* Auth before Hello; a request before login */
  dev_connect(&t, &b, 2);
  dev_register(&t, &b, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(2);
  dev_auth(&t, &b, 0, 0);
  EXPECT_ERR(2, 11);
  ping(&t, 2);
  fr_free(EXPECT(2, PONG));
  list_devices(&t, 2, "alice");
  EXPECT_ERR(2, 4);
  /* a bad signature closes the connection */
  dev_hello(&t, &b);
  EXPECT_OK(2);
  CHECK(whisper_server_conn_authenticated(t.srv, 2) == 0); /* open, Hello only */
  dev_auth(&t, &b, 0, 1);
  EXPECT_ERR(2, 4);
  CHECK(boxes[2].closed);
  CHECK(whisper_server_conn_authenticated(t.srv, 2) == 0);
  CHECK_RC(whisper_server_receive(t.srv, 2, (const uint8_t *)"", 0, t.now), WHISPER_ENOTFOUND);
  /* an unknown device: the same answer */
  dev ghost;
  dev_init(&ghost, "ghost", 1, 3);
  dev_connect(&t, &ghost, 3);
  dev_hello(&t, &ghost);
  EXPECT_OK(3);
  dev_auth(&t, &ghost, 0, 0);
  EXPECT_ERR(3, 4);
  CHECK(boxes[3].closed);
  /* a good one; a second Auth is out of order */
  dev_login(&t, &b, 4, 0);
  CHECK(expect_queue_empty(4) == 0);
  CHECK(whisper_server_conn_authenticated(t.srv, 4) == 1);
  dev_auth(&t, &b, 0, 0);
  EXPECT_ERR(4, 11);

  /* one connection per device: a newer login closes the older */
  dev_login(&t, &b, 5, 0);
  expect_queue_empty(5);
  CHECK(boxes[4].closed);
  CHECK(!boxes[5].closed);
  CHECK(whisper_server_conn_authenticated(t.srv, 4) == 0); /* dropped by the newer login */
  CHECK(whisper_server_conn_authenticated(t.srv, 5) == 1);
  s = stats(&t);
  CHECK(s.connections == 2 && s.authenticated == 2);
  dev_free(&a);
  dev_free(&b);
  dev_free(&ghost);
  srvt_close(&t);
}

static void test_prekeys(void) {
  srvt t;
  dev a, b;
  srvt_open(&t, mem_store(), NULL);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 2);

  uint32_t seen[3] = {0};
  for (int i = 0; i < 3; i++) {
    fetch(&t, 1, "bob", NULL, 0);
    Frame *f = EXPECT(1, BUNDLES);
    if (f && f->bundles->n_bundles == 1) {
      const Whisper__Sync__Bundle *bd = f->bundles->bundles[0];
      CHECK(bd->keys->device_id == 1 && bd->keys->registration_id == b.regid);
      CHECK(bd->keys->identity_key.len == 33 && memcmp(bd->keys->identity_key.data, b.ik.pub, 33) == 0);
      CHECK(whisper_verify(bd->keys->identity_key.data, 33, bd->keys->signed_prekey.data, 33,
                           bd->keys->signed_prekey_signature.data, 64) == WHISPER_OK);
      seen[i] = bd->prekey ? bd->prekey->id : 0;
    } else {
      CHECK(0);
    }
    fr_free(f);
  }
  /* each one-time prekey went out once; then none */
  CHECK(seen[0] == 1 && seen[1] == 2 && seen[2] == 0);
  /* bob's Oks say he has none left; he uploads more */
  ping(&t, 2);
  fr_free(EXPECT(2, PONG));
  Whisper__Sync__OneTimePrekey pk[3], *pkp[3];
  whisper_keypair_t kp[3];
  for (int i = 0; i < 3; i++) {
    whisper_keypair_generate(b.ctx, &kp[i]);
    whisper__sync__one_time_prekey__init(&pk[i]);
    pk[i].has_id = pk[i].has_key = 1;
    pk[i].id = 10 + (uint32_t)i;
    pk[i].key = (ProtobufCBinaryData){33, kp[i].pub};
    pkp[i] = &pk[i];
  }
  Whisper__Sync__UploadPrekeys u = WHISPER__SYNC__UPLOAD_PREKEYS__INIT;
  u.prekeys = pkp;
  u.n_prekeys = 3;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD;
  f.upload = &u;
  req(&t, 2, &f);
  CHECK(EXPECT_OK(2) == 3);
  /* a fetch by alice lowers bob's count, which his next Ok shows */
  uint32_t one = 1, nine = 9;
  fetch(&t, 1, "bob", &one, 1);
  fr_free(EXPECT(1, BUNDLES));
  ack(&t, 2, 0);
  CHECK(EXPECT_OK(2) == 2);
  /* unknown device ids are left out; unknown accounts are not found */
  fetch(&t, 1, "bob", &nine, 1);
  Frame *g = EXPECT(1, BUNDLES);
  CHECK(g && g->bundles->n_bundles == 0);
  fr_free(g);
  fetch(&t, 1, "nobody", NULL, 0);
  EXPECT_ERR(1, 6);
  /* a rotated signed prekey must be signed by the identity key */
  whisper_keypair_t spk;
  uint8_t sig[64];
  whisper_keypair_generate(b.ctx, &spk);
  whisper_sign(b.ctx, a.ik.priv, spk.pub, 33, sig); /* the wrong key */
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  k.has_signed_prekey_id = k.has_signed_prekey = k.has_signed_prekey_signature = 1;
  k.signed_prekey_id = 2;
  k.signed_prekey = (ProtobufCBinaryData){33, spk.pub};
  k.signed_prekey_signature = (ProtobufCBinaryData){64, sig};
  Whisper__Sync__UploadPrekeys u2 = WHISPER__SYNC__UPLOAD_PREKEYS__INIT;
  u2.signed_ = &k;
  Frame f2 = WHISPER__SYNC__FRAME__INIT;
  f2.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD;
  f2.upload = &u2;
  req(&t, 2, &f2);
  EXPECT_ERR(2, 4);
  whisper_sign(b.ctx, b.ik.priv, spk.pub, 33, sig);
  f2.has_id = 0;
  req(&t, 2, &f2);
  CHECK(EXPECT_OK(2) == 2);
  fetch(&t, 1, "bob", NULL, 0);
  g = EXPECT(1, BUNDLES);
  CHECK(g && g->bundles->n_bundles == 1 && g->bundles->bundles[0]->keys->signed_prekey_id == 2 &&
        memcmp(g->bundles->bundles[0]->keys->signed_prekey.data, spk.pub, 33) == 0);
  fr_free(g);
  /* ListDevices */
  list_devices(&t, 1, "bob");
  g = EXPECT(1, DEVICES);
  CHECK(g && g->devices->n_device_ids == 1 && g->devices->device_ids[0] == 1);
  fr_free(g);
  list_devices(&t, 1, "carol");
  EXPECT_ERR(1, 6);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

/* alice (1, 2) and bob (1, 2), all logged in on conns 1..4. */
typedef struct four {
  dev a1, a2, b1, b2;
} four;

static void four_up(srvt *t, four *w) {
  dev_init(&w->a1, "alice", 1, 1);
  dev_init(&w->a2, "alice", 2, 2);
  dev_init(&w->b1, "bob", 1, 3);
  dev_init(&w->b2, "bob", 2, 4);
  dev_up(t, &w->a1, 1, 0);
  dev_link(t, &w->a2, 2, &w->a1);
  dev_up(t, &w->b1, 3, 0);
  dev_link(t, &w->b2, 4, &w->b1);
}

static void four_free(four *w) {
  dev_free(&w->a1);
  dev_free(&w->a2);
  dev_free(&w->b1);
  dev_free(&w->b2);
}

static void check_stale(uint64_t conn, const char *account, uint32_t missing, uint32_t extra,
                        uint32_t stale, int line) {
  Frame *f = expect_(conn, WHISPER__SYNC__FRAME__BODY_STALE, line);
  if (f == NULL) return;
  const Whisper__Sync__StaleDevices *s = f->stale;
  int ok = s->account && strcmp(s->account, account) == 0 &&
           s->n_missing == (missing ? 1u : 0u) && (!missing || s->missing[0] == missing) &&
           s->n_extra == (extra ? 1u : 0u) && (!extra || s->extra[0] == extra) &&
           s->n_stale == (stale ? 1u : 0u) && (!stale || s->stale[0] == stale);
  if (!ok) fprintf(stderr, "line %d: StaleDevices differs\n", line);
  CHECK(ok);
  fr_free(f);
}
#define CHECK_STALE(conn, acc, m, e, s) check_stale(conn, acc, m, e, s, __LINE__)

static void test_send_stale_and_idempotent(void) {
  srvt t;
  four w;
  uint8_t cid[16];
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);
  cid_make(cid, 1);
  target b_only1[] = {{1, 0}}, b_all[] = {{1, 0}, {2, 0}}, b_extra[] = {{1, 0}, {2, 0}, {3, 0}};
  target b_stale[] = {{1, 0}, {2, 999}}, b_ok_reg[] = {{1, w.b1.regid}, {2, w.b2.regid}};
  target own[] = {{2, 0}}, own_self[] = {{1, 0}, {2, 0}};

  send_direct(&t, &w.a1, "bob", cid, b_only1, 1, own, 1, 1);
  CHECK_STALE(1, "bob", 2, 0, 0);
  send_direct(&t, &w.a1, "bob", cid, b_extra, 3, own, 1, 1);
  CHECK_STALE(1, "bob", 0, 3, 0);
  send_direct(&t, &w.a1, "bob", cid, b_stale, 2, own, 1, 1);
  CHECK_STALE(1, "bob", 0, 0, 2);
  send_direct(&t, &w.a1, "bob", cid, b_all, 2, NULL, 0, 1);
  CHECK_STALE(1, "alice", 2, 0, 0);
  send_direct(&t, &w.a1, "bob", cid, b_all, 2, own_self, 2, 1);
  CHECK_STALE(1, "alice", 0, 1, 0);
  send_direct(&t, &w.a1, "nobody", cid, b_all, 2, own, 1, 1);
  EXPECT_ERR(1, 6);
  /* nothing was queued by the refused ones */
  EXPECT_NONE(2);
  EXPECT_NONE(3);
  EXPECT_NONE(4);
  CHECK(stats(&t).mailbox_depth == 0);

  uint64_t ts = 0, ts2 = 0;
  t.now += 5;
  send_direct(&t, &w.a1, "bob", cid, b_ok_reg, 2, own, 1, 1);
  uint64_t seq = EXPECT_SENT(1, &ts);
  CHECK(seq == 1 && ts == t.now);
  Whisper__Sync__Deliver *d = EXPECT_DELIVER(3, 1, 0);
  CHECK(d && strcmp(d->sender, "alice") == 0 && d->sender_device == 1 && d->server_seq == 1 &&
        d->server_ts == ts && d->client_id.len == 16 && memcmp(d->client_id.data, cid, 16) == 0 &&
        d->body.len == 8 && d->body.data[7] == '1' && d->type == 3 && d->content == 1 &&
        d->conversation_to == NULL);
  d = EXPECT_DELIVER(4, 1, 0);
  CHECK(d && d->body.data[7] == '2');
  d = EXPECT_DELIVER(2, 1, 0);
  CHECK(d && d->conversation_to && strcmp(d->conversation_to, "bob") == 0 && d->body.data[7] == '2');
  EXPECT_NONE(1);
  CHECK(stats(&t).mailbox_depth == 3 && stats(&t).messages_sent == 1);

  /* the same client id again: the recorded Sent, nothing queued */
  t.now += 1000;
  send_direct(&t, &w.a1, "bob", cid, b_all, 2, own, 1, 1);
  CHECK(EXPECT_SENT(1, &ts2) == 1 && ts2 == ts);
  EXPECT_NONE(2);
  EXPECT_NONE(3);
  EXPECT_NONE(4);
  CHECK(stats(&t).mailbox_depth == 3 && stats(&t).messages_sent == 1);
  /* but from another device it is another message; server_seq grows */
  send_direct(&t, &w.a2, "bob", cid, b_all, 2, (target[]){{1, 0}}, 1, 1);
  CHECK(EXPECT_SENT(2, NULL) == 2);
  Whisper__Sync__Deliver *mine = EXPECT_DELIVER(1, 1, 0);
  CHECK(mine && mine->sender_device == 2 && strcmp(mine->conversation_to, "bob") == 0);
  /* to oneself: the other own devices only */
  cid_make(cid, 2);
  send_direct(&t, &w.a1, "alice", cid, own, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(1, NULL) == 3);
  four_free(&w);
  srvt_close(&t);
}

/* Pipelining: a Send is taken only after the one it names in `after`. */
static void test_send_after(void) {
  srvt t;
  four w;
  uint8_t c1[16], c2[16], c3[16];
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);
  cid_make(c1, 1);
  cid_make(c2, 2);
  cid_make(c3, 3);
  target b_all[] = {{1, 0}, {2, 0}}, own[] = {{2, 0}};
  send_direct(&t, &w.a1, "bob", c1, b_all, 2, own, 1, 1);
  CHECK(EXPECT_SENT(1, NULL) == 1);
  CHECK(EXPECT_DELIVER(3, 1, 0) && EXPECT_DELIVER(4, 1, 0) && EXPECT_DELIVER(2, 1, 0));
  /* after a Send never taken: refused, nothing queued */
  g_after = c2, g_after_len = 16;
  send_direct(&t, &w.a1, "bob", c3, b_all, 2, own, 1, 1);
  EXPECT_ERR(1, 11);
  EXPECT_NONE(2);
  EXPECT_NONE(3);
  EXPECT_NONE(4);
  CHECK(stats(&t).messages_sent == 1);
  /* after one taken: taken */
  g_after = c1;
  send_direct(&t, &w.a1, "bob", c2, b_all, 2, own, 1, 1);
  CHECK(EXPECT_SENT(1, NULL) == 2);
  g_after = c2;
  send_direct(&t, &w.a1, "bob", c3, b_all, 2, own, 1, 1);
  CHECK(EXPECT_SENT(1, NULL) == 3);
  CHECK(stats(&t).messages_sent == 3);
  /* a known client id is answered as before, whatever its `after` */
  uint8_t none[16];
  cid_make(none, 9);
  g_after = none;
  send_direct(&t, &w.a1, "bob", c3, b_all, 2, own, 1, 1);
  CHECK(EXPECT_SENT(1, NULL) == 3);
  /* (the copies of c2 and c3 on alice's and bob's other devices) */
  for (int i = 0; i < 2; i++) CHECK(EXPECT_DELIVER(2, 1, 0) && EXPECT_DELIVER(3, 1, 0) && EXPECT_DELIVER(4, 1, 0));
  EXPECT_NONE(2);
  /* another device's Send of that client id is not this one's */
  g_after = c1;
  cid_make(c3, 4);
  send_direct(&t, &w.a2, "bob", c3, b_all, 2, (target[]){{1, 0}}, 1, 1);
  EXPECT_ERR(2, 11);
  /* `after` is a client id: 16 bytes */
  g_after_len = 8;
  send_direct(&t, &w.a1, "bob", c3, b_all, 2, own, 1, 1);
  EXPECT_ERR(1, 1);
  g_after = NULL;
  four_free(&w);
  srvt_close(&t);
}

static void test_delivery_ack_receipts(void) {
  srvt t;
  four w;
  uint8_t cid[5][16];
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.deliver_window = 2;
  srvt_open(&t, mem_store(), &cfg);
  four_up(&t, &w);
  target b_all[] = {{1, 0}, {2, 0}}, own[] = {{2, 0}};
  /* bob's device 2 goes away; alice sends 5 (the 4th a sender key
   * distribution, which earns no receipt) */
  whisper_server_disconnected(t.srv, 4, t.now);
  for (int i = 0; i < 5; i++) {
    cid_make(cid[i], 10 + i);
    send_direct(&t, &w.a1, "bob", cid[i], b_all, 2, own, 1, i == 3 ? 2 : 1);
    CHECK(EXPECT_SENT(1, NULL) == (uint64_t)i + 1);
  }
  /* alice2 gets her own copies; acking them earns no receipt */
  CHECK(EXPECT_DELIVER(2, 1, 1) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 2) != NULL);
  EXPECT_NONE(2);
  ack(&t, 2, 2);
  EXPECT_OK(2);
  CHECK(EXPECT_DELIVER(2, 1, 3) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 4) != NULL);
  ack(&t, 2, 4);
  EXPECT_OK(2);
  CHECK(EXPECT_DELIVER(2, 1, 5) != NULL);
  ack(&t, 2, 5);
  EXPECT_OK(2);
  EXPECT_NONE(1);
  EXPECT_NONE(2);
  /* bob1 is online with a window of 2: it got 1 and 2 */
  CHECK(EXPECT_DELIVER(3, 1, 1) != NULL);
  CHECK(EXPECT_DELIVER(3, 1, 2) != NULL);
  EXPECT_NONE(3);
  /* bob2 logs in: 1, 2 then (after acks) 3, 4, 5 and QueueEmpty */
  dev_login(&t, &w.b2, 5, 0);
  CHECK(EXPECT_DELIVER(5, 1, 1) != NULL);
  CHECK(EXPECT_DELIVER(5, 1, 2) != NULL);
  EXPECT_NONE(5);
  t.now += 40;
  ack(&t, 5, 2);
  EXPECT_OK(5);
  CHECK(EXPECT_DELIVER(5, 1, 3) != NULL);
  CHECK(EXPECT_DELIVER(5, 1, 4) != NULL);
  EXPECT_NONE(5);
  /* the delivered receipt reaches both alice devices, from bob/2 */
  for (uint64_t conn = 1; conn <= 2; conn++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(conn, 2, 0);
    CHECK(d && strcmp(d->sender, "bob") == 0 && d->sender_device == 2 && d->status == 2 &&
          d->n_client_ids == 2 && memcmp(d->client_ids[0].data, cid[0], 16) == 0 &&
          memcmp(d->client_ids[1].data, cid[1], 16) == 0);
    if (d) ack(&t, conn, d->seq);
    EXPECT_OK(conn);
  }
  /* 5 own copies acked at once, 2 by bob2 40 ms later */
  whisper_server_stats_t s = stats(&t);
  CHECK(s.entries_delivered == 5 + 2 + 2 && s.latency_count == 7 && s.latency_sum_ms == 80);
  CHECK(s.latency_le_ms[0] == 5 && s.latency_le_ms[5] == 7 && s.latency_le_ms[11] == 7);
  CHECK(whisper_server_latency_bounds()[11] == UINT64_MAX);
  /* an ack past what was pushed acks only what was pushed */
  ack(&t, 5, 100);
  EXPECT_OK(5);
  CHECK(EXPECT_DELIVER(5, 1, 5) != NULL);
  CHECK(expect_queue_empty(5) == 5);
  for (uint64_t conn = 1; conn <= 2; conn++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(conn, 2, 0);
    CHECK(d && d->n_client_ids == 1 && memcmp(d->client_ids[0].data, cid[2], 16) == 0);
    if (d) ack(&t, conn, d->seq);
    EXPECT_OK(conn);
  }
  /* reconnect with resume_after 4: the unacked 5 comes again */
  dev_login(&t, &w.b2, 6, 4);
  CHECK(boxes[5].closed);
  CHECK(EXPECT_DELIVER(6, 1, 5) != NULL);
  CHECK(expect_queue_empty(6) == 5);
  ack(&t, 6, 5);
  EXPECT_OK(6);
  for (uint64_t conn = 1; conn <= 2; conn++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(conn, 2, 0);
    CHECK(d && d->n_client_ids == 1 && memcmp(d->client_ids[0].data, cid[4], 16) == 0);
    if (d) ack(&t, conn, d->seq);
    EXPECT_OK(conn);
  }
  /* and now nothing is left for bob2 */
  dev_login(&t, &w.b2, 7, 0);
  CHECK(expect_queue_empty(7) == 0);
  /* bob1's mailbox is untouched by bob2's acks: a fresh login resumes it */
  dev_login(&t, &w.b1, 8, 0);
  CHECK(EXPECT_DELIVER(8, 1, 1) != NULL);
  CHECK(EXPECT_DELIVER(8, 1, 2) != NULL);
  EXPECT_NONE(8);

  /* read receipts: to every device of alice; dropped when turned off */
  box_reset(1);
  box_reset(2);
  receipt(&t, 8, "alice", 3, (const uint8_t(*)[16])cid, 2);
  EXPECT_OK(8);
  for (uint64_t conn = 1; conn <= 2; conn++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(conn, 2, 0);
    CHECK(d && d->status == 3 && strcmp(d->sender, "bob") == 0 && d->sender_device == 1 &&
          d->n_client_ids == 2);
  }
  presence_set(&t, 8, 0, 0, 1, 0);
  EXPECT_OK(8);
  receipt(&t, 8, "alice", 3, (const uint8_t(*)[16])cid, 1);
  EXPECT_OK(8);
  EXPECT_NONE(1);
  EXPECT_NONE(2);
  receipt(&t, 8, "nobody", 3, (const uint8_t(*)[16])cid, 1);
  EXPECT_OK(8); /* dropped before the account is looked at */
  presence_set(&t, 8, 0, 0, 1, 1);
  EXPECT_OK(8);
  receipt(&t, 8, "nobody", 3, (const uint8_t(*)[16])cid, 1);
  EXPECT_ERR(8, 6);
  four_free(&w);
  srvt_close(&t);
}

static void test_groups(void) {
  srvt t;
  four w;
  dev c1, d1;
  uint8_t gid[16], cid[16];
  memset(gid, 0x6A, 16);
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);
  dev_init(&c1, "carol", 1, 5);
  dev_init(&d1, "dave", 1, 6);
  dev_up(&t, &c1, 9, 0);
  dev_up(&t, &d1, 10, 0);

  const char *bad[] = {"bob", "nobody"}, *bc[] = {"bob", "carol"}, *dave[] = {"dave"};
  group_op(&t, 1, 1, gid, bad, 2);
  EXPECT_ERR(1, 6);
  group_op(&t, 1, 1, gid, bc, 2);
  Frame *f = EXPECT(1, GROUP_INFO);
  CHECK(f && f->group_info->n_members == 3 && f->group_info->n_admins == 1 &&
        strcmp(f->group_info->admins[0], "alice") == 0);
  fr_free(f);
  /* every device of every member hears of it, the creating one too */
  uint64_t conns[] = {1, 2, 3, 4, 9};
  for (size_t i = 0; i < 5; i++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(conns[i], 3, 0);
    CHECK(d && d->n_members == 3 && d->n_removed == 0 && d->group_id.len == 16 &&
          strcmp(d->sender, "alice") == 0);
  }
  group_op(&t, 1, 1, gid, bc, 2);
  EXPECT_ERR(1, 5);
  EXPECT_NONE(10);
  /* fan-out: every member device but the sending one */
  cid_make(cid, 1);
  send_group(&t, &w.b1, gid, cid);
  uint64_t seq = EXPECT_SENT(3, NULL);
  uint64_t got[] = {1, 2, 4, 9};
  for (size_t i = 0; i < 4; i++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(got[i], 1, 0);
    CHECK(d && d->type == 7 && d->server_seq == seq && d->group_id.len == 16 &&
          memcmp(d->group_id.data, gid, 16) == 0 && d->body.len == 5 && strcmp(d->sender, "bob") == 0);
  }
  EXPECT_NONE(3);
  EXPECT_NONE(10);
  /* a non-member may not send; a member who is no admin may not add */
  cid_make(cid, 2);
  send_group(&t, &d1, gid, cid);
  EXPECT_ERR(10, 8);
  group_op(&t, 3, 2, gid, dave, 1);
  EXPECT_ERR(3, 8);
  group_op(&t, 10, 5, gid, NULL, 0);
  EXPECT_ERR(10, 8);
  /* the admin adds dave; everyone, dave too, hears of it */
  group_op(&t, 1, 2, gid, dave, 1);
  fr_free(EXPECT(1, GROUP_INFO));
  uint64_t all[] = {1, 2, 3, 4, 9, 10};
  for (size_t i = 0; i < 6; i++) CHECK(EXPECT_DELIVER(all[i], 3, 0) != NULL);
  /* the admin removes carol: she hears of it, then cannot send */
  const char *carol[] = {"carol"};
  group_op(&t, 1, 3, gid, carol, 1);
  fr_free(EXPECT(1, GROUP_INFO));
  for (size_t i = 0; i < 6; i++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(all[i], 3, 0);
    CHECK(d && d->n_removed == 1 && strcmp(d->removed[0], "carol") == 0 && d->n_members == 3);
  }
  cid_make(cid, 3);
  send_group(&t, &c1, gid, cid);
  EXPECT_ERR(9, 8);
  /* bob may not remove dave, but may leave */
  group_op(&t, 3, 3, gid, dave, 1);
  EXPECT_ERR(3, 8);
  const char *bob[] = {"bob"};
  group_op(&t, 3, 3, gid, bob, 1);
  fr_free(EXPECT(3, GROUP_INFO));
  {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(10, 3, 0);
    CHECK(d && d->n_removed == 1 && strcmp(d->removed[0], "bob") == 0 && d->n_members == 2);
  }
  group_op(&t, 10, 5, gid, NULL, 0);
  f = EXPECT(10, GROUP_INFO);
  CHECK(f && f->group_info->n_members == 2);
  fr_free(f);
  /* a group over the size limit */
  whisper_server_free(t.srv);
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.max_group_members = 2;
  CHECK_RC(whisper_server_new(&t.srv, t.st, &cfg), WHISPER_OK);
  dev_login(&t, &w.a1, 11, 1000);
  box_reset(11);
  uint8_t gid2[16];
  memset(gid2, 0x6B, 16);
  group_op(&t, 11, 1, gid2, bc, 2);
  EXPECT_ERR(11, 10);
  group_op(&t, 11, 1, gid2, bob, 1);
  fr_free(EXPECT(11, GROUP_INFO));
  dev_free(&c1);
  dev_free(&d1);
  four_free(&w);
  srvt_close(&t);
}

static void test_typing(void) {
  srvt t;
  four w;
  uint8_t gid[16];
  memset(gid, 0x71, 16);
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);
  whisper_server_disconnected(t.srv, 4, t.now); /* bob2 offline */
  typing(&t, 1, "bob", NULL, 1);
  EXPECT_OK(1);
  Frame *f = EXPECT(3, TYPING_NOTICE);
  CHECK(f && strcmp(f->typing_notice->from, "alice") == 0 && f->typing_notice->from_device == 1 &&
        f->typing_notice->started && f->typing_notice->expires_ms == t.now + 6000 &&
        !f->typing_notice->has_group_id);
  fr_free(f);
  EXPECT_NONE(2);
  /* again within 2 s: dropped; a stop goes through; after 2 s again */
  t.now += 1000;
  typing(&t, 1, "bob", NULL, 1);
  EXPECT_OK(1);
  EXPECT_NONE(3);
  typing(&t, 1, "bob", NULL, 0);
  EXPECT_OK(1);
  f = EXPECT(3, TYPING_NOTICE);
  CHECK(f && !f->typing_notice->started);
  fr_free(f);
  t.now += 2000;
  typing(&t, 1, "bob", NULL, 0);
  EXPECT_OK(1);
  fr_free(EXPECT(3, TYPING_NOTICE));
  /* another device of alice is throttled on its own */
  typing(&t, 2, "bob", NULL, 0);
  EXPECT_OK(2);
  fr_free(EXPECT(3, TYPING_NOTICE));
  /* nothing was stored: bob2 finds an empty mailbox */
  dev_login(&t, &w.b2, 5, 0);
  CHECK(expect_queue_empty(5) == 0);
  /* a group: members' online devices; non-members refused */
  const char *bob[] = {"bob"};
  group_op(&t, 1, 1, gid, bob, 1);
  fr_free(EXPECT(1, GROUP_INFO));
  for (int c = 1; c <= 5; c++)
    if (c != 4) box_reset((uint64_t)c);
  typing(&t, 3, NULL, gid, 1);
  EXPECT_OK(3);
  EXPECT_NONE(5); /* not to the typing account's other devices */
  for (int c = 1; c <= 2; c++) {
    f = EXPECT((uint64_t)c, TYPING_NOTICE);
    CHECK(f && f->typing_notice->has_group_id && memcmp(f->typing_notice->group_id.data, gid, 16) == 0);
    fr_free(f);
  }
  dev carol;
  dev_init(&carol, "carol", 1, 9);
  dev_up(&t, &carol, 9, 0);
  typing(&t, 9, NULL, gid, 1);
  EXPECT_ERR(9, 8);
  dev_free(&carol);
  four_free(&w);
  srvt_close(&t);
}

static void expect_presence(uint64_t conn, const char *account, int online, uint64_t last_seen,
                            int line) {
  Frame *f = expect_(conn, WHISPER__SYNC__FRAME__BODY_PRESENCE, line);
  if (f == NULL) return;
  int ok = strcmp(f->presence->account, account) == 0 && f->presence->online == online &&
           f->presence->last_seen_ms == last_seen;
  if (!ok)
    fprintf(stderr, "line %d: presence %s online %d last %llu\n", line, f->presence->account,
            f->presence->online, (unsigned long long)f->presence->last_seen_ms);
  CHECK(ok);
  fr_free(f);
}
#define EXPECT_PRESENCE(conn, acc, on, last) expect_presence(conn, acc, on, last, __LINE__)

static void test_presence(void) {
  srvt t;
  dev a1, c1;
  srvt_open(&t, mem_store(), NULL);
  dev_init(&a1, "alice", 1, 1);
  dev_init(&c1, "carol", 1, 2);
  dev_up(&t, &c1, 2, 0);
  dev_connect(&t, &a1, 1);
  dev_register(&t, &a1, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(1);

  const char *acc[] = {"alice", "nobody"};
  subscribe(&t, 2, acc, 2);
  EXPECT_OK(2);
  EXPECT_PRESENCE(2, "alice", 0, 0);
  EXPECT_PRESENCE(2, "nobody", 0, 0);
  dev_hello(&t, &a1);
  EXPECT_OK(1);
  dev_auth(&t, &a1, 0, 0);
  EXPECT_OK(1);
  EXPECT_PRESENCE(2, "alice", 1, 0);
  /* offline only after the grace period, with last seen */
  uint64_t left = t.now += 100;
  whisper_server_disconnected(t.srv, 1, t.now);
  CHECK(whisper_server_next_deadline(t.srv) <= left + 5000);
  t.now = left + 4999;
  tick(&t);
  EXPECT_NONE(2);
  t.now = left + 5000;
  tick(&t);
  EXPECT_PRESENCE(2, "alice", 0, left);
  /* back, away and back within the grace period: online, once */
  dev_login(&t, &a1, 1, 0);
  EXPECT_PRESENCE(2, "alice", 1, 0);
  whisper_server_disconnected(t.srv, 1, t.now);
  t.now += 1000;
  dev_login(&t, &a1, 1, 0);
  t.now += 5000;
  tick(&t);
  EXPECT_NONE(2);
  /* privacy: hidden means offline with no last seen, for new subscribers too */
  box_reset(1);
  presence_set(&t, 1, 1, 0, 0, 0);
  EXPECT_OK(1);
  EXPECT_PRESENCE(2, "alice", 0, 0);
  whisper_server_disconnected(t.srv, 1, t.now);
  t.now += 6000;
  tick(&t);
  EXPECT_NONE(2);
  dev_login(&t, &a1, 1, 0);
  EXPECT_NONE(2);
  box_reset(1);
  dev c2;
  dev_init(&c2, "carol", 2, 3);
  subscribe(&t, 2, acc, 1);
  EXPECT_OK(2);
  EXPECT_PRESENCE(2, "alice", 0, 0);
  presence_set(&t, 1, 1, 1, 0, 0);
  EXPECT_OK(1);
  EXPECT_PRESENCE(2, "alice", 1, 0);
  /* a closed subscriber hears nothing more */
  whisper_server_disconnected(t.srv, 2, t.now);
  whisper_server_disconnected(t.srv, 1, t.now);
  t.now += 6000;
  tick(&t);
  EXPECT_NONE(2);
  CHECK(whisper_server_next_deadline(t.srv) == UINT64_MAX);
  dev_free(&c2);
  dev_free(&a1);
  dev_free(&c1);
  srvt_close(&t);
}

static void test_link(void) {
  srvt t;
  dev b1, b2, b3, b2x;
  uint8_t code[16] = {0}, code2[16] = {0};
  srvt_open(&t, mem_store(), NULL);
  dev_init(&b1, "bob", 1, 1);
  dev_init(&b2, "bob", 2, 2);
  dev_init(&b3, "bob", 3, 3);
  dev_init(&b2x, "bob", 2, 4);
  dev_up(&t, &b1, 1, 0);
  dev_connect(&t, &b2, 2);
  link_request(&t, 2, "nobody");
  EXPECT_ERR(2, 6);
  link_request(&t, 2, "bob");
  CHECK(get_link_code(2, code));
  /* a wrong code is refused at once; the right one waits */
  uint8_t wrong[16];
  memset(wrong, 0xEE, 16);
  dev_register(&t, &b2, 0, 1, wrong, BAD_NONE);
  EXPECT_ERR(2, 4);
  uint64_t rid = dev_register(&t, &b2, 1, 1, code, BAD_NONE);
  EXPECT_NONE(2);
  /* past the auth timeout, the waiting connection stays */
  t.now += 20000;
  tick(&t);
  CHECK(!boxes[2].closed);
  ping(&t, 2);
  fr_free(EXPECT(2, PONG));
  link_approve(&t, 1, wrong);
  EXPECT_ERR(1, 6);
  link_approve(&t, 1, code);
  EXPECT_OK(1);
  Frame *f = EXPECT(2, OK);
  CHECK(f && f->id == rid);
  fr_free(f);
  list_devices(&t, 1, "bob");
  f = EXPECT(1, DEVICES);
  CHECK(f && f->devices->n_device_ids == 2 && f->devices->device_ids[1] == 2);
  fr_free(f);
  /* the code is used up; another device 2 is refused */
  dev_connect(&t, &b2x, 3);
  dev_register(&t, &b2x, 0, 1, code, BAD_NONE);
  EXPECT_ERR(3, 5);
  /* a code nobody approves lapses after 10 minutes */
  dev_connect(&t, &b3, 4);
  link_request(&t, 4, "bob");
  CHECK(get_link_code(4, code2));
  rid = dev_register(&t, &b3, 0, 1, code2, BAD_NONE);
  EXPECT_NONE(4);
  for (int i = 0; i < 12; i++) {
    t.now += 50000;
    ping(&t, 4);
    fr_free(EXPECT(4, PONG));
    ping(&t, 1);
    fr_free(EXPECT(1, PONG));
    tick(&t);
  }
  CHECK(boxes[4].closed); /* and the auth timeout then closes it */
  f = EXPECT(4, ERROR);
  CHECK(f && f->id == rid && f->error->code == 4);
  fr_free(f);
  link_approve(&t, 1, code2);
  EXPECT_ERR(1, 6);
  dev_free(&b1);
  dev_free(&b2);
  dev_free(&b3);
  dev_free(&b2x);
  srvt_close(&t);
}

/* Keeps connection `conn` (and the approver's) alive past the heartbeat
 * while the clock moves `ms`, in steps of 50 s, ticking after each. */
static void wait_alive(srvt *t, uint64_t ms, uint64_t conn, uint64_t other) {
  while (ms > 0) {
    uint64_t step = ms < 50000 ? ms : 50000;
    t->now += step;
    ms -= step;
    ping(t, conn);
    fr_free(EXPECT(conn, PONG));
    ping(t, other);
    fr_free(EXPECT(other, PONG));
    tick(t);
  }
}

/* A Register held on a link code by a connection that did not ask for the
 * code itself, and one carrying an unknown field numbered 0: both are
 * answered (Ok once approved, ERR_AUTH once the code expired), and the
 * connection stays open while the code is valid. */
static void test_link_held(void) {
  srvt t;
  dev b1, b2, b3, b4;
  uint8_t code[16] = {0};
  srvt_open(&t, mem_store(), NULL);
  dev_init(&b1, "bob", 1, 1);
  dev_init(&b2, "bob", 2, 2);
  dev_init(&b3, "bob", 3, 3);
  dev_init(&b4, "bob", 4, 4);
  dev_up(&t, &b1, 1, 0);

  /* the code is asked for on connection 5, which then goes away; b2
   * registers with it on connection 2, which never sent LinkRequest */
  box_reset(5);
  CHECK_RC(whisper_server_connected(t.srv, 5, t.now), WHISPER_OK);
  drain(t.srv);
  fr_free(EXPECT(5, CHALLENGE));
  link_request(&t, 5, "bob");
  CHECK(get_link_code(5, code));
  whisper_server_disconnected(t.srv, 5, t.now);
  dev_connect(&t, &b2, 2);
  uint64_t opened = t.now;
  t.now += 1000;
  uint64_t rid = dev_register(&t, &b2, 1, 1, code, BAD_NONE);
  EXPECT_NONE(2); /* held until approved */
  /* past the auth timeout (15 s) the connection stays while the code is
   * valid: the next deadline is not the auth timeout's */
  CHECK(whisper_server_next_deadline(t.srv) > opened + 15000);
  t.now = opened + 15000;
  tick(&t);
  CHECK(!boxes[2].closed);
  wait_alive(&t, 5 * 60 * 1000, 2, 1); /* 5 minutes on, the code still valid */
  CHECK(!boxes[2].closed);
  EXPECT_NONE(2);
  link_approve(&t, 1, code);
  EXPECT_OK(1);
  Frame *f = EXPECT(2, OK);
  CHECK(f && f->id == rid);
  fr_free(f);
  /* and the new device logs in on that connection */
  tick(&t);
  CHECK(!boxes[2].closed);
  dev_hello(&t, &b2);
  EXPECT_OK(2);
  dev_auth(&t, &b2, 0, 0);
  EXPECT_OK(2);
  fr_free(EXPECT(2, QUEUE_EMPTY));

  /* a code nobody approves: the held Register (again on a connection
   * that did not ask for the code) gets ERR_AUTH when it expires, before
   * the connection is closed */
  box_reset(5);
  CHECK_RC(whisper_server_connected(t.srv, 5, t.now), WHISPER_OK);
  drain(t.srv);
  fr_free(EXPECT(5, CHALLENGE));
  link_request(&t, 5, "bob");
  uint64_t expires = t.now + 10 * 60 * 1000;
  CHECK(get_link_code(5, code));
  whisper_server_disconnected(t.srv, 5, t.now);
  dev_connect(&t, &b3, 3);
  rid = dev_register(&t, &b3, 0, 1, code, BAD_NONE);
  EXPECT_NONE(3);
  wait_alive(&t, expires - 1 - t.now, 3, 1); /* 1 ms before the code expires */
  CHECK(!boxes[3].closed);
  EXPECT_NONE(3);
  CHECK(whisper_server_next_deadline(t.srv) == expires);
  t.now = expires;
  whisper_server_tick(t.srv, t.now);
  /* the Error comes out before the CLOSE */
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  int got_error = 0, got_close = 0;
  while (whisper_server_take_output(t.srv, &o) > 0) {
    if (o.conn != 3) continue;
    if (o.action == WHISPER_SERVER_DISCONNECT) {
      got_close = 1;
      continue;
    }
    Frame *e = whisper__sync__frame__unpack(NULL, o.frame_len, o.frame);
    CHECK(!got_close); /* nothing after the CLOSE */
    CHECK(e && e->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && e->id == rid &&
          e->error->code == 4 && e->error->message &&
          strcmp(e->error->message, "the link code expired") == 0);
    got_error += e != NULL;
    fr_free(e);
  }
  CHECK(got_error == 1 && got_close);
  link_approve(&t, 1, code);
  EXPECT_ERR(1, 6);

  /* a Register carrying an unknown field numbered 0, written `80 00` (which
   * protobuf-c reads, but writes back as `00`, which it cannot read), held
   * on a code: answered once the code is approved */
  static const uint8_t field0[] = {0x80, 0x00, 0x05};
  dev_connect(&t, &b4, 4);
  link_request(&t, 4, "bob");
  CHECK(get_link_code(4, code));
  rid = dev_register_x(&t, &b4, 1, 1, code, BAD_NONE, field0, sizeof field0);
  EXPECT_NONE(4);
  ping(&t, 1);
  fr_free(EXPECT(1, PONG));
  link_approve(&t, 1, code);
  EXPECT_OK(1);
  f = EXPECT(4, OK);
  CHECK(f && f->id == rid);
  fr_free(f);
  EXPECT_NONE(4);
  list_devices(&t, 1, "bob");
  f = EXPECT(1, DEVICES);
  CHECK(f && f->devices->n_device_ids == 3 && f->devices->device_ids[2] == 4);
  fr_free(f);
  dev_free(&b1);
  dev_free(&b2);
  dev_free(&b3);
  dev_free(&b4);
  srvt_close(&t);
}

/* Signed device lists: PublishDevices (only from device 1, checked,
 * versions only grow), the list in Devices and Bundles, and the removal of
 * a device the list leaves out: its connection is closed, it cannot log
 * in, it is gone from ListDevices, FetchBundles and Send's device lists,
 * group and receipt fan-out skip it, its mailbox entries are deleted; the
 * list outlives a restart. */
static void test_device_lists(void) {
  srvt t;
  four w;
  dev c1;
  uint8_t l1[2048], bad[2048], l2[2048], gid[16], cid[16];
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);
  dev_init(&c1, "carol", 1, 5);
  dev_up(&t, &c1, 9, 0);
  const uint32_t both[] = {1, 2}, one[] = {1};
  const listed a12[] = {{1, &w.a1}, {2, &w.a2}}, a1_only[] = {{1, &w.a1}};

  list_devices(&t, 3, "alice");
  EXPECT_DEVICES(3, both, 2, NULL, 0); /* none published yet */
  size_t n1 = dlist_make(l1, &w.a1, "alice", 1, a12, 2, LIST_OK);
  publish(&t, 2, l1, n1);
  EXPECT_ERR(2, 8); /* only device 1 publishes */
  static const struct {
    int signer; /* 1: alice.1, 2: alice.2 */
    const char *account;
    uint64_t version;
    uint32_t id1, id2;
    int key1, key2; /* whose key each entry names (1 or 2; 0: no entry) */
    int bad;
    unsigned code;
  } cases[] = {
      {1, "bob", 1, 1, 2, 1, 2, LIST_OK, 1},       /* another account's list */
      {1, "alice", 1, 2, 0, 2, 0, LIST_OK, 1},     /* without device 1 */
      {1, "alice", 1, 1, 2, 2, 2, LIST_OK, 1},     /* device 1 with another key */
      {1, "alice", 1, 1, 1, 1, 1, LIST_OK, 1},     /* a device twice */
      {1, "alice", 1, 1, 2, 1, 2, LIST_NO_SIG, 1}, /* no signature */
      {1, "alice", 1, 1, 2, 1, 2, LIST_BAD_SIG, 4},/* a bad signature */
      {2, "alice", 1, 1, 2, 1, 2, LIST_OK, 4},     /* signed by device 2 */
      {1, "alice", 0, 1, 2, 1, 2, LIST_OK, 11},    /* version not above the stored (none: 0) */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const dev *keys[] = {NULL, &w.a1, &w.a2};
    listed e[2] = {{cases[i].id1, keys[cases[i].key1]}, {cases[i].id2, keys[cases[i].key2]}};
    size_t nb = dlist_make(bad, keys[cases[i].signer], cases[i].account, cases[i].version, e,
                           cases[i].key2 ? 2 : 1, cases[i].bad);
    publish(&t, 1, bad, nb);
    EXPECT_ERR(1, cases[i].code);
    ping(&t, 1); /* three ERR_MALFORMED in a row would close it */
    fr_free(EXPECT(1, PONG));
  }
  publish(&t, 1, (const uint8_t *)"\xff\xff", 2);
  EXPECT_ERR(1, 1);
  /* nothing changed */
  list_devices(&t, 3, "alice");
  EXPECT_DEVICES(3, both, 2, NULL, 0);
  CHECK(!boxes[2].closed);

  publish(&t, 1, l1, n1);
  EXPECT_OK(1);
  list_devices(&t, 3, "alice");
  EXPECT_DEVICES(3, both, 2, l1, n1);
  fetch(&t, 3, "alice", NULL, 0);
  Frame *f = EXPECT(3, BUNDLES);
  CHECK(f && f->bundles->n_bundles == 2 &&
        same_bytes(f->bundles->has_signed_list, f->bundles->signed_list, l1, n1));
  fr_free(f);
  fetch(&t, 3, "bob", NULL, 0); /* an account without a list: none */
  f = EXPECT(3, BUNDLES);
  CHECK(f && f->bundles->n_bundles == 2 && !f->bundles->has_signed_list);
  fr_free(f);
  /* versions only grow: the same one again, or another list of version 1 */
  publish(&t, 1, l1, n1);
  EXPECT_ERR(1, 11);
  size_t nb = dlist_make(bad, &w.a1, "alice", 1, a1_only, 1, LIST_OK);
  publish(&t, 1, bad, nb);
  EXPECT_ERR(1, 11);
  list_devices(&t, 3, "alice");
  EXPECT_DEVICES(3, both, 2, l1, n1);
  CHECK(!boxes[2].closed);

  /* alice.2 gets two entries it does not ack: a group notice, a message */
  memset(gid, 0x6C, 16);
  const char *bc[] = {"bob", "carol"};
  group_op(&t, 1, 1, gid, bc, 2);
  fr_free(EXPECT(1, GROUP_INFO));
  CHECK(EXPECT_DELIVER(2, 3, 0) != NULL);
  for (uint64_t c = 1; c < MAXC; c++)
    if (c != 2) box_reset(c);
  cid_make(cid, 1);
  target a_both[] = {{1, 0}, {2, 0}}, a_one[] = {{1, 0}}, b_own[] = {{2, 0}};
  send_direct(&t, &w.b1, "alice", cid, a_both, 2, b_own, 1, 1);
  EXPECT_SENT(3, NULL);
  CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
  for (uint64_t c = 1; c < MAXC; c++) box_reset(c);
  uint64_t depth = stats(&t).mailbox_depth;

  /* version 2 leaves alice.2 out: removed */
  size_t n2 = dlist_make(l2, &w.a1, "alice", 2, a1_only, 1, LIST_OK);
  publish(&t, 1, l2, n2);
  EXPECT_OK(1);
  CHECK(boxes[2].closed);
  CHECK(!boxes[1].closed && !boxes[3].closed);
  CHECK(stats(&t).mailbox_depth == depth - 2);
  list_devices(&t, 3, "alice");
  EXPECT_DEVICES(3, one, 1, l2, n2);
  fetch(&t, 3, "alice", NULL, 0);
  f = EXPECT(3, BUNDLES);
  CHECK(f && f->bundles->n_bundles == 1 && f->bundles->bundles[0]->keys->device_id == 1 &&
        same_bytes(f->bundles->has_signed_list, f->bundles->signed_list, l2, n2));
  fr_free(f);
  /* it cannot log in */
  dev_connect(&t, &w.a2, 5);
  dev_hello(&t, &w.a2);
  EXPECT_OK(5);
  dev_auth(&t, &w.a2, 0, 0);
  EXPECT_ERR(5, 4);
  CHECK(boxes[5].closed);
  /* a Send to alice no longer needs it: a ciphertext for it is extra */
  cid_make(cid, 2);
  send_direct(&t, &w.b1, "alice", cid, a_both, 2, b_own, 1, 1);
  CHECK_STALE(3, "alice", 0, 2, 0);
  send_direct(&t, &w.b1, "alice", cid, a_one, 1, b_own, 1, 1);
  EXPECT_SENT(3, NULL);
  CHECK(EXPECT_DELIVER(1, 1, 0) != NULL);
  CHECK(EXPECT_DELIVER(4, 1, 0) != NULL);
  /* alice.1's own copies: device 2 is extra */
  cid_make(cid, 3);
  target b_both[] = {{1, 0}, {2, 0}};
  send_direct(&t, &w.a1, "bob", cid, b_both, 2, b_own, 1, 1);
  CHECK_STALE(1, "alice", 0, 2, 0);
  /* group and receipt fan-out skip it */
  cid_make(cid, 4);
  send_group(&t, &w.b1, gid, cid);
  EXPECT_SENT(3, NULL);
  uint64_t got[] = {1, 4, 9};
  for (size_t i = 0; i < 3; i++) CHECK(EXPECT_DELIVER(got[i], 1, 0) != NULL);
  const uint8_t rid[1][16] = {{0xC1}};
  receipt(&t, 3, "alice", 3, rid, 1);
  EXPECT_OK(3);
  CHECK(EXPECT_DELIVER(1, 2, 0) != NULL);
  EXPECT_NONE(5);

  /* the list is stored: a new server on the same store hands it out */
  whisper_server_free(t.srv);
  CHECK_RC(whisper_server_new(&t.srv, t.st, NULL), WHISPER_OK);
  whisper_server_rng_set(t.srv, test_rng_fn, &t.rng);
  dev_login(&t, &w.b1, 11, 1u << 30);
  box_reset(11);
  list_devices(&t, 11, "alice");
  EXPECT_DEVICES(11, one, 1, l2, n2);
  dev_free(&c1);
  four_free(&w);
  srvt_close(&t);
}

/* LinkApprove with a signed list: only from device 1, the list checked
 * as PublishDevices' (and nothing approved when it is refused); the new
 * device's Register must match its entry (ERR_AUTH, not added), and on
 * success the list becomes the account's, which removes the devices it
 * leaves out. A list longer than the device limit is refused. */
static void test_link_signed(void) {
  srvt t;
  dev a1, a2, a2x, a3, a4;
  uint8_t code[16] = {0}, code4[16] = {0}, l1[2048], l2[2048], l3[2048], bad[2048];
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.max_devices = 3;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a1, "alice", 1, 1);
  dev_init(&a2, "alice", 2, 2);
  dev_init(&a2x, "alice", 2, 12);
  dev_init(&a3, "alice", 3, 3);
  dev_init(&a4, "alice", 4, 4);
  dev_up(&t, &a1, 1, 0);
  dev_link(&t, &a3, 3, &a1); /* a legacy approval */
  const listed l13[] = {{1, &a1}, {3, &a3}}, with_2x[] = {{1, &a1}, {2, &a2x}, {3, &a3}};
  const listed no1[] = {{2, &a2x}, {3, &a3}}, l14[] = {{1, &a1}, {4, &a4}};
  size_t n1 = dlist_make(l1, &a1, "alice", 1, l13, 2, LIST_OK);
  publish(&t, 1, l1, n1);
  EXPECT_OK(1);

  dev_connect(&t, &a2, 2);
  link_request(&t, 2, "alice");
  CHECK(get_link_code(2, code));
  uint64_t rid = dev_register(&t, &a2, 1, 1, code, BAD_NONE);
  EXPECT_NONE(2); /* held */
  size_t n2 = dlist_make(l2, &a1, "alice", 2, with_2x, 3, LIST_OK);
  link_approve_list(&t, 3, code, l2, n2);
  EXPECT_ERR(3, 8);
  size_t nb = dlist_make(bad, &a1, "alice", 2, with_2x, 3, LIST_BAD_SIG);
  link_approve_list(&t, 1, code, bad, nb);
  EXPECT_ERR(1, 4);
  nb = dlist_make(bad, &a1, "bob", 2, with_2x, 3, LIST_OK);
  link_approve_list(&t, 1, code, bad, nb);
  EXPECT_ERR(1, 1);
  nb = dlist_make(bad, &a1, "alice", 2, no1, 2, LIST_OK);
  link_approve_list(&t, 1, code, bad, nb);
  EXPECT_ERR(1, 1);
  ping(&t, 1);
  fr_free(EXPECT(1, PONG));
  nb = dlist_make(bad, &a1, "alice", 1, with_2x, 3, LIST_OK);
  link_approve_list(&t, 1, code, bad, nb);
  EXPECT_ERR(1, 11);
  const listed four_l[] = {{1, &a1}, {2, &a2x}, {3, &a3}, {4, &a4}};
  nb = dlist_make(bad, &a1, "alice", 2, four_l, 4, LIST_OK);
  link_approve_list(&t, 1, code, bad, nb);
  EXPECT_ERR(1, 10);
  EXPECT_NONE(2); /* still held: nothing was approved */
  const uint32_t d13[] = {1, 3}, d132[] = {1, 3, 2}, d14[] = {1, 4};
  list_devices(&t, 1, "alice");
  EXPECT_DEVICES(1, d13, 2, l1, n1);

  /* approved with a list that names another key for device 2: the held
   * Register is refused and nothing is added */
  link_approve_list(&t, 1, code, l2, n2);
  EXPECT_OK(1);
  Frame *f = EXPECT(2, ERROR);
  CHECK(f && f->id == rid && f->error->code == 4);
  fr_free(f);
  list_devices(&t, 1, "alice");
  EXPECT_DEVICES(1, d13, 2, l1, n1);
  /* the device the list names registers with that code: added, and the
   * list is the account's */
  dev_connect(&t, &a2x, 4);
  dev_register(&t, &a2x, 1, 1, code, BAD_NONE);
  EXPECT_OK(4);
  list_devices(&t, 1, "alice");
  EXPECT_DEVICES(1, d132, 3, l2, n2);
  dev_hello(&t, &a2x);
  EXPECT_OK(4);
  dev_auth(&t, &a2x, 0, 0);
  EXPECT_OK(4);
  fr_free(EXPECT(4, QUEUE_EMPTY));

  /* a list that adds alice.4 and leaves out 2 and 3: once alice.4 is
   * added they are removed, their connections closed (the account had
   * its 3 devices: it keeps only what the list names, so no ERR_LIMIT) */
  dev_connect(&t, &a4, 5);
  link_request(&t, 5, "alice");
  CHECK(get_link_code(5, code4));
  size_t n3 = dlist_make(l3, &a1, "alice", 3, l14, 2, LIST_OK);
  link_approve_list(&t, 1, code4, l3, n3);
  EXPECT_OK(1);
  CHECK(!boxes[3].closed && !boxes[4].closed); /* not before the Register */
  dev_register(&t, &a4, 1, 1, code4, BAD_NONE);
  EXPECT_OK(5);
  CHECK(boxes[3].closed && boxes[4].closed && !boxes[1].closed);
  list_devices(&t, 1, "alice");
  EXPECT_DEVICES(1, d14, 2, l3, n3);
  dev_free(&a1);
  dev_free(&a2);
  dev_free(&a2x);
  dev_free(&a3);
  dev_free(&a4);
  srvt_close(&t);
}

/* GroupOp with a signed change: it must parse and be for the op's group
 * (ERR_MALFORMED), start at version 1, then follow the stored change
 * (version + 1, prev = SHA-256 of its body: else ERR_STATE, nothing
 * changed); the ENTRY_GROUPs carry it and GroupInfo carries the latest,
 * also after a restart. An op without one works as before. */
static void test_group_changes(void) {
  srvt t;
  four w;
  dev c1;
  uint8_t gid[16], other[16], c1b[1024], c2b[1024], cx[1024], h1[32], zero[32] = {0};
  memset(gid, 0x7A, 16);
  memset(other, 0x7B, 16);
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);
  change_signer = &w.a1;
  dev_init(&c1, "carol", 1, 5);
  dev_up(&t, &c1, 9, 0);
  const char *bob[] = {"bob"}, *ab[] = {"alice", "bob"}, *abc[] = {"alice", "bob", "carol"};
  const char *carol[] = {"carol"};

  group_op_change(&t, 1, 1, gid, bob, 1, (const uint8_t *)"\xff", 1);
  EXPECT_ERR(1, 1);
  size_t nx = change_make(cx, other, 1, NULL, ab, 2, NULL);
  group_op_change(&t, 1, 1, gid, bob, 1, cx, nx);
  EXPECT_ERR(1, 1);
  ping(&t, 1);
  fr_free(EXPECT(1, PONG));
  nx = change_make(cx, gid, 2, NULL, ab, 2, NULL);
  group_op_change(&t, 1, 1, gid, bob, 1, cx, nx);
  EXPECT_ERR(1, 11); /* a creation is version 1 */
  group_op(&t, 1, 5, gid, NULL, 0);
  EXPECT_ERR(1, 6); /* not created */

  size_t n1 = change_make(c1b, gid, 1, NULL, ab, 2, h1);
  group_op_change(&t, 1, 1, gid, bob, 1, c1b, n1);
  Frame *f = EXPECT(1, GROUP_INFO);
  CHECK(f && same_bytes(f->group_info->has_change, f->group_info->change, c1b, n1));
  fr_free(f);
  uint64_t ab_conns[] = {1, 2, 3, 4}, all[] = {1, 2, 3, 4, 9};
  for (size_t i = 0; i < 4; i++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(ab_conns[i], 3, 0);
    CHECK(d && same_bytes(d->has_group_change, d->group_change, c1b, n1));
  }
  EXPECT_NONE(9);
  group_op_change(&t, 1, 5, gid, NULL, 0, c1b, n1);
  EXPECT_ERR(1, 1); /* INFO carries none */

  /* the next change must follow the first */
  struct {
    uint64_t version;
    const uint8_t *prev;
  } wrong[] = {{2, zero}, {2, NULL}, {3, h1}, {1, h1}};
  for (size_t i = 0; i < 4; i++) {
    nx = change_make(cx, gid, wrong[i].version, wrong[i].prev, abc, 3, NULL);
    group_op_change(&t, 1, 2, gid, carol, 1, cx, nx);
    EXPECT_ERR(1, 11);
  }
  for (size_t i = 0; i < 5; i++) EXPECT_NONE(all[i]);
  group_op(&t, 1, 5, gid, NULL, 0);
  f = EXPECT(1, GROUP_INFO);
  CHECK(f && f->group_info->n_members == 2 &&
        same_bytes(f->group_info->has_change, f->group_info->change, c1b, n1));
  fr_free(f);

  size_t n2 = change_make(c2b, gid, 2, h1, abc, 3, NULL);
  group_op_change(&t, 1, 2, gid, carol, 1, c2b, n2);
  f = EXPECT(1, GROUP_INFO);
  CHECK(f && f->group_info->n_members == 3 &&
        same_bytes(f->group_info->has_change, f->group_info->change, c2b, n2));
  fr_free(f);
  for (size_t i = 0; i < 5; i++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(all[i], 3, 0);
    CHECK(d && d->n_members == 3 && same_bytes(d->has_group_change, d->group_change, c2b, n2));
  }
  /* INFO answers the latest; an op without a change works as before, its
   * notices carry none, and the latest stays */
  group_op(&t, 9, 5, gid, NULL, 0);
  f = EXPECT(9, GROUP_INFO);
  CHECK(f && same_bytes(f->group_info->has_change, f->group_info->change, c2b, n2));
  fr_free(f);
  group_op(&t, 1, 4, gid, bob, 1);
  f = EXPECT(1, GROUP_INFO);
  CHECK(f && f->group_info->n_admins == 2 &&
        same_bytes(f->group_info->has_change, f->group_info->change, c2b, n2));
  fr_free(f);
  for (size_t i = 0; i < 5; i++) {
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(all[i], 3, 0);
    CHECK(d && !d->has_group_change);
  }
  /* a group made without a change has none to follow */
  group_op(&t, 1, 1, other, bob, 1);
  f = EXPECT(1, GROUP_INFO);
  CHECK(f && !f->group_info->has_change);
  fr_free(f);
  for (uint64_t c = 1; c < MAXC; c++) box_reset(c);
  nx = change_make(cx, other, 2, h1, abc, 3, NULL);
  group_op_change(&t, 1, 2, other, carol, 1, cx, nx);
  EXPECT_ERR(1, 11);
  EXPECT_NONE(9);
  /* but its first signed change, version 1, starts the chain */
  nx = change_make(cx, other, 1, NULL, abc, 3, NULL);
  group_op_change(&t, 1, 2, other, carol, 1, cx, nx);
  f = EXPECT(1, GROUP_INFO);
  CHECK(f && same_bytes(f->group_info->has_change, f->group_info->change, cx, nx));
  fr_free(f);
  for (uint64_t c = 1; c < MAXC; c++) box_reset(c);

  /* stored: a new server on the same store answers INFO with it */
  whisper_server_free(t.srv);
  CHECK_RC(whisper_server_new(&t.srv, t.st, NULL), WHISPER_OK);
  whisper_server_rng_set(t.srv, test_rng_fn, &t.rng);
  dev_login(&t, &w.b1, 11, 1u << 30);
  box_reset(11);
  group_op(&t, 11, 5, gid, NULL, 0);
  f = EXPECT(11, GROUP_INFO);
  CHECK(f && same_bytes(f->group_info->has_change, f->group_info->change, c2b, n2));
  fr_free(f);
  dev_free(&c1);
  four_free(&w);
  srvt_close(&t);
}

static void test_bad_frames(void) {
  srvt t;
  dev a;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.max_frame = 1024;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_up(&t, &a, 1, 0);
  uint8_t junk[2000];
  memset(junk, 0xFF, sizeof junk);
  /* too big: refused, not closed, not counted as malformed */
  feed(&t, 1, junk, sizeof junk);
  EXPECT_ERR(1, 3);
  CHECK(t.rc == WHISPER_OK);
  feed(&t, 1, junk, 10);
  EXPECT_ERR(1, 1);
  feed(&t, 1, junk, 10);
  EXPECT_ERR(1, 1);
  ping(&t, 1); /* a good frame resets the count */
  fr_free(EXPECT(1, PONG));
  /* no id, a server-side body, a Send without client id */
  Whisper__Sync__Ping p = WHISPER__SYNC__PING__INIT;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PING;
  f.ping = &p;
  f.has_id = 1;
  f.id = 0;
  req(&t, 1, &f);
  EXPECT_ERR(1, 1);
  Whisper__Sync__Ok ok = WHISPER__SYNC__OK__INIT;
  Frame g = WHISPER__SYNC__FRAME__INIT;
  g.body_case = WHISPER__SYNC__FRAME__BODY_OK;
  g.ok = &ok;
  req(&t, 1, &g);
  EXPECT_ERR(1, 1);
  CHECK(!boxes[1].closed);
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.to = "alice";
  Frame h = WHISPER__SYNC__FRAME__INIT;
  h.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  h.send = &s;
  req(&t, 1, &h);
  EXPECT_ERR(1, 1);
  CHECK(boxes[1].closed); /* three in a row */
  /* a wrong version: refused and closed */
  dev_login(&t, &a, 2, 0);
  expect_queue_empty(2);
  Frame v = WHISPER__SYNC__FRAME__INIT;
  v.body_case = WHISPER__SYNC__FRAME__BODY_PING;
  v.ping = &p;
  v.has_version = 1;
  v.version = 2;
  req(&t, 2, &v);
  EXPECT_ERR(2, 2);
  CHECK(boxes[2].closed);
  whisper_server_stats_t st = stats(&t);
  CHECK(st.frames_refused >= 7 && st.connections == 0);
  dev_free(&a);
  srvt_close(&t);
}

static void test_rate_heartbeat_push(void) {
  srvt t;
  dev a, b;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.rate_per_sec = 10;
  cfg.rate_burst = 8;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0); /* 3 frames from the connection's bucket */
  for (int i = 0; i < 8; i++) {
    ping(&t, 1);
    fr_free(EXPECT(1, PONG));
  }
  ping(&t, 1);
  uint64_t retry = EXPECT_ERR(1, 9);
  CHECK(retry >= 1 && retry <= 100);
  t.now += retry;
  ping(&t, 1);
  fr_free(EXPECT(1, PONG));
  /* the bucket is the device's: a new connection does not refill it */
  dev_login(&t, &a, 2, 0); /* 2 frames before login (own bucket), then the device's */
  expect_queue_empty(2);
  ping(&t, 2);
  EXPECT_ERR(2, 9);
  t.now += 1000;

  /* push: once per offline period, with the depth */
  dev_up(&t, &b, 3, 0);
  whisper_server_disconnected(t.srv, 3, t.now);
  n_pushes = 0;
  uint8_t cid[16];
  target b1[] = {{1, 0}};
  for (int i = 0; i < 2; i++) {
    cid_make(cid, 50 + i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
    EXPECT_SENT(2, NULL);
  }
  CHECK(n_pushes == 1 && strcmp(pushes[0].account, "bob") == 0 && pushes[0].device == 1 &&
        pushes[0].depth == 1);
  CHECK(stats(&t).pushes == 1);
  dev_login(&t, &b, 3, 0);
  fr_free(pop(3));
  fr_free(pop(3));
  expect_queue_empty(3);
  whisper_server_disconnected(t.srv, 3, t.now);
  cid_make(cid, 52);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  EXPECT_SENT(2, NULL);
  CHECK(n_pushes == 2 && pushes[1].depth == 3);

  /* heartbeat: a silent connection is closed; traffic keeps one open */
  CHECK(boxes[1].closed); /* the newer login closed it */
  box_reset(1);
  box_reset(2);
  t.now += 30000;
  tick(&t); /* bob's presence grace ran out */
  ping(&t, 2);
  fr_free(EXPECT(2, PONG));
  CHECK(whisper_server_next_deadline(t.srv) == t.now + 60000);
  t.now += 59999;
  tick(&t);
  CHECK(!boxes[2].closed);
  t.now += 1;
  tick(&t);
  CHECK(boxes[2].closed);
  t.now += 5000;
  tick(&t);
  /* the auth timeout closes a connection that does not log in */
  dev_connect(&t, &b, 4);
  CHECK(whisper_server_next_deadline(t.srv) == t.now + 15000);
  t.now += 15000;
  tick(&t);
  CHECK(boxes[4].closed);
  CHECK(stats(&t).connections == 0 && stats(&t).authenticated == 0);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

/* The core's timers against a model: connections opened, pinged and
 * closed at random times; after every step next_deadline() is the
 * earliest deadline of the model, and a tick closes exactly the
 * connections whose deadline came (the core keeps them in a heap, moved
 * lazily when frames come in). */
static void test_timers(void) {
  srvt t;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.heartbeat_ms = 5000;
  cfg.auth_timeout_ms = 40000;
  cfg.rate_per_sec = 1000000;
  cfg.rate_burst = 1000000;
  srvt_open(&t, mem_store(), &cfg);
  struct {
    int open;
    uint64_t opened, last_rx;
  } m[MAXC] = {{0}};
  uint64_t x = 88172645463325252ULL; /* xorshift64 */
  int ticked_closed = 0, pings = 0, min_moved = 0;
  for (int step = 0; step < 4000; step++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t c = 1 + x % (MAXC - 1);
    int action = (int)((x >> 20) % 10);
    if (action >= 2 && action <= 7) /* a frame or a close: for an open one */
      for (int k = 0; k < MAXC - 1 && !m[c].open; k++) c = c % (MAXC - 1) + 1;
    if (action <= 1 && !m[c].open) { /* open */
      box_reset(c);
      CHECK_RC(whisper_server_connected(t.srv, c, t.now), WHISPER_OK);
      m[c].open = 1;
      m[c].opened = m[c].last_rx = t.now;
    } else if (action >= 2 && action <= 6 && m[c].open) { /* a frame moves its heartbeat */
      uint64_t before = whisper_server_next_deadline(t.srv);
      ping(&t, c);
      m[c].last_rx = t.now;
      pings++;
      min_moved += whisper_server_next_deadline(t.srv) != before; /* it was the earliest */
    } else if (action == 7 && m[c].open) { /* the peer goes */
      whisper_server_disconnected(t.srv, c, t.now);
      m[c].open = 0;
    } else { /* time passes */
      t.now += (x >> 32) % 1000;
      tick(&t);
      for (uint64_t i = 1; i < MAXC; i++) {
        if (!m[i].open) {
          CHECK(!boxes[i].closed);
          continue;
        }
        uint64_t d = m[i].last_rx + 5000;
        if (m[i].opened + 40000 < d) d = m[i].opened + 40000;
        CHECK(boxes[i].closed == (d <= t.now));
        if (boxes[i].closed) {
          whisper_server_disconnected(t.srv, i, t.now); /* as whisperd does once it closed */
          m[i].open = 0;
          ticked_closed++;
        }
        box_reset(i);
      }
    }
    uint64_t want = UINT64_MAX;
    size_t open = 0;
    for (uint64_t i = 1; i < MAXC; i++) {
      if (!m[i].open) continue;
      open++;
      uint64_t d = m[i].last_rx + 5000;
      if (m[i].opened + 40000 < d) d = m[i].opened + 40000;
      if (d < want) want = d;
    }
    CHECK(whisper_server_next_deadline(t.srv) == want);
    CHECK(stats(&t).connections == open);
  }
  /* every path ran, many times */
  CHECK(ticked_closed > 200 && pings > 1000 && min_moved > 50);
  srvt_close(&t);
}

static void test_mailbox_limit(void) {
  srvt t;
  dev a, b;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.max_mailbox = 2;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  uint8_t cid[16];
  target b1[] = {{1, 0}};
  for (int i = 0; i < 3; i++) {
    cid_make(cid, i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
    if (i < 2)
      EXPECT_SENT(1, NULL);
    else
      EXPECT_ERR(1, 10);
  }
  CHECK(stats(&t).mailbox_depth == 2 && stats(&t).messages_sent == 2);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

/* --- a store that fails on demand ----------------------------------------- */

typedef struct failing {
  whisper_store *inner;
  int fail_puts_after; /* -1: never; n: the put after n more succeeds fails */
  int fail_commit;
  int fail_savepoint;  /* the next savepoint fails (once) */
  /* lock conflicts: while busy_times > 0, the mailbox entry put after
   * busy_puts_after more fails with WHISPER_EBUSY (each such failure counts
   * one off busy_times; mailbox entries: a frame's own writes, never the
   * batch's cached records its commit writes) */
  int busy_puts_after, busy_times;
  int commits;         /* commits that went through */
  int bob_reads;       /* reads of the account record "bob" */
} failing;

static int f_begin(void *u) {
  failing *f = u;
  return f->inner->ops.begin(f->inner->user);
}
static int f_commit(void *u) {
  failing *f = u;
  if (f->fail_commit) {
    f->inner->ops.rollback(f->inner->user);
    return WHISPER_ESTORE;
  }
  int rc = f->inner->ops.commit(f->inner->user);
  if (rc == WHISPER_OK) f->commits++;
  return rc;
}
static void f_rollback(void *u) {
  failing *f = u;
  f->inner->ops.rollback(f->inner->user);
}
static int f_get(void *u, int kind, const uint8_t *k, size_t n, whisper_buf **out) {
  failing *f = u;
  if (kind == WHISPER_REC_SERVER_ACCOUNT && n == 3 && memcmp(k, "bob", 3) == 0) f->bob_reads++;
  return f->inner->ops.get(f->inner->user, kind, k, n, out);
}
static int f_put(void *u, int kind, const uint8_t *k, size_t n, const uint8_t *v, size_t vn) {
  failing *f = u;
  if (f->fail_puts_after == 0) return WHISPER_ESTORE;
  if (f->fail_puts_after > 0) f->fail_puts_after--;
  if (f->busy_times > 0 && kind == WHISPER_REC_SERVER_MAILBOX && f->busy_puts_after-- == 0) {
    f->busy_puts_after = 0;
    f->busy_times--;
    return WHISPER_EBUSY;
  }
  return f->inner->ops.put(f->inner->user, kind, k, n, v, vn);
}
static int f_del(void *u, int kind, const uint8_t *k, size_t n) {
  failing *f = u;
  return f->inner->ops.del(f->inner->user, kind, k, n);
}
static int f_scan(void *u, int kind, const uint8_t *p, size_t pn, const uint8_t *b, size_t bn,
                  int desc, size_t limit, whisper_scan_fn fn, void *arg) {
  failing *f = u;
  return f->inner->ops.scan(f->inner->user, kind, p, pn, b, bn, desc, limit, fn, arg);
}

static int f_savepoint(void *u) {
  failing *f = u;
  if (f->fail_savepoint) {
    f->fail_savepoint = 0;
    return WHISPER_ESTORE;
  }
  return f->inner->ops.savepoint(f->inner->user);
}
static int f_release(void *u) {
  failing *f = u;
  return f->inner->ops.release(f->inner->user);
}
static int f_rollback_to(void *u) {
  failing *f = u;
  return f->inner->ops.rollback_to(f->inner->user);
}

static const whisper_store_ops failing_ops = {WHISPER_STORE_OPS_VERSION, f_begin, f_commit,
                                              f_rollback, f_get, f_put, f_del, NULL, f_scan,
                                              NULL, f_savepoint, f_release, f_rollback_to, NULL};

/* A server on a failing store over a memory store (record cache `keep`)
 * with the first n of alice, bob, carol and dave logged in, as devices
 * 1..n on connections 1..n. */
static void failing_open(srvt *t, failing *fl, whisper_store **st, size_t keep, dev *devs[],
                         int n) {
  static const char *const names[] = {"alice", "bob", "carol", "dave"};
  *fl = (failing){NULL, -1, 0, 0, 0, 0, 0, 0};
  whisper_store_memory_new(&fl->inner);
  CHECK_RC(whisper_store_new(st, &failing_ops, fl), WHISPER_OK);
  srvt_open(t, *st, NULL);
  CHECK_RC(whisper_server_record_cache_set(t->srv, keep), WHISPER_OK);
  for (int i = 0; i < n; i++) dev_init(devs[i], names[i], 1, (uint8_t)(i + 1));
  for (int i = 0; i < n; i++) dev_up(t, devs[i], (uint64_t)(i + 1), 0);
}

/* The store's own text about its last failure (ops version 5). */
static const char *f_last_error(void *u) {
  (void)u;
  return "faulty: the injected failure";
}

static void test_store_failure(void) {
  srvt t;
  dev a, b;
  failing fl = {NULL, -1, 0, 0, 0, 0, 0, 0};
  whisper_store *st;
  whisper_store_ops ops = failing_ops;
  ops.last_error = f_last_error;
  whisper_store_memory_new(&fl.inner);
  CHECK_RC(whisper_store_new(&st, &ops, &fl), WHISPER_OK);
  srvt_open(&t, st, NULL);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  uint8_t cid[16];
  target b1[] = {{1, 0}};
  cid_make(cid, 1);
  /* a put fails half-way through the send, then a commit fails */
  for (int round = 0; round < 2; round++) {
    if (round == 0) fl.fail_puts_after = 2;
    else fl.fail_commit = 1;
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
    EXPECT_ERR(1, 12);
    CHECK(t.rc == WHISPER_ESTORE);
    /* the server's sentence ends with the store's own text, as a context's does */
    if (round == 0)
      CHECK(strcmp(whisper_server_last_error(t.srv),
                   "store: write failed (store failure): faulty: the injected failure") == 0);
    fl.fail_puts_after = -1;
    fl.fail_commit = 0;
    CHECK(stats(&t).mailbox_depth == 0 && stats(&t).messages_sent == 0 && n_pushes == 0);
  }
  /* nothing was kept: the retry is the first send (server_seq 1, mailbox seq 1) */
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(1, NULL) == 1);
  /* a failed ack deletes nothing */
  dev_login(&t, &b, 2, 0);
  CHECK(EXPECT_DELIVER(2, 1, 1) != NULL);
  expect_queue_empty(2);
  fl.fail_commit = 1;
  ack(&t, 2, 1);
  EXPECT_ERR(2, 12);
  fl.fail_commit = 0;
  EXPECT_NONE(1); /* no receipt */
  CHECK(stats(&t).mailbox_depth == 1 && stats(&t).entries_delivered == 0);
  dev_login(&t, &b, 3, 0);
  CHECK(EXPECT_DELIVER(3, 1, 1) != NULL);
  expect_queue_empty(3);
  ack(&t, 3, 1);
  EXPECT_OK(3);
  CHECK(EXPECT_DELIVER(1, 2, 0) != NULL);
  /* a failed registration registers nothing */
  dev c;
  dev_init(&c, "carol", 1, 3);
  dev_connect(&t, &c, 4);
  fl.fail_puts_after = 1;
  dev_register(&t, &c, 2, 1, NULL, BAD_NONE);
  EXPECT_ERR(4, 12);
  fl.fail_puts_after = -1;
  list_devices(&t, 1, "carol");
  EXPECT_ERR(1, 6);
  dev_free(&c);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
  whisper_store_free(fl.inner);
}

/* --- delivery without reading the mailbox back ---------------------------- */

/* Entries appended for an online device that had everything are pushed
 * from memory, and once an Ack went through on a connection the next ones
 * delete what was pushed by key: the mailbox, its count and the counters
 * must come out as if every entry had been read back. */
static void test_delivery_fast(void) {
  enum { MSG = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE };
  srvt t;
  dev a, b;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.deliver_window = 3;
  cfg.max_mailbox = 4;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  target b1[] = {{1, 0}};
  uint8_t cid[16];
  for (int i = 1; i <= 5; i++) {
    cid_make(cid, i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
    if (i <= 4)
      CHECK(EXPECT_SENT(1, NULL) == (uint64_t)i);
    else
      EXPECT_ERR(1, 10); /* four in the mailbox: full */
  }
  for (uint64_t s = 1; s <= 3; s++) CHECK(EXPECT_DELIVER(2, 1, s) != NULL);
  EXPECT_NONE(2); /* the window is full: 4 waits */
  t.now += 10;
  ack(&t, 2, 1); /* the first Ack reads the mailbox */
  EXPECT_OK(2);
  CHECK(EXPECT_DELIVER(2, 1, 4) != NULL);
  EXPECT_NONE(2);
  t.now += 10;
  ack(&t, 2, 3); /* by key */
  EXPECT_OK(2);
  EXPECT_NONE(2);
  CHECK(stats(&t).mailbox_depth == 1 && stats(&t).entries_delivered == 3);
  for (int i = 6; i <= 8; i++) { /* room for three again: pushed as they come */
    cid_make(cid, i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
    CHECK(EXPECT_SENT(1, NULL) == (uint64_t)i - 1);
  }
  CHECK(EXPECT_DELIVER(2, 1, 5) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 6) != NULL);
  EXPECT_NONE(2); /* 4, 5, 6 in flight: 7 waits */
  t.now += 10;
  ack(&t, 2, 6);
  EXPECT_OK(2);
  CHECK(EXPECT_DELIVER(2, 1, 7) != NULL);
  ack(&t, 2, 7);
  EXPECT_OK(2);
  EXPECT_NONE(2);
  whisper_server_stats_t s = stats(&t);
  CHECK(s.mailbox_depth == 0 && s.entries_delivered == 7 && s.latency_count == 7 &&
        s.latency_sum_ms == 10 + 20 + 20 + 30 + 10 + 10 + 10);
  /* nothing is left: a new connection gets no entry, and the mailbox takes
   * four again */
  whisper_server_disconnected(t.srv, 2, t.now);
  dev_login(&t, &b, 3, 0);
  CHECK(expect_queue_empty(3) == 0);
  EXPECT_NONE(3);
  whisper_server_disconnected(t.srv, 3, t.now);
  for (int i = 9; i <= 13; i++) {
    cid_make(cid, i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
    if (i <= 12)
      CHECK(EXPECT_SENT(1, NULL) == (uint64_t)i - 1);
    else
      EXPECT_ERR(1, 10);
  }
  /* resuming after 9 (8 and 9 are the device's already; 10 and 11 are
   * pushed): the first Ack reads the mailbox, and so does the next while
   * entries it did not push may be left (9); then by key */
  dev_login(&t, &b, 4, 9);
  CHECK(EXPECT_DELIVER(4, 1, 10) != NULL);
  CHECK(EXPECT_DELIVER(4, 1, 11) != NULL);
  CHECK(expect_queue_empty(4) == 11);
  ack(&t, 4, 8);
  EXPECT_OK(4);
  ack(&t, 4, 10);
  EXPECT_OK(4);
  ack(&t, 4, 11);
  EXPECT_OK(4);
  CHECK(stats(&t).mailbox_depth == 0);
  whisper_server_disconnected(t.srv, 4, t.now);
  dev_login(&t, &b, 5, 0);
  CHECK(expect_queue_empty(5) == 0);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);

  /* the ring of entries in flight grows (from 8) and wraps around */
  cfg = (whisper_server_config_t)WHISPER_SERVER_CONFIG_INIT;
  cfg.deliver_window = 20;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  uint64_t next = 1;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 13; i++) {
      cid_make(cid, 100 + round * 13 + i);
      send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
      fr_free(EXPECT(1, SENT));
    }
    uint64_t first = next;
    for (; next < first + 13; next++) CHECK(EXPECT_DELIVER(2, 1, next) != NULL);
    ack(&t, 2, first + 5); /* part of it: the rest stays in flight, the ring wraps */
    EXPECT_OK(2);
  }
  ack(&t, 2, next - 1);
  EXPECT_OK(2);
  EXPECT_NONE(2);
  CHECK(stats(&t).mailbox_depth == 0 && stats(&t).entries_delivered == 39);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

/* A backlog of large entries, with the default window of whisperd (1024
 * entries): pushes pause once the entries pushed and not acknowledged
 * reach 8 MiB (the core's WSRV_INFLIGHT_BYTES, as stored: a Deliver as
 * received is at most a seq field longer) and go on with each Ack, whole
 * or partial; every entry arrives once, in order, and QueueEmpty only
 * after the last. */
static void test_push_bytes(void) {
  enum { MSG = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE, N = 70, BIG = 200 * 1024 };
  const uint64_t bound = 8u * 1024 * 1024;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.deliver_window = 1024;
  srvt t;
  dev a, b;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  box_reset(2);
  uint8_t *big = malloc(BIG), cid[16];
  memset(big, 0xab, BIG);
  g_body = big;
  g_body_len = BIG;
  target b1[] = {{1, 0}};
  for (int i = 0; i < N; i++) {
    cid_make(cid, 1000 + i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
    CHECK(EXPECT_SENT(1, NULL) == (uint64_t)i + 1);
    t.now += 10; /* the rate limit */
  }
  g_body = NULL;
  free(big);
  dev_login(&t, &b, 3, 0);
  size_t sizes[N + 1] = {0};
  uint64_t got = 0, acked = 0, most = 0, rounds = 0, first_burst = 0;
  int empty = 0, in_order = 1;
  for (;;) {
    Frame *f;
    while ((f = pop(3)) != NULL) {
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER) {
        if (f->deliver->seq != got + 1 || empty) in_order = 0;
        got = f->deliver->seq;
        if (got <= N) sizes[got] = whisper__sync__deliver__get_packed_size(f->deliver);
      } else if (f->body_case == WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY) {
        empty = 1;
      } else {
        CHECK(f->body_case == WHISPER__SYNC__FRAME__BODY_OK);
      }
      fr_free(f);
    }
    uint64_t inflight = 0;
    for (uint64_t q = acked + 1; q <= got && q <= N; q++) inflight += sizes[q];
    CHECK(inflight <= bound + 16 * (got - acked));
    if (inflight > most) most = inflight;
    if (rounds == 0) first_burst = got;
    if (got == N || got == acked || ++rounds > 4 * N) break;
    /* every other round, half of what is in flight; else all of it */
    acked = rounds % 2 ? acked + (got - acked + 1) / 2 : got;
    ack(&t, 3, acked);
  }
  CHECK(got == N && in_order);
  CHECK(first_burst > 1 && first_burst < N && first_burst <= bound / BIG + 1);
  CHECK(most > bound - 2 * BIG); /* the bound, not something below it, was the limit */
  ack(&t, 3, N);
  EXPECT_OK(3);
  if (!empty) { /* the end, told once the last entry went (and the pump read past it) */
    fr_free(EXPECT(3, QUEUE_EMPTY));
  }
  EXPECT_NONE(3);
  CHECK(stats(&t).mailbox_depth == 0 && stats(&t).entries_delivered == N);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

/* --- group commit ---------------------------------------------------------- */

static void batch_begin(srvt *t) { CHECK_RC(whisper_server_batch_begin(t->srv), WHISPER_OK); }

static int batch_end(srvt *t) {
  int rc = whisper_server_batch_end(t->srv, t->now);
  drain(t->srv);
  return rc;
}

/* Nothing at all is queued for conns 1..n (nothing was handed out). */
static int all_quiet(uint64_t n) {
  for (uint64_t c = 1; c <= n; c++)
    if (pending(c) || boxes[c].closed) return 0;
  return n_pushes == 0;
}

/* Frames received between whisper_server_batch_begin() and _end() share
 * one transaction: nothing they cause is handed out before the commit; a
 * frame refused or failed inside undoes its own writes only; a failed
 * commit (or a savepoint the store could not open) keeps nothing, hands
 * out nothing, closes the connections the batch touched, and puts the
 * counters, push flags and presence back. */
static void test_batch(size_t keep) {
  enum { MSG = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE }; /* no receipts from the server */
  srvt t;
  dev a, b, c, d;
  failing fl;
  whisper_store *st;
  failing_open(&t, &fl, &st, keep, (dev *[]){&a, &b, &c, &d}, 4);
  CHECK_RC(whisper_server_record_cache_set(NULL, keep), WHISPER_EINVAL);
  uint8_t cid[16];
  target b1[] = {{1, 0}}, a1[] = {{1, 0}}, wrong[] = {{2, 0}};

  /* the API's edges */
  CHECK_RC(whisper_server_batch_begin(NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_server_batch_end(NULL, t.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_batch_end(t.srv, t.now), WHISPER_ESTATE);
  batch_begin(&t);
  CHECK_RC(whisper_server_batch_begin(t.srv), WHISPER_ESTATE);
  CHECK_RC(batch_end(&t), WHISPER_OK); /* empty */
  CHECK(all_quiet(4));
  {
    whisper_store_ops v3 = failing_ops;
    v3.version = 3;
    whisper_store *st3;
    whisper_server *srv3;
    CHECK_RC(whisper_store_new(&st3, &v3, &fl), WHISPER_OK);
    CHECK_RC(whisper_server_new(&srv3, st3, NULL), WHISPER_OK);
    CHECK_RC(whisper_server_batch_begin(srv3), WHISPER_EINVAL); /* no savepoints */
    whisper_server_free(srv3);
    whisper_store_free(st3);
  }

  /* 1. held until the commit; a failed frame and a refused one undo only
   * their own writes */
  batch_begin(&t);
  cid_make(cid, 1);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG); /* server_seq 1, bob's seq 1 */
  CHECK(t.rc == WHISPER_OK && all_quiet(4));
  cid_make(cid, 2);
  fl.fail_puts_after = 0; /* the server_seq is taken: then the mailbox entry's put fails */
  send_direct(&t, &c, "bob", cid, b1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_ESTORE && all_quiet(4));
  fl.fail_puts_after = -1;
  cid_make(cid, 3);
  send_direct(&t, &a, "bob", cid, wrong, 1, NULL, 0, MSG); /* takes a server_seq, then refused */
  cid_make(cid, 4);
  send_direct(&t, &b, "alice", cid, a1, 1, NULL, 0, MSG);
  ping(&t, 4);
  CHECK(t.rc == WHISPER_OK && all_quiet(4));
  CHECK(stats(&t).messages_sent == 2 && stats(&t).mailbox_depth == 2);
  CHECK_RC(batch_end(&t), WHISPER_OK);
  CHECK(EXPECT_SENT(1, NULL) == 1);
  fr_free(EXPECT(1, STALE));
  CHECK(EXPECT_DELIVER(1, 1, 1) != NULL); /* bob's: after its commit */
  EXPECT_NONE(1);
  EXPECT_ERR(3, 12); /* carol's failed send: ERR_INTERNAL */
  EXPECT_NONE(3);
  CHECK(EXPECT_DELIVER(2, 1, 1) != NULL);
  CHECK(EXPECT_SENT(2, NULL) == 2); /* the failed and the refused sends kept no server_seq */
  EXPECT_NONE(2);
  fr_free(EXPECT(4, PONG));
  /* carol's retry is new: mailbox seq 2, server_seq 3 */
  cid_make(cid, 2);
  send_direct(&t, &c, "bob", cid, b1, 1, NULL, 0, MSG);
  CHECK(EXPECT_SENT(3, NULL) == 3);
  Whisper__Sync__Deliver *dv = EXPECT_DELIVER(2, 1, 2);
  CHECK(dv && strcmp(dv->sender, "carol") == 0);
  ack(&t, 2, 2);
  EXPECT_OK(2);
  ack(&t, 1, 1);
  EXPECT_OK(1);
  CHECK(stats(&t).mailbox_depth == 0);

  whisper_server_stats_t before = stats(&t);

  /* 2. a failed commit: nothing kept, nothing handed out, the touched
   * connections closed, the others (dave) left alone; a push dropped
   * leaves its device to be woken next time */
  whisper_server_disconnected(t.srv, 3, t.now); /* carol offline: a send to her wakes her */
  const char *acc_a[] = {"alice"};
  batch_begin(&t);
  cid_make(cid, 5);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
  cid_make(cid, 6);
  send_direct(&t, &b, "carol", cid, a1, 1, NULL, 0, MSG);
  presence_set(&t, 1, 1, 0, 0, 0); /* alice hides */
  CHECK(all_quiet(4));
  fl.fail_commit = 1;
  CHECK_RC(batch_end(&t), WHISPER_ESTORE);
  fl.fail_commit = 0;
  CHECK(boxes[1].closed && boxes[2].closed && !boxes[4].closed);
  CHECK(pending(1) == 0 && pending(2) == 0 && pending(4) == 0 && n_pushes == 0);
  whisper_server_stats_t after = stats(&t);
  CHECK(after.messages_sent == before.messages_sent && after.mailbox_depth == 0 &&
        after.pushes == before.pushes && after.frames_refused == before.frames_refused &&
        after.authenticated == 1 && after.connections == 1); /* dave's */
  /* alice is not hidden (the store says so): dave, subscribing before she
   * is back, sees her online (within the grace period) */
  subscribe(&t, 4, acc_a, 1);
  EXPECT_OK(4);
  EXPECT_PRESENCE(4, "alice", 1, 0);
  whisper_server_disconnected(t.srv, 1, t.now);
  whisper_server_disconnected(t.srv, 2, t.now);
  dev_login(&t, &a, 1, 0);
  fr_free(EXPECT(1, QUEUE_EMPTY));
  dev_login(&t, &b, 2, 2);
  fr_free(EXPECT(2, QUEUE_EMPTY)); /* nothing waits for bob */
  cid_make(cid, 5);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
  CHECK(EXPECT_SENT(1, NULL) == 4); /* a new send: its server_seq was not kept */
  CHECK(EXPECT_DELIVER(2, 1, 3) != NULL);
  cid_make(cid, 6);
  send_direct(&t, &b, "carol", cid, a1, 1, NULL, 0, MSG);
  CHECK(EXPECT_SENT(2, NULL) == 5);
  CHECK(n_pushes == 1 && strcmp(pushes[0].account, "carol") == 0); /* woken after all */
  ack(&t, 2, 3);
  EXPECT_OK(2);

  /* 3. a savepoint the store cannot open: the batch so far fails at once,
   * the frames after it go on in a new batch */
  box_reset(4);
  n_pushes = 0;
  batch_begin(&t);
  cid_make(cid, 7);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_OK);
  fl.fail_savepoint = 1;
  cid_make(cid, 8);
  send_direct(&t, &b, "alice", cid, a1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_ESTORE);
  CHECK(boxes[1].closed && boxes[2].closed && pending(1) == 0 && pending(2) == 0);
  ping(&t, 4);
  CHECK(pending(4) == 0); /* the new batch holds it */
  CHECK_RC(batch_end(&t), WHISPER_OK);
  fr_free(EXPECT(4, PONG));
  EXPECT_NONE(4);
  /* what is left: send 6 for carol (offline) */
  CHECK(stats(&t).mailbox_depth == 1 && stats(&t).messages_sent == before.messages_sent + 2);
  whisper_server_disconnected(t.srv, 1, t.now);
  whisper_server_disconnected(t.srv, 2, t.now);
  dev_login(&t, &b, 2, 3);
  fr_free(EXPECT(2, QUEUE_EMPTY)); /* alice's send 7 was not kept */

  /* 4. a frame sees what the frames before it in the batch wrote (through
   * the batch's record cache); what the batch wrote is in the store after
   * the commit (a new server reads it) */
  box_reset(2);
  box_reset(4);
  dev_login(&t, &a, 1, 0);
  box_reset(1);
  batch_begin(&t);
  cid_make(cid, 10);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG); /* again: the recorded answer */
  CHECK_RC(batch_end(&t), WHISPER_OK);
  uint64_t seq10 = EXPECT_SENT(1, NULL);
  CHECK(seq10 > 0 && EXPECT_SENT(1, NULL) == seq10);
  CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
  EXPECT_NONE(2);
  whisper_server_free(t.srv);
  CHECK_RC(whisper_server_new(&t.srv, st, NULL), WHISPER_OK);
  CHECK_RC(whisper_server_record_cache_set(t.srv, keep), WHISPER_OK);
  whisper_server_stats(t.srv, &after);
  CHECK(after.mailbox_depth == 2); /* send 6 for carol, send 10 for bob */
  for (uint64_t cn = 1; cn < MAXC; cn++) box_reset(cn);
  dev_login(&t, &a, 1, 0);
  fr_free(EXPECT(1, QUEUE_EMPTY));
  batch_begin(&t);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
  CHECK_RC(batch_end(&t), WHISPER_OK);
  CHECK(EXPECT_SENT(1, NULL) == seq10);

  /* records kept between batches (with keep) never outlive a change made
   * outside a batch: the server_seq counter goes on from the store's */
  box_reset(1);
  uint64_t seqs[3];
  for (int i = 0; i < 3; i++) {
    if (i != 1) batch_begin(&t);
    cid_make(cid, 20 + i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG);
    if (i != 1) CHECK_RC(batch_end(&t), WHISPER_OK);
    seqs[i] = EXPECT_SENT(1, NULL);
  }
  CHECK(seqs[0] > seq10 && seqs[1] == seqs[0] + 1 && seqs[2] == seqs[1] + 1);
  CHECK(stats(&t).mailbox_depth == 5);

  /* 5. a batch that never ends keeps nothing */
  batch_begin(&t);
  cid_make(cid, 9);
  send_direct(&t, &b, "dave", cid, a1, 1, NULL, 0, MSG);
  whisper_server_free(t.srv);
  t.srv = NULL;
  CHECK_RC(whisper_server_new(&t.srv, st, NULL), WHISPER_OK);
  whisper_server_stats(t.srv, &after);
  CHECK(after.mailbox_depth == 5);
  dev_free(&a);
  dev_free(&b);
  dev_free(&c);
  dev_free(&d);
  srvt_close(&t);
  whisper_store_free(fl.inner);
}


/* The mailbox depth a new server reads from `st`: what was committed. */
static uint64_t committed_depth(whisper_store *st) {
  whisper_server *srv;
  whisper_server_stats_t s = WHISPER_SERVER_STATS_INIT;
  CHECK_RC(whisper_server_new(&srv, st, NULL), WHISPER_OK);
  CHECK_RC(whisper_server_stats(srv, &s), WHISPER_OK);
  whisper_server_free(srv);
  return s.mailbox_depth;
}

/* A lock conflict (WHISPER_EBUSY, as the PostgreSQL store reports a
 * deadlock or a lock timeout) inside a batch: the frames before it are
 * committed and their output handed out at once, the frame runs again
 * alone (in a transaction of its own) and is answered once, the frames
 * after it go on in a new batch; a frame that keeps conflicting is tried
 * a bounded number of times, then answered ERR_INTERNAL, and keeps
 * nothing. */
static void test_batch_busy(size_t keep) {
  enum { MSG = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE };
  srvt t;
  dev a, b, c, d;
  failing fl;
  whisper_store *st;
  failing_open(&t, &fl, &st, keep, (dev *[]){&a, &b, &c, &d}, 4);
  uint8_t cid[16];
  target t1[] = {{1, 0}};

  /* 1. one conflict: retried once alone */
  int commits = fl.commits;
  batch_begin(&t);
  cid_make(cid, 1);
  send_direct(&t, &a, "bob", cid, t1, 1, NULL, 0, MSG);
  cid_make(cid, 2);
  send_direct(&t, &d, "carol", cid, t1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_OK && all_quiet(4) && fl.commits == commits);
  fl.busy_puts_after = 0; /* carol's send: its first write conflicts */
  fl.busy_times = 1;
  cid_make(cid, 3);
  send_direct(&t, &c, "bob", cid, t1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_OK && fl.busy_times == 0);
  /* the two before it committed in their own transaction, then it alone */
  CHECK(fl.commits == commits + 2);
  CHECK(committed_depth(fl.inner) == 3);
  CHECK(EXPECT_SENT(1, NULL) == 1); /* out before the batch ends */
  CHECK(EXPECT_SENT(4, NULL) == 2);
  Whisper__Sync__Deliver *dv = EXPECT_DELIVER(3, 1, 1);
  CHECK(dv && strcmp(dv->sender, "dave") == 0);
  CHECK(EXPECT_SENT(3, NULL) == 3); /* answered once */
  EXPECT_NONE(3);
  dv = EXPECT_DELIVER(2, 1, 1);
  CHECK(dv && strcmp(dv->sender, "alice") == 0);
  dv = EXPECT_DELIVER(2, 1, 2);
  CHECK(dv && strcmp(dv->sender, "carol") == 0);
  /* the frames after it: a new batch, held until its end */
  cid_make(cid, 4);
  send_direct(&t, &b, "alice", cid, t1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_OK && all_quiet(4));
  CHECK_RC(batch_end(&t), WHISPER_OK);
  CHECK(fl.commits == commits + 3);
  CHECK(EXPECT_SENT(2, NULL) == 4);
  CHECK(EXPECT_DELIVER(1, 1, 1) != NULL);
  for (uint64_t cn = 1; cn <= 4; cn++) EXPECT_NONE(cn);
  CHECK(stats(&t).messages_sent == 4 && stats(&t).mailbox_depth == 4);
  CHECK(committed_depth(fl.inner) == 4);

  /* 2. the frame before it an Ack (its deletions kept, its Ok out before
   * the batch ends); the conflict twice: the second attempt alone waits
   * a little first */
  batch_begin(&t);
  ack(&t, 2, 2);
  CHECK(t.rc == WHISPER_OK && all_quiet(4));
  fl.busy_puts_after = 0;
  fl.busy_times = 2;
  cid_make(cid, 5);
  send_direct(&t, &c, "dave", cid, t1, 1, NULL, 0, MSG);
  CHECK(t.rc == WHISPER_OK && fl.busy_times == 0);
  EXPECT_OK(2);
  EXPECT_NONE(2);
  CHECK(EXPECT_SENT(3, NULL) == 5);
  CHECK(EXPECT_DELIVER(4, 1, 1) != NULL);
  CHECK(committed_depth(fl.inner) == 3);
  CHECK_RC(batch_end(&t), WHISPER_OK);
  for (uint64_t cn = 1; cn <= 4; cn++) EXPECT_NONE(cn);
  CHECK(stats(&t).mailbox_depth == 3 && stats(&t).entries_delivered == 2);

  /* 3. a frame that keeps conflicting: 1 + WSRV_BUSY_TRIES (4) attempts,
   * then ERR_INTERNAL (once); it kept nothing, the frame before it was
   * kept, and the client's resend goes through */
  commits = fl.commits;
  batch_begin(&t);
  cid_make(cid, 6);
  send_direct(&t, &d, "alice", cid, t1, 1, NULL, 0, MSG);
  fl.busy_puts_after = 0;
  fl.busy_times = 100;
  cid_make(cid, 7);
  send_direct(&t, &b, "carol", cid, t1, 1, NULL, 0, MSG);
  CHECK(fl.busy_times == 100 - 5);
  fl.busy_times = 0;
  CHECK(fl.commits == commits + 1);
  CHECK(EXPECT_SENT(4, NULL) == 6);
  CHECK(EXPECT_DELIVER(1, 1, 2) != NULL);
  CHECK(pending(2) == 0); /* its Error is held in the new batch */
  CHECK_RC(batch_end(&t), WHISPER_OK);
  EXPECT_ERR(2, 12); /* ERR_INTERNAL */
  for (uint64_t cn = 1; cn <= 4; cn++) EXPECT_NONE(cn);
  CHECK(stats(&t).messages_sent == 6 && stats(&t).mailbox_depth == 4);
  CHECK(committed_depth(fl.inner) == 4);
  send_direct(&t, &b, "carol", cid, t1, 1, NULL, 0, MSG);
  CHECK(EXPECT_SENT(2, NULL) == 7);
  CHECK(EXPECT_DELIVER(3, 1, 2) != NULL);

  /* 4. a record first read by a frame that is rolled back is read from the
   * store again by the next frame of the batch (a store that locks what
   * is read released it with the savepoint), not taken from the cache;
   * one read by a frame that went through is not */
  batch_begin(&t);
  target wrong[] = {{2, 0}};
  int reads = fl.bob_reads;
  cid_make(cid, 20);
  send_direct(&t, &a, "bob", cid, wrong, 1, NULL, 0, MSG); /* reads bob, then refused */
  CHECK(fl.bob_reads == reads + 1);
  cid_make(cid, 21);
  send_direct(&t, &a, "bob", cid, t1, 1, NULL, 0, MSG);
  CHECK(fl.bob_reads == reads + 2);
  cid_make(cid, 22);
  send_direct(&t, &c, "bob", cid, t1, 1, NULL, 0, MSG);
  CHECK(fl.bob_reads == reads + 2);
  CHECK_RC(batch_end(&t), WHISPER_OK);
  fr_free(EXPECT(1, STALE));
  CHECK(EXPECT_SENT(1, NULL) == 8);
  CHECK(EXPECT_SENT(3, NULL) == 9);
  CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);

  /* 5. outside a batch a conflict is answered as before (the client retries) */
  fl.busy_puts_after = 0;
  fl.busy_times = 1;
  cid_make(cid, 8);
  send_direct(&t, &c, "alice", cid, t1, 1, NULL, 0, MSG);
  CHECK(fl.busy_times == 0);
  EXPECT_ERR(3, 12);
  for (uint64_t cn = 1; cn <= 4; cn++) EXPECT_NONE(cn);
  dev_free(&a);
  dev_free(&b);
  dev_free(&c);
  dev_free(&d);
  srvt_close(&t);
  whisper_store_free(fl.inner);
}

/* Pipelined Sends (Send.after) inside a group-commit batch. */
static void test_batch_pipelined(size_t keep) {
  enum { MSG = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE };
  srvt t;
  dev a, b;
  failing fl;
  whisper_store *st;
  failing_open(&t, &fl, &st, keep, (dev *[]){&a, &b}, 2);
  uint8_t cid[16];
  target b1[] = {{1, 0}}, wrong[] = {{2, 0}};

  /* pipelined Sends (Send.after) in one batch: a Send sees the earlier
   * ones of its batch, not committed yet; one refused inside undoes only
   * its own writes, and the next one, after it, is refused (ERR_STATE) */
  uint8_t prev[16];
  batch_begin(&t);
  cid_make(cid, 20);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG); /* server_seq 1, bob's seq 1 */
  memcpy(prev, cid, 16);
  g_send_after = prev;
  cid_make(cid, 21);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG); /* after 20: server_seq 2, seq 2 */
  uint8_t prev2[16];
  memcpy(prev2, cid, 16);
  g_send_after = prev2;
  cid_make(cid, 22);
  send_direct(&t, &a, "bob", cid, wrong, 1, NULL, 0, MSG); /* after 21: StaleDevices */
  memcpy(prev, cid, 16);
  g_send_after = prev;
  cid_make(cid, 23);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, MSG); /* after 22, not taken */
  g_send_after = NULL;
  CHECK(t.rc == WHISPER_OK && all_quiet(2));
  CHECK_RC(batch_end(&t), WHISPER_OK);
  CHECK(EXPECT_SENT(1, NULL) == 1);
  CHECK(EXPECT_SENT(1, NULL) == 2);
  fr_free(EXPECT(1, STALE));
  EXPECT_ERR(1, 11); /* ERR_STATE */
  EXPECT_NONE(1);
  CHECK(EXPECT_DELIVER(2, 1, 1) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 2) != NULL);
  EXPECT_NONE(2);
  ack(&t, 2, 2);
  EXPECT_OK(2);
  CHECK(stats(&t).mailbox_depth == 0 && stats(&t).messages_sent == 2);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
  whisper_store_free(fl.inner);
}

static void test_restart_sqlite(void) {
  char dir[] = "/tmp/whisper-server-XXXXXX", path[128];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/server.db", dir);
  uint8_t key[32];
  memset(key, 0x42, sizeof key);
  whisper_sqlite_options_t o = WHISPER_SQLITE_OPTIONS_INIT;
  o.key = key;
  o.key_len = 32;
  o.synchronous = WHISPER_SYNC_NORMAL;
  whisper_store *st;
  CHECK_RC(whisper_store_sqlite_open(&st, path, &o, NULL), WHISPER_OK);
  srvt t;
  dev a, b;
  srvt_open(&t, st, NULL);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 3);
  whisper_server_disconnected(t.srv, 2, t.now);
  uint8_t cid[16];
  target b1[] = {{1, 0}};
  for (int i = 0; i < 2; i++) {
    cid_make(cid, i);
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
    CHECK(EXPECT_SENT(1, NULL) == (uint64_t)i + 1);
  }
  whisper_server_free(t.srv);
  whisper_store_free(t.st);

  /* a new server on the same file */
  CHECK_RC(whisper_store_sqlite_open(&st, path, &o, NULL), WHISPER_OK);
  t.st = st;
  for (int i = 0; i < MAXC; i++) box_reset((uint64_t)i);
  CHECK_RC(whisper_server_new(&t.srv, st, NULL), WHISPER_OK);
  CHECK(stats(&t).mailbox_depth == 2);
  dev_login(&t, &b, 2, 0);
  CHECK(EXPECT_DELIVER(2, 1, 1) != NULL);
  Whisper__Sync__Deliver *d = EXPECT_DELIVER(2, 1, 2);
  CHECK(d && d->server_seq == 2 && strcmp(d->sender, "alice") == 0);
  CHECK(expect_queue_empty(2) == 2);
  ack(&t, 2, 1);
  EXPECT_OK(2);
  dev_login(&t, &a, 1, 0);
  CHECK(EXPECT_DELIVER(1, 2, 1) != NULL); /* bob's delivered receipt */
  CHECK(expect_queue_empty(1) == 1);
  ack(&t, 1, 1);
  EXPECT_OK(1);
  /* the idempotency record survived too */
  cid_make(cid, 1);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(1, NULL) == 2);
  cid_make(cid, 7);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(1, NULL) == 3);
  CHECK(EXPECT_DELIVER(2, 1, 3) != NULL);
  /* prekeys too */
  fetch(&t, 1, "bob", NULL, 0);
  Frame *f = EXPECT(1, BUNDLES);
  CHECK(f && f->bundles->n_bundles == 1 && f->bundles->bundles[0]->prekey &&
        f->bundles->bundles[0]->prekey->id == 1);
  fr_free(f);
  CHECK(stats(&t).mailbox_depth == 2);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
  unlink(path);
  char side[160];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
  rmdir(dir);
}

/* --- upload tokens -------------------------------------------------------- */

static uint64_t upload_auth(srvt *t, uint64_t conn, int has_size, uint64_t size) {
  Whisper__Sync__UploadAuth u = WHISPER__SYNC__UPLOAD_AUTH__INIT;
  u.has_size = has_size;
  u.size = size;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH;
  f.upload_auth = &u;
  return req(t, conn, &f);
}

/* The UploadToken answered on conn: its token into out, its fields in *tok. */
static int expect_token(uint64_t conn, char out[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1], uint64_t *expires,
                        uint64_t *max_size) {
  Frame *f = EXPECT(conn, UPLOAD_TOKEN);
  if (f == NULL) return 0;
  const Whisper__Sync__UploadToken *u = f->upload_token;
  int ok = u->token && strlen(u->token) <= WHISPER_SERVER_UPLOAD_TOKEN_MAX && u->has_expires_ms &&
           u->has_max_size;
  CHECK(ok);
  if (ok) {
    snprintf(out, WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1, "%s", u->token);
    *expires = u->expires_ms;
    *max_size = u->max_size;
  }
  fr_free(f);
  return ok;
}

static int token_check(srvt *t, const char *token, uint64_t now, char account[65], uint32_t *device) {
  return whisper_server_upload_token_check(t->srv, token, strlen(token), now, account, 65, device);
}

/* A token with one byte of its decoded form changed (and encoded again). */
static void token_tamper(char tok[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1], size_t at, uint8_t flip) {
  uint8_t raw[128];
  size_t n = 0;
  CHECK(sodium_base642bin(raw, sizeof raw, tok, strlen(tok), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 && at < n);
  raw[at] ^= flip;
  sodium_bin2base64(tok, WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1, raw, n,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* UploadAuth only after login; the token names (account, device), lapses
 * after the TTL, is refused when changed in any way or made by another
 * server, and once its device is removed; it survives a restart (the
 * secret is in the store); a size over the limit gets ERR_LIMIT. */
static void test_upload_tokens(void) {
  srvt t;
  four w;
  char tok[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1], tok2[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1], bad[200];
  char account[65];
  uint32_t device = 0;
  uint64_t expires = 0, max_size = 0;
  srvt_open(&t, mem_store(), NULL);
  four_up(&t, &w);

  /* not logged in: the usual ERR_AUTH, nothing made */
  dev c;
  dev_init(&c, "carol", 1, 9);
  dev_connect(&t, &c, 7);
  upload_auth(&t, 7, 0, 0);
  EXPECT_ERR(7, 4);
  EXPECT_NONE(7);
  dev_hello(&t, &c);
  EXPECT_OK(7);
  upload_auth(&t, 7, 0, 0); /* Hello is not a login */
  EXPECT_ERR(7, 4);

  upload_auth(&t, 1, 0, 0);
  CHECK(expect_token(1, tok, &expires, &max_size));
  CHECK(expires == t.now + WHISPER_SERVER_UPLOAD_TOKEN_TTL_MS);
  CHECK(max_size == WHISPER_SERVER_BLOB_MAX_SIZE);
  CHECK_RC(token_check(&t, tok, t.now, account, &device), WHISPER_OK);
  CHECK(strcmp(account, "alice") == 0 && device == 1);
  CHECK_RC(token_check(&t, tok, expires - 1, account, &device), WHISPER_OK);
  CHECK(strcmp(whisper_server_last_error(t.srv), "") == 0);
  /* expired */
  CHECK_RC(token_check(&t, tok, expires, account, &device), WHISPER_ESTATE);
  CHECK(strstr(whisper_server_last_error(t.srv), "expired") != NULL);
  CHECK_RC(token_check(&t, tok, expires + 86400000, account, &device), WHISPER_ESTATE);

  /* the size hint */
  upload_auth(&t, 3, 1, WHISPER_SERVER_BLOB_MAX_SIZE);
  CHECK(expect_token(3, tok2, &expires, &max_size));
  CHECK_RC(token_check(&t, tok2, t.now, account, &device), WHISPER_OK);
  CHECK(strcmp(account, "bob") == 0 && device == 1);
  upload_auth(&t, 3, 1, WHISPER_SERVER_BLOB_MAX_SIZE + 1);
  EXPECT_ERR(3, 10);

  /* tampered: every byte of the decoded token, one at a time (the format
   * byte makes it no token; the MAC covers the rest) */
  size_t raw_len = strlen(tok) * 3 / 4;
  for (size_t i = 0; i < raw_len; i++) {
    snprintf(bad, sizeof bad, "%s", tok);
    token_tamper(bad, i, (uint8_t)(1u << (i % 8)));
    int rc = token_check(&t, bad, t.now, account, &device);
    if (i == 0)
      CHECK_RC(rc, WHISPER_EINVALIDMSG);
    else if (i >= 13 && i < raw_len - 16 && rc == WHISPER_EINVALIDMSG)
      t_pass++; /* the account became a bad name */
    else
      CHECK_RC(rc, WHISPER_EINVALIDSIG);
  }
  /* a later expiry cannot be written in */
  snprintf(bad, sizeof bad, "%s", tok);
  token_tamper(bad, 4, 0x10);
  CHECK_RC(token_check(&t, bad, t.now, account, &device), WHISPER_EINVALIDSIG);
  /* not tokens */
  const char *junk[] = {"", "a", "!!!!", "AAAA", "Zm9v", "====",
                        "AQAAAAAAAAAAAAAAAQ"}; /* the head without an account or a MAC */
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
    CHECK_RC(token_check(&t, junk[i], t.now, account, &device), WHISPER_EINVALIDMSG);
  snprintf(bad, sizeof bad, "%s", tok);
  bad[strlen(bad) - 1] = 0; /* cut */
  int rc = token_check(&t, bad, t.now, account, &device);
  CHECK(rc == WHISPER_EINVALIDMSG || rc == WHISPER_EINVALIDSIG);
  snprintf(bad, sizeof bad, "%s=", tok); /* padding is not ours */
  CHECK_RC(token_check(&t, bad, t.now, account, &device), WHISPER_EINVALIDMSG);
  snprintf(bad, sizeof bad, "%s ", tok);
  CHECK_RC(token_check(&t, bad, t.now, account, &device), WHISPER_EINVALIDMSG);
  memset(bad, 'A', 150);
  bad[150] = 0;
  CHECK_RC(token_check(&t, bad, t.now, account, &device), WHISPER_EINVALIDMSG);
  /* another spelling of the same bytes (unused low bits of the last
   * character set) is refused, whatever its length */
  snprintf(bad, sizeof bad, "%s", tok);
  if (strlen(bad) % 4 != 0) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *last = &bad[strlen(bad) - 1];
    size_t v = (size_t)(strchr(b64, *last) - b64);
    *last = b64[v ^ 1];
    CHECK_RC(token_check(&t, bad, t.now, account, &device), WHISPER_EINVALIDMSG);
  }
  /* the arguments */
  CHECK_RC(whisper_server_upload_token_check(NULL, tok, strlen(tok), t.now, account, 65, &device),
           WHISPER_EINVAL);
  CHECK_RC(whisper_server_upload_token_check(t.srv, tok, strlen(tok), t.now, NULL, 65, &device),
           WHISPER_EINVAL);
  CHECK_RC(whisper_server_upload_token_check(t.srv, tok, strlen(tok), t.now, account, 65, NULL),
           WHISPER_EINVAL);
  CHECK_RC(whisper_server_upload_token_check(t.srv, tok, strlen(tok), t.now, account, 5, &device),
           WHISPER_EINVAL);
  CHECK_RC(whisper_server_upload_token_check(t.srv, tok, strlen(tok), t.now, account, 6, &device),
           WHISPER_OK);

  /* a removed device's token is refused; the others' stay good */
  upload_auth(&t, 2, 0, 0);
  CHECK(expect_token(2, tok2, &expires, &max_size));
  CHECK_RC(token_check(&t, tok2, t.now, account, &device), WHISPER_OK);
  CHECK(strcmp(account, "alice") == 0 && device == 2);
  uint8_t l1[2048];
  const listed a1_only[] = {{1, &w.a1}};
  size_t n1 = dlist_make(l1, &w.a1, "alice", 1, a1_only, 1, LIST_OK);
  publish(&t, 1, l1, n1);
  EXPECT_OK(1);
  CHECK(boxes[2].closed);
  CHECK_RC(token_check(&t, tok2, t.now, account, &device), WHISPER_ENOTFOUND);
  CHECK(strstr(whisper_server_last_error(t.srv), "device") != NULL);
  CHECK_RC(token_check(&t, tok, t.now, account, &device), WHISPER_OK);

  /* a restart on the same store: the same secret */
  whisper_server_free(t.srv);
  CHECK_RC(whisper_server_new(&t.srv, t.st, NULL), WHISPER_OK);
  whisper_server_rng_set(t.srv, test_rng_fn, &t.rng);
  CHECK_RC(token_check(&t, tok, t.now, account, &device), WHISPER_OK);
  CHECK(strcmp(account, "alice") == 0 && device == 1);

  dev_free(&c);
  four_free(&w);
  srvt_close(&t);
}

/* The config's blob fields reach the tokens; a token of another server
 * (another store: another secret) is refused; an older config struct
 * keeps the defaults. */
static void test_upload_token_config(void) {
  srvt o;
  char tok[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1], account[65];
  uint32_t device = 0;
  uint64_t expires = 0, max_size = 0;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.upload_token_ttl_ms = 5000;
  cfg.blob_max_size = 1000;
  srvt_open(&o, mem_store(), &cfg);
  dev a;
  dev_init(&a, "alice", 1, 1);
  dev_up(&o, &a, 1, 0);
  upload_auth(&o, 1, 1, 1001);
  EXPECT_ERR(1, 10);
  upload_auth(&o, 1, 1, 1000);
  CHECK(expect_token(1, tok, &expires, &max_size));
  CHECK(expires == o.now + 5000 && max_size == 1000);
  CHECK_RC(token_check(&o, tok, o.now + 4999, account, &device), WHISPER_OK);
  CHECK_RC(token_check(&o, tok, o.now + 5000, account, &device), WHISPER_ESTATE);
  uint64_t now = o.now;
  dev_free(&a);
  srvt_close(&o);

  srvt_open(&o, mem_store(), NULL);
  dev_init(&a, "alice", 1, 1);
  dev_up(&o, &a, 1, 0);
  CHECK_RC(token_check(&o, tok, now, account, &device), WHISPER_EINVALIDSIG);
  dev_free(&a);
  srvt_close(&o);

  /* a version 2 struct: the blob fields are not read */
  whisper_server_config_t v2 = WHISPER_SERVER_CONFIG_INIT;
  v2.version = 2;
  v2.blob_max_size = 0; /* beyond a version 2 struct: not read */
  srvt_open(&o, mem_store(), &v2);
  dev_init(&a, "alice", 1, 1);
  dev_up(&o, &a, 1, 0);
  upload_auth(&o, 1, 0, 0);
  CHECK(expect_token(1, tok, &expires, &max_size));
  CHECK(expires == o.now + WHISPER_SERVER_UPLOAD_TOKEN_TTL_MS &&
        max_size == WHISPER_SERVER_BLOB_MAX_SIZE);
  dev_free(&a);
  srvt_close(&o);
  whisper_server *srv2 = NULL;
  whisper_store *st2 = mem_store();
  whisper_server_config_t zero = WHISPER_SERVER_CONFIG_INIT;
  zero.blob_quota = 0;
  CHECK_RC(whisper_server_new(&srv2, st2, &zero), WHISPER_EINVAL);
  /* a version this library does not know is refused */
  whisper_server_config_t newer = WHISPER_SERVER_CONFIG_INIT;
  newer.version = WHISPER_SERVER_CONFIG_VERSION + 1;
  CHECK_RC(whisper_server_new(&srv2, st2, &newer), WHISPER_EINVAL);
  newer.version = WHISPER_SERVER_CONFIG_VERSION;
  CHECK_RC(whisper_server_new(&srv2, st2, &newer), WHISPER_OK);
  whisper_server_free(srv2);
  whisper_store_free(st2);
}

static void test_api_edges(void) {
  whisper_server *srv = NULL;
  whisper_store *st = mem_store();
  whisper_server_config_t bad = WHISPER_SERVER_CONFIG_INIT;
  bad.deliver_window = 0;
  CHECK_RC(whisper_server_new(&srv, NULL, NULL), WHISPER_EINVAL);
  CHECK_RC(whisper_server_new(&srv, st, &bad), WHISPER_EINVAL);
  CHECK_RC(whisper_server_new(&srv, st, NULL), WHISPER_OK);
  CHECK_RC(whisper_server_connected(srv, 0, T0), WHISPER_EINVAL);
  CHECK_RC(whisper_server_connected(srv, 1, T0), WHISPER_OK);
  CHECK_RC(whisper_server_connected(srv, 1, T0), WHISPER_EINVAL);
  CHECK_RC(whisper_server_receive(srv, 9, (const uint8_t *)"x", 1, T0), WHISPER_ENOTFOUND);
  whisper_server_disconnected(srv, 9, T0);
  /* closing drops what was queued for the connection */
  whisper_server_disconnected(srv, 1, T0);
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  CHECK(whisper_server_take_output(srv, &o) == 0);
  CHECK(whisper_server_next_deadline(srv) == UINT64_MAX);
  CHECK(strcmp(whisper_server_last_error(srv), "") == 0);
  whisper_server_free(srv);
  whisper_server_free(NULL);
  whisper_store_free(st);
}

/* The versioned output and stats structs (docs/api.md): a size below
 * 1.0's is refused, nothing taken or written; a later caller's bigger
 * struct is filled up to the fields the library knows, its newer ones
 * left alone. */
static void test_versioned_structs(void) {
  whisper_server *srv = NULL;
  whisper_store *st = mem_store();
  CHECK_RC(whisper_server_new(&srv, st, NULL), WHISPER_OK);
  CHECK_RC(whisper_server_cluster(srv, 3, T0), WHISPER_OK); /* queues a hello relay */
  CHECK_RC(whisper_server_connected(srv, 1, T0), WHISPER_OK);
  whisper_server_output_t old;
  for (int k = 0; k < 2; k++) {
    memset(&old, 0x5a, sizeof old);
    old.size = k ? WHISPER_SERVER_OUTPUT_SIZE_1_0 - 1 : 0;
    CHECK_RC(whisper_server_take_output(srv, &old), WHISPER_EINVAL);
    CHECK(strstr(whisper_server_last_error(srv), "WHISPER_SERVER_OUTPUT_INIT") != NULL);
    CHECK(old.action == 0x5a5a5a5a && old.conn == 0x5a5a5a5a5a5a5a5aull);
  }
  struct later_output {
    whisper_server_output_t o;
    uint64_t newer;
  } later;
  memset(&later, 0x5a, sizeof later);
  later.o.size = sizeof later;
  CHECK(whisper_server_take_output(srv, &later.o) == 1); /* the hello was not taken by the refusals */
  CHECK(later.o.size == sizeof later && later.o.action == WHISPER_SERVER_RELAY);
  CHECK(later.o.frame != NULL && later.o.frame_len > 0 && later.o.account == NULL);
  CHECK(later.newer == 0x5a5a5a5a5a5a5a5aull);

  whisper_server_stats_t sold;
  memset(&sold, 0x5a, sizeof sold);
  sold.size = 0;
  CHECK_RC(whisper_server_stats(srv, &sold), WHISPER_EINVAL);
  sold.size = WHISPER_SERVER_STATS_SIZE_1_0 - 1;
  CHECK_RC(whisper_server_stats(srv, &sold), WHISPER_EINVAL);
  CHECK(sold.connections == 0x5a5a5a5a5a5a5a5aull && sold.latency_sum_ms == 0x5a5a5a5a5a5a5a5aull);
  CHECK_RC(whisper_server_stats(srv, NULL), WHISPER_EINVAL);
  struct later_stats {
    whisper_server_stats_t s;
    uint64_t newer[2];
  } lst;
  memset(&lst, 0x5a, sizeof lst);
  lst.s.size = sizeof lst;
  CHECK_RC(whisper_server_stats(srv, &lst.s), WHISPER_OK);
  CHECK(lst.s.size == sizeof lst && lst.s.connections == 1 && lst.s.authenticated == 0);
  CHECK(lst.s.latency_sum_ms == 0 && lst.s.latency_le_ms[11] == 0);
  CHECK(lst.newer[0] == 0x5a5a5a5a5a5a5a5aull && lst.newer[1] == 0x5a5a5a5a5a5a5a5aull);
  /* no server: the counters it knows zeroed, the rest left alone */
  memset(&lst, 0x5a, sizeof lst);
  lst.s.size = sizeof lst;
  CHECK_RC(whisper_server_stats(NULL, &lst.s), WHISPER_EINVAL);
  CHECK(lst.s.size == sizeof lst && lst.s.connections == 0 && lst.s.latency_sum_ms == 0);
  CHECK(lst.newer[1] == 0x5a5a5a5a5a5a5a5aull);
  whisper_server_free(srv);
  /* an older caller's config, in memory exactly its size: read no further
   * (the sanitizer build sees an over-read); unknown versions refused */
  static const size_t old_sizes[] = {offsetof(whisper_server_config_t, max_reports),
                                     offsetof(whisper_server_config_t, upload_token_ttl_ms),
                                     offsetof(whisper_server_config_t, max_mailbox_bytes),
                                     sizeof(whisper_server_config_t)};
  static const whisper_server_config_t defaults = WHISPER_SERVER_CONFIG_INIT;
  for (unsigned v = 0; v <= WHISPER_SERVER_CONFIG_VERSION + 1; v++) {
    size_t n = v >= 1 && v <= 4 ? old_sizes[v - 1] : sizeof defaults;
    whisper_server_config_t *c = malloc(n);
    CHECK(c != NULL);
    memcpy(c, &defaults, n);
    c->version = v;
    srv = NULL;
    CHECK_RC(whisper_server_new(&srv, st, c),
             v >= 1 && v <= WHISPER_SERVER_CONFIG_VERSION ? WHISPER_OK : WHISPER_EINVAL);
    whisper_server_free(srv);
    free(c);
  }
  whisper_store_free(st);
}

/* Mutated requests (bit flips, truncation, splices of the corpus) on
 * logged-in connections: the server answers, closes or ignores, never
 * crashes (run under the sanitizers), and keeps serving. */
static void test_mutations(void) {
  srvt t;
  dev a, b;
  srvt_open(&t, mem_store(), NULL);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 2);
  dev_up(&t, &b, 2, 2);
  uint64_t rnd = 0x9E3779B97F4A7C15ULL, conn = 2;
  uint8_t buf[4096];
  for (int i = 0; i < 4000 && n_corpus; i++) {
    rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
    size_t k = rnd % n_corpus, n = corpus_len[k] < sizeof buf ? corpus_len[k] : sizeof buf;
    memcpy(buf, corpus[k], n);
    switch ((rnd >> 20) % 4) {
      case 0:
        buf[(rnd >> 32) % n] ^= (uint8_t)(1u << ((rnd >> 40) % 8));
        break;
      case 1:
        n = (rnd >> 32) % (n + 1);
        break;
      case 2: {
        size_t j = (rnd >> 32) % n_corpus, m = corpus_len[j];
        size_t cut = (rnd >> 44) % (n + 1);
        if (cut + m > sizeof buf) m = sizeof buf - cut;
        memcpy(buf + cut, corpus[j], m);
        n = cut + m;
        break;
      }
      default:
        for (int x = 0; x < 4; x++) buf[(rnd >> (8 * x)) % n] = (uint8_t)(rnd >> (8 * x + 3));
    }
    feed(&t, conn, buf, n);
    CHECK(t.rc == WHISPER_OK);
    t.now += 10; /* below the rate limit */
    int closed = boxes[conn].closed;
    for (uint64_t c = 1; c < MAXC; c++) box_reset(c);
    if (closed) {
      whisper_server_disconnected(t.srv, conn, t.now);
      if (++conn >= MAXC - 1) conn = 2;
      dev_login(&t, &b, conn, 0);
      box_reset(conn);
    }
    if (i % 500 == 0) tick(&t);
  }
  /* still serving */
  uint8_t cid[16];
  target a1[] = {{1, 0}};
  cid_make(cid, 999);
  for (uint64_t c = 1; c < MAXC; c++) {
    whisper_server_disconnected(t.srv, c, t.now);
    box_reset(c);
  }
  dev_login(&t, &a, 1, 1u << 30);
  box_reset(1);
  dev_login(&t, &b, MAXC - 1, 1u << 30);
  box_reset(MAXC - 1);
  send_direct(&t, &b, "alice", cid, a1, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(MAXC - 1, NULL) > 0);
  CHECK(EXPECT_DELIVER(1, 1, 0) != NULL);
  for (size_t i = 0; i < n_corpus; i++) free(corpus[i]);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

/* --- abuse limits (docs/security.md, "whisperd") --------------------------- */

static int count_rec(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn) {
  (void)k, (void)kn, (void)v, (void)vn;
  (*(int *)arg)++;
  return 0;
}

/* The records of an ordered kind in the server's store. */
static int records(srvt *t, int kind) {
  int n = 0;
  CHECK_RC(t->st->ops.scan(t->st->user, kind, NULL, 0, NULL, 0, 0, 1000000, count_rec, &n),
           WHISPER_OK);
  return n;
}

/* The server on the same store again (a restart), with `cfg`. */
static void srvt_restart(srvt *t, const whisper_server_config_t *cfg) {
  whisper_server_free(t->srv);
  for (int i = 0; i < MAXC; i++) box_reset((uint64_t)i);
  CHECK_RC(whisper_server_new(&t->srv, t->st, cfg), WHISPER_OK);
  whisper_server_rng_set(t->srv, test_rng_fn, &t->rng);
}

/* The next Error's message. */
static void expect_err_msg(uint64_t conn, unsigned code, char *msg, size_t cap) {
  Frame *f = EXPECT(conn, ERROR);
  msg[0] = 0;
  CHECK(f && f->error->code == code);
  if (f && f->error->message) snprintf(msg, cap, "%s", f->error->message);
  fr_free(f);
}

/* A 1:1 send (CONTENT_MESSAGE: its Ack makes no receipt entries) with a
 * fresh client id. */
static int cid_next = 5000;
static uint64_t send_to(srvt *t, dev *from, const char *to, const target *tt, size_t n,
                        const target *own, size_t n_own) {
  uint8_t cid[16];
  cid_make(cid, cid_next++);
  return send_direct(t, from, to, cid, tt, n, own, n_own, 4);
}

/* Mailboxes hold at most so much from any one other account: an account
 * that fills its share of a mailbox is refused (ERR_LIMIT), everyone
 * else's mail still comes, the account's own devices are not counted, an
 * Ack gives the share back, it survives a restart, and a device removed
 * by its account's list takes its shares along. */
static void test_mailbox_quotas(void) {
  srvt t;
  four w;
  dev c1;
  uint8_t l1[2048];
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.sender_max_entries = 3;
  srvt_open(&t, mem_store(), &cfg);
  four_up(&t, &w);
  dev_init(&c1, "carol", 1, 5);
  dev_up(&t, &c1, 5, 0);
  whisper_server_disconnected(t.srv, 3, t.now); /* bob's devices are away */
  whisper_server_disconnected(t.srv, 4, t.now);
  const target b12[] = {{1, 0}, {2, 0}}, a2[] = {{2, 0}};
  for (int i = 0; i < 4; i++) {
    send_to(&t, &w.a1, "bob", b12, 2, a2, 1);
    if (i < 3)
      EXPECT_SENT(1, NULL);
    else
      EXPECT_ERR(1, 10);
  }
  CHECK(stats(&t).mailbox_depth == 3 * 3); /* bob.1, bob.2 and alice.2 */
  /* carol's mail still comes */
  send_to(&t, &c1, "bob", b12, 2, NULL, 0);
  EXPECT_SENT(5, NULL);
  /* alice's own devices have no quota: notes to herself, many */
  for (int i = 0; i < 6; i++) {
    send_to(&t, &w.a1, "alice", a2, 1, NULL, 0);
    EXPECT_SENT(1, NULL);
  }
  CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 4); /* alice and carol, in bob.1's and bob.2's */
  /* a restart keeps the shares */
  srvt_restart(&t, &cfg);
  dev_login(&t, &w.a1, 1, 0);
  box_reset(1);
  send_to(&t, &w.a1, "bob", b12, 2, a2, 1);
  EXPECT_ERR(1, 10);
  /* bob.1 takes its mail: alice's share there is back, bob.2's is still full */
  dev_login(&t, &w.b1, 3, 0);
  for (int i = 0; i < 4; i++) CHECK(EXPECT_DELIVER(3, 1, 0) != NULL);
  uint64_t last = expect_queue_empty(3);
  ack(&t, 3, last);
  EXPECT_OK(3);
  CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 2);
  send_to(&t, &w.a1, "bob", b12, 2, a2, 1);
  EXPECT_ERR(1, 10);
  /* bob.1 removes bob.2 from its list: bob.2 goes, with its shares */
  const listed b1_only[] = {{1, &w.b1}};
  size_t n1 = dlist_make(l1, &w.b1, "bob", 1, b1_only, 1, LIST_OK);
  publish(&t, 3, l1, n1);
  EXPECT_OK(3);
  CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 0);
  CHECK(records(&t, WHISPER_REC_SERVER_MAILBOX) == 9); /* alice.2's own copies and notes */
  send_to(&t, &w.a1, "bob", b12, 2, a2, 1); /* bob has device 1 only now */
  CHECK_STALE(1, "bob", 0, 2, 0);
  const target b1[] = {{1, 0}};
  send_to(&t, &w.a1, "bob", b1, 1, a2, 1);
  EXPECT_SENT(1, NULL);
  four_free(&w);
  dev_free(&c1);
  srvt_close(&t);

  /* in bytes: one sender's share, and the mailbox as a whole */
  dev a, b, c;
  whisper_server_config_t bc = WHISPER_SERVER_CONFIG_INIT;
  bc.sender_max_bytes = 300;
  srvt_open(&t, mem_store(), &bc);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_init(&c, "carol", 1, 3);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  dev_up(&t, &c, 3, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  int took = 0;
  for (int i = 0; i < 50; i++) {
    send_to(&t, &a, "bob", b1, 1, NULL, 0);
    Frame *f = pop(1);
    int sent = f && f->body_case == WHISPER__SYNC__FRAME__BODY_SENT;
    CHECK(sent || (f && f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && f->error->code == 10));
    fr_free(f);
    if (!sent) break;
    took++;
  }
  CHECK(took >= 2 && took < 50); /* entries of a few dozen bytes: a handful fit in 300 */
  send_to(&t, &c, "bob", b1, 1, NULL, 0);
  EXPECT_SENT(3, NULL);
  srvt_close(&t);
  bc = (whisper_server_config_t)WHISPER_SERVER_CONFIG_INIT;
  bc.max_mailbox_bytes = 300;
  srvt_open(&t, mem_store(), &bc);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  dev_up(&t, &c, 3, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  int before = took;
  took = 0;
  for (int i = 0; i < 50; i++) {
    send_to(&t, &a, "bob", b1, 1, NULL, 0);
    Frame *f = pop(1);
    int sent = f && f->body_case == WHISPER__SYNC__FRAME__BODY_SENT;
    fr_free(f);
    if (!sent) break;
    took++;
  }
  CHECK(took == before);
  send_to(&t, &c, "bob", b1, 1, NULL, 0); /* full for everyone */
  EXPECT_ERR(3, 10);
  /* an Ack gives the bytes back */
  dev_login(&t, &b, 2, 0);
  for (int i = 0; i < took; i++) CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
  ack(&t, 2, expect_queue_empty(2));
  EXPECT_OK(2);
  send_to(&t, &c, "bob", b1, 1, NULL, 0);
  EXPECT_SENT(3, NULL);
  srvt_close(&t);
  /* a group: a member whose mailbox holds all it takes from alice misses
   * her next group message; the others get it and alice hears Sent */
  bc = (whisper_server_config_t)WHISPER_SERVER_CONFIG_INIT;
  bc.sender_max_entries = 3;
  srvt_open(&t, mem_store(), &bc);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  dev_up(&t, &c, 3, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  uint8_t gid[16], gcid[16];
  memset(gid, 0x9A, 16);
  const char *bcm[] = {"bob", "carol"};
  group_op(&t, 1, 1, gid, bcm, 2); /* its notice is alice's first entry at bob's */
  fr_free(EXPECT(1, GROUP_INFO));
  box_reset(1); /* alice's own copy of the notice */
  CHECK(EXPECT_DELIVER(3, 3, 0) != NULL);
  for (int i = 0; i < 3; i++) { /* carol takes each as it comes */
    cid_make(gcid, 900 + i);
    send_group(&t, &a, gid, gcid);
    EXPECT_SENT(1, NULL);
    Whisper__Sync__Deliver *gd = EXPECT_DELIVER(3, 1, 0);
    CHECK(gd != NULL);
    ack(&t, 3, gd ? gd->seq : 0);
    EXPECT_OK(3);
    box_reset(1); /* carol's receipt */
  }
  dev_login(&t, &b, 2, 0);
  CHECK(EXPECT_DELIVER(2, 3, 0) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
  CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
  expect_queue_empty(2);
  srvt_close(&t);
  /* an entry larger than a sender's whole share */
  bc = (whisper_server_config_t)WHISPER_SERVER_CONFIG_INIT;
  bc.sender_max_bytes = 10;
  srvt_open(&t, mem_store(), &bc);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  send_to(&t, &a, "bob", b1, 1, NULL, 0);
  EXPECT_ERR(1, 10);
  dev_free(&a);
  dev_free(&b);
  dev_free(&c);
  srvt_close(&t);
}

/* Shares in batches, where the record cache holds them (kept from one
 * batch to the next with `keep`), and (batched 0) with a transaction per
 * frame. A small mailbox (less than half a
 * share, here 2 of 3 entries) has no share records; the append that brings
 * it to half has them counted when the batch commits, and from then on
 * each entry counts against its sender and each Ack gives it back, also an
 * Ack that deletes the entries it pushed by their keys without reading
 * them (the second Ack on a connection), until the mailbox is empty. A
 * frame refused after such an append leaves nothing to count. A device
 * removed in the batch that counted shares for it takes them along (the
 * cached ones are written out before its shares are listed). */
static int shares_batched; /* test_batch_shares: in batches, or a transaction per frame */
static void sb_begin(srvt *t) {
  if (shares_batched) batch_begin(t);
}
static int sb_end(srvt *t) { return shares_batched ? batch_end(t) : WHISPER_OK; }

static void test_batch_shares(size_t keep, int batched) {
  shares_batched = batched;
  srvt t;
  dev a, b;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.sender_max_entries = 3;
  srvt_open(&t, mem_store(), &cfg);
  CHECK_RC(whisper_server_record_cache_set(t.srv, keep), WHISPER_OK);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  const target b1[] = {{1, 0}};
  /* bob takes each one and acknowledges it: nothing is counted */
  for (int i = 0; i < 8; i++) {
    sb_begin(&t);
    send_to(&t, &a, "bob", b1, 1, NULL, 0);
    CHECK_RC(sb_end(&t), WHISPER_OK);
    CHECK(EXPECT_SENT(1, NULL) != 0);
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(2, 1, 0);
    uint64_t seq = d ? d->seq : 0;
    sb_begin(&t);
    ack(&t, 2, seq);
    CHECK_RC(sb_end(&t), WHISPER_OK);
    EXPECT_OK(2);
    CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 0);
  }
  CHECK(stats(&t).mailbox_depth == 0);
  /* bob does not acknowledge: three, then ERR_LIMIT, one batch each; the
   * share is counted from the second on */
  for (int i = 0; i < 4; i++) {
    sb_begin(&t);
    send_to(&t, &a, "bob", b1, 1, NULL, 0);
    CHECK_RC(sb_end(&t), WHISPER_OK);
    if (i < 3) {
      EXPECT_SENT(1, NULL);
      CHECK(EXPECT_DELIVER(2, 1, 0) != NULL);
    } else {
      EXPECT_ERR(1, 10);
    }
    CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == (i == 0 ? 0 : 1));
  }
  /* his Ack (a fast one) gives all three back, and the empty mailbox
   * counts nothing again */
  sb_begin(&t);
  ack(&t, 2, 11);
  send_to(&t, &a, "bob", b1, 1, NULL, 0);
  CHECK_RC(sb_end(&t), WHISPER_OK);
  EXPECT_OK(2);
  EXPECT_SENT(1, NULL);
  CHECK(stats(&t).mailbox_depth == 1 && records(&t, WHISPER_REC_SERVER_SHARE) == 0);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);

  /* bob.2 (away) full of alice's, bob.1 at 1 entry: her Send to both
   * brings bob.1 to half a share and is then refused (bob.2): bob.1,
   * back at 1, is not counted */
  four w;
  dev c1, d1;
  srvt_open(&t, mem_store(), &cfg);
  CHECK_RC(whisper_server_record_cache_set(t.srv, keep), WHISPER_OK);
  four_up(&t, &w);
  dev_init(&c1, "carol", 1, 5);
  dev_up(&t, &c1, 5, 0);
  dev_init(&d1, "dave", 1, 6);
  dev_up(&t, &d1, 6, 0);
  whisper_server_disconnected(t.srv, 4, t.now);
  const target b12[] = {{1, 0}, {2, 0}}, a2[] = {{2, 0}};
  for (int i = 0; i < 3; i++) {
    sb_begin(&t);
    send_to(&t, &w.a1, "bob", b12, 2, a2, 1);
    CHECK_RC(sb_end(&t), WHISPER_OK);
    EXPECT_SENT(1, NULL);
    Whisper__Sync__Deliver *d = EXPECT_DELIVER(3, 1, 0);
    uint64_t seq = d ? d->seq : 0;
    sb_begin(&t);
    ack(&t, 3, seq);
    CHECK_RC(sb_end(&t), WHISPER_OK);
    EXPECT_OK(3);
  }
  CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 1); /* alice's 3 in bob.2's */
  sb_begin(&t);
  send_to(&t, &c1, "bob", b12, 2, NULL, 0);
  CHECK_RC(sb_end(&t), WHISPER_OK);
  EXPECT_SENT(5, NULL);
  CHECK(EXPECT_DELIVER(3, 1, 0) != NULL);
  sb_begin(&t);
  send_to(&t, &w.a1, "bob", b12, 2, a2, 1);
  CHECK_RC(sb_end(&t), WHISPER_OK);
  EXPECT_ERR(1, 10);
  CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 2); /* alice's and carol's in bob.2's */
  /* one batch: dave writes to both of bob's devices (his share in bob.2's
   * new, in the cache only; bob.1 now at half: counted at the commit),
   * bob.1 then drops bob.2 from its list: no share is left for bob.2 */
  uint8_t l1[2048];
  const listed b1_only[] = {{1, &w.b1}};
  size_t n1 = dlist_make(l1, &w.b1, "bob", 1, b1_only, 1, LIST_OK);
  sb_begin(&t);
  send_to(&t, &d1, "bob", b12, 2, NULL, 0);
  publish(&t, 3, l1, n1);
  CHECK_RC(sb_end(&t), WHISPER_OK);
  EXPECT_SENT(6, NULL);
  CHECK(records(&t, WHISPER_REC_SERVER_SHARE) == 2); /* carol's and dave's, in bob.1's */
  four_free(&w);
  dev_free(&c1);
  dev_free(&d1);
  srvt_close(&t);
}

/* The bundle of the next Bundles (one device): its one-time prekey id (0:
 * none), and that it carries the signed prekey, verified. */
static uint32_t fetched_prekey(uint64_t conn, uint32_t *spk_id) {
  Frame *f = EXPECT(conn, BUNDLES);
  uint32_t id = UINT32_MAX;
  if (f && f->bundles->n_bundles == 1) {
    const Whisper__Sync__Bundle *bd = f->bundles->bundles[0];
    CHECK(whisper_verify(bd->keys->identity_key.data, 33, bd->keys->signed_prekey.data, 33,
                         bd->keys->signed_prekey_signature.data, 64) == WHISPER_OK);
    id = bd->prekey ? bd->prekey->id : 0;
    if (spk_id) *spk_id = bd->keys->signed_prekey_id;
  }
  CHECK(id != UINT32_MAX);
  fr_free(f);
  return id;
}

/* The next Ok's signed_prekey_id (UINT32_MAX: none). */
static uint32_t ok_spk(uint64_t conn) {
  Frame *f = EXPECT(conn, OK);
  uint32_t id = f && f->ok->has_signed_prekey_id ? f->ok->signed_prekey_id : UINT32_MAX;
  fr_free(f);
  return id;
}

/* One-time prekeys are rationed: a requester takes at most
 * prekeys_per_requester of them per hour, a target hands out at most
 * prekeys_per_target; past either, bundles carry the signed prekey alone
 * and no prekey is used up. The Oks name the signed prekey handed out. */
static void test_prekey_ration(void) {
  srvt t;
  dev a, b, c, d;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.prekeys_per_requester = 2;
  cfg.prekeys_per_target = 3;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_init(&c, "carol", 1, 3);
  dev_init(&d, "dave", 1, 4);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 10);
  dev_up(&t, &c, 3, 0);
  dev_up(&t, &d, 4, 0);
  uint32_t spk = 0;
  /* alice: two, then the signed prekey alone */
  fetch(&t, 1, "bob", NULL, 0);
  CHECK(fetched_prekey(1, &spk) == 1 && spk == 1);
  fetch(&t, 1, "bob", NULL, 0);
  CHECK(fetched_prekey(1, NULL) == 2);
  fetch(&t, 1, "bob", NULL, 0);
  CHECK(fetched_prekey(1, &spk) == 0 && spk == 1);
  /* carol gets bob's third of the hour; dave none */
  fetch(&t, 3, "bob", NULL, 0);
  CHECK(fetched_prekey(3, NULL) == 3);
  fetch(&t, 4, "bob", NULL, 0);
  CHECK(fetched_prekey(4, NULL) == 0);
  fetch(&t, 4, "bob", NULL, 0);
  CHECK(fetched_prekey(4, NULL) == 0);
  /* only three were used up */
  ack(&t, 2, 0);
  CHECK(EXPECT_OK(2) == 7);
  /* a third of an hour gives bob one back (3 per hour), dave takes it */
  t.now += 20 * 60 * 1000;
  fetch(&t, 4, "bob", NULL, 0);
  CHECK(fetched_prekey(4, NULL) == 4);
  fetch(&t, 3, "bob", NULL, 0);
  CHECK(fetched_prekey(3, NULL) == 0);
  /* an hour on, alice may take again */
  t.now += 60 * 60 * 1000;
  fetch(&t, 1, "bob", NULL, 0);
  CHECK(fetched_prekey(1, NULL) == 5);
  /* the Oks name the signed prekey handed out; an upload changes it */
  ack(&t, 2, 0);
  CHECK(ok_spk(2) == 1);
  whisper_keypair_t sk;
  uint8_t sig[64];
  whisper_keypair_generate(b.ctx, &sk);
  CHECK_RC(whisper_sign(b.ctx, b.ik.priv, sk.pub, 33, sig), WHISPER_OK);
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  k.has_signed_prekey_id = k.has_signed_prekey = k.has_signed_prekey_signature = 1;
  k.signed_prekey_id = 2;
  k.signed_prekey = (ProtobufCBinaryData){33, sk.pub};
  k.signed_prekey_signature = (ProtobufCBinaryData){64, sig};
  Whisper__Sync__UploadPrekeys u = WHISPER__SYNC__UPLOAD_PREKEYS__INIT;
  u.signed_ = &k;
  Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD;
  f.upload = &u;
  req(&t, 2, &f);
  CHECK(ok_spk(2) == 2);
  fetch(&t, 3, "bob", NULL, 0);
  fetched_prekey(3, &spk);
  CHECK(spk == 2);
  /* and a new login's Ok names it */
  dev_login(&t, &b, 5, 0);
  dev_free(&a);
  dev_free(&b);
  dev_free(&c);
  dev_free(&d);
  srvt_close(&t);
}

/* Login says the same, and closes the same way, for an unknown account,
 * an unknown device of a known account and a bad signature. */
static void test_login_uniform(void) {
  srvt t;
  dev a, a7, ghost;
  char m1[128], m2[128], m3[128];
  srvt_open(&t, mem_store(), NULL);
  dev_init(&a, "alice", 1, 1);
  dev_init(&a7, "alice", 7, 2);
  dev_init(&ghost, "ghost", 1, 3);
  dev_up(&t, &a, 1, 0);
  dev_connect(&t, &ghost, 2);
  dev_hello(&t, &ghost);
  EXPECT_OK(2);
  dev_auth(&t, &ghost, 0, 0);
  expect_err_msg(2, 4, m1, sizeof m1);
  dev_connect(&t, &a7, 3);
  dev_hello(&t, &a7);
  EXPECT_OK(3);
  dev_auth(&t, &a7, 0, 0);
  expect_err_msg(3, 4, m2, sizeof m2);
  dev_connect(&t, &a, 4);
  dev_hello(&t, &a);
  EXPECT_OK(4);
  dev_auth(&t, &a, 0, 1);
  expect_err_msg(4, 4, m3, sizeof m3);
  CHECK(m1[0] && strcmp(m1, m2) == 0 && strcmp(m1, m3) == 0);
  CHECK(boxes[2].closed && boxes[3].closed && boxes[4].closed);
  EXPECT_NONE(2);
  EXPECT_NONE(3);
  EXPECT_NONE(4);
  dev_free(&a);
  dev_free(&a7);
  dev_free(&ghost);
  srvt_close(&t);
}

static void dev_connect_from(srvt *t, dev *d, uint64_t conn, const char *src) {
  box_reset(conn);
  CHECK_RC(whisper_server_connected_from(t->srv, conn, (const uint8_t *)src, strlen(src), t->now),
           WHISPER_OK);
  drain(t->srv);
  d->conn = conn;
  Frame *f = EXPECT(conn, CHALLENGE);
  if (f) memcpy(d->nonce, f->challenge->nonce.data, 32);
  fr_free(f);
}

/* Per source: connections not logged in at once, accounts made per hour;
 * connections without a source have neither limit. */
static void test_sources(void) {
  srvt t;
  dev a, b, c, d, e;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.prelogin_per_source = 2;
  cfg.register_per_source = 2;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_init(&c, "carol", 1, 3);
  dev_init(&d, "dave", 1, 4);
  dev_init(&e, "erin", 1, 5);
  const uint8_t *s1 = (const uint8_t *)"\x0a\x00\x00\x01";
  uint8_t long_src[WHISPER_SERVER_SOURCE_MAX + 1];
  memset(long_src, 7, sizeof long_src);
  CHECK_RC(whisper_server_connected_from(t.srv, 9, NULL, 4, t.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_connected_from(t.srv, 9, s1, 0, t.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_connected_from(t.srv, 9, long_src, sizeof long_src, t.now), WHISPER_EINVAL);
  CHECK_RC(whisper_server_connected_from(t.srv, 0, s1, 4, t.now), WHISPER_EINVAL);
  /* two connections of a source wait for login; a third is refused, with nothing queued */
  dev_connect_from(&t, &a, 1, "src-1");
  dev_connect_from(&t, &b, 2, "src-1");
  CHECK_RC(whisper_server_connected_from(t.srv, 3, (const uint8_t *)"src-1", 5, t.now), WHISPER_EBUSY);
  drain(t.srv);
  CHECK(pending(3) == 0 && stats(&t).connections == 2);
  CHECK_RC(whisper_server_receive(t.srv, 3, (const uint8_t *)"", 0, t.now), WHISPER_ENOTFOUND);
  dev_connect_from(&t, &c, 3, "src-2"); /* another source */
  dev_connect(&t, &e, 8);               /* no source: no limit */
  /* a login frees a place */
  dev_register(&t, &a, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(1);
  dev_hello(&t, &a);
  EXPECT_OK(1);
  dev_auth(&t, &a, 0, 0);
  EXPECT_OK(1);
  fr_free(EXPECT(1, QUEUE_EMPTY));
  dev_connect_from(&t, &d, 4, "src-1");
  /* and so does a close */
  CHECK_RC(whisper_server_connected_from(t.srv, 5, (const uint8_t *)"src-1", 5, t.now), WHISPER_EBUSY);
  whisper_server_disconnected(t.srv, 4, t.now);
  dev_connect_from(&t, &d, 5, "src-1");
  /* two accounts per hour from src-1 (alice was one): bob, then not dave */
  dev_register(&t, &b, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(2);
  dev_register(&t, &d, 0, 1, NULL, BAD_NONE);
  uint64_t retry = EXPECT_ERR(5, 9);
  CHECK(retry > 20 * 60 * 1000 && retry <= 30 * 60 * 1000);
  /* bob's Register sent again (a lost answer) makes no account: Ok */
  dev_register(&t, &b, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(2);
  /* another source, and a connection without one, are not held back */
  dev_register(&t, &c, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(3);
  dev_register(&t, &e, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(8);
  /* once the time said has passed, dave may */
  t.now += retry;
  dev_register(&t, &d, 0, 1, NULL, BAD_NONE);
  EXPECT_OK(5);
  dev_free(&a);
  dev_free(&b);
  dev_free(&c);
  dev_free(&d);
  dev_free(&e);
  srvt_close(&t);
}

/* Link codes: anyone may ask for one for any account, but nobody pushes
 * another's code out: past 8 waiting, a request waits (ERR_RATE) until
 * the first lapses; a source has one code per account waiting (a new one
 * replaces its own) and asks for at most link_per_source per hour. */
static void test_link_codes_kept(void) {
  srvt t;
  dev b1, b2, x;
  uint8_t code[16], mine[16], again[16], other[16];
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.link_per_source = 3;
  srvt_open(&t, mem_store(), &cfg);
  dev_init(&b1, "bob", 1, 1);
  dev_init(&b2, "bob", 2, 2);
  dev_init(&x, "mallory", 1, 3);
  dev_up(&t, &b1, 1, 0);
  /* bob's new device asks first */
  dev_connect_from(&t, &b2, 2, "home");
  link_request(&t, 2, "bob");
  CHECK(get_link_code(2, code));
  /* seven others fill the account's places */
  char src[16];
  for (int i = 0; i < 7; i++) {
    snprintf(src, sizeof src, "evil-%d", i);
    dev_connect_from(&t, &x, (uint64_t)(10 + i), src);
    link_request(&t, (uint64_t)(10 + i), "bob");
    CHECK(get_link_code((uint64_t)(10 + i), i == 0 ? mine : other));
  }
  /* an eighth source waits for the first code to lapse */
  dev_connect_from(&t, &x, 20, "evil-7");
  link_request(&t, 20, "bob");
  uint64_t retry = EXPECT_ERR(20, 9);
  CHECK(retry > 0 && retry <= 10 * 60 * 1000);
  /* a source asking again replaces its own code, which no longer works */
  link_request(&t, 10, "bob");
  CHECK(get_link_code(10, again));
  link_approve(&t, 1, mine);
  EXPECT_ERR(1, 6);
  /* bob's code is still there: the device joins */
  uint64_t rid = dev_register(&t, &b2, 1, 1, code, BAD_NONE);
  EXPECT_NONE(2);
  link_approve(&t, 1, code);
  EXPECT_OK(1);
  Frame *f = EXPECT(2, OK);
  CHECK(f && f->id == rid);
  fr_free(f);
  /* evil-0 asked three times in the hour: no more */
  link_request(&t, 10, "bob");
  CHECK(get_link_code(10, again));
  link_request(&t, 10, "bob");
  EXPECT_ERR(10, 9);
  dev_free(&b1);
  dev_free(&b2);
  dev_free(&x);
  srvt_close(&t);
}

/* Idempotency records answer a Send sent again for at least sent_ttl_ms,
 * then are pruned by the timer (in batches), also after a restart. */
static void test_sent_pruned(void) {
  srvt t;
  dev a, b;
  uint8_t cid[16];
  const uint64_t ttl = 60000;
  whisper_server_config_t cfg = WHISPER_SERVER_CONFIG_INIT;
  cfg.sent_ttl_ms = ttl;
  srvt_open(&t, mem_store(), &cfg);
  CHECK(whisper_server_next_deadline(t.srv) == UINT64_MAX); /* nothing to prune */
  dev_init(&a, "alice", 1, 1);
  dev_init(&b, "bob", 1, 2);
  dev_up(&t, &a, 1, 0);
  dev_up(&t, &b, 2, 0);
  whisper_server_disconnected(t.srv, 2, t.now);
  const target b1[] = {{1, 0}};
  uint64_t p0 = t.now / ttl;
  cid_make(cid, 1);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  uint64_t s1 = EXPECT_SENT(1, NULL);
  /* with no connection left (and presence announced), pruning is what is due */
  whisper_server_disconnected(t.srv, 1, t.now);
  t.now += 6000;
  tick(&t);
  CHECK(whisper_server_next_deadline(t.srv) == (p0 + 2) * ttl);
  dev_login(&t, &a, 1, 0);
  box_reset(1);
  /* sent again in the next period: the same answer, nothing delivered twice */
  t.now = (p0 + 1) * ttl + ttl - 1;
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(1, NULL) == s1);
  CHECK(stats(&t).mailbox_depth == 1);
  /* a restart finds the record's deadline */
  srvt_restart(&t, &cfg);
  CHECK(whisper_server_next_deadline(t.srv) == (p0 + 2) * ttl);
  dev_login(&t, &a, 1, 0);
  box_reset(1);
  /* two periods on, it is pruned: the Send is a new one */
  t.now = (p0 + 2) * ttl;
  tick(&t);
  CHECK(records(&t, WHISPER_REC_SERVER_SENT_AT) == 0);
  send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
  CHECK(EXPECT_SENT(1, NULL) > s1);
  /* many at once go in batches, each tick a batch */
  for (int i = 0; i < 700; i++) {
    cid_make(cid, 100 + i);
    t.now += 10; /* within the frame rate */
    send_direct(&t, &a, "bob", cid, b1, 1, NULL, 0, 1);
    EXPECT_SENT(1, NULL);
  }
  CHECK(records(&t, WHISPER_REC_SERVER_SENT_AT) == 701);
  t.now += 2 * ttl;
  CHECK(whisper_server_next_deadline(t.srv) <= t.now);
  tick(&t);
  int left = records(&t, WHISPER_REC_SERVER_SENT_AT);
  CHECK(left > 0 && left < 701);
  CHECK(whisper_server_next_deadline(t.srv) <= t.now); /* more to do at once */
  tick(&t);
  CHECK(records(&t, WHISPER_REC_SERVER_SENT_AT) == 0);
  CHECK(whisper_server_next_deadline(t.srv) > t.now);
  dev_free(&a);
  dev_free(&b);
  srvt_close(&t);
}

int main(void) {
  test_api_edges();
  test_versioned_structs();
  test_register();
  test_login();
  test_prekeys();
  test_send_stale_and_idempotent();
  test_send_after();
  test_delivery_ack_receipts();
  test_groups();
  test_typing();
  test_presence();
  test_link();
  test_link_held();
  test_device_lists();
  test_link_signed();
  test_group_changes();
  test_bad_frames();
  test_rate_heartbeat_push();
  test_timers();
  test_mailbox_limit();
  test_store_failure();
  test_delivery_fast();
  test_batch(0);
  test_batch(1000); /* records kept between batches */
  test_push_bytes();
  test_batch_busy(0);
  test_batch_busy(1000);
  test_batch_pipelined(0);
  test_batch_pipelined(1000);
  test_restart_sqlite();
  test_upload_tokens();
  test_upload_token_config();
  test_mailbox_quotas();
  test_batch_shares(0, 1);
  test_batch_shares(1000, 1);
  test_batch_shares(0, 0);
  test_prekey_ration();
  test_login_uniform();
  test_sources();
  test_link_codes_kept();
  test_sent_pruned();
  test_mutations();
  return test_done();
}
