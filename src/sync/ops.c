/*
 * What the app does: send, read receipts, typing, presence, group
 * operations and link approval. Messages, receipts and group operations
 * are stored before the call returns and go out when a connection is up;
 * typing, presence subscriptions and link approvals are only kept in
 * memory (they mean nothing after a restart).
 */
#include "sync/sync_internal.h"

/* --- sending ----------------------------------------------------------------------------------- */

static int add_recipients(whisper_client *c, whisper_device_t **devs, size_t *n, char ***names,
                          size_t *n_names, const char *account, uint32_t skip) {
  sy_devlist l;
  int rc = sy_devs_load(c, account, &l);
  if (rc != WHISPER_OK) return rc;
  char **nn = realloc(*names, (*n_names + 1) * sizeof *nn);
  if (nn) *names = nn;
  whisper_device_t *nd = nn ? realloc(*devs, (*n + l.n + 1) * sizeof *nd) : NULL;
  if (nd) *devs = nd;
  char *name = nd ? sy_strdup(account) : NULL;
  if (name == NULL) {
    sy_devs_free(&l);
    return WHISPER_ENOMEM;
  }
  (*names)[(*n_names)++] = name;
  for (size_t i = 0; i < l.n; i++)
    if (l.d[i].id != skip) (*devs)[(*n)++] = (whisper_device_t){name, l.d[i].id};
  sy_devs_free(&l);
  return WHISPER_OK;
}

/* The accounts a message of `conv` goes to (not this one: its other
 * devices get copies, and are not recipients). Free with free(); the
 * names are borrowed from `g` (a group's, freed by the caller) or conv. */
static int conv_accounts(whisper_client *c, const char *conv, sy_group *g, const char ***out,
                         size_t *n) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  memset(g, 0, sizeof *g);
  *out = NULL;
  *n = 0;
  if (!wh_group_conv_parse(conv, gid)) {
    if ((*out = calloc(1, sizeof **out)) == NULL) return WHISPER_ENOMEM;
    (*out)[(*n)++] = conv;
    return WHISPER_OK;
  }
  int rc = sy_group_load(c, gid, g);
  if (rc != WHISPER_OK) return rc;
  if (!g->known || g->left || !sy_group_is_member(g, c->account))
    return sy_fail(c, WHISPER_ESTATE, "this account is not a member of that group");
  if (sy_group_sender_why(g, c->account)) /* its members would refuse it (groups.c) */
    return sy_fail(c, WHISPER_ESTATE, "only admins send to that group");
  if ((*out = calloc(g->n_members + 1, sizeof **out)) == NULL) return WHISPER_ENOMEM;
  for (size_t i = 0; i < g->n_members; i++)
    if (strcmp(g->members[i], c->account) != 0) (*out)[(*n)++] = g->members[i];
  return WHISPER_OK;
}

/* Stores the message (history, outbox, its conversation) in one
 * transaction, with the recipient devices known now; with `t`, applies
 * t's operation to its message in the same transaction. */
int sy_enqueue(whisper_client *c, const char *conv, const uint8_t *body, size_t len,
               const wh_entry_extra *x, const sy_target *t, uint64_t now_ms, uint8_t id_out[16]) {
  return sy_enqueue_as(c, conv, body, len, x, t, now_ms, NULL, id_out);
}

int sy_enqueue_as(whisper_client *c, const char *conv, const uint8_t *body, size_t len,
                  const wh_entry_extra *x, const sy_target *t, uint64_t now_ms,
                  const uint8_t *preset, uint8_t id_out[16]) {
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  if (sy_block_has(c, conv)) /* block.c */
    return sy_fail(c, WHISPER_EBLOCKED, "%s is blocked: unblock it to send to it", conv);
  whisper_device_t *devs = NULL;
  char **names = NULL;
  const char **accounts = NULL;
  size_t n = 0, n_names = 0, na = 0;
  sy_group g;
  c->now = now_ms;
  if (preset) memcpy(id, preset, sizeof id);
  else if (wh_random(&c->ctx->rng, id, sizeof id) != 0)
    return sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
  int rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) rc = conv_accounts(c, conv, &g, &accounts, &na);
  for (size_t i = 0; rc == WHISPER_OK && i < na; i++)
    rc = add_recipients(c, &devs, &n, &names, &n_names, accounts[i],
                        strcmp(accounts[i], c->account) == 0 ? c->device_id : 0);
  if (rc == WHISPER_OK && t) {
    int pending = 0;
    rc = wh_history_apply(c->ctx, conv, t->sender, t->id, t->id_len, t->op, &pending);
    if (rc == WHISPER_OK && pending)
      rc = sy_fail(c, WHISPER_ENOTFOUND, "no such message in that conversation");
  }
  if (rc == WHISPER_OK) {
    /* until the server's sequence is known, after everything it ordered */
    whisper_message_t m = {.size = sizeof(whisper_message_t),
                           .conversation = conv, .id = id, .id_len = sizeof id,
                           .sort_key = (1ULL << 63) | now_ms, .timestamp_ms = now_ms,
                           .body = body, .body_len = len};
    rc = wh_history_outgoing_put(c->ctx, &m, devs, n, x);
  }
  uint64_t counter = 0;
  if (rc == WHISPER_OK) rc = sy_counter_next(c, conv, &counter);
  if (rc == WHISPER_OK) rc = sy_outref_put(c, id, conv, counter);
  rc = sy_txn_end(c, rc);
  for (size_t i = 0; i < n_names; i++) free(names[i]);
  free(names);
  free(devs);
  free(accounts);
  sy_group_free(&g);
  if (rc != WHISPER_OK) return rc;
  memcpy(id_out, id, sizeof id);
  if (!c->index_at) c->index_at = now_ms + SY_INDEX_DELAY_MS; /* waits for the index (tick) */
  if (c->logged_in) {
    if (sy_job_add_content(c, conv, id, body, len, x ? x->content : NULL, x ? x->content_len : 0,
                           x && x->hidden) != WHISPER_OK)
      c->outbox_more = 1;
    sy_pump(c);
  }
  sy_profile_sent_to(c, conv, now_ms); /* profile.c: the profile key along, to a new contact */
  return wh_ok(c->ctx);
}

int whisper_client_send(whisper_client *c, const char *to, const uint8_t *body, size_t body_len,
                        uint64_t now_ms, uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  if (c == NULL) return WHISPER_EINVAL;
  if (!wh_account_ok(to) || strcmp(to, c->account) == 0 || (body == NULL && body_len) ||
      id_out == NULL)
    return sy_fail(c, WHISPER_EINVAL,
                   "send needs another account's name (1-64 of [a-z0-9._-]), a body and id_out");
  return sy_enqueue(c, to, body, body_len, NULL, NULL, now_ms, id_out);
}

int whisper_client_send_group(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                              const uint8_t *body, size_t body_len, uint64_t now_ms,
                              uint8_t id_out[WHISPER_CLIENT_ID_LEN]) {
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  if (c == NULL) return WHISPER_EINVAL;
  if (group_id == NULL || (body == NULL && body_len) || id_out == NULL)
    return sy_fail(c, WHISPER_EINVAL, "send_group needs a group id, a body and id_out");
  whisper_client_group_conversation(group_id, conv);
  return sy_enqueue(c, conv, body, body_len, NULL, NULL, now_ms, id_out);
}

/* --- pending receipts and group operations ------------------------------------------------------- */

int sy_ops_store(whisper_client *c) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  return wh_finish(c->ctx, sy_ops_save(c));
}

static sy_op *op_new(whisper_client *c) {
  if (c->n_ops >= SY_MAX_OPS) return NULL;
  sy_op *n = realloc(c->ops, (c->n_ops + 1) * sizeof *n);
  if (n == NULL) return NULL;
  c->ops = n;
  memset(&c->ops[c->n_ops], 0, sizeof c->ops[c->n_ops]);
  return &c->ops[c->n_ops++];
}

void sy_op_drop(whisper_client *c, size_t i) {
  sy_op *o = &c->ops[i];
  sy_edit_clear(&o->edit); /* a join's secret is wiped */
  whisper_buf_free(o->change);
  free(o->to);
  free(o->ids);
  for (size_t k = 0; k < o->n_members; k++) free(o->members[k]);
  free(o->members);
  memmove(&c->ops[i], &c->ops[i + 1], (c->n_ops - i - 1) * sizeof *c->ops);
  c->n_ops--;
}

/* One group op at a time per group: the next is signed on the state the
 * previous one made. */
static int group_busy(const whisper_client *c, size_t upto, const uint8_t *gid) {
  for (size_t k = 0; k < upto; k++)
    if (c->ops[k].kind == OP_GROUP && memcmp(c->ops[k].group_id, gid, WHISPER_GROUP_ID_LEN) == 0)
      return 1;
  return 0;
}

void sy_ops_flush(whisper_client *c) {
  int jobs = 0;
  c->receipts_due = 0;
  c->receipts_at = 0;
  if (!c->logged_in || c->close_wanted) return;
  for (size_t i = 0; i < c->n_ops; i++) {
    sy_op *o = &c->ops[i];
    if (o->inflight) continue;
    if (o->kind == OP_RECEIPT && c->catching && o->made_at && o->n_ids < SY_CATCH_RECEIPT_IDS &&
        c->now < o->made_at + SY_CATCH_RECEIPT_MS) { /* it gathers more first */
      if (!c->receipts_at || o->made_at + SY_CATCH_RECEIPT_MS < c->receipts_at)
        c->receipts_at = o->made_at + SY_CATCH_RECEIPT_MS;
      continue;
    }
    if (o->kind == OP_RECEIPT) {
      /* end to end: a message of its own, through the sessions */
      if (sy_receipt_job(c, o) == WHISPER_OK) o->inflight = SY_IN_JOB, jobs = 1;
      continue;
    }
    if (o->kind == OP_GROUP) {
      if (group_busy(c, i, o->group_id)) continue;
      if (o->code != WHISPER__SYNC__GROUP_OP__OP__CREATE) {
        int rc = o->code == WHISPER__SYNC__GROUP_OP__OP__PEEK
                     ? (o->edit.has_secret ? WHISPER_OK
                                           : sy_fail(c, WHISPER_ECORRUPT, "a stored join without its link"))
                     : sy_group_op_change(c, o);
        if (rc != WHISPER_OK) {
          sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
          char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
          whisper_client_group_conversation(o->group_id, conv);
          if (e && sy_event_set(e, conv, NULL, NULL, 0, NULL, 0) == WHISPER_OK) {
            e->ev.code = rc;
            e->message = sy_strdup(whisper_ctx_last_error(c->ctx));
            sy_event_push(c, e);
          } else {
            sy_event_free(e);
          }
          sy_op_drop(c, i--);
          if (sy_ops_store(c) != WHISPER_OK) return;
          continue;
        }
      }
    }
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    Whisper__Sync__GroupOp g = WHISPER__SYNC__GROUP_OP__INIT;
    g.has_op = g.has_group_id = 1;
    g.op = (Whisper__Sync__GroupOp__Op)o->code;
    g.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, o->group_id};
    g.n_members = o->n_members;
    g.members = o->members;
    if (o->change) {
      g.has_change = 1;
      g.change = (ProtobufCBinaryData){o->change->len, o->change->data};
    }
    uint8_t proof[WHISPER_SIGNATURE_LEN];
    if (o->kind == OP_GROUP && o->code == WHISPER__SYNC__GROUP_OP__OP__PEEK) {
      /* the link, proven with its key (the secret stays here) */
      if (sy_group_peek_proof(c, o, proof) != WHISPER_OK) break; /* the RNG: tried again later */
      o->edit.tries++;
      g.has_invite_proof = 1;
      g.invite_proof = (ProtobufCBinaryData){sizeof proof, proof};
    }
    f.body_case = WHISPER__SYNC__FRAME__BODY_GROUP;
    f.group = &g;
    sy_req *rq;
    if (sy_queue(c, &f, RQ_OP, 1, &rq) != WHISPER_OK) break;
    o->inflight = rq->id;
  }
  if (jobs) sy_pump(c);
}

void sy_op_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  size_t i = 0;
  while (i < c->n_ops && c->ops[i].inflight != r->id) i++;
  if (i == c->n_ops) return;
  uint32_t code = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error->code : 0;
  /* a CREATE sent again after a lost answer finds its group */
  if (code == ERR_EXISTS && c->ops[i].kind == OP_GROUP &&
      c->ops[i].code == WHISPER__SYNC__GROUP_OP__OP__CREATE)
    code = 0;
  if (code == ERR_RATE || code == ERR_INTERNAL) {
    c->ops[i].inflight = 0;
    uint64_t wait = f->has_retry_ms && f->retry_ms ? f->retry_ms : SY_RETRY_MS;
    if (!c->send_retry_at) c->send_retry_at = c->now + (wait < 600000 ? wait : 600000);
    return;
  }
  if (c->ops[i].kind == OP_GROUP && (c->ops[i].code == WHISPER__SYNC__GROUP_OP__OP__PEEK ||
                                     c->ops[i].code == WHISPER__SYNC__GROUP_OP__OP__JOIN)) {
    sy_group_join_answer(c, i, f); /* joining by link: groups.c */
    return;
  }
  if (code) {
    sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
    if (e) {
      char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
      if (c->ops[i].has_group) whisper_client_group_conversation(c->ops[i].group_id, conv);
      e->ev.code = WHISPER_EINVAL;
      e->ev.server_code = (int)code;
      e->message = sy_strdup(f->error->message ? f->error->message
                                               : c->ops[i].kind == OP_GROUP ? "group operation refused"
                                                                            : "receipt refused");
      if (sy_event_set(e, c->ops[i].has_group ? conv : c->ops[i].to, NULL, NULL, 0, NULL, 0) != WHISPER_OK) {
        sy_event_free(e);
        e = NULL;
      }
      sy_event_push(c, e);
    }
  }
  /* the server took this device's change: it is the group's state now */
  if (!code && c->ops[i].kind == OP_GROUP && c->ops[i].change) {
    int rc = sy_group_own_change(c, c->ops[i].group_id, c->ops[i].change);
    if (rc != WHISPER_OK) sy_error_event(c, rc, 0, whisper_ctx_last_error(c->ctx));
  }
  /* answered (Ok, GroupInfo, or refused for good): done */
  sy_op_drop(c, i);
  int rc = sy_ops_store(c);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store the pending operations");
  sy_ops_flush(c); /* the next op of the same group waited for this one */
}

/* Client ids per Receipt frame (the server takes up to 1024). */
#define RECEIPT_BATCH_MAX 1000

/* Adds ids to the batch of receipts with `status` for `to` that is not on
 * its way yet (or a new one). In memory; the caller stores the ops. */
int sy_receipt_add(whisper_client *c, const char *to, int status,
                   const uint8_t (*ids)[WHISPER_CLIENT_ID_LEN], size_t n) {
  sy_op *o = NULL;
  if (sy_block_has(c, to)) return WHISPER_OK; /* none for a blocked account (block.c) */
  for (size_t i = 0; i < c->n_ops && o == NULL; i++) {
    sy_op *p = &c->ops[i];
    if (p->kind == OP_RECEIPT && !p->inflight && p->code == (uint32_t)status &&
        strcmp(p->to, to) == 0 && p->n_ids + n <= RECEIPT_BATCH_MAX)
      o = p;
  }
  int fresh = o == NULL;
  if (fresh) {
    if ((o = op_new(c)) == NULL) return sy_fail(c, WHISPER_ENOMEM, "too many pending receipts");
    o->kind = OP_RECEIPT;
    o->code = (uint32_t)status;
    o->made_at = c->now ? c->now : 1;
    if ((o->to = sy_strdup(to)) == NULL || wh_random(&c->ctx->rng, o->cid, sizeof o->cid) != 0) {
      sy_op_drop(c, c->n_ops - 1);
      return WHISPER_ENOMEM;
    }
  }
  uint8_t(*nids)[WHISPER_CLIENT_ID_LEN] = realloc(o->ids, (o->n_ids + n + 1) * sizeof *nids);
  if (nids == NULL) {
    if (fresh) sy_op_drop(c, c->n_ops - 1);
    return WHISPER_ENOMEM;
  }
  o->ids = nids;
  for (size_t i = 0; i < n; i++) {
    int dup = 0;
    for (size_t k = 0; k < o->n_ids && !dup; k++) dup = memcmp(o->ids[k], ids[i], WHISPER_CLIENT_ID_LEN) == 0;
    if (!dup) memcpy(o->ids[o->n_ids++], ids[i], WHISPER_CLIENT_ID_LEN);
  }
  c->receipts_due = 1;
  return WHISPER_OK;
}

/* The receipt op that travelled as job `cid`: the server took it. */
/* The server took a receipt's Send: it is done. Its removal is stored with
 * the next change of the pending ops (a batch's receipts, an operation),
 * not on its own: one that comes back after a restart goes again under
 * its client id, which the server answers without delivering it twice
 * (and a receipt repeated changes nothing). */
void sy_receipt_done(whisper_client *c, const uint8_t cid[WHISPER_CLIENT_ID_LEN]) {
  for (size_t i = 0; i < c->n_ops; i++)
    if (c->ops[i].kind == OP_RECEIPT && memcmp(c->ops[i].cid, cid, WHISPER_CLIENT_ID_LEN) == 0) {
      sy_op_drop(c, i);
      return;
    }
}

int whisper_client_mark_read(whisper_client *c, const char *conversation, const char *sender,
                             const uint8_t (*ids)[WHISPER_CLIENT_ID_LEN], size_t n,
                             uint64_t now_ms) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  int group = wh_group_conv_parse(conversation, gid);
  if ((!group && !wh_account_ok(conversation)) || !wh_account_ok(sender) ||
      (ids == NULL && n) || n > 100000)
    return sy_fail(c, WHISPER_EINVAL, "mark_read needs a conversation, a sender and ids");
  if (!c->cfg.read_receipts || n == 0 || strcmp(sender, c->account) == 0) return wh_ok(c->ctx);
  size_t before = c->n_ops;
  int rc = WHISPER_OK;
  for (size_t i = 0; rc == WHISPER_OK && i < n; i += RECEIPT_BATCH_MAX) {
    size_t k = n - i < RECEIPT_BATCH_MAX ? n - i : RECEIPT_BATCH_MAX;
    rc = sy_receipt_add(c, sender, WHISPER_STATUS_READ, ids + i, k);
  }
  if (rc == WHISPER_OK) rc = sy_ops_store(c);
  if (rc != WHISPER_OK) {
    /* what was not stored is not kept (a batch it joined keeps the ids: harmless) */
    while (c->n_ops > before) sy_op_drop(c, c->n_ops - 1);
    return rc;
  }
  sy_ops_flush(c);
  return wh_ok(c->ctx);
}

static int group_op(whisper_client *c, int op, const uint8_t gid[WHISPER_GROUP_ID_LEN],
                    const char *const *members, size_t n) {
  sy_op *o = op_new(c);
  if (o == NULL) return sy_fail(c, WHISPER_ENOMEM, "too many pending operations");
  o->kind = OP_GROUP;
  o->code = (uint32_t)op;
  o->has_group = 1;
  memcpy(o->group_id, gid, WHISPER_GROUP_ID_LEN);
  o->members = calloc(n ? n : 1, sizeof *o->members);
  int rc = o->members ? WHISPER_OK : WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++)
    if ((o->members[o->n_members] = sy_strdup(members[i])) == NULL) rc = WHISPER_ENOMEM;
    else o->n_members++;
  if (rc != WHISPER_OK) sy_op_drop(c, c->n_ops - 1);
  return rc;
}

static int check_members(whisper_client *c, const char *const *members, size_t n, int allow_self) {
  if ((members == NULL && n) || n > WHISPER_GROUP_MEMBERS_MAX)
    return sy_fail(c, WHISPER_EINVAL, "bad member list");
  for (size_t i = 0; i < n; i++)
    if (!wh_account_ok(members[i]) || (!allow_self && strcmp(members[i], c->account) == 0))
      return sy_fail(c, WHISPER_EINVAL, "a member is not an account name");
  return WHISPER_OK;
}

int whisper_client_group_create(whisper_client *c, const char *const *members, size_t n,
                                uint64_t now_ms, uint8_t group_id_out[WHISPER_GROUP_ID_LEN]) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  int rc = check_members(c, members, n, 1);
  if (rc != WHISPER_OK) return rc;
  if (group_id_out == NULL) return sy_fail(c, WHISPER_EINVAL, "group_id_out is NULL");
  if (n >= c->cfg.max_group_members)
    return sy_fail(c, WHISPER_EINVAL, "a group has at most %u members",
                   (unsigned)c->cfg.max_group_members);
  if (wh_random(&c->ctx->rng, gid, sizeof gid) != 0)
    return sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
  /* the creation, signed by this device: the group's first state */
  sy_group g;
  memset(&g, 0, sizeof g);
  g.known = 1;
  g.members = calloc(n + 1, sizeof *g.members);
  g.admins = calloc(1, sizeof *g.admins);
  rc = g.members && g.admins && (g.members[0] = sy_strdup(c->account)) &&
               (g.admins[0] = sy_strdup(c->account))
           ? WHISPER_OK
           : WHISPER_ENOMEM;
  if (rc == WHISPER_OK) g.n_members = g.n_admins = 1;
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
    if (sy_group_is_member(&g, members[i])) continue;
    if ((g.members[g.n_members] = sy_strdup(members[i])) == NULL) rc = WHISPER_ENOMEM;
    else g.n_members++;
  }
  whisper_buf *change = NULL;
  sy_change ch = {0};
  if (rc == WHISPER_OK && g.n_members > c->cfg.max_group_members)
    rc = sy_fail(c, WHISPER_EINVAL, "a group has at most %u members", (unsigned)c->cfg.max_group_members);
  if (rc == WHISPER_OK) rc = sy_change_make(c, gid, &g, &g, NULL, &change);
  if (rc == WHISPER_OK) rc = sy_change_parse(c, gid, change->data, change->len, &ch);
  if (rc == WHISPER_OK) {
    g.version = 1;
    memcpy(g.hash, ch.hash, sizeof g.hash);
    g.changed = WHISPER_GROUP_CHANGED_MEMBERS | WHISPER_GROUP_CHANGED_ADMINS; /* for the echo's event */
  }
  sy_change_free(&ch);
  size_t n_before = c->n_ops;
  if (rc == WHISPER_OK) rc = group_op(c, WHISPER__SYNC__GROUP_OP__OP__CREATE, gid, members, n);
  if (rc == WHISPER_OK) {
    c->ops[c->n_ops - 1].change = change;
    change = NULL;
  }
  whisper_buf_free(change);
  if (rc == WHISPER_OK && (rc = sy_begin(c)) == WHISPER_OK) {
    rc = sy_group_save(c, gid, &g);
    if (rc == WHISPER_OK) rc = sy_ops_save(c);
    rc = wh_finish(c->ctx, rc);
  }
  sy_group_free(&g);
  if (rc != WHISPER_OK) {
    if (c->n_ops > n_before) sy_op_drop(c, c->n_ops - 1);
    return rc;
  }
  memcpy(group_id_out, gid, sizeof gid);
  sy_ops_flush(c);
  return wh_ok(c->ctx);
}

static int group_change(whisper_client *c, int op, const uint8_t gid[WHISPER_GROUP_ID_LEN],
                        const char *const *members, size_t n, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  if (gid == NULL || n == 0) return sy_fail(c, WHISPER_EINVAL, "a group id and members are needed");
  int rc = check_members(c, members, n, op == WHISPER__SYNC__GROUP_OP__OP__REMOVE);
  if (rc != WHISPER_OK) return rc;
  if (op == WHISPER__SYNC__GROUP_OP__OP__ADD) { /* the member limit, as held now */
    sy_group g;
    if ((rc = sy_begin(c)) != WHISPER_OK) return rc;
    if ((rc = wh_finish(c->ctx, sy_group_load(c, gid, &g))) != WHISPER_OK) return rc;
    size_t after = g.n_members;
    for (size_t i = 0; i < n; i++) after += !sy_group_is_member(&g, members[i]);
    sy_group_free(&g);
    if (after > c->cfg.max_group_members)
      return sy_fail(c, WHISPER_ESTATE, "a group has at most %u members",
                     (unsigned)c->cfg.max_group_members);
  }
  if ((rc = group_op(c, op, gid, members, n)) != WHISPER_OK) return rc;
  if ((rc = sy_ops_store(c)) != WHISPER_OK) {
    sy_op_drop(c, c->n_ops - 1);
    return rc;
  }
  sy_ops_flush(c);
  return wh_ok(c->ctx);
}

int whisper_client_group_add(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                             const char *const *members, size_t n, uint64_t now_ms) {
  return group_change(c, WHISPER__SYNC__GROUP_OP__OP__ADD, group_id, members, n, now_ms);
}

int whisper_client_group_remove(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                                const char *const *members, size_t n, uint64_t now_ms) {
  return group_change(c, WHISPER__SYNC__GROUP_OP__OP__REMOVE, group_id, members, n, now_ms);
}

/* --- typing -------------------------------------------------------------------------------------- */

static sy_typing *typing_find(sy_typing *l, const char *conv, const char *from, uint32_t dev) {
  for (; l; l = l->next)
    if (strcmp(l->conversation, conv) == 0 &&
        (from == NULL ? l->from == NULL : l->from && strcmp(l->from, from) == 0 && l->from_device == dev))
      return l;
  return NULL;
}

static sy_typing *typing_add(sy_typing **l, const char *conv, const char *from, uint32_t dev) {
  sy_typing *t = calloc(1, sizeof *t);
  if (t == NULL || (t->conversation = sy_strdup(conv)) == NULL ||
      (from && (t->from = sy_strdup(from)) == NULL)) {
    if (t) free(t->conversation);
    free(t);
    return NULL;
  }
  t->from_device = dev;
  t->next = *l;
  *l = t;
  return t;
}

static void typing_list_free(sy_typing **l) {
  while (*l) {
    sy_typing *t = *l;
    *l = t->next;
    free(t->conversation);
    free(t->from);
    free(t);
  }
}

void sy_typing_free(whisper_client *c) {
  typing_list_free(&c->typing_out);
  typing_list_free(&c->typing_in);
}

int whisper_client_typing(whisper_client *c, const char *conversation, int started, uint64_t now_ms) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  int group = wh_group_conv_parse(conversation, gid);
  if (!group && !wh_account_ok(conversation))
    return sy_fail(c, WHISPER_EINVAL, "typing needs a conversation");
  if (!c->logged_in) return wh_ok(c->ctx); /* typing is only for now */
  if (!group && sy_block_has(c, conversation)) return wh_ok(c->ctx); /* not to a blocked account */
  sy_typing *t = typing_find(c->typing_out, conversation, NULL, 0);
  if (t == NULL && (t = typing_add(&c->typing_out, conversation, NULL, 0)) == NULL)
    return WHISPER_ENOMEM;
  started = started != 0;
  if (started && t->started && t->at && now_ms < t->at + c->cfg.typing_min_ms) return wh_ok(c->ctx);
  if (!started && !t->started) return wh_ok(c->ctx);
  Whisper__Sync__Typing ty = WHISPER__SYNC__TYPING__INIT;
  if (group) {
    ty.has_group_id = 1;
    ty.group_id = (ProtobufCBinaryData){WHISPER_GROUP_ID_LEN, gid};
  } else {
    ty.to = (char *)conversation;
  }
  ty.has_started = 1;
  ty.started = started;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_TYPING;
  f.typing = &ty;
  int rc = sy_queue(c, &f, RQ_TYPING, 1, NULL);
  if (rc != WHISPER_OK) return rc;
  t->started = started;
  t->at = now_ms;
  return wh_ok(c->ctx);
}

static void typing_event(whisper_client *c, const sy_typing *t, int started) {
  sy_event *e = sy_event_new(c, WHISPER_EV_TYPING);
  if (e == NULL) return;
  if (sy_event_set(e, t->conversation, t->from, NULL, 0, NULL, 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.from_device = t->from_device;
  e->ev.started = started;
  sy_event_push(c, e);
}

void sy_typing_in_notice(whisper_client *c, const Whisper__Sync__TypingNotice *n) {
  char conv[WH_NAME_MAX + 1];
  if (sy_block_has(c, n->from)) return; /* a blocked account's typing (block.c) */
  if (n->has_group_id) whisper_client_group_conversation(n->group_id.data, conv);
  else snprintf(conv, sizeof conv, "%s", n->from);
  sy_typing *t = typing_find(c->typing_in, conv, n->from, n->from_device);
  if (n->started) {
    if (t == NULL && (t = typing_add(&c->typing_in, conv, n->from, n->from_device)) == NULL) return;
    /* the server's expiry when it is plausible on this clock, else the default */
    uint64_t at = c->now + SY_TYPING_TTL;
    if (n->has_expires_ms && n->expires_ms > c->now && n->expires_ms <= c->now + 60000) at = n->expires_ms;
    t->at = at;
    typing_event(c, t, 1);
  } else if (t) {
    t->at = 0; /* lapses now */
    sy_typing_tick(c);
  }
}

void sy_typing_tick(whisper_client *c) {
  for (sy_typing **p = &c->typing_in; *p;) {
    sy_typing *t = *p;
    if (t->at <= c->now || t->at == 0) {
      *p = t->next;
      typing_event(c, t, 0);
      free(t->conversation);
      free(t->from);
      free(t);
    } else {
      p = &t->next;
    }
  }
}

uint64_t sy_typing_deadline(const whisper_client *c) {
  uint64_t d = UINT64_MAX;
  for (const sy_typing *t = c->typing_in; t; t = t->next)
    if (t->at < d) d = t->at;
  return d;
}

/* --- presence -------------------------------------------------------------------------------------- */

static int subscribe_send(whisper_client *c, char **accounts, size_t n) {
  if (n == 0) return WHISPER_OK;
  Whisper__Sync__PresenceSubscribe s = WHISPER__SYNC__PRESENCE_SUBSCRIBE__INIT;
  s.n_accounts = n;
  s.accounts = accounts;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_SUBSCRIBE;
  f.subscribe = &s;
  return sy_queue(c, &f, RQ_SUBSCRIBE, 1, NULL);
}

void sy_presence_flush(whisper_client *c) {
  Whisper__Sync__PresenceSet p = WHISPER__SYNC__PRESENCE_SET__INIT;
  p.has_online_visible = p.has_read_receipts = 1;
  p.online_visible = c->cfg.presence_visible != 0;
  p.read_receipts = c->cfg.read_receipts != 0;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PRESENCE_SET;
  f.presence_set = &p;
  sy_queue(c, &f, RQ_PRESENCE_SET, 1, NULL);
  sy_mutes_flush(c);
  subscribe_send(c, c->subs, c->n_subs);
}

int whisper_client_subscribe(whisper_client *c, const char *const *accounts, size_t n) {
  if (c == NULL) return WHISPER_EINVAL;
  if ((accounts == NULL && n) || n > 1024) return sy_fail(c, WHISPER_EINVAL, "bad account list");
  for (size_t i = 0; i < n; i++)
    if (!wh_account_ok(accounts[i])) return sy_fail(c, WHISPER_EINVAL, "not an account name");
  char **fresh = calloc(n ? n : 1, sizeof *fresh);
  char **all = realloc(c->subs, (c->n_subs + n + 1) * sizeof *all);
  if (all) c->subs = all;
  if (fresh == NULL || all == NULL) {
    free(fresh);
    return WHISPER_ENOMEM;
  }
  size_t nf = 0;
  for (size_t i = 0; i < n; i++) {
    int have = 0;
    for (size_t k = 0; k < c->n_subs && !have; k++) have = strcmp(c->subs[k], accounts[i]) == 0;
    if (have) continue;
    char *s = sy_strdup(accounts[i]);
    if (s == NULL) break;
    c->subs[c->n_subs++] = s;
    fresh[nf++] = s;
  }
  int rc = c->logged_in ? subscribe_send(c, fresh, nf) : WHISPER_OK;
  free(fresh);
  return rc == WHISPER_OK ? wh_ok(c->ctx) : rc;
}

/* --- linking ----------------------------------------------------------------------------------------- */

void sy_approve_free(sy_approve *a) {
  whisper_buf_free(a->list);
  wh_wipe(a, sizeof *a);
  free(a);
}

void sy_approvals_flush(whisper_client *c) {
  if (!c->logged_in) return;
  for (sy_approve *a = c->approvals; a; a = a->next) {
    if (a->inflight) continue;
    Whisper__Sync__LinkApprove la = WHISPER__SYNC__LINK_APPROVE__INIT;
    Whisper__Sync__PublishDevices pd = WHISPER__SYNC__PUBLISH_DEVICES__INIT;
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    ProtobufCBinaryData list = {a->list->len, a->list->data};
    if (a->len) {
      la.has_link_code = la.has_signed_list = 1;
      la.link_code = (ProtobufCBinaryData){a->len, a->code};
      la.signed_list = list;
      f.body_case = WHISPER__SYNC__FRAME__BODY_LINK_APPROVE;
      f.link_approve = &la;
    } else {
      pd.has_signed_list = 1;
      pd.signed_list = list;
      f.body_case = WHISPER__SYNC__FRAME__BODY_PUBLISH;
      f.publish = &pd;
    }
    sy_req *r;
    if (sy_queue(c, &f, a->len ? RQ_LINK_APPROVE : RQ_PUBLISH, 1, &r) != WHISPER_OK) return;
    a->inflight = r->id;
  }
}

void sy_publish_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  sy_approve *a = NULL;
  for (sy_approve **p = &c->approvals; *p; p = &(*p)->next)
    if ((*p)->inflight == r->id) {
      a = *p;
      *p = a->next;
      break;
    }
  if (a == NULL) return;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_OK) {
    sy_devlist own;
    int rc = sy_txn_begin(c);
    if (rc == WHISPER_OK) {
      rc = sy_devs_load(c, c->account, &own);
      if (rc == WHISPER_OK) rc = sy_list_accept(c, c->account, a->list->data, a->list->len, &own, NULL);
      if (rc == WHISPER_OK) rc = sy_devs_save(c, c->account, &own);
      sy_devs_free(&own);
      rc = sy_txn_end(c, rc);
    }
    if (rc != WHISPER_OK) sy_error_event(c, rc, 0, whisper_ctx_last_error(c->ctx));
    else c->own_listed = 1;
    if (rc == WHISPER_OK && a->len) sy_block_resync(c); /* the new device gets the block list */
  } else if (f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && f->error->code == ERR_STATE &&
             !c->own_listed) {
    /* the first list went before, its answer lost: read it back (it must
     * verify under this device's key to be taken) */
    sy_list_request(c, c->account);
  } else {
    const Whisper__Sync__Error *e = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error : NULL;
    sy_error_event(c, WHISPER_EINVAL, e ? (int)e->code : 0,
                   e && e->message ? e->message : "the new device list was refused");
  }
  sy_approve_free(a);
}

/* Queues a signed list of this account: devs with one added or removed. */
static int publish(whisper_client *c, uint32_t add, const uint8_t *add_key, uint32_t remove,
                   const uint8_t *code, size_t code_len) {
  if (c->device_id != 1)
    return sy_fail(c, WHISPER_ESTATE, "only the primary device (1) holds the account key");
  sy_devlist own;
  int rc = sy_devs_load(c, c->account, &own);
  if (rc != WHISPER_OK) return rc;
  uint64_t version = own.version;
  if (c->approvals) /* each list is signed on the one before it: one at a time */
    rc = sy_fail(c, WHISPER_ESTATE, "another device list change is on its way; try again after it");
  else if (!own.authed) rc = sy_fail(c, WHISPER_ESTATE, "this account's device list is not published yet");
  else if (remove && (remove == c->device_id || !sy_devs_find(&own, remove)))
    rc = sy_fail(c, WHISPER_EINVAL, "device %u is not another device of this account", remove);
  if (rc == WHISPER_OK && add) {
    sy_devs_del(&own, add);
    if ((rc = sy_devs_add(&own, add, 0)) == WHISPER_OK) {
      sy_dev *d = sy_devs_find(&own, add);
      d->has_key = 1;
      memcpy(d->key, add_key, WHISPER_PUBLIC_KEY_LEN);
    }
  }
  if (rc == WHISPER_OK && remove) sy_devs_del(&own, remove);
  sy_approve *a = NULL;
  if (rc == WHISPER_OK && (a = calloc(1, sizeof *a)) == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK) rc = sy_list_sign(c, version + 1, own.d, own.n, &a->list);
  sy_devs_free(&own);
  if (rc != WHISPER_OK) {
    if (a) sy_approve_free(a);
    return rc;
  }
  if (code_len) memcpy(a->code, code, code_len);
  a->len = code_len;
  sy_approve **tail = &c->approvals;
  while (*tail) tail = &(*tail)->next;
  *tail = a;
  sy_approvals_flush(c);
  return wh_ok(c->ctx);
}

int whisper_client_link_approve(whisper_client *c, const uint8_t *token, size_t len) {
  if (c == NULL) return WHISPER_EINVAL;
  sy_token tk;
  if (sy_token_parse(token, len, &tk) != WHISPER_OK)
    return sy_fail(c, WHISPER_EINVAL, "not a link token");
  if (strcmp(tk.account, c->account) != 0)
    return sy_fail(c, WHISPER_EINVAL, "a link token of another account (%s)", tk.account);
  return publish(c, tk.device, tk.key, 0, tk.code, tk.code_len);
}

int whisper_client_device_remove(whisper_client *c, uint32_t device_id) {
  if (c == NULL) return WHISPER_EINVAL;
  if (!wh_device_id_ok(device_id)) return sy_fail(c, WHISPER_EINVAL, "bad device id");
  return publish(c, 0, NULL, device_id, NULL, 0);
}

int sy_publish_first(whisper_client *c, const Whisper__Sync__Bundles *b) {
  sy_dev *d = calloc(SY_MAX_LIST, sizeof *d);
  size_t n = 0;
  if (d == NULL) return WHISPER_ENOMEM;
  d[n].id = 1;
  int rc = whisper_identity_get(c->ctx, d[n].key, NULL, NULL, NULL);
  n++;
  /* the devices linked before lists existed: taken on the server's word once (docs/security.md) */
  for (size_t i = 0; rc == WHISPER_OK && b && i < b->n_bundles && n < SY_MAX_LIST; i++) {
    const Whisper__Sync__DeviceKeys *k = b->bundles[i]->keys;
    if (k == NULL || k->device_id <= 1 || k->device_id > INT32_MAX ||
        k->identity_key.len != WHISPER_PUBLIC_KEY_LEN)
      continue;
    d[n].id = k->device_id;
    memcpy(d[n].key, k->identity_key.data, WHISPER_PUBLIC_KEY_LEN);
    n++;
  }
  sy_approve *a = NULL;
  if (rc == WHISPER_OK && (a = calloc(1, sizeof *a)) == NULL) rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK) rc = sy_list_sign(c, 1, d, n, &a->list);
  free(d);
  if (rc != WHISPER_OK) {
    if (a) sy_approve_free(a);
    return rc;
  }
  sy_approve **tail = &c->approvals;
  while (*tail) tail = &(*tail)->next;
  *tail = a;
  sy_approvals_flush(c);
  return WHISPER_OK;
}

/* --- the app's trust decisions --------------------------------------------------------------------- */

int whisper_client_account_info(whisper_client *c, const char *account, int *trust,
                                uint8_t key[WHISPER_PUBLIC_KEY_LEN]) {
  if (c == NULL) return WHISPER_EINVAL;
  if (!wh_account_ok(account) || trust == NULL) return sy_fail(c, WHISPER_EINVAL, "bad account");
  sy_devlist l;
  int rc = sy_begin(c);
  if (rc == WHISPER_OK) rc = wh_finish(c->ctx, sy_devs_load(c, account, &l));
  if (rc != WHISPER_OK) return rc;
  *trust = l.authed ? l.trust : WHISPER_TRUST_UNKNOWN;
  if (key && l.authed) memcpy(key, l.account_key, WHISPER_PUBLIC_KEY_LEN);
  sy_devs_free(&l);
  return wh_ok(c->ctx);
}

int whisper_client_account_trust(whisper_client *c, const char *account,
                                 const uint8_t key[WHISPER_PUBLIC_KEY_LEN], int verified) {
  if (c == NULL) return WHISPER_EINVAL;
  if (!wh_account_ok(account) || key == NULL) return sy_fail(c, WHISPER_EINVAL, "bad account or key");
  sy_devlist l;
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  if ((rc = sy_devs_load(c, account, &l)) == WHISPER_OK) {
    if (!l.authed || memcmp(l.account_key, key, WHISPER_PUBLIC_KEY_LEN) != 0)
      rc = sy_fail(c, WHISPER_ESTATE, "the engine holds another key for %s", account);
    else {
      l.trust = verified ? WHISPER_TRUST_VERIFIED : WHISPER_TRUST_UNVERIFIED;
      rc = sy_devs_save(c, account, &l);
    }
    sy_devs_free(&l);
  }
  rc = wh_finish(c->ctx, rc);
  if (rc == WHISPER_OK) sy_name_del(&c->blocked, account);
  return rc == WHISPER_OK ? wh_ok(c->ctx) : rc;
}
