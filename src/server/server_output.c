/* The server's output: a FIFO of frames to send, connections to close and
 * devices to wake, drained by whisper_server_take_output(). Inside a batch the
 * output goes to a second FIFO, held until the batch commits
 * (server_batch.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

int wsrv_refuse(whisper_server *srv, int code, const char *msg) {
  snprintf(srv->refusal, sizeof srv->refusal, "%s", msg);
  srv->refusal_retry_ms = 0;
  return code;
}

int wsrv_refuse_rate(whisper_server *srv, uint64_t retry_ms, const char *msg) {
  wsrv_refuse(srv, ERR_RATE, msg);
  srv->refusal_retry_ms = retry_ms ? retry_ms : 1;
  return ERR_RATE;
}

void wsrv_out_free(wsrv_out *o) {
  if (o == NULL) return;
  if (o->frame) {
    wh_wipe(o->frame, o->len);
    free(o->frame);
  }
  free(o);
}

void wsrv_out_item_free(wh_out *o) { wsrv_out_free((wsrv_out *)o); }

/* Held output marks its connection: if the batch fails, the connection
 * is closed (what it was told, or its delivery window, is not kept). */
void wsrv_enqueue(whisper_server *srv, wsrv_out *o) {
  wh_outq *q = &srv->out;
  if (srv->batch) {
    q = &srv->held;
    wsrv_conn *c = o->action == WHISPER_SERVER_PUSH ? NULL : wsrv_conn_find(srv, o->conn);
    if (c) wsrv_batch_conn(srv, c);
  }
  wh_outq_push(q, &o->link);
}

int wsrv_send(whisper_server *srv, uint64_t conn, Whisper__Sync__Frame *f) {
  size_t n = wh_frame_prepare(f);
  wsrv_out *o = calloc(1, sizeof *o);
  uint8_t *buf = malloc(n ? n : 1);
  if (o == NULL || buf == NULL) {
    free(o);
    free(buf);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  whisper__sync__frame__pack(f, buf);
  o->action = WHISPER_SERVER_SEND;
  o->conn = conn;
  o->frame = buf;
  o->len = n;
  wsrv_enqueue(srv, o);
  return WHISPER_OK;
}

/* Frame{version = 1 (field 1, varint), deliver = d (field 47, bytes)}, in
 * field order as protobuf-c packs it. */
int wsrv_send_deliver(whisper_server *srv, uint64_t conn, const uint8_t *d, size_t len) {
  uint8_t head[2 + 2 + 10];
  size_t h = 0;
  head[h++] = 0x08; /* 1 << 3 | varint */
  head[h++] = WH_SYNC_PROTOCOL;
  head[h++] = 0xFA; /* 47 << 3 | length-delimited, as a varint: 378 */
  head[h++] = 0x02;
  for (uint64_t v = len; ; v >>= 7) {
    head[h++] = (uint8_t)(v < 0x80 ? v : (v & 0x7F) | 0x80);
    if (v < 0x80) break;
  }
  wsrv_out *o = calloc(1, sizeof *o);
  uint8_t *buf = malloc(h + len);
  if (o == NULL || buf == NULL) {
    free(o);
    free(buf);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  memcpy(buf, head, h);
  if (len) memcpy(buf + h, d, len);
  o->action = WHISPER_SERVER_SEND;
  o->conn = conn;
  o->frame = buf;
  o->len = h + len;
  wsrv_enqueue(srv, o);
  return WHISPER_OK;
}

int wsrv_send_error(whisper_server *srv, uint64_t conn, uint64_t id, int code, const char *msg,
                    uint64_t retry_ms) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Error e = WHISPER__SYNC__ERROR__INIT;
  e.has_code = 1;
  e.code = (uint32_t)code;
  e.message = msg && *msg ? (char *)msg : NULL;
  f.has_id = id != 0;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_ERROR;
  f.error = &e;
  if (retry_ms) {
    f.has_retry_ms = 1;
    f.retry_ms = retry_ms;
  }
  srv->stats.frames_refused++;
  return wsrv_send(srv, conn, &f);
}

/* Every Ok after login carries the device's count of one-time prekeys
 * and the id of the signed prekey its bundles carry (the engine uploads
 * its current one when they differ). */
int wsrv_send_ok(whisper_server *srv, wsrv_conn *c, uint64_t id) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__Ok ok = WHISPER__SYNC__OK__INIT;
  if (c->state == WSRV_AUTHED) {
    ok.has_prekeys_left = 1;
    ok.prekeys_left = c->prekeys_left;
    ok.has_signed_prekey_id = 1;
    ok.signed_prekey_id = c->spk_id;
  }
  f.has_id = id != 0;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_OK;
  f.ok = &ok;
  return wsrv_send(srv, c->id, &f);
}

/* Queuing a close or a push cannot fail for lack of memory without losing
 * the action, so the entry is a fixed-size struct that is just dropped if
 * calloc fails (the connection then stays open until its heartbeat runs
 * out; the device is not woken). */
void wsrv_queue_close(whisper_server *srv, uint64_t conn) {
  wsrv_out *o = calloc(1, sizeof *o);
  if (o == NULL) return;
  o->action = WHISPER_SERVER_DISCONNECT;
  o->conn = conn;
  wsrv_enqueue(srv, o);
}

void wsrv_queue_push(whisper_server *srv, const char *account, uint32_t device_id,
                     uint64_t depth) {
  wsrv_out *o = calloc(1, sizeof *o);
  if (o == NULL) return;
  o->action = WHISPER_SERVER_PUSH;
  snprintf(o->account, sizeof o->account, "%s", account);
  o->device_id = device_id;
  o->depth = depth;
  srv->stats.pushes++;
  wsrv_enqueue(srv, o);
}

static int of_conn(const wh_out *item, void *conn) {
  const wsrv_out *o = (const wsrv_out *)item;
  return o->action != WHISPER_SERVER_PUSH && o->conn == *(const uint64_t *)conn;
}

void wsrv_drop_output(whisper_server *srv, uint64_t conn) {
  wh_outq_drop_if(&srv->out, of_conn, &conn, wsrv_out_item_free);
  wh_outq_drop_if(&srv->held, of_conn, &conn, wsrv_out_item_free);
}
