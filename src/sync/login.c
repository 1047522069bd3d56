/*
 * Registration (first device), linking (a further device), login
 * (Hello + Auth over the server's challenge), keeping the server's
 * supply of one-time prekeys, and rotating the signed prekey: a new one
 * when the current one is older than cfg.signed_prekey_rotate_ms (checked
 * at login and on a timer), uploaded, and uploaded again whenever the
 * server says at login that it hands out another (an upload lost with its
 * connection, a store restored from a copy). The replaced one stays for
 * cfg.signed_prekey_grace_ms (whisper_signed_prekey_rotate()).
 */
#include "sync/sync_internal.h"

static const char REGISTER_CTX[] = "whisper-register-v1";
static const char LOGIN_CTX[] = "whisper-login-v1";

static void fatal(whisper_client *c, int code, const char *what) {
  sy_error_event(c, code, 0, what);
  c->close_wanted = 1;
}

/* A batch of one-time prekeys to upload: the one made earlier and not
 * confirmed yet, or a new one (remembered before it is sent). */
static int prekey_batch(whisper_client *c, uint32_t *first, uint32_t *count) {
  if (c->upload_count) {
    *first = c->upload_first;
    *count = c->upload_count;
    return WHISPER_OK;
  }
  uint32_t f = 0, n = c->cfg.prekey_batch;
  int rc = whisper_prekeys_generate(c->ctx, n, &f);
  if (rc != WHISPER_OK) return rc;
  c->upload_first = f;
  c->upload_count = n;
  if ((rc = sy_state_save(c)) != WHISPER_OK) {
    c->upload_first = c->upload_count = 0;
    return rc;
  }
  *first = f;
  *count = n;
  return WHISPER_OK;
}

/* Fills `pk` (count entries, keys in `keys`) with the batch's public keys. */
static int prekeys_fill(whisper_client *c, uint32_t first, uint32_t count,
                        Whisper__Sync__OneTimePrekey *pk, Whisper__Sync__OneTimePrekey **pkp,
                        uint8_t (*keys)[WHISPER_PUBLIC_KEY_LEN], size_t *n_out) {
  size_t n = 0;
  for (uint32_t i = 0; i < count; i++) {
    int rc = sy_prekey_public(c->ctx, first + i, keys[n]);
    if (rc == WHISPER_ENOTFOUND) continue; /* used meanwhile */
    if (rc != WHISPER_OK) return rc;
    whisper__sync__one_time_prekey__init(&pk[n]);
    pk[n].has_id = pk[n].has_key = 1;
    pk[n].id = first + i;
    pk[n].key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, keys[n]};
    pkp[n] = &pk[n];
    n++;
  }
  *n_out = n;
  return WHISPER_OK;
}

typedef struct prekey_set {
  Whisper__Sync__OneTimePrekey *pk;
  Whisper__Sync__OneTimePrekey **pkp;
  uint8_t (*keys)[WHISPER_PUBLIC_KEY_LEN];
  size_t n;
} prekey_set;

static void prekey_set_free(prekey_set *s) {
  free(s->pk);
  free(s->pkp);
  free(s->keys);
  memset(s, 0, sizeof *s);
}

static int prekey_set_make(whisper_client *c, prekey_set *s) {
  uint32_t first, count;
  memset(s, 0, sizeof *s);
  int rc = prekey_batch(c, &first, &count);
  if (rc != WHISPER_OK) return rc;
  s->pk = calloc(count, sizeof *s->pk);
  s->pkp = calloc(count, sizeof *s->pkp);
  s->keys = calloc(count, sizeof *s->keys);
  if (s->pk == NULL || s->pkp == NULL || s->keys == NULL) {
    prekey_set_free(s);
    return WHISPER_ENOMEM;
  }
  rc = prekeys_fill(c, first, count, s->pk, s->pkp, s->keys, &s->n);
  if (rc != WHISPER_OK) prekey_set_free(s);
  return rc;
}

static void send_register(whisper_client *c, const uint8_t *code, size_t code_len) {
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  prekey_set ps;
  int rc = whisper_bundle_generate(c->ctx, 0, &b);
  if (rc != WHISPER_OK) {
    fatal(c, rc, "cannot read this device's keys");
    return;
  }
  if ((rc = prekey_set_make(c, &ps)) != WHISPER_OK) {
    fatal(c, rc, "cannot make one-time prekeys");
    return;
  }
  size_t an = strlen(c->account);
  size_t mlen = sizeof REGISTER_CTX - 1 + an + 1 + 4 + WHISPER_PUBLIC_KEY_LEN;
  uint8_t msg[sizeof REGISTER_CTX + WH_NAME_MAX + 1 + 4 + WHISPER_PUBLIC_KEY_LEN], sig[64];
  uint8_t *p = msg;
  memcpy(p, REGISTER_CTX, sizeof REGISTER_CTX - 1), p += sizeof REGISTER_CTX - 1;
  memcpy(p, c->account, an), p += an;
  *p++ = 0;
  wh_be32(p, c->device_id), p += 4;
  memcpy(p, b.identity_key, WHISPER_PUBLIC_KEY_LEN);
  rc = whisper_sign(c->ctx, c->ctx->identity.priv, msg, mlen, sig);
  if (rc != WHISPER_OK) {
    prekey_set_free(&ps);
    fatal(c, rc, "cannot sign the registration");
    return;
  }
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  k.has_device_id = k.has_registration_id = k.has_identity_key = 1;
  k.has_signed_prekey_id = k.has_signed_prekey = k.has_signed_prekey_signature = 1;
  k.device_id = c->device_id;
  k.registration_id = b.registration_id;
  k.identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.identity_key};
  k.signed_prekey_id = b.signed_prekey_id;
  k.signed_prekey = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.signed_prekey};
  k.signed_prekey_signature = (ProtobufCBinaryData){WHISPER_SIGNATURE_LEN, b.signed_prekey_signature};
  Whisper__Sync__Register r = WHISPER__SYNC__REGISTER__INIT;
  r.account = c->account;
  r.keys = &k;
  r.n_prekeys = ps.n;
  r.prekeys = ps.pkp;
  r.has_signature = 1;
  r.signature = (ProtobufCBinaryData){sizeof sig, sig};
  if (code) {
    r.has_link_code = 1;
    r.link_code = (ProtobufCBinaryData){code_len, (uint8_t *)code};
  }
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_REGISTER;
  f.register_ = &r;
  /* a linking device's Register is answered once a device approves it */
  if (sy_queue(c, &f, RQ_REGISTER, code == NULL, NULL) == WHISPER_OK) c->register_sent = 1;
  prekey_set_free(&ps);
}

static void send_link_request(whisper_client *c) {
  Whisper__Sync__LinkRequest lr = WHISPER__SYNC__LINK_REQUEST__INIT;
  lr.account = c->account;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_REQUEST;
  f.link_request = &lr;
  if (sy_queue(c, &f, RQ_LINK_REQUEST, 1, NULL) == WHISPER_OK) c->link_sent = 1;
}

static void send_auth(whisper_client *c) {
  uint8_t msg[sizeof LOGIN_CTX - 1 + sizeof c->nonce], sig[64];
  memcpy(msg, LOGIN_CTX, sizeof LOGIN_CTX - 1);
  memcpy(msg + sizeof LOGIN_CTX - 1, c->nonce, c->nonce_len);
  int rc = whisper_sign(c->ctx, c->ctx->identity.priv, msg, sizeof LOGIN_CTX - 1 + c->nonce_len, sig);
  if (rc != WHISPER_OK) {
    fatal(c, rc, "cannot sign the login");
    return;
  }
  Whisper__Sync__Auth a = WHISPER__SYNC__AUTH__INIT;
  a.has_signature = a.has_resume_after = 1;
  a.signature = (ProtobufCBinaryData){sizeof sig, sig};
  a.resume_after = sy_watermark(c);
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_AUTH;
  f.auth = &a;
  if (sy_queue(c, &f, RQ_AUTH, 1, NULL) == WHISPER_OK) c->auth_sent = 1;
}

/* Hello at once, Auth once the challenge is there. */
static void login(whisper_client *c) {
  if (!c->hello_sent) {
    Whisper__Sync__Hello h = WHISPER__SYNC__HELLO__INIT;
    h.account = c->account;
    h.has_device_id = h.has_protocol = 1;
    h.device_id = c->device_id;
    h.protocol = WH_SYNC_PROTOCOL;
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    f.body_case = WHISPER__SYNC__FRAME__BODY_HELLO;
    f.hello = &h;
    /* Hello is answered with Ok (or refused) */
    if (sy_queue(c, &f, RQ_HELLO, 0, NULL) != WHISPER_OK) return;
    c->hello_sent = 1;
  }
  if (c->have_nonce && !c->auth_sent) send_auth(c);
}

void sy_login_start(whisper_client *c) {
  if (c->registered || c->register_exists) login(c);
  else if (c->link_mode) send_link_request(c);
  else send_register(c, NULL, 0);
}

void sy_login_on_challenge(whisper_client *c, const Whisper__Sync__Challenge *ch) {
  if (c->have_nonce) return; /* one per connection */
  memcpy(c->nonce, ch->nonce.data, ch->nonce.len);
  c->nonce_len = ch->nonce.len;
  c->have_nonce = 1;
  if (c->hello_sent) login(c);
}

/* The primary publishes its account's first signed list: itself and the
 * devices the server has for it (those linked before lists existed). */
static void publish_first(whisper_client *c) {
  sy_devlist own;
  c->own_listed = c->device_id != 1; /* a linked device's list was signed before it joined */
  if (c->device_id != 1 || c->approvals || sy_devs_load(c, c->account, &own) != WHISPER_OK) return;
  int authed = own.authed;
  sy_devs_free(&own);
  if ((c->own_listed = authed)) return;
  Whisper__Sync__FetchBundles fb = WHISPER__SYNC__FETCH_BUNDLES__INIT;
  fb.account = c->account;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_FETCH;
  f.fetch = &fb;
  sy_queue(c, &f, RQ_OWN_BUNDLES, 1, NULL);
}

static void after_login(whisper_client *c) {
  sy_names_free(&c->blocked); /* a new login tries the held conversations again */
  if (sy_epoch_next(c) != WHISPER_OK) sy_error_event(c, WHISPER_ESTORE, 0, "cannot store the store's epoch");
  publish_first(c);
  sy_retry_held(c);
  sy_retry_again(c);
  sy_presence_flush(c);
  sy_ops_flush(c);
  sy_approvals_flush(c);
  sy_profile_flush(c); /* profile.c: the upload before the outbox's notices */
  sy_block_login(c);
  sy_media_login(c);
  int rc = sy_jobs_load(c);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot read the outbox");
  sy_pump(c);
}

static void server_error(whisper_client *c, const Whisper__Sync__Frame *f, const char *what) {
  const char *m = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && f->error->message
                      ? f->error->message
                      : what;
  int code = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? (int)f->error->code : 0;
  sy_error_event(c, code ? WHISPER_EINVAL : WHISPER_EINVALIDMSG, code, m);
}

void sy_login_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  int ok = f->body_case == WHISPER__SYNC__FRAME__BODY_OK;
  int err = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? (int)f->error->code : 0;
  switch (r->kind) {
    case RQ_REGISTER:
      if (ok) {
        c->registered = 1;
        uint32_t uf = c->upload_first, uc = c->upload_count;
        c->upload_first = c->upload_count = 0;
        int rc = sy_state_save(c);
        if (rc != WHISPER_OK) {
          c->registered = 0;
          c->upload_first = uf, c->upload_count = uc;
          fatal(c, rc, "cannot store the registration");
          return;
        }
        c->link_mode = 0;
        sy_event_push(c, sy_event_new(c, WHISPER_EV_REGISTERED));
        login(c);
      } else if (err == ERR_EXISTS && !c->link_mode) {
        /* registered before, the answer lost: the login tells */
        c->register_exists = 1;
        login(c);
      } else if (err == ERR_AUTH && c->link_mode) {
        server_error(c, f, "the link code expired");
        send_link_request(c);
      } else {
        server_error(c, f, "registration refused");
        c->close_wanted = 1;
      }
      return;
    case RQ_LINK_REQUEST:
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_LINK_CODE) {
        const ProtobufCBinaryData *code = &f->link_code->link_code;
        whisper_buf *token = NULL;
        sy_event *e = sy_event_new(c, WHISPER_EV_LINK_CODE);
        if (e && sy_token_make(c, code->data, code->len, &token) == WHISPER_OK &&
            sy_event_set(e, NULL, c->account, NULL, 0, token->data, token->len) == WHISPER_OK)
          sy_event_push(c, e);
        else
          sy_event_free(e);
        whisper_buf_free(token);
        send_register(c, code->data, code->len);
      } else {
        server_error(c, f, "link request refused");
        c->close_wanted = 1;
      }
      return;
    case RQ_HELLO:
      if (err) {
        server_error(c, f, "login refused");
        c->close_wanted = 1;
      }
      return;
    case RQ_AUTH:
      if (!ok) {
        if (c->register_exists && f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR &&
            f->error->code == ERR_AUTH)
          sy_error_event(c, WHISPER_ESTATE, ERR_EXISTS,
                         "the account is registered with another identity");
        else
          server_error(c, f, "login refused");
        c->close_wanted = 1;
        return;
      }
      c->logged_in = 1;
      c->attempts = 0;
      /* Sends are pipelined only with a server that keeps their order */
      c->window = 1;
      if (f->ok->has_send_window && f->ok->send_window > 1)
        c->window = f->ok->send_window < c->cfg.send_window ? f->ok->send_window : c->cfg.send_window;
      if (c->register_exists && !c->registered) {
        c->registered = 1;
        c->upload_first = c->upload_count = 0;
        if (sy_state_save(c) == WHISPER_OK) sy_event_push(c, sy_event_new(c, WHISPER_EV_REGISTERED));
      }
      c->register_exists = 0;
      c->catching = 1; /* until QueueEmpty: progress events (the count is the server's word) */
      c->catch_done = 0;
      c->catch_total = f->ok->has_waiting ? f->ok->waiting : 0;
      c->spk_server_known = f->ok->has_signed_prekey_id;
      c->spk_server = f->ok->signed_prekey_id;
      /* a batch of the backlog commits at half the server's push window, so
       * that it pushes the next entries while these are handled */
      c->catch_batch = f->ok->has_deliver_window && f->ok->deliver_window
                           ? f->ok->deliver_window / 2
                           : SY_CATCH_BATCH / 2;
      if (c->catch_batch < 1) c->catch_batch = 1;
      if (c->catch_batch > SY_CATCH_BATCH) c->catch_batch = SY_CATCH_BATCH;
      sy_event_push(c, sy_event_new(c, WHISPER_EV_ONLINE));
      sy_prekeys_check(c, f->ok);
      sy_spk_check(c);
      after_login(c);
      return;
    case RQ_OWN_BUNDLES:
      if (f->body_case == WHISPER__SYNC__FRAME__BODY_BUNDLES) {
        int rc = sy_publish_first(c, f->bundles);
        if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot sign this account's device list");
      }
      return;
    case RQ_UPLOAD:
      c->upload_inflight = 0;
      if (ok) {
        c->upload_first = c->upload_count = 0;
        int rc = sy_state_save(c);
        if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store the prekey upload");
      } else {
        server_error(c, f, "prekey upload refused");
      }
      return;
    default:
      return;
  }
}

void sy_prekeys_check(whisper_client *c, const Whisper__Sync__Ok *ok) {
  if (!c->logged_in || ok == NULL || !ok->has_prekeys_left || c->upload_inflight ||
      ok->prekeys_left >= c->cfg.prekey_low)
    return;
  prekey_set ps;
  int rc = prekey_set_make(c, &ps);
  if (rc != WHISPER_OK) {
    sy_error_event(c, rc, 0, "cannot make one-time prekeys");
    return;
  }
  Whisper__Sync__UploadPrekeys u = WHISPER__SYNC__UPLOAD_PREKEYS__INIT;
  u.n_prekeys = ps.n;
  u.prekeys = ps.pkp;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD;
  f.upload = &u;
  if (sy_queue(c, &f, RQ_UPLOAD, 1, NULL) == WHISPER_OK) c->upload_inflight = 1;
  prekey_set_free(&ps);
}

/* --- the signed prekey --------------------------------------------------------- */

static void spk_upload(whisper_client *c) {
  whisper_prekey_bundle_t b = WHISPER_PREKEY_BUNDLE_INIT;
  int rc = whisper_bundle_generate(c->ctx, 0, &b);
  if (rc != WHISPER_OK) {
    sy_error_event(c, rc, 0, "cannot read the signed prekey");
    return;
  }
  Whisper__Sync__DeviceKeys k = WHISPER__SYNC__DEVICE_KEYS__INIT;
  k.has_device_id = k.has_identity_key = 1;
  k.has_signed_prekey_id = k.has_signed_prekey = k.has_signed_prekey_signature = 1;
  k.device_id = c->device_id;
  k.identity_key = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.identity_key};
  k.signed_prekey_id = b.signed_prekey_id;
  k.signed_prekey = (ProtobufCBinaryData){WHISPER_PUBLIC_KEY_LEN, b.signed_prekey};
  k.signed_prekey_signature = (ProtobufCBinaryData){WHISPER_SIGNATURE_LEN, b.signed_prekey_signature};
  Whisper__Sync__UploadPrekeys u = WHISPER__SYNC__UPLOAD_PREKEYS__INIT;
  u.signed_ = &k;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD;
  f.upload = &u;
  if (sy_queue(c, &f, RQ_SPK, 1, NULL) == WHISPER_OK) c->spk_inflight = 1;
}

void sy_spk_check(whisper_client *c) {
  uint64_t period = c->cfg.signed_prekey_rotate_ms, made = 0;
  uint32_t id = 0;
  int rotated = 0, rc = WHISPER_OK;
  if (!c->logged_in || c->spk_inflight) return;
  c->spk_due_at = 0;
  if (period)
    rc = whisper_signed_prekey_rotate(c->ctx, c->now, period, c->cfg.signed_prekey_grace_ms, &rotated);
  if (rc == WHISPER_OK) rc = wh_signed_prekey_current(c->ctx, &id, &made);
  if (rc != WHISPER_OK) {
    /* none to rotate (an identity imported without one) is not an error of the engine's */
    if (rc != WHISPER_ESTATE) sy_error_event(c, rc, 0, "cannot rotate the signed prekey");
    return;
  }
  /* rotated once it is older than the period: the first millisecond after it */
  if (period) c->spk_due_at = made > UINT64_MAX - period - 1 ? 0 : made + period + 1;
  if (rotated || (c->spk_server_known && c->spk_server != id)) spk_upload(c);
}

/* The server's id is compared once per login: after an upload only a
 * rotation due meanwhile sends another (a server that keeps answering
 * with another id gets no loop of uploads; a refused one waits for the
 * next login). */
void sy_spk_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  (void)r;
  c->spk_inflight = 0;
  c->spk_server_known = 0;
  if (f->body_case != WHISPER__SYNC__FRAME__BODY_OK) {
    server_error(c, f, "signed prekey upload refused");
    return;
  }
  sy_spk_check(c);
}
