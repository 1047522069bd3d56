/*
 * Block lists and reports (docs/sync-protocol.md, "Block and report").
 *
 * Block lists. Each account's list is kept in the store (BLOCKS, keyed by
 * the account): entries (account, blocked, changed_at) as its devices set
 * them with BlockSet. Entries merge: for each account the newest word wins
 * (changed_at; at the same time, blocked wins), so a device that sends an
 * older list (every login sends the whole list) never undoes a newer
 * change. Unblocked entries stay as tombstones; past WSRV_BLOCKS_MAX
 * entries the oldest tombstones go, and more blocked accounts than that
 * is ERR_LIMIT. What the server does with a list:
 *   - a 1:1 Send from a blocked account to the blocker (a message, a
 *     receipt) is taken (Sent: one tick, as any other) but nothing is put
 *     in the blocker's mailboxes: the sender is not told (its own other
 *     devices still get their copies). Sender key distributions and retry
 *     requests still go (groups are shared); group messages are fanned
 *     out as before;
 *   - typing goes neither way between the two, in groups neither;
 *   - the blocker is always offline, without a last seen, to the blocked
 *     account's presence subscriptions.
 * Engines drop what a blocked account sends whatever the server does (a
 * server may ignore the list): this is the honest server's part.
 *
 * Reports. A Report is stored (REPORT, keyed by its number, 8 bytes BE)
 * with the reporter and the server's time; META "report_seq" is the last
 * number given and "report_first" the oldest kept. Past cfg.max_reports
 * the oldest go. whisper_server_reports()
 * reads them for moderators (whisperd --reports).
 */
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

#define WSRV_BLOCKS_MAX 1024          /* entries per list, and per BlockSet */
#define WSRV_REPORT_MESSAGES_MAX 50   /* messages per report */
#define WSRV_REPORT_TEXT_MAX 2048     /* bytes of text per message */
#define WSRV_REPORT_ID_MAX 64

static const char META_REPORT_SEQ[] = "report_seq";
static const char META_REPORT_FIRST[] = "report_first";

/* --- block lists ----------------------------------------------------------- */

typedef struct entry {
  char account[WSRV_NAME_MAX + 1];
  int blocked;
  uint64_t at;
} entry;

/* Whether word (blocked, at) replaces e. */
static int newer(int blocked, uint64_t at, const entry *e) {
  return at > e->at || (at == e->at && blocked && !e->blocked);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const entry *)a)->account, ((const entry *)b)->account);
}

/* Tombstones first, oldest first; then the blocked, oldest first. */
static int by_age(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->blocked != y->blocked) return x->blocked - y->blocked;
  return x->at < y->at ? -1 : x->at > y->at;
}

/* The stored list of `name` (none: empty). */
static int list_load(whisper_server *srv, const char *name, entry **out, size_t *n) {
  Whisper__Server__Blocks *b;
  *out = NULL;
  *n = 0;
  int rc = wsrv_get_msg(srv, WHISPER_REC_SERVER_BLOCKS, (const uint8_t *)name, strlen(name),
                        &whisper__server__blocks__descriptor, (ProtobufCMessage **)&b);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  if (b->n_entries > 2 * WSRV_BLOCKS_MAX) rc = WHISPER_ECORRUPT;
  if (rc == WHISPER_OK && (*out = calloc(b->n_entries + 1, sizeof **out)) == NULL) rc = WHISPER_ENOMEM;
  for (size_t i = 0; rc == WHISPER_OK && i < b->n_entries; i++) {
    const Whisper__Sync__BlockEntry *e = b->entries[i];
    if (!wh_account_ok(e->account)) {
      rc = WHISPER_ECORRUPT;
      break;
    }
    snprintf((*out)[i].account, sizeof (*out)[i].account, "%s", e->account);
    (*out)[i].blocked = e->blocked;
    (*out)[i].at = e->changed_at;
    (*n)++;
  }
  wsrv_msg_free(b);
  if (rc != WHISPER_OK) {
    free(*out);
    *out = NULL;
    *n = 0;
    if (rc == WHISPER_ECORRUPT) return wsrv_fail(srv, rc, "a stored block list is corrupt");
    return wsrv_fail(srv, rc, "out of memory");
  }
  return WHISPER_OK;
}

static int list_put(whisper_server *srv, const char *name, const entry *v, size_t n) {
  Whisper__Server__Blocks b = WHISPER__SERVER__BLOCKS__INIT;
  Whisper__Sync__BlockEntry *e = calloc(n + 1, sizeof *e);
  Whisper__Sync__BlockEntry **ep = calloc(n + 1, sizeof *ep);
  int rc = e && ep ? WHISPER_OK : wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  for (size_t i = 0; rc == WHISPER_OK && i < n; i++) {
    whisper__sync__block_entry__init(&e[i]);
    e[i].account = (char *)v[i].account;
    e[i].has_blocked = e[i].has_changed_at = 1;
    e[i].blocked = v[i].blocked != 0;
    e[i].changed_at = v[i].at;
    ep[i] = &e[i];
  }
  b.n_entries = n;
  b.entries = ep;
  if (rc == WHISPER_OK)
    rc = n ? wsrv_put_msg(srv, WHISPER_REC_SERVER_BLOCKS, (const uint8_t *)name, strlen(name), &b.base)
           : wsrv_del(srv, WHISPER_REC_SERVER_BLOCKS, (const uint8_t *)name, strlen(name));
  free(e);
  free(ep);
  return rc;
}

int wsrv_blocked(whisper_server *srv, const char *blocker, const char *account) {
  entry *v;
  size_t n;
  int rc = list_load(srv, blocker, &v, &n);
  if (rc != WHISPER_OK) return rc;
  int yes = 0;
  for (size_t i = 0; i < n && !yes; i++) yes = v[i].blocked && strcmp(v[i].account, account) == 0;
  free(v);
  return yes;
}

int wsrv_block_drops(whisper_server *srv, const char *to, const char *sender, uint32_t content,
                     int *drop) {
  *drop = 0;
  if (content == CONTENT_SKDM || content == CONTENT_RETRY || strcmp(to, sender) == 0) return WHISPER_OK;
  int rc = wsrv_blocked(srv, to, sender);
  if (rc < 0) return rc;
  *drop = rc;
  return WHISPER_OK;
}

int wsrv_block_either(whisper_server *srv, const char *a, const char *b) {
  int rc = wsrv_blocked(srv, a, b);
  if (rc == 0) rc = wsrv_blocked(srv, b, a);
  return rc != 0; /* a store failure: as blocked (nothing that may not go goes) */
}

static int block_check(whisper_server *srv, const wsrv_conn *c, const Whisper__Sync__BlockSet *m) {
  if (m->n_entries > WSRV_BLOCKS_MAX)
    return wsrv_refuse(srv, ERR_MALFORMED, "a BlockSet has at most 1024 entries");
  for (size_t i = 0; i < m->n_entries; i++) {
    const Whisper__Sync__BlockEntry *e = m->entries[i];
    if (!wh_account_ok(e->account) || !e->has_changed_at || strcmp(e->account, c->account) == 0)
      return wsrv_refuse(srv, ERR_MALFORMED, "a block entry names another account, with changed_at");
    for (size_t k = 0; k < i; k++)
      if (strcmp(m->entries[k]->account, e->account) == 0)
        return wsrv_refuse(srv, ERR_MALFORMED, "an account twice in a BlockSet");
  }
  return 0;
}

/* The stored list with the set's entries merged in. */
static int block_store(whisper_server *srv, const wsrv_conn *c, const Whisper__Sync__BlockSet *m) {
  entry *v;
  size_t n;
  int rc = list_load(srv, c->account, &v, &n);
  if (rc != WHISPER_OK) return rc;
  entry *all = realloc(v, (n + m->n_entries + 1) * sizeof *all);
  if (all == NULL) {
    free(v);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  v = all;
  for (size_t i = 0; i < m->n_entries; i++) {
    const Whisper__Sync__BlockEntry *e = m->entries[i];
    size_t k = 0;
    while (k < n && strcmp(v[k].account, e->account) != 0) k++;
    if (k == n) {
      snprintf(v[n].account, sizeof v[n].account, "%s", e->account);
      v[n].blocked = e->blocked;
      v[n].at = e->changed_at;
      n++;
    } else if (newer(e->blocked, e->changed_at, &v[k])) {
      v[k].blocked = e->blocked;
      v[k].at = e->changed_at;
    }
  }
  size_t blocked = 0;
  for (size_t i = 0; i < n; i++) blocked += v[i].blocked != 0;
  if (blocked > WSRV_BLOCKS_MAX) {
    free(v);
    return wsrv_refuse(srv, ERR_LIMIT, "at most 1024 accounts can be blocked");
  }
  if (n > WSRV_BLOCKS_MAX) { /* the oldest tombstones go */
    qsort(v, n, sizeof *v, by_age);
    memmove(v, v + (n - WSRV_BLOCKS_MAX), WSRV_BLOCKS_MAX * sizeof *v);
    n = WSRV_BLOCKS_MAX;
  }
  qsort(v, n, sizeof *v, by_name);
  rc = list_put(srv, c->account, v, n);
  free(v);
  return rc;
}

int wsrv_handle_block_set(whisper_server *srv, wsrv_conn *c, uint64_t id,
                          const Whisper__Sync__BlockSet *m, uint64_t now_ms) {
  (void)now_ms;
  int rc = block_check(srv, c, m);
  if (rc) return rc;
  if ((rc = wsrv_begin(srv)) != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, block_store(srv, c, m));
  if (rc != WHISPER_OK) return rc;
  wsrv_send_ok(srv, c, id);
  wsrv_presence_refresh(srv, c->account); /* who sees it online may have changed */
  return 0;
}

/* --- reports -------------------------------------------------------------- */

static int conv_ok(const char *s) {
  if (s == NULL) return 0;
  if (s[0] != '#') return wh_account_ok(s);
  if (strlen(s) != WSRV_CONV_MAX) return 0;
  for (size_t i = 1; i < WSRV_CONV_MAX; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

static int report_check(whisper_server *srv, const Whisper__Sync__Report *m) {
  if (!conv_ok(m->conversation))
    return wsrv_refuse(srv, ERR_MALFORMED, "a report names an account or a group's conversation");
  if (m->n_messages > WSRV_REPORT_MESSAGES_MAX)
    return wsrv_refuse(srv, ERR_LIMIT, "a report has at most 50 messages");
  for (size_t i = 0; i < m->n_messages; i++) {
    const Whisper__Sync__ReportedMessage *r = m->messages[i];
    if (!r->has_id || r->id.len == 0 || r->id.len > WSRV_REPORT_ID_MAX || !wh_account_ok(r->sender) ||
        r->text.len > WSRV_REPORT_TEXT_MAX)
      return wsrv_refuse(srv, ERR_MALFORMED,
                         "a reported message has an id, a sender and at most 2048 bytes of text");
  }
  return 0;
}

static void report_key(uint8_t k[8], uint64_t n) { wh_be64(k, n); }

/* The report as stored: the checked fields only (nothing unknown is kept). */
static int report_store(whisper_server *srv, const wsrv_conn *c, const Whisper__Sync__Report *m,
                        uint64_t now_ms) {
  size_t n = m->n_messages;
  Whisper__Sync__ReportedMessage *rm = calloc(n + 1, sizeof *rm);
  Whisper__Sync__ReportedMessage **rp = calloc(n + 1, sizeof *rp);
  if (rm == NULL || rp == NULL) {
    free(rm);
    free(rp);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    const Whisper__Sync__ReportedMessage *r = m->messages[i];
    whisper__sync__reported_message__init(&rm[i]);
    rm[i].has_id = rm[i].has_sent_at_ms = rm[i].has_text = 1;
    rm[i].id = r->id;
    rm[i].sender = r->sender;
    rm[i].sent_at_ms = r->sent_at_ms;
    rm[i].text = r->text;
    if (r->truncated) rm[i].has_truncated = rm[i].truncated = 1;
    if (r->deleted) rm[i].has_deleted = rm[i].deleted = 1;
    rp[i] = &rm[i];
  }
  Whisper__Sync__Report rep = WHISPER__SYNC__REPORT__INIT;
  rep.conversation = m->conversation;
  rep.n_messages = n;
  rep.messages = rp;
  if (m->blocked) rep.has_blocked = rep.blocked = 1;
  Whisper__Server__StoredReport s = WHISPER__SERVER__STORED_REPORT__INIT;
  s.reporter = (char *)c->account;
  s.has_reporter_device = s.has_at_ms = 1;
  s.reporter_device = c->device_id;
  s.at_ms = now_ms;
  s.report = &rep;
  uint64_t seq, first;
  uint8_t k[8];
  int rc = wsrv_meta_u64(srv, META_REPORT_SEQ, &seq);
  if (rc == WHISPER_OK) rc = wsrv_meta_u64(srv, META_REPORT_FIRST, &first);
  if (rc == WHISPER_OK && seq == UINT64_MAX) rc = wsrv_fail(srv, WHISPER_ECORRUPT, "report_seq is exhausted");
  if (rc == WHISPER_OK) {
    seq++;
    if (first == 0) first = 1;
    report_key(k, seq);
    rc = wsrv_put_msg(srv, WHISPER_REC_SERVER_REPORT, k, sizeof k, &s.base);
  }
  if (rc == WHISPER_OK) rc = wsrv_meta_put_u64(srv, META_REPORT_SEQ, seq);
  /* the oldest go: at most WHISPER_SERVER_REPORTS_MAX are kept */
  int moved = 0;
  while (rc == WHISPER_OK && first <= seq && seq - first >= srv->cfg.max_reports) {
    report_key(k, first++);
    rc = wsrv_del(srv, WHISPER_REC_SERVER_REPORT, k, sizeof k);
    moved = 1;
  }
  if (rc == WHISPER_OK && (moved || first == 1)) rc = wsrv_meta_put_u64(srv, META_REPORT_FIRST, first);
  free(rm);
  free(rp);
  return rc;
}

int wsrv_handle_report(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Report *m,
                       uint64_t now_ms) {
  int rc = report_check(srv, m);
  if (rc) return rc;
  if ((rc = wsrv_begin(srv)) != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, report_store(srv, c, m, now_ms));
  if (rc != WHISPER_OK) return rc;
  return wsrv_send_ok(srv, c, id);
}

/* --- reading reports -------------------------------------------------------- */

static int report_give(whisper_server *srv, const wsrv_rec *r, whisper_server_report_fn fn, void *user,
                       int *stop) {
  Whisper__Server__StoredReport *s =
      whisper__server__stored_report__unpack(&wh_pb_alloc, r->val_len, r->val);
  if (s == NULL || r->key_len != 8 || s->report == NULL || !wh_account_ok(s->reporter) ||
      !conv_ok(s->report->conversation)) {
    wsrv_msg_free(s);
    return wsrv_fail(srv, WHISPER_ECORRUPT, "a stored report is corrupt");
  }
  const Whisper__Sync__Report *rep = s->report;
  whisper_server_report_message_t *ms = calloc(rep->n_messages + 1, sizeof *ms);
  if (ms == NULL) {
    wsrv_msg_free(s);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  int rc = WHISPER_OK;
  for (size_t i = 0; i < rep->n_messages; i++) {
    const Whisper__Sync__ReportedMessage *m = rep->messages[i];
    if (!wh_account_ok(m->sender)) rc = wsrv_fail(srv, WHISPER_ECORRUPT, "a stored report is corrupt");
    ms[i].size = sizeof ms[i]; /* the element size the caller steps by */
    ms[i].id = m->id.data;
    ms[i].id_len = m->id.len;
    ms[i].sender = m->sender;
    ms[i].sent_at_ms = m->sent_at_ms;
    ms[i].text = m->text.data;
    ms[i].text_len = m->text.len;
    ms[i].truncated = m->truncated;
    ms[i].deleted = m->deleted;
  }
  if (rc == WHISPER_OK) {
    whisper_server_report_t out = {WHISPER_SERVER_REPORT_VERSION, wh_rd64(r->key), s->at_ms,
                                   s->reporter, s->reporter_device, rep->conversation, rep->blocked,
                                   ms, rep->n_messages};
    *stop = fn(user, &out) != 0;
  }
  free(ms);
  wsrv_msg_free(s);
  return rc;
}

const whisper_server_report_message_t *whisper_server_report_message(
    const whisper_server_report_t *report, size_t i) {
  if (report == NULL || report->messages == NULL || i >= report->n_messages) return NULL;
  return WHISPER_SERVER_REPORT_MESSAGE(report, i);
}

int whisper_server_reports(whisper_server *srv, uint64_t after, size_t limit,
                           whisper_server_report_fn fn, void *user) {
  if (srv == NULL || fn == NULL) return WHISPER_EINVAL;
  uint8_t bound[8];
  size_t given = 0;
  int stop = 0, rc = WHISPER_OK;
  report_key(bound, after);
  while (rc == WHISPER_OK && !stop && (limit == 0 || given < limit)) {
    size_t want = limit == 0 || limit - given > 64 ? 64 : limit - given, n;
    wsrv_rec *recs;
    rc = wsrv_scan(srv, WHISPER_REC_SERVER_REPORT, NULL, 0, bound, sizeof bound, want, &recs, &n);
    if (rc != WHISPER_OK) break;
    for (size_t i = 0; rc == WHISPER_OK && !stop && i < n; i++) {
      rc = report_give(srv, &recs[i], fn, user, &stop);
      if (recs[i].key_len == sizeof bound) memcpy(bound, recs[i].key, sizeof bound);
      given++;
    }
    wsrv_recs_free(recs, n);
    if (n < want) break;
  }
  return rc;
}
