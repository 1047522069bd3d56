/*
 * The client engine: the handle, the connection's lifecycle with its
 * backoff, frames in and out, requests and their timeouts, pings, and
 * events. The protocol's pieces are in login.c, outbox.c, inbox.c and
 * ops.c (sync_internal.h lists them).
 */
#include <stddef.h>
#include <stdio.h>

#include "sync/sync_internal.h"

/* --- small helpers ------------------------------------------------------------------ */

char *sy_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int sy_name_has(const sy_name *l, const char *name) {
  for (; l; l = l->next)
    if (strcmp(l->name, name) == 0) return 1;
  return 0;
}

int sy_name_add(sy_name **l, const char *name) {
  if (sy_name_has(*l, name)) return WHISPER_OK;
  sy_name *n = calloc(1, sizeof *n);
  if (n == NULL || (n->name = sy_strdup(name)) == NULL) {
    free(n);
    return WHISPER_ENOMEM;
  }
  n->next = *l;
  *l = n;
  return WHISPER_OK;
}

void sy_name_del(sy_name **l, const char *name) {
  for (sy_name **p = l; *p; p = &(*p)->next)
    if (strcmp((*p)->name, name) == 0) {
      sy_name *d = *p;
      *p = d->next;
      free(d->name);
      free(d);
      return;
    }
}

void sy_names_free(sy_name **l) {
  while (*l) {
    sy_name *d = *l;
    *l = d->next;
    free(d->name);
    free(d);
  }
}

void whisper_client_group_conversation(const uint8_t gid[WHISPER_GROUP_ID_LEN],
                                       char out[WHISPER_GROUP_CONVERSATION_LEN + 1]) {
  if (out) wh_group_conv(out, gid);
}

static void inq_flush(whisper_client *c);
static void inq_flush_due(whisper_client *c);

/* --- events ----------------------------------------------------------------------------- */

sy_event *sy_event_new(whisper_client *c, int type) {
  (void)c;
  sy_event *e = calloc(1, sizeof *e);
  if (e) e->ev.type = type;
  return e;
}

static int dup_into(char **dst, const char *s) {
  if (s == NULL) return 0;
  return (*dst = sy_strdup(s)) == NULL ? -1 : 0;
}

int sy_event_set(sy_event *e, const char *conversation, const char *from, const uint8_t *id,
                 size_t id_len, const uint8_t *body, size_t body_len) {
  if (dup_into(&e->conversation, conversation) || dup_into(&e->from, from)) return WHISPER_ENOMEM;
  if (id && id_len) {
    if ((e->id = malloc(id_len)) == NULL) return WHISPER_ENOMEM;
    memcpy(e->id, id, id_len);
    e->ev.id_len = id_len;
  }
  if (body) {
    if ((e->body = malloc(body_len ? body_len : 1)) == NULL) return WHISPER_ENOMEM;
    if (body_len) memcpy(e->body, body, body_len);
    e->body_len = body_len;
  }
  return WHISPER_OK;
}

void sy_event_free(sy_event *e) {
  if (e == NULL) return;
  free(e->conversation);
  free(e->from);
  free(e->message);
  free(e->id);
  free(e->target_id);
  free(e->target_sender);
  if (e->body) {
    wh_wipe(e->body, e->body_len);
    free(e->body);
  }
  free(e);
}

void sy_event_push(whisper_client *c, sy_event *e) {
  if (e == NULL) return;
  e->next = NULL;
  if (c->ev_tail) c->ev_tail->next = e;
  else c->ev_head = e;
  c->ev_tail = e;
}

void sy_error_event(whisper_client *c, int code, int server_code, const char *message) {
  sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
  if (e == NULL) return;
  e->ev.code = code;
  e->ev.server_code = server_code;
  if (message && (e->message = sy_strdup(message)) == NULL) {
    sy_event_free(e);
    return;
  }
  sy_event_push(c, e);
}

int whisper_client_take_event(whisper_client *c, whisper_client_event_t *out) {
  if (c == NULL || out == NULL) return 0;
  inq_flush_due(c);
  sy_event_free(c->ev_cur);
  c->ev_cur = NULL;
  sy_event *e = c->ev_head;
  if (e == NULL) return 0;
  c->ev_head = e->next;
  if (c->ev_head == NULL) c->ev_tail = NULL;
  c->ev_cur = e;
  whisper_client_event_t ev = e->ev;
  ev.conversation = e->conversation;
  ev.from = e->from;
  ev.id = e->id;
  ev.id_len = e->id ? e->ev.id_len : 0;
  ev.body = e->body;
  ev.body_len = e->body_len;
  ev.message = e->message;
  ev.target_id = e->target_id;
  ev.target_id_len = e->target_id ? e->ev.target_id_len : 0;
  ev.target_sender = e->target_sender;
  /* only the fields of the caller's config version: an older caller's
   * struct ends before the later ones */
  memcpy(out, &ev, c->event_size);
  return 1;
}

/* --- frames out --------------------------------------------------------------------------- */

int sy_queue(whisper_client *c, Whisper__Sync__Frame *f, int kind, int timeout, sy_req **req_out) {
  sy_req *r = NULL;
  if (req_out) *req_out = NULL;
  if (kind) {
    if ((r = calloc(1, sizeof *r)) == NULL) return WHISPER_ENOMEM;
    r->id = ++c->next_id;
    r->kind = kind;
    /* stamped with the clock of the next tick or receive: some calls that
     * queue requests (subscribe, link_approve) are not given the time */
    r->timed = timeout;
    f->has_id = 1;
    f->id = r->id;
  }
  size_t n = wh_frame_prepare(f); /* (its id set) */
  sy_out *o = calloc(1, sizeof *o);
  if (o == NULL || (o->frame = whisper_buf_new(NULL, n)) == NULL) {
    free(o);
    free(r);
    return WHISPER_ENOMEM;
  }
  whisper__sync__frame__pack(f, o->frame->data);
  wh_outq_push(&c->out, &o->link);
  if (r) {
    r->next = c->reqs;
    c->reqs = r;
  }
  if (req_out) *req_out = r;
  return WHISPER_OK;
}

static void out_free(wh_out *o) {
  whisper_buf_free(((sy_out *)o)->frame);
  free(o);
}

void sy_out_truncate(whisper_client *c, wh_out *mark) {
  for (wh_out *o = wh_outq_cut(&c->out, mark), *next; o; o = next) {
    next = o->next;
    out_free(o);
  }
}

static void req_free(sy_req *r) {
  for (size_t i = 0; i < r->n_devs; i++) free(r->devs[i].account);
  free(r->devs);
  free(r);
}

static const sy_req *req_find(const whisper_client *c, uint64_t id) {
  for (const sy_req *r = c->reqs; r; r = r->next)
    if (r->id == id) return r;
  return NULL;
}

static sy_req *req_take(whisper_client *c, uint64_t id) {
  for (sy_req **p = &c->reqs; *p; p = &(*p)->next)
    if ((*p)->id == id) {
      sy_req *r = *p;
      *p = r->next;
      return r;
    }
  return NULL;
}

/* --- Deliver frames, handled together --------------------------------------------------------- */

static void inq_drop(whisper_client *c) {
  for (size_t i = 0; i < c->n_inq; i++) whisper__sync__frame__free_unpacked(c->inq[i], &wh_pb_alloc);
  free(c->inq);
  c->inq = NULL;
  c->n_inq = c->cap_inq = 0;
  c->inq_bytes = 0;
}

/* Takes a Deliver frame to handle later (0), or says it cannot (-1). */
static int inq_add(whisper_client *c, Whisper__Sync__Frame *f) {
  if (c->n_inq == c->cap_inq) {
    size_t cap = c->cap_inq ? 2 * c->cap_inq : 64;
    Whisper__Sync__Frame **n = realloc(c->inq, cap * sizeof *n);
    if (n == NULL) return -1;
    c->inq = n;
    c->cap_inq = cap;
  }
  c->inq[c->n_inq++] = f;
  return 0;
}

/* Handles the Deliver frames received so far: in batches of one store
 * transaction each (inbox.c), their events raised and their Ack due once
 * committed; then what they made due (receipts, retries) goes out. */
/* Whether the entries waiting should be handled now: at once, but while
 * the backlog arrives (c->catching) only once a batch is worth a commit:
 * half the server's push window of them (so that it pushes the next half
 * meanwhile; at most SY_CATCH_BATCH), all the server said were waiting, or
 * SY_CATCH_WAIT_MS after the first (a server that pushes fewer at a time,
 * or misstates the count). */
static int inq_due(const whisper_client *c) {
  if (c->n_inq == 0) return 0;
  if (!c->catching) return 1;
  return c->n_inq >= c->catch_batch || c->catch_done + c->n_inq >= c->catch_total ||
         c->now >= c->inq_at + SY_CATCH_WAIT_MS;
}

static void inq_flush_due(whisper_client *c) {
  if (inq_due(c)) inq_flush(c);
}

static void inq_flush(whisper_client *c) {
  if (c->n_inq == 0) return;
  Whisper__Sync__Frame **q = c->inq;
  size_t n = c->n_inq;
  c->inq = NULL;
  c->n_inq = c->cap_inq = 0;
  c->inq_bytes = 0;
  sy_deliver_many(c, q, n);
  for (size_t i = 0; i < n; i++) whisper__sync__frame__free_unpacked(q[i], &wh_pb_alloc);
  free(q);
  /* (tick) what they stored waits for the search index (receipts store none) */
  if (c->caught_up && c->searched && !c->index_at) c->index_at = c->now + SY_INDEX_DELAY_MS;
  c->searched = 0;
  if (c->retry_due) sy_retry_held(c);
  if (c->profile_due) sy_profile_flush(c);
  sy_pump(c);
}

static void connection_reset(whisper_client *c) {
  wh_outq_clear(&c->out, out_free);
  while (c->reqs) {
    sy_req *r = c->reqs;
    c->reqs = r->next;
    req_free(r);
  }
  sy_media_disconnected(c);
  c->connected = c->logged_in = c->close_wanted = c->caught_up = 0;
  c->catching = 0;
  c->window = 1; /* (the login says more) */
  c->have_nonce = c->hello_sent = c->auth_sent = c->register_sent = c->link_sent = 0;
  c->register_exists = 0;
  c->nonce_len = 0;
  c->acked = c->ack_retry_at = c->receipts_at = 0;
  c->upload_inflight = c->ping_inflight = 0;
  c->spk_inflight = c->spk_server_known = 0;
  c->send_wait = 0;
  c->send_retry_at = 0;
  sy_names_free(&c->unlisted);
  c->unlisted_at = c->unlisted_wait = 0;
  sy_jobs_free(c);
  sy_names_free(&c->refreshed);
  sy_names_free(&c->fetching);
  for (size_t i = 0; i < c->n_ops; i++) c->ops[i].inflight = 0;
  for (sy_approve *a = c->approvals; a; a = a->next) a->inflight = 0;
  /* typing indicators from others end with the connection */
  for (sy_typing *t = c->typing_in; t; t = t->next) t->at = 0;
  sy_typing_tick(c);
}

/* --- the handle ------------------------------------------------------------------------------ */

_Static_assert(WH_ACCOUNT_MAX == WHISPER_ACCOUNT_NAME_MAX, "WH_ACCOUNT_MAX is not client.h's");

int whisper_account_name_check(const char *name) {
  return name && wh_account_ok(name) ? WHISPER_OK : WHISPER_EINVAL;
}

int whisper_client_new(whisper_client **out, whisper_ctx *ctx, const whisper_client_config_t *cfg) {
  static const whisper_client_config_t defaults = WHISPER_CLIENT_CONFIG_INIT;
  if (out == NULL) return WHISPER_EINVAL;
  *out = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (cfg == NULL) cfg = &defaults;
  if (cfg->version < 1 || cfg->version > WHISPER_CLIENT_CONFIG_VERSION)
    return wh_fail(ctx, WHISPER_EINVAL,
                   "client configuration version %u unknown (this library knows 1..%d): "
                   "initialize it with WHISPER_CLIENT_CONFIG_INIT",
                   cfg->version, WHISPER_CLIENT_CONFIG_VERSION);
  if (cfg->version < 1 || cfg->prekey_batch == 0 || cfg->prekey_batch > 1000 ||
      cfg->backoff_min_ms == 0 || cfg->backoff_max_ms < cfg->backoff_min_ms ||
      cfg->request_timeout_ms == 0 ||
      (cfg->version >= 4 && (cfg->max_group_members < 2 || cfg->max_group_members > WHISPER_GROUP_MEMBERS_MAX)) ||
      (cfg->version >= 6 && cfg->signed_prekey_rotate_ms && cfg->signed_prekey_rotate_ms < 60000))
    return wh_fail(ctx, WHISPER_EINVAL, "bad client configuration");
  if (ctx->store->ops.version < 2 || ctx->store->ops.scan == NULL)
    return wh_fail(ctx, WHISPER_ESTATE, "the engine needs a store with scan()");
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if (!wh_account_ok(ctx->name) || !wh_device_id_ok(ctx->device_id))
    return wh_fail(ctx, WHISPER_ESTATE,
                   "the identity's name is not an account name (1-64 of [a-z0-9._-]) or its device id is out of range");
  whisper_client *c = calloc(1, sizeof *c);
  if (c == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  c->ctx = ctx;
  c->cfg = defaults;
  /* an older caller's struct ends before the fields of later versions */
  memcpy(&c->cfg, cfg, cfg->version >= 7   ? sizeof c->cfg
                       : cfg->version == 6 ? offsetof(whisper_client_config_t, send_window)
                       : cfg->version == 5 ? offsetof(whisper_client_config_t, signed_prekey_rotate_ms)
                       : cfg->version == 4 ? offsetof(whisper_client_config_t, media_dir)
                       : cfg->version == 3 ? offsetof(whisper_client_config_t, max_group_members)
                       : cfg->version == 2 ? offsetof(whisper_client_config_t, delete_window_ms)
                                           : offsetof(whisper_client_config_t, hold_on_change));
  /* the event struct the caller has: the fields of its config version */
  c->event_size = cfg->version >= 5   ? sizeof(whisper_client_event_t)
                  : cfg->version >= 3 ? offsetof(whisper_client_event_t, done_bytes)
                                      : offsetof(whisper_client_event_t, kind);
  c->cfg.version = WHISPER_CLIENT_CONFIG_VERSION;
  if (c->cfg.media_max_size == 0 || c->cfg.media_max_size > WHISPER_ATTACHMENT_SIZE_MAX)
    c->cfg.media_max_size = defaults.media_max_size;
  if (c->cfg.media_piece < 4096 || c->cfg.media_piece > (64u << 20)) c->cfg.media_piece = defaults.media_piece;
  if (c->cfg.send_window == 0) c->cfg.send_window = 1;
  if (c->cfg.send_window > WHISPER_SEND_WINDOW_MAX) c->cfg.send_window = WHISPER_SEND_WINDOW_MAX;
  if (c->cfg.media_dir && (c->media_dir = sy_strdup(c->cfg.media_dir)) == NULL) {
    free(c);
    return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  }
  c->cfg.media_dir = c->media_dir; /* the caller's string need not outlive this call */
  strcpy(c->account, ctx->name);
  c->device_id = ctx->device_id;
  rc = sy_state_load(c);
  if (rc == WHISPER_OK) rc = sy_ops_load(c);
  if (rc == WHISPER_OK) rc = sy_block_load(c);
  if (rc == WHISPER_OK) rc = sy_media_load(c);
  if (rc != WHISPER_OK) {
    whisper_client_free(c);
    return rc;
  }
  c->link_mode = !c->registered && c->device_id != 1;
  *out = c;
  return wh_ok(ctx);
}

void whisper_client_free(whisper_client *c) {
  if (c == NULL) return;
  inq_drop(c); /* not acknowledged: they come again */
  connection_reset(c);
  while (c->ev_head) {
    sy_event *e = c->ev_head;
    c->ev_head = e->next;
    sy_event_free(e);
  }
  sy_event_free(c->ev_cur);
  sy_names_free(&c->blocked);
  sy_block_free(c);
  sy_ops_free(c);
  sy_typing_free(c);
  for (size_t i = 0; i < c->n_subs; i++) free(c->subs[i]);
  free(c->subs);
  while (c->approvals) {
    sy_approve *a = c->approvals;
    c->approvals = a->next;
    sy_approve_free(a);
  }
  free(c->held);
  free(c->above);
  sy_rates_free(c);
  sy_media_free(c);
  free(c->media_dir);
  wh_wipe(c->nonce, sizeof c->nonce);
  free(c);
}

/* --- the connection ---------------------------------------------------------------------------- */

int whisper_client_want_connect(const whisper_client *c, uint64_t now_ms) {
  return c && !c->connected && now_ms >= c->next_connect_at;
}

int whisper_client_connected(whisper_client *c, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  inq_flush(c);
  connection_reset(c);
  c->now = now_ms;
  c->connected = 1;
  c->last_rx = now_ms;
  sy_login_start(c);
  return WHISPER_OK;
}

void whisper_client_disconnected(whisper_client *c, uint64_t now_ms) {
  if (c == NULL) return;
  c->now = now_ms;
  inq_flush(c); /* stored; their Ack is lost with the connection: they come again, and are
                 * recognised */
  int was = c->connected;
  connection_reset(c);
  /* a connection that never opened backs off too, unless already waiting */
  if (!was && c->next_connect_at > now_ms) return;
  /* exponential backoff with jitter: a delay in [d/2, d] */
  unsigned shift = c->attempts < 30 ? c->attempts : 30;
  uint64_t d = c->cfg.backoff_min_ms;
  for (unsigned i = 0; i < shift && d < c->cfg.backoff_max_ms; i++) d *= 2;
  if (d > c->cfg.backoff_max_ms) d = c->cfg.backoff_max_ms;
  uint8_t r[8] = {0};
  uint64_t rnd = 0;
  if (wh_random(&c->ctx->rng, r, sizeof r) == 0)
    for (int i = 0; i < 8; i++) rnd = rnd << 8 | r[i];
  uint64_t half = d / 2;
  c->next_connect_at = now_ms + half + (half ? rnd % (d - half + 1) : 0);
  c->attempts++;
}

int whisper_client_want_disconnect(const whisper_client *c) { return c && c->close_wanted; }

int whisper_client_take_frame(whisper_client *c, whisper_buf **out) {
  if (c == NULL || out == NULL) return 0;
  *out = NULL;
  inq_flush_due(c);
  if (!c->connected) return 0;
  sy_ack_flush(c);
  sy_out *o = (sy_out *)wh_outq_pop(&c->out);
  if (o == NULL) return 0;
  *out = o->frame;
  free(o);
  return 1;
}

/* An answer whose body is not what the request expects. */
static void unexpected(whisper_client *c, sy_req *r) {
  char msg[96];
  snprintf(msg, sizeof msg, "unexpected answer to request %llu", (unsigned long long)r->id);
  sy_error_event(c, WHISPER_EINVALIDMSG, 0, msg);
  c->close_wanted = 1;
}

static void answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  int is_ok = f->body_case == WHISPER__SYNC__FRAME__BODY_OK;
  if (is_ok) sy_prekeys_check(c, f->ok);
  switch (r->kind) {
    case RQ_REGISTER:
    case RQ_HELLO:
    case RQ_AUTH:
    case RQ_UPLOAD:
    case RQ_LINK_REQUEST:
      sy_login_answer(c, r, f);
      break;
    case RQ_LIST:
    case RQ_FETCH:
    case RQ_SEND:
    case RQ_SKDM:
      sy_send_answer(c, r, f);
      break;
    case RQ_OP:
      sy_op_answer(c, r, f);
      break;
    case RQ_PING:
      c->ping_inflight = 0;
      if (f->body_case != WHISPER__SYNC__FRAME__BODY_PONG &&
          f->body_case != WHISPER__SYNC__FRAME__BODY_ERROR)
        unexpected(c, r);
      break;
    case RQ_LINK_APPROVE:
    case RQ_PUBLISH:
      sy_publish_answer(c, r, f);
      break;
    case RQ_OWN_BUNDLES:
      sy_login_answer(c, r, f);
      break;
    case RQ_PROFILE_SET:
    case RQ_PROFILE_GET:
      sy_profile_answer(c, r, f);
      break;
    case RQ_BLOCK:
    case RQ_REPORT:
      sy_block_answer(c, r, f);
      break;
    case RQ_MEDIA_AUTH:
      sy_media_token_answer(c, r, f);
      break;
    case RQ_SPK:
      sy_spk_answer(c, r, f);
      break;
    case RQ_ACK:
      /* An Ack the server did not take (over its rate limit, or its store
       * failed) goes again, later: the server pushes no more entries past
       * its window until one is taken, so a lost Ack stalled the mailbox. */
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR &&
          (f->error->code == ERR_RATE || f->error->code == ERR_INTERNAL)) {
        uint64_t wait = f->has_retry_ms && f->retry_ms ? f->retry_ms : SY_RETRY_MS;
        c->acked = 0;
        c->ack_retry_at = c->now + (wait < 600000 ? wait : 600000);
        break;
      }
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR)
        sy_error_event(c, WHISPER_EINVAL, (int)f->error->code,
                       f->error->message ? f->error->message : "request refused");
      break;
    default:
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR) {
        const Whisper__Sync__Error *e = f->error;
        sy_error_event(c, WHISPER_EINVAL, (int)e->code, e->message ? e->message : "request refused");
      }
      break;
  }
}

/* Checks what the handlers rely on, so that a frame refused here changes
 * nothing. */
static int frame_ok(const Whisper__Sync__Frame *f) {
  if (!f->has_version || f->version != WH_SYNC_PROTOCOL) return 0;
  switch (f->body_case) {
    case WHISPER__SYNC__FRAME__BODY_CHALLENGE:
      return f->challenge->has_nonce && f->challenge->nonce.len >= 16 &&
             f->challenge->nonce.len <= 64;
    case WHISPER__SYNC__FRAME__BODY_DELIVER:
      return f->deliver->has_seq && f->deliver->seq > 0 && f->deliver->has_kind;
    case WHISPER__SYNC__FRAME__BODY_ERROR:
      return f->error->has_code;
    case WHISPER__SYNC__FRAME__BODY_SENT:
      return f->sent->has_server_seq;
    case WHISPER__SYNC__FRAME__BODY_STALE:
      return wh_account_ok(f->stale->account);
    case WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE:
      return wh_account_ok(f->typing_notice->from) &&
             (!f->typing_notice->has_group_id ||
              f->typing_notice->group_id.len == WHISPER_GROUP_ID_LEN);
    case WHISPER__SYNC__FRAME__BODY_PRESENCE:
      return wh_account_ok(f->presence->account);
    case WHISPER__SYNC__FRAME__BODY_LINK_CODE:
      return f->link_code->has_link_code && f->link_code->link_code.len == SY_LINK_CODE_LEN;
    case WHISPER__SYNC__FRAME__BODY__NOT_SET:
      return 0;
    default:
      return 1;
  }
}

static void stamp_requests(whisper_client *c, uint64_t now_ms);

int whisper_client_receive(whisper_client *c, const uint8_t *frame, size_t len, uint64_t now_ms) {
  if (c == NULL || (frame == NULL && len)) return WHISPER_EINVAL;
  Whisper__Sync__Frame *f = whisper__sync__frame__unpack(&wh_pb_alloc, len, frame);
  if (f == NULL || !frame_ok(f)) {
    if (f) whisper__sync__frame__free_unpacked(f, &wh_pb_alloc);
    return sy_fail(c, WHISPER_EINVALIDMSG, "a frame that is not a sync.proto frame");
  }
  int rc = WHISPER_OK;
  c->now = now_ms;
  stamp_requests(c, now_ms);
  if (!c->connected) goto done;
  c->last_rx = now_ms;
  /* entries wait to be handled together (up to SY_BATCH_MAX) */
  if (!(f->has_id && f->id != 0) && f->body_case == WHISPER__SYNC__FRAME__BODY_DELIVER &&
      c->logged_in && !c->close_wanted && inq_add(c, f) == 0) {
    if (c->n_inq == 1) c->inq_at = now_ms;
    c->inq_bytes += len;
    if (c->n_inq >= SY_BATCH_MAX || c->inq_bytes >= SY_BATCH_BYTES) inq_flush(c);
    return WHISPER_OK;
  }
  /* what came before goes first; but the answers to Sends, Acks and Pings
   * (which entries do not depend on) leave a batch growing */
  const sy_req *ar = f->has_id && f->id != 0 ? req_find(c, f->id) : NULL;
  if (ar == NULL || (ar->kind != RQ_SEND && ar->kind != RQ_ACK && ar->kind != RQ_PING)) inq_flush(c);
  if (f->has_id && f->id != 0) {
    sy_req *r = req_take(c, f->id);
    if (r) {
      answer(c, r, f);
      req_free(r);
    }
    goto done;
  }
  switch (f->body_case) {
    case WHISPER__SYNC__FRAME__BODY_CHALLENGE:
      sy_login_on_challenge(c, f->challenge);
      break;
    case WHISPER__SYNC__FRAME__BODY_DELIVER:
      if (c->logged_in) rc = sy_deliver(c, f->deliver, 0);
      if (c->caught_up && c->searched && !c->index_at) c->index_at = now_ms + SY_INDEX_DELAY_MS;
      c->searched = 0;
      break;
    case WHISPER__SYNC__FRAME__BODY_QUEUE_EMPTY:
      if (c->logged_in) {
        /* the backlog is in: what it stored is indexed for search on the
         * next ticks, a few messages at a time */
        c->caught_up = 1;
        c->catching = 0;
        c->index_at = now_ms + SY_INDEX_GAP_MS;
        if (c->receipts_at) sy_ops_flush(c); /* the receipts held for the backlog's end */
        sy_event *e = sy_event_new(c, WHISPER_EV_CAUGHT_UP);
        if (e) e->ev.server_seq = f->queue_empty->last_seq;
        sy_event_push(c, e);
      }
      break;
    case WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE:
      sy_typing_in_notice(c, f->typing_notice);
      break;
    case WHISPER__SYNC__FRAME__BODY_PRESENCE: {
      if (sy_block_has(c, f->presence->account)) break; /* block.c */
      sy_event *e = sy_event_new(c, WHISPER_EV_PRESENCE);
      if (e && sy_event_set(e, NULL, f->presence->account, NULL, 0, NULL, 0) == WHISPER_OK) {
        e->ev.online = f->presence->online;
        e->ev.last_seen_ms = f->presence->last_seen_ms;
        sy_event_push(c, e);
      } else {
        sy_event_free(e);
      }
      break;
    }
    case WHISPER__SYNC__FRAME__BODY_ERROR:
      sy_error_event(c, WHISPER_EINVAL, (int)f->error->code,
                     f->error->message ? f->error->message : "error from the server");
      break;
    default:
      break; /* pushes this engine does not use */
  }
done:
  whisper__sync__frame__free_unpacked(f, &wh_pb_alloc);
  if (c->retry_due) sy_retry_held(c);
  if (c->profile_due) sy_profile_flush(c);
  sy_pump(c);
  return rc;
}

/* --- timers ---------------------------------------------------------------------------------- */

/* Gives the requests queued since the last tick or receive their deadline. */
static void stamp_requests(whisper_client *c, uint64_t now_ms) {
  for (sy_req *r = c->reqs; r; r = r->next)
    if (r->timed && r->deadline == 0) r->deadline = now_ms + c->cfg.request_timeout_ms;
}

uint64_t whisper_client_next_deadline(const whisper_client *c) {
  if (c == NULL) return UINT64_MAX;
  if (inq_due(c)) return c->now; /* entries to handle: tick now */
  uint64_t d = sy_media_deadline(c); /* encryption runs offline too */
  if (!c->connected) return c->next_connect_at < d ? c->next_connect_at : d;
  for (const sy_req *r = c->reqs; r; r = r->next) {
    if (r->timed && r->deadline == 0) return c->now; /* to be stamped: tick now */
    if (r->deadline && r->deadline < d) d = r->deadline;
  }
  if (!c->ping_inflight && c->cfg.ping_ms && c->last_rx + c->cfg.ping_ms < d)
    d = c->last_rx + c->cfg.ping_ms;
  if (c->send_retry_at && c->send_retry_at < d) d = c->send_retry_at;
  if (c->unlisted_at && c->unlisted_at < d) d = c->unlisted_at;
  uint64_t t = sy_typing_deadline(c);
  if (t < d) d = t;
  if (c->caught_up && c->index_at && c->index_at < d) d = c->index_at; /* search indexing */
  if (c->n_inq && c->inq_at + SY_CATCH_WAIT_MS < d) d = c->inq_at + SY_CATCH_WAIT_MS; /* a batch */
  if (c->ack_retry_at && c->ack_retry_at < d) d = c->ack_retry_at; /* an Ack again */
  if (c->receipts_at && c->receipts_at < d) d = c->receipts_at;   /* receipts held */
  if (c->logged_in && c->spk_due_at && c->spk_due_at < d) d = c->spk_due_at; /* login.c */
  return d;
}

void whisper_client_tick(whisper_client *c, uint64_t now_ms) {
  if (c == NULL) return;
  c->now = now_ms;
  inq_flush_due(c);
  sy_typing_tick(c);
  sy_media_tick(c, now_ms);
  if (!c->connected || c->close_wanted) return;
  stamp_requests(c, now_ms);
  for (const sy_req *r = c->reqs; r; r = r->next)
    if (r->deadline && r->deadline <= now_ms) {
      sy_error_event(c, WHISPER_ESTATE, 0, "the server did not answer in time");
      c->close_wanted = 1;
      return;
    }
  if (!c->ping_inflight && c->cfg.ping_ms && now_ms >= c->last_rx + c->cfg.ping_ms) {
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    Whisper__Sync__Ping p = WHISPER__SYNC__PING__INIT;
    p.has_nonce = 1;
    p.nonce = now_ms;
    f.body_case = WHISPER__SYNC__FRAME__BODY_PING;
    f.ping = &p;
    if (sy_queue(c, &f, RQ_PING, 1, NULL) == WHISPER_OK) c->ping_inflight = 1;
  }
  if (c->send_retry_at && now_ms >= c->send_retry_at) {
    c->send_retry_at = 0;
    sy_ops_flush(c);
    sy_block_flush(c);
  }
  if (c->ack_retry_at && now_ms >= c->ack_retry_at) sy_ack_flush(c); /* (it clears it) */
  if (c->receipts_at && now_ms >= c->receipts_at) sy_ops_flush(c);    /* (the same) */
  if (c->unlisted_at && now_ms >= c->unlisted_at) { /* their lists are asked for again */
    c->unlisted_at = 0;
    sy_names_free(&c->unlisted);
  }
  if (c->caught_up && c->index_at && now_ms >= c->index_at) {
    /* a few messages indexed for search, the next few a moment later (the
     * app's loop reads the network in between); a failure stops it until
     * more comes: whisper_search() reports it */
    int more = 0;
    int rc = wh_search_index_some(c->ctx, SY_INDEX_BATCH, &more);
    c->index_at = rc == WHISPER_OK && more ? now_ms + SY_INDEX_GAP_MS : 0;
  }
  if (c->logged_in && c->spk_due_at && now_ms >= c->spk_due_at) sy_spk_check(c);
  sy_pump(c);
}

/* --- held messages ------------------------------------------------------------------------------ */

int whisper_client_retry(whisper_client *c, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  inq_flush(c);
  sy_names_free(&c->blocked);
  sy_retry_held(c);
  if (c->profile_due) sy_profile_flush(c);
  sy_pump(c);
  return WHISPER_OK;
}
