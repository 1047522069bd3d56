/*
 * Blocking accounts, and reporting conversations to the server
 * (docs/sync-protocol.md, "Block and report").
 *
 * The block list is this account's: one entry per account it ever
 * blocked, (account, blocked, changed_at), kept in the store ("b") and in
 * memory, sorted by name. An unblocked entry stays (a tombstone) so that
 * an older word from another device cannot block again; past
 * WHISPER_BLOCK_MAX entries the oldest tombstones go. Entries merge the
 * same way everywhere: for each account the newest word wins
 * (changed_at; at the same time, blocked wins).
 *
 * Where the list goes:
 *  - to this account's other devices, end to end: after a change made
 *    here, its entry as an e2e.Content BLOCK in a message to this account
 *    only, as the conversation settings go (settings.c): a hidden entry of
 *    the outbox, a Send to oneself. "unsynced" is stored with the
 *    change and cleared once that message is in the outbox, so a crash in
 *    between sends it after the next login; and the list goes again when
 *    a new device is linked (it has none);
 *  - to the server: the whole list in a BlockSet after each login and each
 *    change, so that an honest server stops delivering.
 *
 * What blocking does here, whatever the server does (a malicious server
 * may ignore the list):
 *  - a mailbox entry from a blocked account that is a message or receipt
 *    through the 1:1 session is dropped unread and acked (inbox.c calls
 *    sy_block_drops before anything else): nothing stored, no event.
 *    Sender key distributions and retry requests are handled as before,
 *    and group messages are kept: groups are shared, as in WhatsApp (its
 *    DELIVERED and READ receipts are not sent, below);
 *  - its typing and presence notices raise no event;
 *  - nothing goes to it: sending, replying, reacting, editing, deleting
 *    and calling in the conversation with it are refused with
 *    WHISPER_EBLOCKED; typing there is not sent; no receipt is made for
 *    it (also for its group messages), and what was waiting for it in the
 *    outbox (messages, receipts, resends) waits until it is unblocked.
 * Unblocking lets later messages in: the numbers its devices gave its
 * messages start again from the next one (the messages dropped meanwhile
 * leave no "message-missing" gap).
 *
 * Reports: whisper_client_report() takes the last messages of a
 * conversation from history, in plaintext, and keeps the report in the
 * store ("r") until the server takes it (a Report frame); the plaintext
 * goes nowhere else.
 */
#include "sync/sync_internal.h"

#define SY_ACCOUNT_MAX 64
#define SY_MAX_REPORTS 16 /* reports waiting for the server */

typedef struct sy_bentry {
  char account[SY_ACCOUNT_MAX + 1];
  int blocked;
  uint64_t at;
} sy_bentry;

typedef struct sy_report_inflight {
  uint64_t req, key;
} sy_report_inflight;

struct sy_blocks {
  sy_bentry *v; /* sorted by account */
  size_t n;
  int stale;    /* the store may hold something newer (written in an entry's transaction) */
  uint64_t gen; /* changes made here since the engine started */
  /* the server's copy */
  int srv_dirty;
  uint64_t srv_req, srv_gen;
  /* reports sent and not answered */
  sy_report_inflight *rq;
  size_t n_rq;
};

/* --- the stored list ------------------------------------------------------------------------------ */

static const uint8_t KEY_BLOCKS[1] = {'b'};
static const uint8_t KEY_REPORTS[1] = {'r'};

static int by_account(const void *a, const void *b) {
  return strcmp(((const sy_bentry *)a)->account, ((const sy_bentry *)b)->account);
}

/* Tombstones first, oldest first; then the blocked, oldest first. */
static int by_age(const void *a, const void *b) {
  const sy_bentry *x = a, *y = b;
  if (x->blocked != y->blocked) return x->blocked - y->blocked;
  return x->at < y->at ? -1 : x->at > y->at;
}

/* Whether word (blocked, at) replaces e. */
static int newer(int blocked, uint64_t at, const sy_bentry *e) {
  return at > e->at || (at == e->at && blocked && !e->blocked);
}

static int corrupt(whisper_client *c) {
  return wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored block list is corrupt");
}

/* Reads "b": its entries (sorted) and whether a change has not reached the
 * other devices. */
static int state_read(whisper_client *c, sy_bentry **out, size_t *n, int *unsynced) {
  whisper_buf *b;
  *out = NULL;
  *n = 0;
  *unsynced = 0;
  int rc = sy_rec_get(c, KEY_BLOCKS, sizeof KEY_BLOCKS, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  Whisper__Client__BlockState *m = whisper__client__block_state__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL || m->n_entries > WHISPER_BLOCK_MAX) {
    if (m) whisper__client__block_state__free_unpacked(m, &wh_pb_alloc);
    return corrupt(c);
  }
  sy_bentry *v = calloc(m->n_entries + 1, sizeof *v);
  rc = v ? WHISPER_OK : WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < m->n_entries; i++) {
    const Whisper__Sync__BlockEntry *e = m->entries[i];
    if (!wh_account_ok(e->account) || strcmp(e->account, c->account) == 0) {
      rc = corrupt(c);
      break;
    }
    snprintf(v[i].account, sizeof v[i].account, "%s", e->account);
    v[i].blocked = e->blocked;
    v[i].at = e->changed_at;
  }
  if (rc == WHISPER_OK) {
    qsort(v, m->n_entries, sizeof *v, by_account);
    for (size_t i = 1; rc == WHISPER_OK && i < m->n_entries; i++)
      if (strcmp(v[i - 1].account, v[i].account) == 0) rc = corrupt(c);
  }
  if (rc == WHISPER_OK) {
    *out = v;
    *n = m->n_entries;
    *unsynced = m->unsynced;
  } else {
    free(v);
  }
  whisper__client__block_state__free_unpacked(m, &wh_pb_alloc);
  return rc;
}

/* Fills n BlockEntry (with pointers into v) and their pointer array. */
static int entries_make(const sy_bentry *v, size_t n, Whisper__Sync__BlockEntry **e,
                        Whisper__Sync__BlockEntry ***ep) {
  *e = calloc(n + 1, sizeof **e);
  *ep = calloc(n + 1, sizeof **ep);
  if (*e == NULL || *ep == NULL) {
    free(*e);
    free(*ep);
    return WHISPER_ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    whisper__sync__block_entry__init(&(*e)[i]);
    (*e)[i].account = (char *)v[i].account;
    (*e)[i].has_blocked = (*e)[i].has_changed_at = 1;
    (*e)[i].blocked = v[i].blocked != 0;
    (*e)[i].changed_at = v[i].at;
    (*ep)[i] = &(*e)[i];
  }
  return WHISPER_OK;
}

/* Writes "b" (inside the caller's transaction). */
static int state_write(whisper_client *c, const sy_bentry *v, size_t n, int unsynced) {
  Whisper__Client__BlockState m = WHISPER__CLIENT__BLOCK_STATE__INIT;
  Whisper__Sync__BlockEntry *e, **ep;
  if (entries_make(v, n, &e, &ep) != WHISPER_OK) return WHISPER_ENOMEM;
  m.n_entries = n;
  m.entries = ep;
  if (unsynced) m.has_unsynced = m.unsynced = 1;
  int rc = sy_rec_put_msg(c, KEY_BLOCKS, sizeof KEY_BLOCKS, &m.base);
  free(e);
  free(ep);
  return rc;
}

/* Keeps at most WHISPER_BLOCK_MAX entries (the oldest tombstones go
 * first), sorted by account. */
static void trim(sy_bentry *v, size_t *n) {
  if (*n > WHISPER_BLOCK_MAX) {
    qsort(v, *n, sizeof *v, by_age);
    memmove(v, v + (*n - WHISPER_BLOCK_MAX), WHISPER_BLOCK_MAX * sizeof *v);
    *n = WHISPER_BLOCK_MAX;
  }
  qsort(v, *n, sizeof *v, by_account);
}

static sy_bentry *find(sy_bentry *v, size_t n, const char *account) {
  sy_bentry key;
  if (n == 0 || strlen(account) > SY_ACCOUNT_MAX) return NULL; /* (bsearch wants a base) */
  snprintf(key.account, sizeof key.account, "%s", account);
  return bsearch(&key, v, n, sizeof *v, by_account);
}

/* The numbers `account`'s devices gave their messages to this one start
 * again: what was dropped while it was blocked leaves no gap. */
static int counters_reset(whisper_client *c, const char *account) {
  sy_devlist l;
  int rc = sy_devs_load(c, account, &l);
  for (size_t i = 0; rc == WHISPER_OK && i < l.n; i++) rc = sy_seen_del(c, account, l.d[i].id, account);
  sy_devs_free(&l);
  return rc;
}

/* --- the list in memory -------------------------------------------------------------------------- */

int sy_block_load(whisper_client *c) {
  struct sy_blocks *b = calloc(1, sizeof *b);
  if (b == NULL) return wh_fail(c->ctx, WHISPER_ENOMEM, "out of memory");
  int unsynced;
  int rc = state_read(c, &b->v, &b->n, &unsynced);
  if (rc != WHISPER_OK) {
    free(b);
    return rc;
  }
  c->blocks = b;
  return WHISPER_OK;
}

void sy_block_free(whisper_client *c) {
  if (c == NULL || c->blocks == NULL) return;
  free(c->blocks->v);
  free(c->blocks->rq);
  free(c->blocks);
  c->blocks = NULL;
}

/* Reads the list again if an entry's transaction may have changed it
 * (a read needs no transaction of its own). */
static void fresh(whisper_client *c) {
  struct sy_blocks *b = c->blocks;
  if (!b->stale) return;
  sy_bentry *v;
  size_t n;
  int unsynced;
  if (state_read(c, &v, &n, &unsynced) != WHISPER_OK) return; /* memory stands; read again next time */
  free(b->v);
  b->v = v;
  b->n = n;
  /* read inside the engine's transaction: it may still roll back */
  b->stale = c->ctx->store->depth > 0;
}

int sy_block_has(whisper_client *c, const char *account) {
  if (c->blocks == NULL || account == NULL) return 0;
  fresh(c);
  const sy_bentry *e = find(c->blocks->v, c->blocks->n, account);
  return e && e->blocked;
}

int sy_block_drops(whisper_client *c, const Whisper__Sync__Deliver *d) {
  if (d->kind != WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE || d->sender == NULL ||
      strcmp(d->sender, c->account) == 0 || (d->type != 2 && d->type != 3))
    return 0;
  uint32_t content = d->has_content ? d->content : WHISPER__SYNC__CONTENT__CONTENT_TEXT;
  if (content == WHISPER__SYNC__CONTENT__CONTENT_SKDM || content == WHISPER__SYNC__CONTENT__CONTENT_RETRY)
    return 0;
  return sy_block_has(c, d->sender);
}

/* --- the list to the server ----------------------------------------------------------------------- */

void sy_block_flush(whisper_client *c);

static void server_send(whisper_client *c) {
  struct sy_blocks *b = c->blocks;
  if (!c->logged_in || c->close_wanted || !b->srv_dirty || b->srv_req || c->send_retry_at) return;
  fresh(c);
  Whisper__Sync__BlockSet s = WHISPER__SYNC__BLOCK_SET__INIT;
  Whisper__Sync__BlockEntry *e, **ep;
  if (entries_make(b->v, b->n, &e, &ep) != WHISPER_OK) return;
  s.n_entries = b->n;
  s.entries = ep;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_BLOCK_SET;
  f.block_set = &s;
  sy_req *r;
  if (sy_queue(c, &f, RQ_BLOCK, 1, &r) == WHISPER_OK) {
    b->srv_req = r->id;
    b->srv_gen = b->gen;
  }
  free(e);
  free(ep);
}

/* --- the list to this account's other devices ----------------------------------------------------- */

/* A Content BLOCK holding entries list[0..n). */
static int content_make(whisper_client *c, const sy_bentry *list, size_t n, whisper_buf **out) {
  Whisper__E2e__Block blk = WHISPER__E2E__BLOCK__INIT;
  Whisper__E2e__BlockEntry *e = calloc(n + 1, sizeof *e);
  Whisper__E2e__BlockEntry **ep = calloc(n + 1, sizeof *ep);
  int rc = e && ep ? WHISPER_OK : WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
    const sy_bentry *v = &list[i];
    whisper__e2e__block_entry__init(&e[i]);
    e[i].account = (char *)v->account;
    e[i].has_blocked = e[i].has_changed_at = 1;
    e[i].blocked = v->blocked != 0;
    e[i].changed_at = v->at;
    ep[i] = &e[i];
  }
  if (rc == WHISPER_OK) {
    blk.n_entries = n;
    blk.entries = ep;
    Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
    ct.has_version = ct.has_kind = ct.has_at_ms = 1;
    ct.version = SY_CONTENT_VERSION;
    ct.kind = WHISPER__E2E__CONTENT__KIND__BLOCK;
    ct.at_ms = c->now;
    ct.block = &blk;
    size_t len = whisper__e2e__content__get_packed_size(&ct);
    if ((*out = whisper_buf_new(NULL, len)) == NULL) rc = WHISPER_ENOMEM;
    else whisper__e2e__content__pack(&ct, (*out)->data);
  }
  free(e);
  free(ep);
  return rc;
}

/* To this account's other devices: the entry of `only` (a change made
 * here), or the whole list (NULL), as a hidden message to oneself in the
 * outbox (sy_enqueue, not inside a transaction); then the stored
 * "unsynced" is cleared. Entries merge in any order, so a change goes
 * alone: n changes are n small messages, not n lists. */
static void own_send(whisper_client *c, const char *only, uint64_t now_ms) {
  fresh(c);
  whisper_buf *ct = NULL;
  const sy_bentry *one = only ? find(c->blocks->v, c->blocks->n, only) : NULL;
  int rc = one ? content_make(c, one, 1, &ct) : content_make(c, c->blocks->v, c->blocks->n, &ct);
  if (rc == WHISPER_OK) {
    wh_entry_extra x = {.content = ct->data, .content_len = ct->len, .hidden = 1};
    uint8_t id[WHISPER_CLIENT_ID_LEN];
    rc = sy_enqueue(c, c->account, NULL, 0, &x, NULL, now_ms, id);
  }
  whisper_buf_free(ct);
  sy_bentry *v;
  size_t n;
  int unsynced;
  if (rc == WHISPER_OK && (rc = sy_begin(c)) == WHISPER_OK) {
    rc = state_read(c, &v, &n, &unsynced);
    if (rc == WHISPER_OK) {
      rc = unsynced ? state_write(c, v, n, 0) : WHISPER_OK;
      free(v);
    }
    rc = wh_finish(c->ctx, rc);
  }
  if (rc != WHISPER_OK) /* "unsynced" stays: the next login sends it */
    sy_error_event(c, rc, 0, "the block list could not be sent to this account's other devices");
}

static int stored_unsynced(whisper_client *c) {
  sy_bentry *v;
  size_t n;
  int unsynced = 0;
  if (state_read(c, &v, &n, &unsynced) != WHISPER_OK) return 0;
  free(v);
  return unsynced;
}

void sy_block_resync(whisper_client *c) {
  struct sy_blocks *b = c->blocks;
  fresh(c);
  if (b->n == 0) return;
  own_send(c, NULL, c->now);
}

/* EV_ERROR for an entry that is malformed (raised with its commit). */
static int malformed(whisper_client *c, sy_evq *evs, const char *why) {
  sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
  if (e) {
    e->ev.code = WHISPER_EINVALIDMSG;
    e->message = sy_strdup(why);
    sy_evq_add(evs, e);
  }
  return WHISPER_OK;
}

int sy_block_receive(whisper_client *c, const Whisper__E2e__Block *blk, sy_evq *evs) {
  sy_bentry *v;
  size_t n;
  int unsynced;
  if (blk == NULL || blk->n_entries > WHISPER_BLOCK_MAX)
    return malformed(c, evs, "a malformed block list from another device of this account");
  for (size_t i = 0; i < blk->n_entries; i++)
    if (!wh_account_ok(blk->entries[i]->account) || strcmp(blk->entries[i]->account, c->account) == 0 ||
        !blk->entries[i]->has_changed_at)
      return malformed(c, evs, "a malformed block list from another device of this account");
  int rc = state_read(c, &v, &n, &unsynced);
  if (rc != WHISPER_OK) return rc;
  sy_bentry *w = realloc(v, (n + blk->n_entries + 1) * sizeof *w);
  if (w == NULL) {
    free(v);
    return WHISPER_ENOMEM;
  }
  v = w;
  size_t n0 = n;
  for (size_t i = 0; rc == WHISPER_OK && i < blk->n_entries; i++) {
    const Whisper__E2e__BlockEntry *e = blk->entries[i];
    sy_bentry *h = find(v, n0, e->account);
    for (size_t k = n0; h == NULL && k < n; k++)
      if (strcmp(v[k].account, e->account) == 0) h = &v[k];
    int was = h && h->blocked;
    if (h == NULL) {
      h = &v[n++];
      snprintf(h->account, sizeof h->account, "%s", e->account);
      h->blocked = e->blocked;
      h->at = e->changed_at;
    } else if (newer(e->blocked, e->changed_at, h)) {
      h->blocked = e->blocked;
      h->at = e->changed_at;
    } else {
      continue;
    }
    if (was == (h->blocked != 0)) continue;
    if (!h->blocked) rc = counters_reset(c, h->account);
    sy_event *ev = sy_event_new(c, WHISPER_EV_BLOCKED);
    if (ev && sy_event_set(ev, h->account, h->account, NULL, 0, NULL, 0) == WHISPER_OK) {
      ev->ev.status = h->blocked != 0;
      sy_evq_add(evs, ev);
    } else {
      sy_event_free(ev);
    }
  }
  trim(v, &n);
  if (rc == WHISPER_OK) rc = state_write(c, v, n, unsynced);
  free(v);
  c->blocks->stale = 1; /* memory follows the store once the entry commits */
  return rc;
}

/* --- blocking and unblocking -------------------------------------------------------------------- */

/* The list with `account` (un)blocked at `now`, written inside the caller's
 * transaction; *out the new list (NULL: nothing changed). */
static int set_one(whisper_client *c, const char *account, int blocked, uint64_t now,
                   sy_bentry **out, size_t *n_out) {
  sy_bentry *v;
  size_t n;
  int unsynced;
  *out = NULL;
  *n_out = 0;
  int rc = state_read(c, &v, &n, &unsynced);
  if (rc != WHISPER_OK) return rc;
  sy_bentry *h = find(v, n, account);
  if ((h && (h->blocked != 0) == (blocked != 0)) || (h == NULL && !blocked)) {
    free(v);
    return WHISPER_OK; /* as asked already */
  }
  if (h == NULL) {
    size_t live = 0;
    for (size_t i = 0; i < n; i++) live += v[i].blocked != 0;
    if (live >= WHISPER_BLOCK_MAX) {
      free(v);
      return sy_fail(c, WHISPER_EINVAL, "at most %d accounts can be blocked", WHISPER_BLOCK_MAX);
    }
    sy_bentry *w = realloc(v, (n + 1) * sizeof *w);
    if (w == NULL) {
      free(v);
      return WHISPER_ENOMEM;
    }
    v = w;
    h = &v[n++];
    snprintf(h->account, sizeof h->account, "%s", account);
    h->at = 0;
  }
  h->blocked = blocked;
  h->at = now > h->at ? now : h->at + 1; /* a change made here always wins here */
  if (!blocked) rc = counters_reset(c, account);
  trim(v, &n);
  if (rc == WHISPER_OK) rc = state_write(c, v, n, 1);
  if (rc != WHISPER_OK) {
    free(v);
    return rc;
  }
  *out = v;
  *n_out = n;
  return WHISPER_OK;
}

/* After the commit: memory, the server and the other devices follow. */
static void changed(whisper_client *c, sy_bentry *v, size_t n, const char *account, uint64_t now_ms) {
  struct sy_blocks *b = c->blocks;
  free(b->v);
  b->v = v;
  b->n = n;
  b->stale = 0;
  b->gen++;
  b->srv_dirty = 1;
  server_send(c);
  own_send(c, account, now_ms);
}

static int check_account(whisper_client *c, const char *account) {
  if (!wh_account_ok(account) || strcmp(account, c->account) == 0)
    return sy_fail(c, WHISPER_EINVAL, "block names another account (1-64 of [a-z0-9._-])");
  return WHISPER_OK;
}

static int block_set(whisper_client *c, const char *account, int blocked, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  int rc = check_account(c, account);
  if (rc != WHISPER_OK) return rc;
  c->now = now_ms;
  sy_bentry *v = NULL;
  size_t n = 0;
  if ((rc = sy_txn_begin(c)) != WHISPER_OK) return rc;
  rc = sy_txn_end(c, set_one(c, account, blocked, now_ms, &v, &n));
  if (rc != WHISPER_OK) {
    free(v);
    return rc;
  }
  if (v) changed(c, v, n, account, now_ms);
  return wh_ok(c->ctx);
}

int whisper_client_block(whisper_client *c, const char *account, uint64_t now_ms) {
  return block_set(c, account, 1, now_ms);
}

int whisper_client_unblock(whisper_client *c, const char *account, uint64_t now_ms) {
  return block_set(c, account, 0, now_ms);
}

int whisper_client_is_blocked(whisper_client *c, const char *account, int *blocked) {
  if (c == NULL) return WHISPER_EINVAL;
  if (blocked == NULL || !wh_account_ok(account))
    return sy_fail(c, WHISPER_EINVAL, "is_blocked needs an account name and somewhere to answer");
  *blocked = sy_block_has(c, account);
  return wh_ok(c->ctx);
}

int whisper_client_blocked_list(whisper_client *c, whisper_buf **out, size_t *count) {
  if (c == NULL) return WHISPER_EINVAL;
  if (out == NULL || count == NULL) return sy_fail(c, WHISPER_EINVAL, "blocked_list needs out and count");
  *out = NULL;
  *count = 0;
  fresh(c);
  size_t len = 0, k = 0;
  for (size_t i = 0; i < c->blocks->n; i++)
    if (c->blocks->v[i].blocked) len += strlen(c->blocks->v[i].account) + 1;
  whisper_buf *b = whisper_buf_new(NULL, len);
  if (b == NULL) return sy_fail(c, WHISPER_ENOMEM, "out of memory");
  b->len = len;
  for (size_t i = 0; i < c->blocks->n; i++) {
    const sy_bentry *e = &c->blocks->v[i];
    if (!e->blocked) continue;
    size_t l = strlen(e->account) + 1;
    memcpy(b->data + k, e->account, l);
    k += l;
    (*count)++;
  }
  *out = b;
  return wh_ok(c->ctx);
}

/* --- reports --------------------------------------------------------------------------------------- */

static int reports_read(whisper_client *c, Whisper__Client__PendingReports **out) {
  whisper_buf *b;
  *out = NULL;
  int rc = sy_rec_get(c, KEY_REPORTS, sizeof KEY_REPORTS, &b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  *out = whisper__client__pending_reports__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (*out == NULL || (*out)->n_reports > SY_MAX_REPORTS) {
    if (*out) whisper__client__pending_reports__free_unpacked(*out, &wh_pb_alloc);
    *out = NULL;
    return wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored reports are corrupt");
  }
  return WHISPER_OK;
}

static uint64_t key_of(const Whisper__Client__PendingReport *r) {
  uint64_t k = 0;
  for (size_t i = 0; r->has_key && i < r->key.len && i < 8; i++) k = k << 8 | r->key.data[i];
  return k;
}

static int report_inflight(const struct sy_blocks *b, uint64_t key) {
  for (size_t i = 0; i < b->n_rq; i++)
    if (b->rq[i].key == key) return 1;
  return 0;
}

static void reports_send(whisper_client *c) {
  struct sy_blocks *b = c->blocks;
  Whisper__Client__PendingReports *pr;
  if (!c->logged_in || c->close_wanted || c->send_retry_at) return;
  if (reports_read(c, &pr) != WHISPER_OK || pr == NULL) return;
  for (size_t i = 0; i < pr->n_reports; i++) {
    uint64_t key = key_of(pr->reports[i]);
    if (pr->reports[i]->report == NULL || report_inflight(b, key)) continue;
    sy_report_inflight *n = realloc(b->rq, (b->n_rq + 1) * sizeof *n);
    if (n == NULL) break;
    b->rq = n;
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    f.body_case = WHISPER__SYNC__FRAME__BODY_REPORT;
    f.report = pr->reports[i]->report;
    sy_req *r;
    if (sy_queue(c, &f, RQ_REPORT, 1, &r) != WHISPER_OK) break;
    r->value = key;
    b->rq[b->n_rq++] = (sy_report_inflight){r->id, key};
  }
  whisper__client__pending_reports__free_unpacked(pr, &wh_pb_alloc);
}

/* The server took (or refused for good) the report `key`: it goes. */
static int report_done(whisper_client *c, uint64_t key) {
  Whisper__Client__PendingReports *pr;
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  rc = reports_read(c, &pr);
  if (rc == WHISPER_OK && pr) {
    size_t w = 0;
    for (size_t i = 0; i < pr->n_reports; i++) {
      if (key_of(pr->reports[i]) == key) whisper__client__pending_report__free_unpacked(pr->reports[i], &wh_pb_alloc);
      else pr->reports[w++] = pr->reports[i];
    }
    pr->n_reports = w;
    rc = w ? sy_rec_put_msg(c, KEY_REPORTS, sizeof KEY_REPORTS, &pr->base)
           : sy_rec_del(c, KEY_REPORTS, sizeof KEY_REPORTS);
  }
  if (pr) whisper__client__pending_reports__free_unpacked(pr, &wh_pb_alloc);
  return wh_finish(c->ctx, rc);
}

/* The longest prefix of s (n bytes) of at most max bytes that ends on a
 * character boundary (when s is UTF-8). */
static size_t cut_utf8(const uint8_t *s, size_t n, size_t max) {
  if (n <= max) return n;
  size_t k = max;
  while (k > 0 && (s[k] & 0xC0) == 0x80) k--;
  return k;
}

/* A message a report can show: a message of the conversation (not a
 * placeholder, a device notice or a message still waiting to be asked
 * for again). */
static int reportable(whisper_client *c, const whisper_message_t *m) {
  if (m->id_len != WHISPER_CLIENT_ID_LEN) return 0; /* placeholders of missing messages */
  if (m->sender && m->sender_device == 0) return 0;  /* device notices */
  if (m->sender && !wh_account_ok(m->sender)) return 0; /* not the engine's */
  if (m->sender) {
    int rc;
    Whisper__Client__Waiting *w = sy_waiting_get(c, m->id, &rc);
    if (w) {
      whisper__client__waiting__free_unpacked(w, &wh_pb_alloc);
      return 0; /* "message-waiting": it could not be decrypted */
    }
  }
  return 1;
}

/* The last n messages of conv, oldest first, as a Report (its strings and
 * bytes in `keep`, which the caller frees with the pages). */
typedef struct report_build {
  Whisper__Sync__Report rep;
  Whisper__Sync__ReportedMessage *m;
  Whisper__Sync__ReportedMessage **mp;
  char (*senders)[SY_ACCOUNT_MAX + 1];
  whisper_page **pages;
  size_t n_pages;
} report_build;

static void build_free(report_build *r) {
  for (size_t i = 0; i < r->n_pages; i++) whisper_page_free(r->pages[i]);
  free(r->pages);
  free(r->m);
  free(r->mp);
  free(r->senders);
  memset(r, 0, sizeof *r);
}

static int build(whisper_client *c, const char *conv, size_t want, report_build *r) {
  memset(r, 0, sizeof *r);
  r->m = calloc(want + 1, sizeof *r->m);
  r->mp = calloc(want + 1, sizeof *r->mp);
  r->senders = calloc(want + 1, sizeof *r->senders);
  if (r->m == NULL || r->mp == NULL || r->senders == NULL) return WHISPER_ENOMEM;
  size_t got = 0;
  uint64_t before_key = 0;
  const uint8_t *before_id = NULL;
  size_t before_len = 0;
  int rc = WHISPER_OK;
  while (got < want) {
    whisper_page *p = NULL;
    rc = whisper_history_page(c->ctx, conv, before_key, before_id, before_len, 64, &p);
    if (rc != WHISPER_OK) break;
    whisper_page **np = realloc(r->pages, (r->n_pages + 1) * sizeof *np);
    if (np == NULL) {
      whisper_page_free(p);
      rc = WHISPER_ENOMEM;
      break;
    }
    r->pages = np;
    r->pages[r->n_pages++] = p;
    size_t n = whisper_page_count(p);
    for (size_t i = 0; i < n && got < want; i++) {
      const whisper_message_t *m = whisper_page_get(p, i);
      if (!reportable(c, m)) continue;
      Whisper__Sync__ReportedMessage *x = &r->m[want - 1 - got]; /* newest first: filled from the end */
      whisper__sync__reported_message__init(x);
      x->has_id = x->has_sent_at_ms = x->has_text = 1;
      x->id = (ProtobufCBinaryData){m->id_len, (uint8_t *)m->id};
      snprintf(r->senders[want - 1 - got], SY_ACCOUNT_MAX + 1, "%.64s", m->sender ? m->sender : c->account);
      x->sender = r->senders[want - 1 - got];
      x->sent_at_ms = m->timestamp_ms;
      size_t tl = m->deleted ? 0 : cut_utf8(m->body, m->body_len, WHISPER_REPORT_TEXT_MAX);
      x->text = (ProtobufCBinaryData){tl, tl ? (uint8_t *)m->body : NULL};
      if (tl < m->body_len && !m->deleted) x->has_truncated = x->truncated = 1;
      if (m->deleted) x->has_deleted = x->deleted = 1;
      got++;
    }
    if (n < 64) break;
    const whisper_message_t *last = whisper_page_get(p, n - 1);
    before_key = last->sort_key;
    before_id = last->id;
    before_len = last->id_len;
  }
  if (rc != WHISPER_OK) return rc;
  for (size_t i = 0; i < got; i++) r->mp[i] = &r->m[want - got + i];
  whisper__sync__report__init(&r->rep);
  r->rep.conversation = (char *)conv;
  r->rep.n_messages = got;
  r->rep.messages = r->mp;
  return WHISPER_OK;
}

int whisper_client_report(whisper_client *c, const char *conversation, size_t n, int block,
                          uint64_t now_ms) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (c == NULL) return WHISPER_EINVAL;
  int group = conversation && wh_group_conv_parse(conversation, gid);
  if (conversation == NULL ||
      (!group && (!wh_account_ok(conversation) || strcmp(conversation, c->account) == 0)))
    return sy_fail(c, WHISPER_EINVAL, "a report names an account or a group's conversation");
  if (n > WHISPER_REPORT_MAX)
    return sy_fail(c, WHISPER_EINVAL, "a report holds at most %d messages", WHISPER_REPORT_MAX);
  if (block && group) return sy_fail(c, WHISPER_EINVAL, "only an account can be blocked, not a group");
  if (n == 0) n = WHISPER_REPORT_DEFAULT;
  c->now = now_ms;
  report_build r;
  int rc = build(c, conversation, n, &r);
  if (rc != WHISPER_OK) {
    build_free(&r);
    return rc;
  }
  if (block) r.rep.has_blocked = r.rep.blocked = 1;
  uint8_t key[8];
  if (wh_random(&c->ctx->rng, key, sizeof key) != 0) {
    build_free(&r);
    return sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
  }
  sy_bentry *v = NULL;
  size_t nv = 0;
  Whisper__Client__PendingReports *pr = NULL;
  if ((rc = sy_txn_begin(c)) != WHISPER_OK) {
    build_free(&r);
    return rc;
  }
  rc = reports_read(c, &pr);
  if (rc == WHISPER_OK && pr && pr->n_reports >= SY_MAX_REPORTS)
    rc = sy_fail(c, WHISPER_ESTATE, "%d reports are waiting for the server already", SY_MAX_REPORTS);
  if (rc == WHISPER_OK) {
    Whisper__Client__PendingReports fresh_pr = WHISPER__CLIENT__PENDING_REPORTS__INIT;
    size_t have = pr ? pr->n_reports : 0;
    Whisper__Client__PendingReport one = WHISPER__CLIENT__PENDING_REPORT__INIT;
    Whisper__Client__PendingReport **all = calloc(have + 1, sizeof *all);
    if (all == NULL) {
      rc = WHISPER_ENOMEM;
    } else {
      for (size_t i = 0; i < have; i++) all[i] = pr->reports[i];
      one.has_key = 1;
      one.key = (ProtobufCBinaryData){sizeof key, key};
      one.report = &r.rep;
      all[have] = &one;
      fresh_pr.n_reports = have + 1;
      fresh_pr.reports = all;
      rc = sy_rec_put_msg(c, KEY_REPORTS, sizeof KEY_REPORTS, &fresh_pr.base);
      free(all);
    }
  }
  if (rc == WHISPER_OK && block) rc = set_one(c, conversation, 1, now_ms, &v, &nv);
  rc = sy_txn_end(c, rc);
  if (pr) whisper__client__pending_reports__free_unpacked(pr, &wh_pb_alloc);
  build_free(&r);
  if (rc != WHISPER_OK) {
    free(v);
    return rc;
  }
  if (v) changed(c, v, nv, conversation, now_ms);
  reports_send(c);
  return wh_ok(c->ctx);
}

/* --- the connection ------------------------------------------------------------------------------- */

void sy_block_login(whisper_client *c) {
  struct sy_blocks *b = c->blocks;
  b->srv_req = 0;
  b->n_rq = 0;
  fresh(c);
  b->srv_dirty = b->n > 0;
  server_send(c);
  if (stored_unsynced(c)) own_send(c, NULL, c->now); /* (which change is not known) */
  reports_send(c);
}

void sy_block_flush(whisper_client *c) {
  server_send(c);
  reports_send(c);
}

/* Rate limited, or the server failed: again after a while. */
static void later(whisper_client *c, const Whisper__Sync__Frame *f) {
  uint64_t wait = f->error->code == ERR_RATE && f->has_retry_ms && f->retry_ms ? f->retry_ms : SY_RETRY_MS;
  if (!c->send_retry_at) c->send_retry_at = c->now + (wait < 600000 ? wait : 600000);
}

void sy_block_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  struct sy_blocks *b = c->blocks;
  int ok = f->body_case == WHISPER__SYNC__FRAME__BODY_OK;
  const Whisper__Sync__Error *e = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error : NULL;
  int again = e && (e->code == ERR_RATE || e->code == ERR_INTERNAL);
  if (r->kind == RQ_BLOCK) {
    if (r->id != b->srv_req) return;
    b->srv_req = 0;
    if (ok && b->srv_gen == b->gen) b->srv_dirty = 0;
    if (again) {
      later(c, f);
      return;
    }
    if (!ok) {
      b->srv_dirty = 0; /* refused for good: tried again after the next change or login */
      sy_error_event(c, WHISPER_EINVAL, e ? (int)e->code : 0,
                     e && e->message ? e->message : "the server refused the block list");
      return;
    }
    server_send(c); /* changed meanwhile */
    return;
  }
  size_t i = 0;
  while (i < b->n_rq && b->rq[i].req != r->id) i++;
  if (i == b->n_rq) return;
  uint64_t key = b->rq[i].key;
  b->rq[i] = b->rq[--b->n_rq];
  if (again) {
    later(c, f);
    return;
  }
  if (!ok)
    sy_error_event(c, WHISPER_EINVAL, e ? (int)e->code : 0,
                   e && e->message ? e->message : "the server refused a report");
  int rc = report_done(c, key);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store that a report was sent");
}
