/*
 * fuzz_sync_frame: the whisper.sync.Frame decoder and the checks both
 * sides run on a decoded frame. Neither side has a decode/validate
 * function of its own: the server (server.c whisper_server_receive) and
 * the engine (client.c whisper_client_receive, frame_ok) call protobuf-c's
 * unpack and then check fields, the server in server_check.c and in each
 * handler, the engine in frame_ok and its handlers, both with the checks
 * of src/common/names.c (wh_account_ok, wh_group_conv, ...). The input is
 * one frame:
 *
 *  1. the round trip: a frame that unpacks packs to bytes that unpack to a
 *     frame that packs to the same bytes (unless it carries an unknown
 *     field numbered 0, which protobuf-c reads but writes back as bytes
 *     it cannot read: see README.md);
 *  2. the one name rule both sides use (wh_account_ok) is sync.proto's on
 *     every string of the frame (1..64 bytes of [a-z0-9._-], written out
 *     here apart), and the group conversation name of every 16-byte bytes
 *     field is the same from wh_group_conv and the public
 *     whisper_client_group_conversation, and wh_group_conv_parse reads it
 *     back;
 *  3. the engine's decoder (an engine that is not connected, so the
 *     frame is only decoded): WHISPER_OK or WHISPER_EINVALIDMSG; bytes
 *     that do not unpack, a version other than 1 or a frame without a
 *     body are WHISPER_EINVALIDMSG; nothing is stored, no event, no frame;
 *  4. the server's intake on a new connection (not logged in): over the
 *     size limit ERR_TOO_BIG (id 0); not a frame ERR_MALFORMED (id 0); a
 *     version other than 1 ERR_VERSION and the connection closed; no id
 *     ERR_MALFORMED; Ping a Pong with its id and nonce; Auth before Hello
 *     ERR_STATE; a request that needs a login ERR_AUTH; a body that is not
 *     a request ERR_MALFORMED; Hello, Register and LinkRequest an answer
 *     of their own (a Register with a link code may be held); an Error
 *     changes no stored byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_sync.h"
#include "server/server_internal.h"
#include "sync/sync_internal.h"

static fz_dev *CD;       /* the engine's device */
static whisper_client *C; /* never connected */
static fz_store S;       /* the server's store */
static whisper_server *SRV;
static whisper_server_config_t CFG;
static fz_rng SRNG;

static void setup_once(void) {
  if (SRV) return;
  CD = fz_dev_new("frank", 1, 0x71);
  FZ_ASSERT(whisper_client_new(&C, CD->ctx, NULL) == WHISPER_OK, "client_new");
  fz_store_open(&S);
  fzs_server_config(&CFG);
  FZ_ASSERT(whisper_server_new(&SRV, S.outer, &CFG) == WHISPER_OK, "server_new");
  memset(SRNG.seed, 0x7A, sizeof SRNG.seed);
  whisper_server_rng_set(SRV, fz_rng_fn, &SRNG);
}

/* --- 1, 2: walking a decoded message ------------------------------------ */

/* sync.proto's account names, apart from common/names.c's. */
static int account_rule(const char *s) {
  size_t n = strlen(s);
  return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static void check_string(const char *s) {
  FZ_ASSERT(wh_account_ok(s) == account_rule(s), "the name rule is wrong on \"%s\"", s);
}

static void check_bytes(const ProtobufCBinaryData *b) {
  if (b->len != 16) return;
  char a[WSRV_CONV_MAX + 1], c[WHISPER_GROUP_CONVERSATION_LEN + 1];
  uint8_t back[16];
  wh_group_conv(a, b->data);
  whisper_client_group_conversation(b->data, c);
  FZ_ASSERT(strcmp(a, c) == 0, "group conversations differ: %s, %s", a, c);
  FZ_ASSERT(wh_group_conv_parse(c, back) && memcmp(back, b->data, 16) == 0,
            "wh_group_conv_parse does not read %s back", c);
}

/* Walks every field of a message: returns 1 if it (or a message inside)
 * has an unknown field numbered 0. */
static int walk(const ProtobufCMessage *m) {
  int tag0 = 0;
  for (unsigned i = 0; i < m->n_unknown_fields; i++) tag0 |= m->unknown_fields[i].tag == 0;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    const void *at = base + fd->offset;
    if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + fd->quantifier_offset);
      const void *arr = *(void *const *)at;
      for (size_t j = 0; j < n; j++) {
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) tag0 |= walk(((ProtobufCMessage *const *)arr)[j]);
        else if (fd->type == PROTOBUF_C_TYPE_STRING) check_string(((char *const *)arr)[j]);
        else if (fd->type == PROTOBUF_C_TYPE_BYTES) check_bytes(&((const ProtobufCBinaryData *)arr)[j]);
      }
      continue;
    }
    int present;
    if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
      present = *(const uint32_t *)(base + fd->quantifier_offset) == fd->id;
    else if (fd->type == PROTOBUF_C_TYPE_MESSAGE || fd->type == PROTOBUF_C_TYPE_STRING)
      present = *(void *const *)at != NULL;
    else
      present = *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
    if (!present) continue;
    if (fd->type == PROTOBUF_C_TYPE_MESSAGE) tag0 |= walk(*(ProtobufCMessage *const *)at);
    else if (fd->type == PROTOBUF_C_TYPE_STRING) check_string(*(char *const *)at);
    else if (fd->type == PROTOBUF_C_TYPE_BYTES) check_bytes((const ProtobufCBinaryData *)at);
  }
  return tag0;
}

static void round_trip(fzs_frame *f) {
  int tag0 = walk(&f->base);
  size_t n = whisper__sync__frame__get_packed_size(f);
  uint8_t *y = malloc(n ? n : 1);
  FZ_ASSERT(y != NULL, "out of memory");
  FZ_ASSERT(whisper__sync__frame__pack(f, y) == n, "pack wrote another size than it announced");
  fzs_frame *g = fzs_unpack(y, n);
  if (!tag0) {
    FZ_ASSERT(g != NULL, "a frame packed from a decoded frame does not unpack");
    size_t n2 = whisper__sync__frame__get_packed_size(g);
    uint8_t *z = malloc(n2 ? n2 : 1);
    FZ_ASSERT(z != NULL, "out of memory");
    whisper__sync__frame__pack(g, z);
    FZ_ASSERT(n2 == n && memcmp(y, z, n) == 0, "pack(unpack(pack(f))) differs from pack(f)");
    free(z);
  }
  fzs_frame_free(g);
  free(y);
}

/* --- 3: the engine's decoder ------------------------------------------------- */

static void engine(const uint8_t *data, size_t size, const fzs_frame *f) {
  fz_watch_begin(&CD->fs);
  int rc = whisper_client_receive(C, data, size, FZ_NOW);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EINVALIDMSG, "the engine returned %d", rc);
  if (f == NULL || !f->has_version || f->version != 1 ||
      f->body_case == WHISPER__SYNC__FRAME__BODY__NOT_SET)
    FZ_ASSERT(rc == WHISPER_EINVALIDMSG, "the engine took a frame that is not one (%s)",
              f ? "version or body" : "unpack");
  FZ_ASSERT(CD->fs.ntouched == 0 && CD->fs.committed_writes == 0,
            "a frame written to an engine that is not connected wrote to the store");
  fz_watch_end(&CD->fs);
  whisper_client_event_t e;
  whisper_buf *b;
  FZ_ASSERT(!whisper_client_take_event(C, &e), "an event from an engine that is not connected");
  FZ_ASSERT(!whisper_client_take_frame(C, &b), "a frame from an engine that is not connected");
}

/* --- 4: the server's intake ---------------------------------------------------- */

static struct {
  int answered, closed;
  fzs_frame *answer;
  uint64_t want_id;
} A;

static void drain(void) {
  whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(SRV, &o) > 0) {
    FZ_ASSERT(o.action != WHISPER_SERVER_PUSH, "a push for a connection that never logged in");
    FZ_ASSERT(o.conn == 1 && !A.closed, "output for connection %llu (closed: %d)",
              (unsigned long long)o.conn, A.closed);
    if (o.action == WHISPER_SERVER_DISCONNECT) {
      A.closed = 1;
      continue;
    }
    fzs_frame *f = fzs_unpack(o.frame, o.frame_len);
    FZ_ASSERT(f && f->has_version && f->version == 1 && fzs_is_server_body(f->body_case),
              "the server sent a bad frame");
    uint64_t id = f->has_id ? f->id : 0;
    if (!A.answered && !fzs_is_push(f->body_case) && id == A.want_id) {
      A.answered = 1;
      A.answer = f;
      continue;
    }
    fzs_frame_free(f);
  }
}

static int err_is(uint32_t code) {
  return A.answer && A.answer->body_case == WHISPER__SYNC__FRAME__BODY_ERROR &&
         A.answer->error->code == code;
}

static void server(const uint8_t *data, size_t size, const fzs_frame *f) {
  fz_journal_begin(&S);
  SRNG.counter = UINT64_C(1) << 40;
  memset(&A, 0, sizeof A);
  FZ_ASSERT(whisper_server_connected(SRV, 1, FZ_NOW) == WHISPER_OK, "open");
  A.want_id = UINT64_MAX;
  drain(); /* the challenge */
  int big = size > CFG.max_frame;
  A.want_id = big || f == NULL ? 0 : f->has_id ? f->id : 0;
  fz_watch_begin(&S);
  int rc = whisper_server_receive(SRV, 1, data, size, FZ_NOW);
  FZ_ASSERT(rc == WHISPER_OK, "receive: %d (%s)", rc, whisper_server_last_error(SRV));
  FZ_ASSERT(!S.outer->depth, "a transaction left open");
  drain();
  int body = f ? (int)f->body_case : -1;
  if (big) {
    FZ_ASSERT(err_is(ERR_TOO_BIG), "a frame over the limit was not refused as too big");
  } else if (f == NULL) {
    FZ_ASSERT(err_is(ERR_MALFORMED), "bytes that do not unpack were not refused as malformed");
  } else if (!f->has_version || f->version != 1) {
    FZ_ASSERT(err_is(ERR_VERSION) && A.closed, "version %u was not refused and closed", f->version);
  } else if (!f->has_id || f->id == 0) {
    FZ_ASSERT(err_is(ERR_MALFORMED), "a frame without an id was not refused");
  } else if (body == WHISPER__SYNC__FRAME__BODY_PING) {
    FZ_ASSERT(A.answer && A.answer->body_case == WHISPER__SYNC__FRAME__BODY_PONG &&
                  A.answer->pong->has_nonce == f->ping->has_nonce &&
                  A.answer->pong->nonce == f->ping->nonce,
              "Ping was not answered with its Pong");
  } else if (body == WHISPER__SYNC__FRAME__BODY_AUTH) {
    FZ_ASSERT(err_is(ERR_STATE), "Auth before Hello was not refused as out of order");
  } else if (body == WHISPER__SYNC__FRAME__BODY_HELLO || body == WHISPER__SYNC__FRAME__BODY_LINK_REQUEST) {
    FZ_ASSERT(A.answered, "%s was not answered", fzs_body_name(body));
  } else if (body == WHISPER__SYNC__FRAME__BODY_REGISTER) {
    FZ_ASSERT(A.answered || f->register_->has_link_code, "Register was not answered");
  } else if (fzs_is_request(body)) {
    FZ_ASSERT(err_is(ERR_AUTH), "%s before login was not refused with ERR_AUTH",
              fzs_body_name(body));
  } else {
    FZ_ASSERT(err_is(ERR_MALFORMED), "a %s from a client was not refused as malformed",
              fzs_body_name(body));
  }
  if (A.answer && A.answer->body_case == WHISPER__SYNC__FRAME__BODY_ERROR) {
    FZ_ASSERT(S.committed_writes == 0 && fz_store_changed(&S) == NULL,
              "a frame refused with %u changed the store", A.answer->error->code);
    FZ_ASSERT(A.answer->error->code != ERR_INTERNAL, "ERR_INTERNAL (%s)",
              whisper_server_last_error(SRV));
  }
  fz_watch_end(&S);
  fzs_frame_free(A.answer);
  A.answer = NULL;
  whisper_server_disconnected(SRV, 1, FZ_NOW);
  drain();
  whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(SRV, &st);
  FZ_ASSERT(st.connections == 0, "%llu connections after closing the only one",
            (unsigned long long)st.connections);
  fz_journal_restore(&S);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup_once();
  fzs_frame *f = fzs_unpack(data, size);
  if (f) round_trip(f);
  engine(data, size, f);
  server(data, size, f);
  fzs_frame_free(f);
  return 0;
}
