/*
 * Abuse limits that are not one handler's (docs/security.md, "whisperd"):
 *
 *  - token buckets of so many tokens per period (bucket_take);
 *  - sources: where connections come from, as the caller keys them
 *    (whisper_server_connected_from): connections not logged in at once per
 *    source, accounts created and link codes asked for per source and
 *    hour. In memory only, like the frame rate buckets: a restart, or
 *    another node, starts them full;
 *  - idempotency records (WHISPER_REC_SERVER_SENT_AT) pruned by period.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define HOUR_MS (60ULL * 60 * 1000)
#define SRC_PRUNE_MS 60000 /* idle sources are looked for this often */
#define SENT_PRUNE_BATCH 512

/* --- buckets -------------------------------------------------------------- */

/* A bucket of `cap` tokens, `cap` of them coming back per `period_ms`, in
 * thousandths. The clock only moves on when a thousandth came back, so
 * calls closer together than that lose nothing. */
static void bucket_fill(wsrv_bucket *b, uint64_t cap, uint64_t period_ms, uint64_t now_ms) {
  uint64_t full = cap * 1000;
  if (!b->init) {
    b->init = 1;
    b->milli = full;
    b->at_ms = now_ms;
    return;
  }
  if (now_ms <= b->at_ms) return;
  uint64_t dt = now_ms - b->at_ms;
  if (dt >= period_ms || full > UINT64_MAX / dt) {
    b->milli = full;
    b->at_ms = now_ms;
    return;
  }
  uint64_t gained = dt * full / period_ms;
  if (gained == 0) return;
  b->milli = gained >= full - b->milli ? full : b->milli + gained;
  b->at_ms = now_ms;
}

int wsrv_bucket_take(wsrv_bucket *b, uint64_t cap, uint64_t period_ms, uint64_t now_ms,
                     uint64_t *retry_ms) {
  if (cap > UINT64_MAX / 1000) cap = UINT64_MAX / 1000;
  bucket_fill(b, cap, period_ms, now_ms);
  if (b->milli >= 1000) {
    b->milli -= 1000;
    return 1;
  }
  if (retry_ms) {
    /* the time until the missing thousandths are back, rounded up */
    uint64_t missing = 1000 - b->milli, full = cap * 1000;
    *retry_ms = full ? (missing * period_ms + full - 1) / full : period_ms;
    if (*retry_ms == 0) *retry_ms = 1;
  }
  return 0;
}

/* --- sources -------------------------------------------------------------- */

static wsrv_src *src_find(const whisper_server *srv, const wsrv_conn *c) {
  return c->src_len ? wsrv_map_get(&srv->srcs, c->src, c->src_len) : NULL;
}

static wsrv_src *src_get(whisper_server *srv, const uint8_t *key, size_t n) {
  wsrv_src *s = wsrv_map_get(&srv->srcs, key, n);
  if (s) return s;
  if ((s = calloc(1, sizeof *s)) == NULL) return NULL;
  if (wsrv_map_put(&srv->srcs, key, n, s) != WHISPER_OK) {
    free(s);
    return NULL;
  }
  return s;
}

int whisper_server_connected_from(whisper_server *srv, uint64_t conn, const uint8_t *source,
                             size_t source_len, uint64_t now_ms) {
  if (srv == NULL || source == NULL || source_len == 0 || source_len > WHISPER_SERVER_SOURCE_MAX)
    return WHISPER_EINVAL;
  if (conn == 0 || wsrv_conn_find(srv, conn)) return WHISPER_EINVAL;
  wsrv_src *s = src_get(srv, source, source_len);
  if (s == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  s->last_ms = now_ms;
  if (s->prelogin >= srv->cfg.prelogin_per_source)
    return wsrv_fail(srv, WHISPER_EBUSY,
                     "the source has %u connections not logged in: refused",
                     (unsigned)s->prelogin);
  int rc = whisper_server_connected(srv, conn, now_ms);
  if (rc != WHISPER_OK) return rc;
  wsrv_conn *c = wsrv_conn_find(srv, conn);
  memcpy(c->src, source, source_len);
  c->src_len = source_len;
  c->prelogin = 1;
  s->prelogin++;
  return WHISPER_OK;
}

void wsrv_src_release(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  if (!c->prelogin) return;
  c->prelogin = 0;
  wsrv_src *s = src_find(srv, c);
  if (s == NULL) return;
  if (s->prelogin) s->prelogin--;
  s->last_ms = now_ms;
}

int wsrv_src_register_take(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  wsrv_src *s = src_find(srv, c);
  uint64_t retry = 0;
  if (s == NULL) return 0;
  s->last_ms = now_ms;
  if (wsrv_bucket_take(&s->reg, srv->cfg.register_per_source, HOUR_MS, now_ms, &retry)) return 0;
  return wsrv_refuse_rate(srv, retry, "too many accounts made from this address; try later");
}

int wsrv_src_link_take(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  wsrv_src *s = src_find(srv, c);
  uint64_t retry = 0;
  if (s == NULL) return 0;
  s->last_ms = now_ms;
  if (wsrv_bucket_take(&s->link, srv->cfg.link_per_source, HOUR_MS, now_ms, &retry)) return 0;
  return wsrv_refuse_rate(srv, retry, "too many link codes asked for from this address; try later");
}

int wsrv_src_tag(const whisper_server *srv, const wsrv_conn *c, uint8_t tag[WSRV_SRC_TAG_LEN]) {
  static const char ctx[] = "whisper-source";
  if (c->src_len == 0) return 0;
  crypto_generichash_state st;
  crypto_generichash_init(&st, srv->salt, sizeof srv->salt, WSRV_SRC_TAG_LEN);
  crypto_generichash_update(&st, (const uint8_t *)ctx, sizeof ctx);
  crypto_generichash_update(&st, c->src, c->src_len);
  crypto_generichash_final(&st, tag, WSRV_SRC_TAG_LEN);
  return 1;
}

/* A source is forgotten once nothing of it is left: no connection waits
 * and an hour passed (its buckets are full again). */
static int src_idle(void *value, void *arg) {
  const wsrv_src *s = value;
  const uint64_t *now = arg;
  return s->prelogin == 0 && *now >= wsrv_after(s->last_ms, HOUR_MS);
}

static void srcs_prune(whisper_server *srv, uint64_t now_ms) {
  if (srv->srcs.count == 0 || now_ms < wsrv_after(srv->srcs_pruned_ms, SRC_PRUNE_MS)) return;
  wsrv_map_prune(&srv->srcs, src_idle, &now_ms, free);
  srv->srcs_pruned_ms = now_ms;
}

/* --- idempotency records -------------------------------------------------- */

uint32_t wsrv_sent_period(const whisper_server *srv, uint64_t now_ms) {
  uint64_t p = now_ms / srv->cfg.sent_ttl_ms;
  return p > UINT32_MAX ? UINT32_MAX : (uint32_t)p;
}

/* A record of period p is looked up until period p + 1 ends: it is pruned
 * from the start of p + 2. */
static uint64_t prune_time(const whisper_server *srv, uint32_t period) {
  uint64_t p2 = (uint64_t)period + 2;
  return p2 > UINT64_MAX / srv->cfg.sent_ttl_ms ? UINT64_MAX : p2 * srv->cfg.sent_ttl_ms;
}

/* The oldest period stored (inside a transaction). */
static int sent_oldest(whisper_server *srv) {
  wsrv_rec *r;
  size_t n;
  int rc = wsrv_scan(srv, WHISPER_REC_SERVER_SENT_AT, NULL, 0, NULL, 0, 1, &r, &n);
  if (rc != WHISPER_OK) return rc;
  srv->sent_prune_at = n && r[0].key_len >= 4 ? prune_time(srv, wh_rd32(r[0].key)) : UINT64_MAX;
  wsrv_recs_free(r, n);
  return WHISPER_OK;
}

int wsrv_limits_init(whisper_server *srv) {
  uint8_t priv[crypto_scalarmult_SCALARBYTES];
  /* a key nobody holds, for Auth of an unknown device to verify against */
  if (wh_random(&srv->rng, priv, sizeof priv) != 0)
    return wsrv_fail(srv, WHISPER_ERANDOM, "the random number generator failed");
  srv->decoy_key[0] = 0x05;
  int bad = crypto_scalarmult_base(srv->decoy_key + 1, priv);
  sodium_memzero(priv, sizeof priv);
  if (bad) return wsrv_fail(srv, WHISPER_EINTERNAL, "cannot make a key");
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  return wsrv_end(srv, NULL, sent_oldest(srv));
}

void wsrv_sent_written(whisper_server *srv, uint32_t period) {
  uint64_t at = prune_time(srv, period);
  if (at < srv->sent_prune_at) srv->sent_prune_at = at;
}

/* Deletes a batch of records older than the previous period, then learns
 * the oldest left. A store failure leaves them for the next tick. */
static void sent_prune(whisper_server *srv, uint64_t now_ms) {
  if (now_ms < srv->sent_prune_at) return;
  uint32_t cur = wsrv_sent_period(srv, now_ms);
  wsrv_rec *r = NULL;
  size_t n = 0;
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return;
  rc = wsrv_scan(srv, WHISPER_REC_SERVER_SENT_AT, NULL, 0, NULL, 0, SENT_PRUNE_BATCH, &r, &n);
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
    if (r[i].key_len >= 4 && (uint64_t)wh_rd32(r[i].key) + 1 >= cur) break;
    rc = wsrv_del(srv, WHISPER_REC_SERVER_SENT_AT, r[i].key, r[i].key_len);
  }
  wsrv_recs_free(r, n);
  if (rc == WHISPER_OK) rc = sent_oldest(srv);
  if (wsrv_end(srv, NULL, rc) != WHISPER_OK) srv->sent_prune_at = wsrv_after(now_ms, SRC_PRUNE_MS);
}

uint64_t wsrv_limits_deadline(const whisper_server *srv) { return srv->sent_prune_at; }

void wsrv_limits_tick(whisper_server *srv, uint64_t now_ms) {
  srcs_prune(srv, now_ms);
  sent_prune(srv, now_ms);
}
