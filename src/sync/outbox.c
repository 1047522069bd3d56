/*
 * Sending. The outbox (history.c) holds every message the server has not
 * taken; after each login the engine loads it as jobs and sends them one
 * at a time, in order:
 *
 *   1:1   the device lists of the recipient and of this account (from the
 *         store, else ListDevices), sessions for devices without one
 *         (FetchBundles, whisper_session_start), one ciphertext per device,
 *         Send. StaleDevices updates the lists and the same client id is
 *         sent again, encrypted anew.
 *   group the members' device lists (listed once per connection, so new
 *         devices are seen), sessions, then this device's sender key to
 *         every member device that does not have it (Send{CONTENT_SKDM}
 *         per member account, with copies for this account's other
 *         devices), then Send{group_id, body} encrypted once.
 *
 * Devices are the ones the account's signed list names (trust.c), listed
 * once per connection and again when the server says a list is stale; a
 * bundle whose identity key is not the one the list names is refused. A
 * recipient with no list yet waits (unlisted) and is listed again. The
 * body goes inside a Payload that names its conversation.
 *
 * Sent moves the message out of the outbox, sorted by the server's
 * sequence (whisper_history_sent), with the exact recipient devices.
 * A conversation whose recipient's identity changed waits (EV_IDENTITY)
 * until whisper_client_retry(); a message the server refuses for good
 * (unknown account, not a member) is given up for this connection with
 * EV_ERROR and stays in the outbox.
 */
#include <stdio.h>

#include "sync/sync_internal.h"

/* STEP_SENT: the job's Send is out (in flight): the next job may go. */
enum { STEP_WAIT, STEP_DONE, STEP_DROP, STEP_BLOCKED, STEP_AGAIN, STEP_STOP, STEP_SENT };

/* --- jobs --------------------------------------------------------------------------------- */

static void kept_drop(sy_job *j) {
  whisper_buf_free(j->kept);
  for (size_t i = 0; i < j->n_kept_devs; i++) free(j->kept_devs[i].account);
  free(j->kept_devs);
  j->kept = NULL;
  j->kept_devs = NULL;
  j->n_kept_devs = 0;
}

static void job_free(sy_job *j) {
  kept_drop(j);
  if (j->body) {
    wh_wipe(j->body, j->body_len);
    free(j->body);
  }
  if (j->content) {
    wh_wipe(j->content, j->content_len);
    free(j->content);
  }
  free(j);
}

void sy_jobs_free(whisper_client *c) {
  while (c->jobs) {
    sy_job *j = c->jobs;
    c->jobs = j->next;
    job_free(j);
  }
  c->cur_job = NULL;
  c->outbox_more = 0;
  c->n_inflight = 0;
  c->draining = 0;
  c->after_req = 0;
  sy_names_free(&c->dropped);
}

static void id_hex(char out[2 * WHISPER_CLIENT_ID_LEN + 1], const uint8_t *id) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < WHISPER_CLIENT_ID_LEN; i++) {
    out[2 * i] = hex[id[i] >> 4];
    out[2 * i + 1] = hex[id[i] & 15];
  }
  out[2 * WHISPER_CLIENT_ID_LEN] = '\0';
}

int sy_job_add(whisper_client *c, const char *conv, const uint8_t *id, const uint8_t *body,
               size_t len) {
  return sy_job_add_content(c, conv, id, body, len, NULL, 0, 0);
}

int sy_job_add_content(whisper_client *c, const char *conv, const uint8_t *id, const uint8_t *body,
                       size_t len, const uint8_t *content, size_t content_len, int hidden) {
  char hx[2 * WHISPER_CLIENT_ID_LEN + 1];
  id_hex(hx, id);
  if (sy_name_has(c->dropped, hx)) return WHISPER_OK;
  sy_job **tail = &c->jobs;
  for (; *tail; tail = &(*tail)->next)
    if (memcmp((*tail)->id, id, WHISPER_CLIENT_ID_LEN) == 0 && strcmp((*tail)->conv, conv) == 0)
      return WHISPER_OK;
  sy_job *j = calloc(1, sizeof *j);
  if (j == NULL || (j->body = malloc(len ? len : 1)) == NULL ||
      (content && (j->content = malloc(content_len ? content_len : 1)) == NULL)) {
    if (j) free(j->body);
    free(j);
    return WHISPER_ENOMEM;
  }
  if (len) memcpy(j->body, body, len);
  j->body_len = len;
  if (content_len) memcpy(j->content, content, content_len);
  j->content_len = content_len;
  j->hidden = hidden;
  snprintf(j->conv, sizeof j->conv, "%s", conv);
  memcpy(j->id, id, WHISPER_CLIENT_ID_LEN);
  j->group = wh_group_conv_parse(conv, j->group_id);
  *tail = j;
  return WHISPER_OK;
}

int sy_receipt_job(whisper_client *c, const sy_op *o) {
  whisper_buf *pl = NULL;
  int rc = sy_payload_receipt(c, o->to, (int)o->code, (const uint8_t(*)[WHISPER_CLIENT_ID_LEN])o->ids,
                              o->n_ids, &pl);
  if (rc != WHISPER_OK) return rc;
  rc = sy_job_add(c, o->to, o->cid, pl->data, pl->len);
  whisper_buf_free(pl);
  if (rc != WHISPER_OK) return rc;
  for (sy_job *j = c->jobs; j; j = j->next)
    if (memcmp(j->id, o->cid, WHISPER_CLIENT_ID_LEN) == 0) j->receipt = 1;
  return WHISPER_OK;
}

int sy_resend_job(whisper_client *c, const char *conv, const char *to, uint32_t device,
                  const sy_body *b, uint64_t sent_at) {
  uint8_t gid[WHISPER_GROUP_ID_LEN], jid[WHISPER_CLIENT_ID_LEN];
  const uint8_t *id = b->id;
  int group = wh_group_conv_parse(conv, gid);
  whisper_buf *pl = NULL; /* it keeps the time it was written */
  int rc = sy_payload_make(group ? NULL : conv, group ? gid : NULL, b, sy_outref_counter(c, id),
                           sent_at, 1, &pl);
  if (rc == WHISPER_OK && wh_random(&c->ctx->rng, jid, sizeof jid) != 0) rc = WHISPER_ERANDOM;
  /* a fresh session with that device: a new bundle before it goes */
  sy_devlist l;
  if (rc == WHISPER_OK && (rc = sy_devs_load(c, to, &l)) == WHISPER_OK) {
    sy_dev *d = sy_devs_find(&l, device);
    if (d) d->refetch = 1, d->regid = 0;
    rc = sy_devs_save(c, to, &l);
    sy_devs_free(&l);
  }
  if (rc == WHISPER_OK && group) { /* and this device's sender key for it again */
    sy_group g;
    if ((rc = sy_group_load(c, gid, &g)) == WHISPER_OK) {
      size_t w = 0;
      for (size_t i = 0; i < g.n_have; i++)
        if (g.have[i].device == device && strcmp(g.have[i].account, to) == 0) free(g.have[i].account);
        else g.have[w++] = g.have[i];
      g.n_have = w;
      if (g.known) rc = sy_group_save(c, gid, &g);
      sy_group_free(&g);
    }
  }
  if (rc == WHISPER_OK) rc = sy_job_add(c, to, jid, pl->data, pl->len);
  for (sy_job *j = c->jobs; rc == WHISPER_OK && j; j = j->next)
    if (memcmp(j->id, jid, sizeof jid) == 0) {
      j->kind = JOB_RESEND;
      j->device = device;
      memcpy(j->resend_of, id, WHISPER_CLIENT_ID_LEN);
    }
  whisper_buf_free(pl);
  return rc;
}

int sy_jobs_load(whisper_client *c) {
  whisper_page *p = NULL;
  int rc = whisper_outbox_page(c->ctx, SY_OUTBOX_PAGE, &p);
  if (rc != WHISPER_OK) return rc;
  size_t n = whisper_page_count(p);
  for (size_t i = 0; i < n && rc == WHISPER_OK; i++) {
    const whisper_message_t *m = whisper_page_get(p, i);
    if (m->id_len != WHISPER_CLIENT_ID_LEN) continue; /* not the engine's */
    uint8_t gid[WHISPER_GROUP_ID_LEN];
    if (!wh_account_ok(m->conversation) && !wh_group_conv_parse(m->conversation, gid)) continue;
    const uint8_t *ct;
    size_t ctl;
    int hidden;
    wh_page_content(p, i, &ct, &ctl, &hidden);
    rc = sy_job_add_content(c, m->conversation, m->id, m->body, m->body_len, ct, ctl, hidden);
  }
  c->outbox_more = n == SY_OUTBOX_PAGE;
  whisper_page_free(p);
  return rc;
}

static void job_remove(whisper_client *c, sy_job *j, int dropped) {
  if (dropped) {
    char hx[2 * WHISPER_CLIENT_ID_LEN + 1];
    id_hex(hx, j->id);
    sy_name_add(&c->dropped, hx);
  }
  for (sy_job **p = &c->jobs; *p; p = &(*p)->next)
    if (*p == j) {
      *p = j->next;
      break;
    }
  if (c->cur_job == j) c->cur_job = NULL;
  if (j->inflight && c->n_inflight) c->n_inflight--;
  job_free(j);
}

static void job_error(whisper_client *c, sy_job *j, int code, int server_code, const char *msg) {
  sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
  if (e == NULL) return;
  e->ev.code = code;
  e->ev.server_code = server_code;
  if (sy_event_set(e, j->conv, NULL, j->id, WHISPER_CLIENT_ID_LEN, NULL, 0) != WHISPER_OK ||
      (msg && (e->message = sy_strdup(msg)) == NULL)) {
    sy_event_free(e);
    return;
  }
  sy_event_push(c, e);
}

void sy_identity_event(whisper_client *c, const char *name, uint32_t device, const uint8_t *key) {
  sy_event *e = sy_event_new(c, WHISPER_EV_IDENTITY);
  if (e == NULL) return;
  if (sy_event_set(e, name, name, NULL, 0, key, key ? WHISPER_PUBLIC_KEY_LEN : 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.from_device = device;
  sy_event_push(c, e);
}

static void block(whisper_client *c, sy_job *j, const char *name, uint32_t device,
                  const uint8_t *key) {
  uint8_t k[WHISPER_PUBLIC_KEY_LEN];
  if (key == NULL && whisper_identity_remote(c->ctx, name, device, k) == WHISPER_OK) key = k;
  sy_identity_event(c, name, device, key);
  sy_name_add(&c->blocked, j->conv);
}

/* --- device lists ------------------------------------------------------------------------- */

int sy_own_others(whisper_client *c, sy_devlist *own) {
  int rc = sy_devs_load(c, c->account, own);
  if (rc == WHISPER_OK) sy_devs_del(own, c->device_id);
  return rc;
}

/* A request the job waits for before it goes on (a list, bundles, a
 * sender key's distribution): nothing else is sent meanwhile. */
static int wait_on(whisper_client *c, sy_job *j, sy_req *r) {
  c->send_wait = r->id;
  c->cur_job = j;
  return STEP_WAIT;
}

/* The job's own Send is out: in flight until its answer, while the next
 * jobs go (up to the window). */
static int fly(whisper_client *c, sy_job *j, sy_req *r) {
  j->inflight = r->id;
  c->n_inflight++;
  return STEP_SENT;
}

/* Copies n recipients into *out (NULL and 0 when out of memory). */
static size_t devrefs_copy(sy_devref **out, const sy_devref *from, size_t n) {
  sy_devref *d = calloc(n ? n : 1, sizeof *d);
  *out = d;
  for (size_t i = 0; d && i < n; i++) {
    d[i].device = from[i].device;
    if ((d[i].account = sy_strdup(from[i].account)) == NULL) {
      while (i-- > 0) free(d[i].account);
      free(d);
      *out = NULL;
    }
  }
  return *out ? n : 0;
}

/* Keeps a 1:1 job's Send (just queued as r), packed without its `after`,
 * to send it again as it is if the server does not take it (sy_job). */
static void keep_send(whisper_client *c, sy_job *j, Whisper__Sync__Send *s, const sy_req *r) {
  kept_drop(j);
  int had_after = s->has_after;
  s->has_after = 0;
  j->kept = whisper_buf_new(NULL, whisper__sync__send__get_packed_size(s));
  if (j->kept) whisper__sync__send__pack(s, j->kept->data);
  s->has_after = had_after;
  j->n_kept_devs = devrefs_copy(&j->kept_devs, r->devs, r->n_devs);
  if (j->kept == NULL || j->kept_devs == NULL) kept_drop(j); /* (encrypted anew next time) */
  j->kept_gen = c->devs_gen;
}

static int send_queue(whisper_client *c, Whisper__Sync__Frame *f, int kind, sy_req **out);

/* The job's kept Send again, with the same ciphertexts (a new `after`). */
static int kept_step(whisper_client *c, sy_job *j) {
  Whisper__Sync__Send *s = whisper__sync__send__unpack(&wh_pb_alloc, j->kept->len, j->kept->data);
  if (s == NULL) {
    kept_drop(j);
    return STEP_AGAIN;
  }
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = s;
  sy_req *r;
  int step = STEP_STOP;
  if (send_queue(c, &f, RQ_SEND, &r) == WHISPER_OK) {
    snprintf(r->account, sizeof r->account, "%s", j->conv);
    r->n_devs = devrefs_copy(&r->devs, j->kept_devs, j->n_kept_devs);
    if (r->devs != NULL) step = fly(c, j, r);
  }
  s->has_after = 0; /* (send_queue pointed it at c->after_cid: not the unpacker's to free) */
  s->after = (ProtobufCBinaryData){0, NULL};
  whisper__sync__send__free_unpacked(s, &wh_pb_alloc);
  return step;
}

/* Queues a Send (or a distribution's): pipelined, it names the Send before
 * it that is still unanswered (`after`), so that the server takes them in
 * this order or refuses the rest. */
static int send_queue(whisper_client *c, Whisper__Sync__Frame *f, int kind, sy_req **out) {
  Whisper__Sync__Send *s = f->send;
  if (c->window > 1 && c->after_req) {
    s->has_after = 1;
    s->after = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, c->after_cid};
  }
  int rc = sy_queue(c, f, kind, 1, out);
  if (rc != WHISPER_OK) return rc;
  (*out)->chained = s->has_after;
  c->after_req = (*out)->id;
  memcpy(c->after_cid, s->client_id.data, WHISPER_CLIENT_ID_LEN);
  return WHISPER_OK;
}

sy_req *sy_list_request(whisper_client *c, const char *account) {
  Whisper__Sync__ListDevices l = WHISPER__SYNC__LIST_DEVICES__INIT;
  l.account = (char *)account;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LIST_DEVICES;
  f.list_devices = &l;
  sy_req *r;
  if (sy_queue(c, &f, RQ_LIST, 1, &r) != WHISPER_OK) return NULL;
  snprintf(r->account, sizeof r->account, "%s", account);
  return r;
}

static int list_devices(whisper_client *c, sy_job *j, const char *account) {
  sy_req *r = sy_list_request(c, account);
  return r ? wait_on(c, j, r) : STEP_STOP;
}

/* Devices of `account` (in `l`) that need a session: none yet, or stale. */
static int fetch_if_needed(whisper_client *c, sy_job *j, const char *account, sy_devlist *l) {
  uint32_t *ids = calloc(l->n ? l->n : 1, sizeof *ids);
  size_t n = 0;
  if (ids == NULL) return STEP_STOP;
  int own = strcmp(account, c->account) == 0;
  for (size_t i = 0; i < l->n; i++) {
    if (own && l->d[i].id == c->device_id) continue;
    int exists = 0;
    if (!l->d[i].refetch &&
        whisper_session_exists(c->ctx, account, l->d[i].id, c->now, &exists) != WHISPER_OK)
      exists = 0;
    if (l->d[i].refetch || !exists) ids[n++] = l->d[i].id;
  }
  if (n == 0) {
    free(ids);
    return STEP_DONE;
  }
  if (++j->rounds > 2 * SY_MAX_ROUNDS) {
    free(ids);
    job_error(c, j, WHISPER_ENOSESSION, 0, "no session could be set up with a recipient device");
    return STEP_DROP;
  }
  Whisper__Sync__FetchBundles fb = WHISPER__SYNC__FETCH_BUNDLES__INIT;
  fb.account = (char *)account;
  fb.n_device_ids = n;
  fb.device_ids = ids;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_FETCH;
  f.fetch = &fb;
  sy_req *r;
  int rc = sy_queue(c, &f, RQ_FETCH, 1, &r);
  free(ids);
  if (rc != WHISPER_OK) return STEP_STOP;
  snprintf(r->account, sizeof r->account, "%s", account);
  return wait_on(c, j, r);
}

/* --- ciphertexts -------------------------------------------------------------------------- */

typedef struct enc_set {
  Whisper__Sync__DeviceMessage *dm;
  Whisper__Sync__DeviceMessage **dmp;
  whisper_buf **bufs;
  size_t n, cap;
} enc_set;

static void enc_free(enc_set *s) {
  for (size_t i = 0; i < s->n; i++) whisper_buf_free(s->bufs[i]);
  free(s->dm);
  free(s->dmp);
  free(s->bufs);
  memset(s, 0, sizeof *s);
}

static int enc_init(enc_set *s, size_t cap) {
  memset(s, 0, sizeof *s);
  s->cap = cap ? cap : 1;
  s->dm = calloc(s->cap, sizeof *s->dm);
  s->dmp = calloc(s->cap, sizeof *s->dmp);
  s->bufs = calloc(s->cap, sizeof *s->bufs);
  if (s->dm && s->dmp && s->bufs) return WHISPER_OK;
  enc_free(s);
  return WHISPER_ENOMEM;
}

/* Adds a ciphertext (taken over) for (account, device). */
static void enc_add(whisper_client *c, enc_set *s, const char *account, uint32_t device, int type,
                    whisper_buf *body) {
  Whisper__Sync__DeviceMessage *m = &s->dm[s->n];
  whisper__sync__device_message__init(m);
  m->has_device_id = m->has_type = m->has_body = 1;
  m->device_id = device;
  m->type = (uint32_t)type;
  m->body = (ProtobufCBinaryData){body->len, body->data};
  uint32_t regid = sy_session_regid(c->ctx, account, device);
  if (regid) {
    m->has_registration_id = 1;
    m->registration_id = regid;
  }
  s->dmp[s->n] = m;
  s->bufs[s->n++] = body;
}

/* What to do when encrypting for (account, device) failed with rc. */
static int enc_failed(whisper_client *c, sy_job *j, const char *account, sy_devlist *l,
                      uint32_t device, int rc) {
  if (rc == WHISPER_EUNTRUSTED) {
    block(c, j, account, device, NULL);
    return STEP_BLOCKED;
  }
  if (rc == WHISPER_EROLLEDBACK) { /* a restored session row: never reuse its keys */
    sy_rollback_event(c, account, device);
  }
  if (rc == WHISPER_ENOSESSION || rc == WHISPER_EROLLEDBACK) {
    sy_dev *d = sy_devs_find(l, device);
    if (d) d->refetch = 1;
    if (sy_devs_save(c, account, l) != WHISPER_OK) return STEP_STOP;
    return STEP_AGAIN;
  }
  job_error(c, j, rc, 0, whisper_ctx_last_error(c->ctx));
  return STEP_DROP;
}

static int devrefs_set(sy_req *r, const char *account, const sy_devlist *l, uint32_t skip) {
  sy_devref *n = realloc(r->devs, (r->n_devs + l->n + 1) * sizeof *n);
  if (n == NULL) return WHISPER_ENOMEM;
  r->devs = n;
  for (size_t i = 0; i < l->n; i++) {
    if (l->d[i].id == skip) continue;
    if ((r->devs[r->n_devs].account = sy_strdup(account)) == NULL) return WHISPER_ENOMEM;
    r->devs[r->n_devs++].device = l->d[i].id;
  }
  return WHISPER_OK;
}

/* Send{to, messages, own} of `content`, answered as `kind`. */
static int send_direct(whisper_client *c, sy_job *j, int kind, const uint8_t *client_id,
                       const char *to, sy_devlist *tl, sy_devlist *own, const uint8_t *pt,
                       size_t pt_len, int content, const uint8_t gid[WHISPER_GROUP_ID_LEN]) {
  enc_set to_set, own_set;
  int step = STEP_STOP;
  if (enc_init(&to_set, tl->n) != WHISPER_OK) return STEP_STOP;
  if (enc_init(&own_set, own->n) != WHISPER_OK) {
    enc_free(&to_set);
    return STEP_STOP;
  }
  whisper_envelope_t *env = NULL;
  if (content == WHISPER__SYNC__CONTENT__CONTENT_SKDM) {
    /* the sender key, wrapped in a Signal Content message, per device */
    size_t n = tl->n + own->n;
    whisper_device_t *devs = calloc(n ? n : 1, sizeof *devs);
    env = calloc(n ? n : 1, sizeof *env);
    if (devs == NULL || env == NULL) {
      free(devs);
      goto out;
    }
    env[0].size = sizeof *env;
    for (size_t i = 0; i < tl->n; i++) devs[i] = (whisper_device_t){to, tl->d[i].id};
    for (size_t i = 0; i < own->n; i++) devs[tl->n + i] = (whisper_device_t){c->account, own->d[i].id};
    int rc = whisper_sender_key_distribute(c->ctx, gid, devs, n, c->now, env);
    free(devs);
    if (rc != WHISPER_OK) {
      job_error(c, j, rc, 0, whisper_ctx_last_error(c->ctx));
      step = STEP_DROP;
      goto out;
    }
    for (size_t i = 0; i < n; i++) {
      int in_to = i < tl->n;
      const char *acct = in_to ? to : c->account;
      uint32_t dev = in_to ? tl->d[i].id : own->d[i - tl->n].id;
      if (env[i].status != WHISPER_OK) {
        step = enc_failed(c, j, acct, in_to ? tl : own, dev, env[i].status);
        goto out;
      }
      enc_add(c, in_to ? &to_set : &own_set, acct, dev, env[i].type, env[i].body);
      env[i].body = NULL;
    }
  } else {
    for (size_t i = 0; i < tl->n + own->n; i++) {
      int in_to = i < tl->n;
      const char *acct = in_to ? to : c->account;
      uint32_t dev = in_to ? tl->d[i].id : own->d[i - tl->n].id;
      int type = 0;
      whisper_buf *ct = NULL;
      int rc = whisper_session_encrypt(c->ctx, acct, dev, pt, pt_len, c->now, &type, &ct);
      if (rc != WHISPER_OK) {
        step = enc_failed(c, j, acct, in_to ? tl : own, dev, rc);
        goto out;
      }
      enc_add(c, in_to ? &to_set : &own_set, acct, dev, type, ct);
    }
  }
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.has_client_id = s.has_content = 1;
  s.client_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, (uint8_t *)client_id};
  s.to = (char *)to;
  s.n_messages = to_set.n;
  s.messages = to_set.dmp;
  s.n_own = own_set.n;
  s.own = own_set.dmp;
  s.content = (uint32_t)content;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &s;
  sy_req *r;
  if (send_queue(c, &f, kind, &r) != WHISPER_OK) goto out;
  snprintf(r->account, sizeof r->account, "%s", to);
  /* the recipients: `to`'s devices (own devices get no DELIVERED), except
   * for a distribution, where every device that got the key counts */
  if (devrefs_set(r, to, tl, 0) != WHISPER_OK ||
      (kind == RQ_SKDM && devrefs_set(r, c->account, own, 0) != WHISPER_OK))
    goto out;
  if (kind == RQ_SEND && j && j->kind == JOB_MESSAGE && !j->group) keep_send(c, j, &s, r);
  step = kind == RQ_SKDM ? wait_on(c, j, r) : fly(c, j, r);
out:
  if (env) {
    for (size_t i = 0; i < tl->n + own->n; i++) whisper_buf_free(env[i].body);
    free(env);
  }
  enc_free(&to_set);
  enc_free(&own_set);
  return step;
}

/* --- retry requests and resends --------------------------------------------------------------- */

static void usable_only(whisper_client *c, const char *account, sy_devlist *l);

/* A retry request, plaintext (type 8), to every device of the sender's
 * account (the one that sent the message answers) and this account's. */
/* The device lists of `to` and of this account, each listed once per
 * connection: STEP_DONE when both are at hand, else the step to wait on. */
static int lists_pair(whisper_client *c, sy_job *j, const char *to, sy_devlist l[2]) {
  const char *acct[2] = {to, c->account};
  memset(l, 0, 2 * sizeof *l);
  for (int a = 0; a < 2; a++)
    if (sy_devs_load(c, acct[a], &l[a]) != WHISPER_OK) return STEP_STOP;
  for (int a = 0; a < 2; a++)
    if (!l[a].known || !sy_name_has(c->refreshed, acct[a])) return list_devices(c, j, acct[a]);
  return STEP_DONE;
}

static int retry_step(whisper_client *c, sy_job *j) {
  const char *acct[2] = {j->conv, c->account};
  sy_devlist l[2];
  int step = lists_pair(c, j, j->conv, l);
  if (step != STEP_DONE) goto out;
  step = STEP_STOP;
  for (int a = 0; a < 2; a++) usable_only(c, acct[a], &l[a]);
  sy_devs_del(&l[1], c->device_id);
  Whisper__Sync__DeviceMessage *dm = calloc(l[0].n + l[1].n + 1, sizeof *dm);
  Whisper__Sync__DeviceMessage **dp = calloc(l[0].n + l[1].n + 1, sizeof *dp);
  if (dm == NULL || dp == NULL) {
    free(dm);
    free(dp);
    goto out;
  }
  for (size_t i = 0; i < l[0].n + l[1].n; i++) {
    whisper__sync__device_message__init(&dm[i]);
    dm[i].has_device_id = dm[i].has_type = dm[i].has_body = 1;
    dm[i].device_id = i < l[0].n ? l[0].d[i].id : l[1].d[i - l[0].n].id;
    dm[i].type = 8;
    dm[i].body = (ProtobufCBinaryData){j->body_len, j->body};
    dp[i] = &dm[i];
  }
  Whisper__Sync__Send sd = WHISPER__SYNC__SEND__INIT;
  sd.has_client_id = sd.has_content = 1;
  sd.client_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, j->id};
  sd.to = j->conv;
  sd.n_messages = l[0].n;
  sd.messages = dp;
  sd.n_own = strcmp(j->conv, c->account) == 0 ? 0 : l[1].n;
  sd.own = dp + l[0].n;
  sd.content = WHISPER__SYNC__CONTENT__CONTENT_RETRY;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &sd;
  sy_req *r;
  if (send_queue(c, &f, RQ_SEND, &r) == WHISPER_OK) step = fly(c, j, r);
  free(dm);
  free(dp);
out:
  sy_devs_free(&l[0]);
  sy_devs_free(&l[1]);
  return step;
}

/* A resend: the message again, to one device, under a fresh session. */
static int resend_step(whisper_client *c, sy_job *j) {
  sy_devlist l, one;
  int step = STEP_STOP;
  memset(&one, 0, sizeof one);
  if (sy_devs_load(c, j->conv, &l) != WHISPER_OK) return STEP_STOP;
  if (!l.known || !sy_name_has(c->refreshed, j->conv)) {
    step = list_devices(c, j, j->conv);
    goto out;
  }
  sy_dev *d = sy_devs_find(&l, j->device);
  if (d == NULL || !sy_list_has(&l, j->device, NULL)) { /* gone meanwhile */
    step = STEP_DROP;
    goto out;
  }
  one.known = 1;
  one.authed = l.authed;
  one.legacy = l.legacy;
  if (sy_devs_add(&one, d->id, d->regid) != WHISPER_OK) goto out;
  one.d[0] = *d;
  if ((step = fetch_if_needed(c, j, j->conv, &one)) != STEP_DONE) goto out;
  int type = 0;
  whisper_buf *ct = NULL;
  int rc = whisper_session_encrypt(c->ctx, j->conv, j->device, j->body, j->body_len, c->now, &type, &ct);
  if (rc != WHISPER_OK) {
    step = enc_failed(c, j, j->conv, &l, j->device, rc);
    goto out;
  }
  Whisper__Sync__DeviceMessage dm = WHISPER__SYNC__DEVICE_MESSAGE__INIT, *dp = &dm;
  dm.has_device_id = dm.has_type = dm.has_body = 1;
  dm.device_id = j->device;
  dm.type = (uint32_t)type;
  dm.body = (ProtobufCBinaryData){ct->len, ct->data};
  Whisper__Sync__Send sd = WHISPER__SYNC__SEND__INIT;
  sd.has_client_id = sd.has_content = sd.has_resend_of = 1;
  sd.client_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, j->id};
  sd.resend_of = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, j->resend_of};
  sd.to = j->conv;
  sd.n_messages = 1;
  sd.messages = &dp;
  sd.content = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &sd;
  sy_req *r;
  step = STEP_STOP;
  if (send_queue(c, &f, RQ_SEND, &r) == WHISPER_OK) step = fly(c, j, r);
  whisper_buf_free(ct);
out:
  sy_devs_free(&one);
  sy_devs_free(&l);
  return step;
}

/* --- 1:1 ------------------------------------------------------------------------------------ */

/* Whether `account`'s devices may be encrypted to (else the step). */
static int list_usable(whisper_client *c, sy_job *j, const char *account, const sy_devlist *l) {
  if (l->authed || l->legacy) {
    if (l->authed && l->trust == WHISPER_TRUST_CHANGED && c->cfg.hold_on_change &&
        strcmp(account, c->account) != 0) {
      sy_identity_event(c, account, 1, l->account_key);
      sy_name_add(&c->blocked, j->conv);
      return STEP_BLOCKED;
    }
    return STEP_DONE;
  }
  if (strcmp(account, c->account) == 0) return STEP_DONE; /* no list yet: no other device */
  /* No list signed by its account key yet: a new account publishes its
   * first right after registering, a server may withhold it. Nothing goes
   * to unauthenticated devices: the conversation waits (no tick) and the
   * list is asked for again, SY_LIST_WAIT_MS doubling to a minute. */
  sy_name_add(&c->unlisted, j->conv);
  sy_name_del(&c->refreshed, account);
  if (!c->unlisted_at) {
    c->unlisted_wait = c->unlisted_wait ? c->unlisted_wait * 2 : SY_LIST_WAIT_MS;
    if (c->unlisted_wait > 60000) c->unlisted_wait = 60000;
    c->unlisted_at = c->now + c->unlisted_wait;
  }
  return STEP_BLOCKED;
}

/* The devices a list lets this device encrypt to. */
static void usable_only(whisper_client *c, const char *account, sy_devlist *l) {
  if (!l->authed && !l->legacy && strcmp(account, c->account) == 0) l->n = 0;
}

static int direct_step(whisper_client *c, sy_job *j) {
  const char *acct[2] = {j->conv, c->account};
  sy_devlist l[2];
  whisper_buf *pl = NULL;
  int step = lists_pair(c, j, j->conv, l);
  if (step != STEP_DONE) goto out;
  for (int a = 0; a < 2; a++) {
    if ((step = list_usable(c, j, acct[a], &l[a])) != STEP_DONE) goto out;
    usable_only(c, acct[a], &l[a]);
  }
  for (int a = 0; a < 2; a++)
    if ((step = fetch_if_needed(c, j, acct[a], &l[a])) != STEP_DONE) goto out;
  sy_devs_del(&l[1], c->device_id);
  if (strcmp(j->conv, c->account) == 0) { /* to oneself: the other devices, no `own` part */
    sy_devs_del(&l[0], c->device_id);
    l[1].n = 0;
  }
  step = STEP_STOP;
  if (j->receipt) /* its body is its Payload */
    step = send_direct(c, j, RQ_SEND, j->id, j->conv, &l[0], &l[1], j->body, j->body_len,
                       WHISPER__SYNC__CONTENT__CONTENT_RECEIPT, NULL);
  else if (sy_payload_make(j->conv, NULL, &(sy_body){j->id, j->body, j->body_len, j->content, j->content_len},
                           sy_outref_counter(c, j->id), c->now, 0, &pl) == WHISPER_OK)
    step = send_direct(c, j, RQ_SEND, j->id, j->conv, &l[0], &l[1], pl->data, pl->len,
                       WHISPER__SYNC__CONTENT__CONTENT_MESSAGE, NULL);
out:
  whisper_buf_free(pl);
  sy_devs_free(&l[0]);
  sy_devs_free(&l[1]);
  return step;
}

/* --- groups ----------------------------------------------------------------------------------- */

static int group_step(whisper_client *c, sy_job *j) {
  sy_group g;
  sy_devlist l;
  int step = STEP_STOP;
  memset(&l, 0, sizeof l);
  if (sy_group_load(c, j->group_id, &g) != WHISPER_OK) return STEP_STOP;
  if (!g.known || g.left || !sy_group_is_member(&g, c->account)) {
    job_error(c, j, WHISPER_ESTATE, 0, "this account is not a member of the group");
    step = STEP_DROP;
    goto out;
  }
  /* device lists, listed once per connection, and sessions */
  for (size_t i = 0; i < g.n_members; i++)
    if (!sy_name_has(c->refreshed, g.members[i])) {
      step = list_devices(c, j, g.members[i]);
      goto out;
    }
  const char *target = NULL;
  for (size_t i = 0; i < g.n_members; i++) {
    const char *m = g.members[i];
    sy_devs_free(&l);
    if (sy_devs_load(c, m, &l) != WHISPER_OK) goto out;
    if (!l.authed && !l.legacy) continue; /* no signed list: it gets no sender key */
    if ((step = fetch_if_needed(c, j, m, &l)) != STEP_DONE) goto out;
    int own = strcmp(m, c->account) == 0;
    for (size_t k = 0; k < l.n; k++) {
      if (own && l.d[k].id == c->device_id) continue;
      if (!sy_group_has_key(&g, m, l.d[k].id) && !own && target == NULL) target = m;
    }
  }
  sy_devs_free(&l);
  sy_devlist own;
  if (sy_own_others(c, &own) != WHISPER_OK) goto out;
  usable_only(c, c->account, &own);
  int own_missing = 0;
  for (size_t k = 0; k < own.n; k++)
    if (!sy_group_has_key(&g, c->account, own.d[k].id)) own_missing = 1;
  if (target == NULL && own_missing) /* through any other member's Send */
    for (size_t i = 0; i < g.n_members && target == NULL; i++) {
      if (strcmp(g.members[i], c->account) == 0) continue;
      sy_devlist t;
      if (sy_devs_load(c, g.members[i], &t) != WHISPER_OK) break;
      if (t.authed || t.legacy) target = g.members[i];
      sy_devs_free(&t);
    }
  if (target) {
    uint8_t cid[WHISPER_CLIENT_ID_LEN];
    if (wh_random(&c->ctx->rng, cid, sizeof cid) != 0 || sy_devs_load(c, target, &l) != WHISPER_OK) {
      sy_devs_free(&own);
      goto out;
    }
    j->key_gen = g.key_gen;
    step = send_direct(c, j, RQ_SKDM, cid, target, &l, &own, NULL, 0,
                       WHISPER__SYNC__CONTENT__CONTENT_SKDM, j->group_id);
    sy_devs_free(&own);
    goto out;
  }
  sy_devs_free(&own);
  /* everyone has the key: the message, encrypted once */
  whisper_buf *skdm = NULL, *ct = NULL, *pl = NULL;
  int rc = whisper_sender_key_generate(c->ctx, j->group_id, &skdm);
  whisper_buf_free(skdm);
  if (rc == WHISPER_OK)
    rc = sy_payload_make(NULL, j->group_id,
                         &(sy_body){j->id, j->body, j->body_len, j->content, j->content_len},
                         sy_outref_counter(c, j->id), c->now, 0, &pl);
  if (rc == WHISPER_OK) rc = whisper_sender_key_encrypt(c->ctx, j->group_id, pl->data, pl->len, &ct);
  whisper_buf_free(pl);
  if (rc == WHISPER_EROLLEDBACK) {
    /* a sender key from a restored store: a new one, to every member again */
    sy_rollback_event(c, NULL, 0);
    whisper_buf *fresh = NULL;
    rc = whisper_sender_key_rotate(c->ctx, j->group_id, &fresh);
    whisper_buf_free(fresh);
    g.key_gen++;
    for (size_t i = 0; i < g.n_have; i++) free(g.have[i].account);
    g.n_have = 0;
    if (rc == WHISPER_OK && (rc = sy_begin(c)) == WHISPER_OK)
      rc = wh_finish(c->ctx, sy_group_save(c, j->group_id, &g));
    step = rc == WHISPER_OK ? STEP_AGAIN : STEP_STOP;
    goto out;
  }
  if (rc != WHISPER_OK) {
    job_error(c, j, rc, 0, whisper_ctx_last_error(c->ctx));
    step = STEP_DROP;
    goto out;
  }
  Whisper__Sync__Send s = WHISPER__SYNC__SEND__INIT;
  s.has_client_id = s.has_group_id = s.has_body = s.has_content = 1;
  s.client_id = (ProtobufCBinaryData){WHISPER_CLIENT_ID_LEN, j->id};
  s.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, j->group_id};
  s.body = (ProtobufCBinaryData){ct->len, ct->data};
  s.content = WHISPER__SYNC__CONTENT__CONTENT_MESSAGE; /* ticks end to end */
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SEND;
  f.send = &s;
  sy_req *r;
  rc = send_queue(c, &f, RQ_SEND, &r);
  whisper_buf_free(ct);
  if (rc != WHISPER_OK) goto out;
  for (size_t i = 0; i < g.n_members; i++) {
    if (strcmp(g.members[i], c->account) == 0) continue; /* no DELIVERED from own devices */
    sy_devs_free(&l);
    if (sy_devs_load(c, g.members[i], &l) != WHISPER_OK ||
        devrefs_set(r, g.members[i], &l, 0) != WHISPER_OK)
      break;
  }
  step = fly(c, j, r);
out:
  sy_devs_free(&l);
  sy_group_free(&g);
  return step;
}

/* --- the pump ----------------------------------------------------------------------------------- */

/* The pump's steps run in one transaction, opened before the first (so a
 * pump with nothing to send opens none): what they encrypt (sessions, send
 * marks) commits once for all, not once per recipient and message, and the
 * frames they queue leave only after that commit, as each did after its
 * own before. */
static void pump_txn_open(whisper_client *c) {
  if (c->pump_txn || c->pump_tried) return;
  c->pump_tried = 1;
  wh_out *mark = c->out.tail;
  if (sy_txn_begin_steps(c) != WHISPER_OK) return; /* (each call commits on its own) */
  c->pump_txn = 1;
  c->pump_mark = mark;
}

static void pump_steps(whisper_client *c);

void sy_pump(whisper_client *c) {
  if (c->in_pump) { /* (inside the running one's transaction) */
    pump_steps(c);
    return;
  }
  c->in_pump = 1;
  c->pump_txn = c->pump_tried = 0;
  pump_steps(c);
  if (c->pump_txn) {
    c->pump_txn = 0;
    if (sy_txn_end(c, WHISPER_OK) != WHISPER_OK) {
      /* nothing it encrypted is kept: none of its frames may leave (a key
       * used and not recorded could be used again) */
      sy_out_truncate(c, c->pump_mark);
      sy_error_event(c, WHISPER_ESTORE, 0, "sending stopped: the store failed");
      c->close_wanted = 1;
    }
  }
  c->pump_mark = NULL;
  c->in_pump = 0;
}

static void pump_steps(whisper_client *c) {
  for (int guard = 0; guard < 10000; guard++) {
    if (!c->logged_in || c->close_wanted || c->send_wait || c->send_retry_at || c->draining)
      return;
    /* peers refuse messages from an account without a signed list: the
     * primary's first list goes before anything else */
    if (!c->own_listed) return;
    if (c->n_inflight >= c->window) return;
    sy_job *j = c->jobs;
    while (j && (j->inflight || sy_name_has(c->blocked, j->conv) ||
                 sy_name_has(c->unlisted, j->conv) ||
                 sy_block_has(c, j->conv))) /* (block.c: waits until unblocked) */
      j = j->next;
    if (j == NULL) {
      if (c->jobs == NULL && c->outbox_more) {
        if (sy_jobs_load(c) != WHISPER_OK || c->jobs == NULL) return;
        continue;
      }
      return;
    }
    pump_txn_open(c);
    if (j->kept && j->kept_gen != c->devs_gen) kept_drop(j); /* the lists changed since */
    int step = j->kept                 ? kept_step(c, j)
               : j->kind == JOB_RETRY  ? retry_step(c, j)
               : j->kind == JOB_RESEND ? resend_step(c, j)
               : j->group              ? group_step(c, j)
                                       : direct_step(c, j);
    switch (step) {
      case STEP_WAIT:
        return;
      case STEP_SENT:
        break; /* the next job, if the window allows */
      case STEP_DROP:
        job_remove(c, j, 1);
        break;
      case STEP_STOP:
        sy_error_event(c, WHISPER_ESTORE, 0, "sending stopped: the store failed");
        c->close_wanted = 1;
        return;
      default:
        break; /* DONE, BLOCKED, AGAIN: look again */
    }
  }
}

/* --- answers ------------------------------------------------------------------------------------- */

/* ERR_RATE and ERR_INTERNAL wait and retry; the others give the job up. */
static void refused(whisper_client *c, sy_job *j, const Whisper__Sync__Frame *f) {
  if (f->body_case != WHISPER__SYNC__FRAME__BODY_ERROR) {
    if (j) job_error(c, j, WHISPER_EINVALIDMSG, 0, "unexpected answer from the server");
    if (j) job_remove(c, j, 1);
    return;
  }
  uint32_t code = f->error->code;
  if (code == ERR_RATE || code == ERR_INTERNAL) {
    uint64_t wait = code == ERR_RATE && f->has_retry_ms && f->retry_ms ? f->retry_ms : SY_RETRY_MS;
    c->send_retry_at = c->now + (wait < 600000 ? wait : 600000);
    return;
  }
  if (j) {
    job_error(c, j, WHISPER_EINVAL, (int)code, f->error->message ? f->error->message : "refused");
    job_remove(c, j, 1);
  }
}

/* A refused list: EV_REFUSED (the context's sentence says why). */
static void list_refused(whisper_client *c, const char *account, int rc) {
  sy_event *e = sy_event_new(c, WHISPER_EV_REFUSED);
  if (e == NULL) return;
  if (sy_event_set(e, account, account, NULL, 0, NULL, 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.code = rc;
  e->message = sy_strdup(whisper_ctx_last_error(c->ctx));
  sy_event_push(c, e);
}

/* A signed list from the server (Devices or Bundles): the account's devices
 * from now on if it verifies and is not older than the one held. */
static void take_list(whisper_client *c, const char *account, int has, const ProtobufCBinaryData *b,
                      sy_devlist *l) {
  if (!has) return; /* no list: what is held stands (a server cannot take one back) */
  int rc = sy_list_accept(c, account, b->data, b->len, l, NULL);
  if (rc != WHISPER_OK) list_refused(c, account, rc);
}

static void on_devices(whisper_client *c, sy_req *r, const Whisper__Sync__Devices *d) {
  sy_devlist l;
  int rc = sy_txn_begin(c); /* library calls (trust) join it */
  if (rc != WHISPER_OK) return;
  if ((rc = sy_devs_load(c, r->account, &l)) != WHISPER_OK) {
    sy_txn_end(c, rc);
    return;
  }
  take_list(c, r->account, d->has_signed_list, &d->signed_list, &l);
  if (!l.authed && l.legacy) {
    sy_event *e = sy_event_new(c, WHISPER_EV_DEVICES); /* status 0: not authenticated yet */
    if (e && sy_event_set(e, r->account, r->account, NULL, 0, NULL, 0) == WHISPER_OK) sy_event_push(c, e);
    else sy_event_free(e);
  }
  if (!l.authed && (l.legacy || !l.known)) {
    /* a contact from before signed lists: the server's word, until a list comes */
    sy_devlist old = l;
    memset(&l, 0, sizeof l);
    l.legacy = old.legacy;
    for (size_t i = 0; i < d->n_device_ids; i++) {
      uint32_t id = d->device_ids[i];
      if (!wh_device_id_ok(id) || !old.legacy) continue;
      sy_dev *o = sy_devs_find(&old, id);
      if (sy_devs_add(&l, id, o ? o->regid : 0) != WHISPER_OK) break;
      if (o) sy_devs_find(&l, id)->refetch = o->refetch;
    }
    sy_devs_free(&old);
  }
  l.known = 1;
  rc = sy_txn_end(c, sy_devs_save(c, r->account, &l));
  if (rc == WHISPER_OK) sy_name_add(&c->refreshed, r->account);
  if (rc == WHISPER_OK && l.authed && strcmp(r->account, c->account) == 0) c->own_listed = 1;
  if (sy_name_has(c->fetching, r->account)) {
    sy_name_del(&c->fetching, r->account);
    c->retry_due = 1;
  }
  sy_devs_free(&l);
}

static int bundle_from(whisper_prekey_bundle_t *b, const Whisper__Sync__Bundle *pb) {
  const Whisper__Sync__DeviceKeys *k = pb->keys;
  memset(b, 0, sizeof *b);
  b->size = sizeof *b;
  if (k == NULL || !k->has_device_id || !wh_device_id_ok(k->device_id) ||
      k->identity_key.len < WHISPER_PUBLIC_KEY_LEN || k->signed_prekey.len < WHISPER_PUBLIC_KEY_LEN ||
      k->signed_prekey_signature.len != WHISPER_SIGNATURE_LEN)
    return WHISPER_EINVALIDMSG;
  b->registration_id = k->registration_id;
  b->device_id = k->device_id;
  b->signed_prekey_id = k->signed_prekey_id;
  memcpy(b->identity_key, k->identity_key.data, WHISPER_PUBLIC_KEY_LEN);
  memcpy(b->signed_prekey, k->signed_prekey.data, WHISPER_PUBLIC_KEY_LEN);
  memcpy(b->signed_prekey_signature, k->signed_prekey_signature.data, WHISPER_SIGNATURE_LEN);
  if (pb->prekey && pb->prekey->has_key) {
    if (pb->prekey->key.len < WHISPER_PUBLIC_KEY_LEN) return WHISPER_EINVALIDMSG;
    b->has_prekey = 1;
    b->prekey_id = pb->prekey->id;
    memcpy(b->prekey, pb->prekey->key.data, WHISPER_PUBLIC_KEY_LEN);
  }
  return WHISPER_OK;
}

static void on_bundles(whisper_client *c, sy_job *j, sy_req *r, const Whisper__Sync__Bundles *bs) {
  sy_devlist l;
  if (sy_devs_load(c, r->account, &l) != WHISPER_OK) return;
  take_list(c, r->account, bs->has_signed_list, &bs->signed_list, &l);
  l.known = 1;
  /* devices asked for and not answered are gone (a signed list says which are not) */
  for (size_t i = 0; i < l.n && !l.authed;) {
    int found = 0;
    for (size_t k = 0; k < bs->n_bundles && !found; k++)
      found = bs->bundles[k]->keys && bs->bundles[k]->keys->device_id == l.d[i].id;
    int own_self = strcmp(r->account, c->account) == 0 && l.d[i].id == c->device_id;
    int asked = l.d[i].refetch;
    if (!asked) {
      int exists = 0;
      whisper_session_exists(c->ctx, r->account, l.d[i].id, c->now, &exists);
      asked = !exists;
    }
    if (!found && asked && !own_self) sy_devs_del(&l, l.d[i].id);
    else i++;
  }
  for (size_t k = 0; k < bs->n_bundles; k++) {
    whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
    if (bundle_from(&b, bs->bundles[k]) != WHISPER_OK) {
      sy_error_event(c, WHISPER_EINVALIDMSG, 0, "a malformed bundle from the server");
      continue;
    }
    if (strcmp(r->account, c->account) == 0 && b.device_id == c->device_id) continue;
    if (!sy_list_has(&l, b.device_id, l.authed ? b.identity_key : NULL)) {
      wh_fail(c->ctx, WHISPER_EFORGED, "a bundle for device %u of %s that its signed list does not name",
              b.device_id, r->account);
      list_refused(c, r->account, WHISPER_EFORGED);
      wh_wipe(&b, sizeof b);
      continue;
    }
    int rc = whisper_session_start(c->ctx, r->account, b.device_id, &b, c->now);
    if (rc == WHISPER_OK) {
      if (sy_devs_add(&l, b.device_id, b.registration_id) == WHISPER_OK)
        sy_devs_find(&l, b.device_id)->refetch = 0;
    } else if (rc == WHISPER_EUNTRUSTED && j) {
      sy_devs_add(&l, b.device_id, b.registration_id);
      block(c, j, r->account, b.device_id, b.identity_key);
    } else {
      sy_error_event(c, rc, 0, whisper_ctx_last_error(c->ctx));
    }
    wh_wipe(&b, sizeof b);
  }
  if (sy_devs_save(c, r->account, &l) != WHISPER_OK)
    sy_error_event(c, WHISPER_ESTORE, 0, "cannot store a device list");
  sy_devs_free(&l);
}

static void on_stale(whisper_client *c, sy_job *j, const Whisper__Sync__StaleDevices *s) {
  sy_devlist l;
  if (!wh_account_ok(s->account) || sy_devs_load(c, s->account, &l) != WHISPER_OK) return;
  sy_name_del(&c->refreshed, s->account); /* listed again before the next try */
  l.known = 1;
  for (size_t i = 0; !l.authed && i < s->n_extra; i++) sy_devs_del(&l, s->extra[i]);
  for (size_t i = 0; !l.authed && i < s->n_missing; i++)
    if (wh_device_id_ok(s->missing[i])) sy_devs_add(&l, s->missing[i], 0);
  /* a signed list's devices stay its own; a re-registered one needs a session */
  for (size_t i = 0; i < s->n_stale; i++)
    if (wh_device_id_ok(s->stale[i]) &&
        (l.authed ? sy_devs_find(&l, s->stale[i]) != NULL : sy_devs_add(&l, s->stale[i], 0) == WHISPER_OK)) {
      sy_dev *d = sy_devs_find(&l, s->stale[i]);
      d->refetch = 1;
      d->regid = 0;
    }
  if (sy_devs_save(c, s->account, &l) != WHISPER_OK)
    sy_error_event(c, WHISPER_ESTORE, 0, "cannot store a device list");
  sy_devs_free(&l);
  if (j && ++j->rounds > 2 * SY_MAX_ROUNDS) {
    job_error(c, j, WHISPER_ESTATE, ERR_STALE_DEVICES, "the device lists keep changing");
    job_remove(c, j, 1);
  }
}

static void on_sent(whisper_client *c, sy_job *j, sy_req *r, const Whisper__Sync__Sent *s) {
  sy_epoch_count(c);
  if (j->receipt || j->kind != JOB_MESSAGE) { /* not in history: the job is done */
    if (j->receipt) sy_receipt_done(c, j->id);
    job_remove(c, j, 0);
    return;
  }
  whisper_device_t *devs = calloc(r->n_devs ? r->n_devs : 1, sizeof *devs);
  int rc = devs ? sy_txn_begin(c) : WHISPER_ENOMEM; /* (one commit for both) */
  if (rc == WHISPER_OK) {
    rc = whisper_history_sent(c->ctx, j->conv, j->id, WHISPER_CLIENT_ID_LEN, s->server_seq);
    for (size_t i = 0; rc == WHISPER_OK && i < r->n_devs; i++)
      devs[i] = (whisper_device_t){r->devs[i].account, r->devs[i].device};
    if (rc == WHISPER_OK)
      rc = wh_history_recipients(c->ctx, j->conv, j->id, WHISPER_CLIENT_ID_LEN, devs, r->n_devs, 1);
    rc = sy_txn_end(c, rc);
  }
  free(devs);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND)
    job_error(c, j, rc, 0, whisper_ctx_last_error(c->ctx));
  if (j->hidden) { /* an operation: nothing in history shows a tick for it */
    job_remove(c, j, 0);
    return;
  }
  sy_event *e = sy_event_new(c, WHISPER_EV_STATUS);
  if (e && sy_event_set(e, j->conv, j->group ? NULL : j->conv, j->id, WHISPER_CLIENT_ID_LEN,
                        NULL, 0) == WHISPER_OK) {
    e->ev.status = WHISPER_STATUS_SENT;
    e->ev.server_seq = s->server_seq;
    e->ev.server_ts = s->server_ts;
    sy_event_push(c, e);
  } else {
    sy_event_free(e);
  }
  job_remove(c, j, 0);
}

static void on_skdm_sent(whisper_client *c, sy_job *j, sy_req *r) {
  sy_group g;
  if (j == NULL || sy_group_load(c, j->group_id, &g) != WHISPER_OK) return;
  if (g.key_gen != j->key_gen) { /* rotated since: the new key still has to go out */
    sy_group_free(&g);
    return;
  }
  int rc = WHISPER_OK;
  sy_devref *n = realloc(g.have, (g.n_have + r->n_devs + 1) * sizeof *n);
  if (n == NULL) rc = WHISPER_ENOMEM;
  else g.have = n;
  for (size_t i = 0; rc == WHISPER_OK && i < r->n_devs; i++) {
    if (sy_group_has_key(&g, r->devs[i].account, r->devs[i].device)) continue;
    if ((g.have[g.n_have].account = sy_strdup(r->devs[i].account)) == NULL) rc = WHISPER_ENOMEM;
    else g.have[g.n_have++].device = r->devs[i].device;
  }
  if (rc == WHISPER_OK && g.known) {
    if ((rc = sy_begin(c)) == WHISPER_OK) rc = wh_finish(c->ctx, sy_group_save(c, j->group_id, &g));
  }
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store who has the sender key");
  sy_group_free(&g);
}

static void answer_one(whisper_client *c, sy_job *j, sy_req *r, const Whisper__Sync__Frame *f);

void sy_send_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  sy_job *j = NULL;
  if (c->send_wait == r->id) {
    c->send_wait = 0;
    j = c->cur_job;
    c->cur_job = NULL;
  } else if (r->kind == RQ_SEND) {
    for (j = c->jobs; j && j->inflight != r->id; j = j->next) {
    }
    if (j) {
      j->inflight = 0;
      c->n_inflight--;
    }
  }
  if (r->id == c->after_req) c->after_req = 0;
  int sent = f->body_case == WHISPER__SYNC__FRAME__BODY_SENT;
  /* a Send refused while others are in flight: they are refused too (their
   * `after` was not taken) or were taken; none goes until all are answered,
   * then the refused ones go again, in order */
  if ((r->kind == RQ_SEND || r->kind == RQ_SKDM) && !sent && c->n_inflight) c->draining = 1;
  answer_one(c, j, r, f);
  if (c->n_inflight == 0) c->draining = 0;
}

static void answer_one(whisper_client *c, sy_job *j, sy_req *r, const Whisper__Sync__Frame *f) {
  switch (r->kind) {
    case RQ_LIST:
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_DEVICES) on_devices(c, r, f->devices);
      else refused(c, j, f);
      break;
    case RQ_FETCH:
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_BUNDLES) on_bundles(c, j, r, f->bundles);
      else refused(c, j, f);
      break;
    case RQ_SEND:
    case RQ_SKDM:
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_SENT) {
        if (r->kind == RQ_SEND && j) on_sent(c, j, r, f->sent);
        else on_skdm_sent(c, j, r);
      } else if (f->body_case == WHISPER__SYNC__FRAME__BODY_STALE) {
        if (j) kept_drop(j); /* other devices now: encrypted anew */
        on_stale(c, j, f->stale);
      } else if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR &&
                 f->error->code == ERR_STALE_DEVICES) {
        if (j) kept_drop(j);
        if (j && ++j->rounds > 2 * SY_MAX_ROUNDS) refused(c, j, f);
      } else if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR &&
                 f->error->code == ERR_STATE && r->chained) {
        /* the Send before it was refused: this one goes again after it */
      } else {
        refused(c, j, f);
      }
      break;
    default:
      break;
  }
}
