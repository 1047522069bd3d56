/*
 * Presence and typing, in memory only: which accounts have devices
 * online, who subscribed to them, when offline is due to be announced
 * (after the grace period), and the last typing notice forwarded per
 * device and conversation. The privacy settings of PresenceSet are kept
 * in the store (the account's `hidden`, the device's `no_read_receipts`).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* --- accounts in memory --------------------------------------------------- */

static int ids_add(uint64_t **v, size_t *n, size_t *cap, uint64_t id) {
  for (size_t i = 0; i < *n; i++)
    if ((*v)[i] == id) return WHISPER_OK;
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 4;
    uint64_t *nv = realloc(*v, nc * sizeof *nv);
    if (nv == NULL) return WHISPER_ENOMEM;
    *v = nv;
    *cap = nc;
  }
  (*v)[(*n)++] = id;
  return WHISPER_OK;
}

static void ids_remove(uint64_t *v, size_t *n, uint64_t id) {
  for (size_t i = 0; i < *n; i++)
    if (v[i] == id) {
      v[i] = v[--*n];
      return;
    }
}

void wsrv_acct_free(void *p) {
  wsrv_acct *a = p;
  if (a == NULL) return;
  free(a->online);
  free(a->subs);
  free(a);
}

wsrv_acct *wsrv_acct_find(const whisper_server *srv, const char *name) {
  return wsrv_map_get(&srv->accts, name, strlen(name));
}

/* Every account in memory may come to wait for its offline notice: room
 * for its timer is made with it. */
static wsrv_acct *acct_make(whisper_server *srv, const char *name, int hidden) {
  if (wsrv_heap_reserve(&srv->acct_timers, srv->accts.count + 1) != WHISPER_OK) return NULL;
  wsrv_acct *a = calloc(1, sizeof *a);
  if (a == NULL) return NULL;
  snprintf(a->name, sizeof a->name, "%s", name);
  a->hidden = hidden;
  wsrv_batch_acct(srv, a);
  if (wsrv_map_put(&srv->accts, name, strlen(name), a) != WHISPER_OK) {
    free(a);
    return NULL;
  }
  return a;
}

/* --- notices -------------------------------------------------------------- */

/* Online as the others see it: a device logged in, or the last one left
 * less than the grace period ago. Hidden accounts are always offline,
 * with no last seen. */
static int seen_online(const wsrv_acct *a) {
  return !a->hidden && (a->n_online > 0 || a->n_remote > 0 || a->offline_at != 0);
}

/* An account is hidden from the accounts it blocked (server_block.c). */
static int hidden_from(whisper_server *srv, uint64_t conn, const wsrv_acct *a) {
  const wsrv_conn *c = wsrv_conn_find(srv, conn);
  return c && c->state == WSRV_AUTHED && wsrv_blocked(srv, a->name, c->account) != 0;
}

static void notice(whisper_server *srv, uint64_t conn, const wsrv_acct *a) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__PresenceNotice p = WHISPER__SYNC__PRESENCE_NOTICE__INIT;
  int hidden = a->hidden || hidden_from(srv, conn, a);
  p.account = (char *)a->name;
  p.has_online = p.has_last_seen_ms = 1;
  p.online = !hidden && seen_online(a);
  p.last_seen_ms = hidden || p.online ? 0 : a->last_seen_ms;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PRESENCE;
  f.presence = &p;
  wsrv_send(srv, conn, &f);
}

static void announce(whisper_server *srv, wsrv_acct *a) {
  a->announced_online = seen_online(a);
  for (size_t i = 0; i < a->n_subs; i++) notice(srv, a->subs[i], a);
}

void wsrv_presence_refresh(whisper_server *srv, const char *name) {
  wsrv_acct *a = wsrv_acct_find(srv, name);
  if (a) announce(srv, a);
}

int wsrv_presence_login(whisper_server *srv, wsrv_conn *c, int hidden) {
  wsrv_acct *a = wsrv_acct_find(srv, c->account);
  if (a == NULL && (a = acct_make(srv, c->account, hidden)) == NULL) return WHISPER_ENOMEM;
  a->hidden = hidden;
  wsrv_batch_acct(srv, a);
  int rc = ids_add(&a->online, &a->n_online, &a->cap_online, c->id);
  a->offline_at = 0;
  wsrv_heap_del(&srv->acct_timers, &a->timer);
  if (seen_online(a) && !a->announced_online) announce(srv, a);
  return rc;
}

void wsrv_presence_logout(whisper_server *srv, wsrv_conn *c, uint64_t now_ms) {
  wsrv_acct *a = wsrv_acct_find(srv, c->account);
  if (a == NULL) return;
  ids_remove(a->online, &a->n_online, c->id);
  if (a->n_online > 0 || a->n_remote > 0) return;
  a->last_seen_ms = now_ms;
  a->offline_at = wsrv_after(now_ms, srv->cfg.presence_grace_ms);
  if (a->offline_at == 0) a->offline_at = 1;
  wsrv_heap_set(&srv->acct_timers, &a->timer, a->offline_at);
}

void wsrv_presence_unsubscribe(whisper_server *srv, wsrv_conn *c) {
  for (size_t i = 0; i < c->n_subs; i++) {
    wsrv_acct *a = wsrv_acct_find(srv, c->subs[i]);
    if (a) ids_remove(a->subs, &a->n_subs, c->id);
    free(c->subs[i]);
  }
  free(c->subs);
  c->subs = NULL;
  c->n_subs = 0;
}

static int acct_idle(void *value, void *arg) {
  const wsrv_acct *a = value;
  (void)arg;
  return a->n_online == 0 && a->n_remote == 0 && a->n_subs == 0 && a->offline_at == 0;
}

#define acct_of(t) ((wsrv_acct *)(void *)((char *)(t) - offsetof(wsrv_acct, timer)))

/* The accounts whose grace ran out (an account is in acct_timers exactly
 * while its offline_at is set); the accounts nobody needs any more are
 * forgotten once a minute (a walk over all of them). */
void wsrv_presence_tick(whisper_server *srv, uint64_t now_ms) {
  wsrv_timer *t;
  while ((t = wsrv_heap_top(&srv->acct_timers)) != NULL && t->at <= now_ms) {
    wsrv_acct *a = acct_of(t);
    wsrv_heap_del(&srv->acct_timers, t);
    a->offline_at = 0;
    if (a->announced_online) announce(srv, a);
  }
  if (now_ms >= wsrv_after(srv->accts_pruned_ms, 60000)) {
    wsrv_map_prune(&srv->accts, acct_idle, NULL, wsrv_acct_free);
    srv->accts_pruned_ms = now_ms;
  }
}

uint64_t wsrv_presence_deadline(const whisper_server *srv) {
  const wsrv_timer *t = wsrv_heap_top(&srv->acct_timers);
  return t ? t->at : UINT64_MAX;
}

/* --- devices on other nodes (cluster mode) --------------------------------- */

/* `online`: 1 a device of `name` logged in on another node, 2 it moved
 * between nodes (no count change), 0 it left at `at_ms`. */
int wsrv_presence_remote(whisper_server *srv, const char *name, int online, int hidden,
                         uint64_t at_ms) {
  wsrv_acct *a = wsrv_acct_find(srv, name);
  if (online) {
    if (a == NULL && (a = acct_make(srv, name, hidden)) == NULL)
      return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    int was = a->hidden;
    a->hidden = hidden;
    if (online == 1) a->n_remote++;
    a->offline_at = 0;
    wsrv_heap_del(&srv->acct_timers, &a->timer);
    if ((seen_online(a) && !a->announced_online) || was != hidden) announce(srv, a);
    return WHISPER_OK;
  }
  if (a == NULL) return WHISPER_OK;
  if (a->n_remote) a->n_remote--;
  if (a->n_online > 0 || a->n_remote > 0) return WHISPER_OK;
  a->last_seen_ms = at_ms;
  a->offline_at = wsrv_after(at_ms, srv->cfg.presence_grace_ms);
  if (a->offline_at == 0) a->offline_at = 1;
  wsrv_heap_set(&srv->acct_timers, &a->timer, a->offline_at);
  return WHISPER_OK;
}

void wsrv_presence_frame_local(whisper_server *srv, const char *name, Whisper__Sync__Frame *f) {
  const wsrv_acct *a = wsrv_acct_find(srv, name);
  for (size_t i = 0; a && i < a->n_online; i++) wsrv_send(srv, a->online[i], f);
}

/* --- PresenceSubscribe ---------------------------------------------------- */

static int subscribed(const wsrv_conn *c, const char *name) {
  for (size_t i = 0; i < c->n_subs; i++)
    if (strcmp(c->subs[i], name) == 0) return 1;
  return 0;
}

/* The account's state in memory, made from the store when new (an
 * unknown account is simply never online). */
static int acct_load(whisper_server *srv, const char *name, wsrv_acct **out) {
  Whisper__Server__Account *rec;
  if ((*out = wsrv_acct_find(srv, name)) != NULL) return WHISPER_OK;
  int rc = wsrv_account_get(srv, name, &rec);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  *out = acct_make(srv, name, rc == WHISPER_OK && rec->hidden);
  if (rc == WHISPER_OK) wsrv_msg_free(rec);
  return *out ? WHISPER_OK : wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
}

static int subscribe_one(whisper_server *srv, wsrv_conn *c, const char *name, wsrv_acct **out) {
  wsrv_acct *a;
  int rc = acct_load(srv, name, &a);
  if (rc != WHISPER_OK) return rc;
  char *copy = malloc(strlen(name) + 1);
  char **subs = realloc(c->subs, (c->n_subs + 1) * sizeof *subs);
  if (subs) c->subs = subs;
  if (copy == NULL || subs == NULL || ids_add(&a->subs, &a->n_subs, &a->cap_subs, c->id) != 0) {
    free(copy);
    return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  }
  strcpy(copy, name);
  c->subs[c->n_subs++] = copy;
  *out = a;
  return WHISPER_OK;
}

int wsrv_handle_subscribe(whisper_server *srv, wsrv_conn *c, uint64_t id,
                          const Whisper__Sync__PresenceSubscribe *m) {
  if (m->n_accounts > WSRV_LIST_MAX) return wsrv_refuse(srv, ERR_LIMIT, "too many accounts");
  for (size_t i = 0; i < m->n_accounts; i++)
    if (!wh_account_ok(m->accounts[i])) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  if (c->n_subs + m->n_accounts > WSRV_SUBS_MAX)
    return wsrv_refuse(srv, ERR_LIMIT, "too many subscriptions");
  wsrv_acct **now = calloc(m->n_accounts ? m->n_accounts : 1, sizeof *now);
  if (now == NULL) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  int rc = WHISPER_OK;
  for (size_t i = 0; i < m->n_accounts && rc == WHISPER_OK; i++) {
    if (subscribed(c, m->accounts[i]))
      rc = acct_load(srv, m->accounts[i], &now[i]);
    else
      rc = subscribe_one(srv, c, m->accounts[i], &now[i]);
  }
  if (rc == WHISPER_OK) {
    wsrv_send_ok(srv, c, id);
    for (size_t i = 0; i < m->n_accounts; i++) notice(srv, c->id, now[i]);
  }
  free(now);
  return rc;
}

/* --- PresenceSet ---------------------------------------------------------- */

static int presence_store(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__PresenceSet *m) {
  int rc = WHISPER_OK;
  if (m->has_online_visible) {
    Whisper__Server__Account *a;
    if ((rc = wsrv_account_get(srv, c->account, &a)) != WHISPER_OK) return rc;
    a->has_hidden = 1;
    a->hidden = !m->online_visible;
    rc = wsrv_account_put(srv, c->account, a);
    wsrv_msg_free(a);
  }
  if (rc == WHISPER_OK && m->mutes) { /* the whole list, replaced */
    if (m->mutes->n_mutes > WSRV_MUTES_MAX)
      return wsrv_refuse(srv, ERR_LIMIT, "at most 1000 muted conversations");
    for (size_t i = 0; i < m->mutes->n_mutes; i++) {
      const char *cv = m->mutes->mutes[i]->conversation;
      if (cv == NULL || strlen(cv) == 0 || strlen(cv) > WSRV_NAME_MAX + 1)
        return wsrv_refuse(srv, ERR_MALFORMED, "a muted conversation needs a name");
    }
    Whisper__Server__Account *a;
    if ((rc = wsrv_account_get(srv, c->account, &a)) != WHISPER_OK) return rc;
    Whisper__Server__Mute *ms = calloc(m->mutes->n_mutes + 1, sizeof *ms);
    Whisper__Server__Mute **mp = calloc(m->mutes->n_mutes + 1, sizeof *mp);
    if (ms && mp) {
      for (size_t i = 0; i < m->mutes->n_mutes; i++) {
        whisper__server__mute__init(&ms[i]);
        ms[i].conversation = m->mutes->mutes[i]->conversation;
        ms[i].has_until_ms = 1;
        ms[i].until_ms = m->mutes->mutes[i]->until_ms;
        mp[i] = &ms[i];
      }
      size_t old_n = a->n_mutes;
      Whisper__Server__Mute **old = a->mutes;
      a->n_mutes = m->mutes->n_mutes;
      a->mutes = mp;
      rc = wsrv_account_put(srv, c->account, a);
      a->n_mutes = old_n;
      a->mutes = old;
    } else {
      rc = wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
    }
    free(ms);
    free(mp);
    wsrv_msg_free(a);
  }
  if (rc == WHISPER_OK && m->has_read_receipts) {
    Whisper__Server__Device *d;
    if ((rc = wsrv_device_get(srv, c->account, c->device_id, &d)) != WHISPER_OK) return rc;
    d->has_no_read_receipts = 1;
    d->no_read_receipts = !m->read_receipts;
    rc = wsrv_device_put(srv, c->account, c->device_id, d);
    wsrv_msg_free(d);
  }
  return rc;
}

/* Hiding is account-wide (the newest setting of any device wins); the
 * subscribers learn the new appearance at once. */
int wsrv_handle_presence_set(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__PresenceSet *m) {
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, presence_store(srv, c, m));
  if (rc != WHISPER_OK) return rc;
  wsrv_send_ok(srv, c, id);
  wsrv_acct *a = wsrv_acct_find(srv, c->account);
  if (a && m->has_online_visible && a->hidden != !m->online_visible) {
    a->hidden = !m->online_visible;
    wsrv_batch_acct(srv, a);
    announce(srv, a);
  }
  if (m->has_online_visible) wsrv_cluster_hidden(srv, c->account, !m->online_visible);
  return 0;
}

/* --- Typing --------------------------------------------------------------- */

/* Forwards nothing more often than typing_min_ms per device and
 * conversation, but a change between started and stopped always goes. */
static int typing_throttled(whisper_server *srv, const wsrv_conn *c, const char *conv, int started,
                            uint64_t now_ms) {
  uint8_t key[WSRV_ADDR_MAX + WSRV_NAME_MAX + 1];
  size_t cl = strlen(conv);
  memcpy(key, c->addr.key, c->addr.len);
  memcpy(key + c->addr.len, conv, cl);
  wsrv_typing *t = wsrv_map_get(&srv->typing, key, c->addr.len + cl);
  if (t && t->started == started && now_ms < wsrv_after(t->at_ms, srv->cfg.typing_min_ms)) return 1;
  if (t == NULL && (t = calloc(1, sizeof *t)) != NULL &&
      wsrv_map_put(&srv->typing, key, c->addr.len + cl, t) != WHISPER_OK) {
    free(t);
    t = NULL;
  }
  if (t) {
    t->at_ms = now_ms;
    t->started = started;
  }
  return 0;
}

/* To the online devices of `name` (but the typing connection). */
static void typing_to(whisper_server *srv, const wsrv_conn *c, const char *name,
                      const Whisper__Sync__Typing *m, uint64_t now_ms) {
  const wsrv_acct *a = wsrv_acct_find(srv, name);
  if (a == NULL || (a->n_online == 0 && a->n_remote == 0)) return;
  if (wsrv_block_either(srv, c->account, name)) return; /* neither way (server_block.c) */
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__TypingNotice t = WHISPER__SYNC__TYPING_NOTICE__INIT;
  t.from = (char *)c->account;
  t.has_from_device = t.has_started = t.has_expires_ms = 1;
  t.from_device = c->device_id;
  t.started = m->started;
  t.expires_ms = wsrv_after(now_ms, srv->cfg.typing_ttl_ms);
  t.has_group_id = m->has_group_id;
  t.group_id = m->group_id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_TYPING_NOTICE;
  f.typing_notice = &t;
  for (size_t i = 0; i < a->n_online; i++)
    if (a->online[i] != c->id) wsrv_send(srv, a->online[i], &f);
  wsrv_cluster_frame(srv, name, &f);
}

static int typing_group(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__Typing *m,
                        const char *conv, uint64_t now_ms) {
  Whisper__Server__Group *g;
  int rc = wsrv_group_get(srv, m->group_id.data, &g);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such group");
  if (rc != WHISPER_OK) return rc;
  if (!wsrv_group_has(g->members, g->n_members, c->account)) {
    wsrv_msg_free(g);
    return wsrv_refuse(srv, ERR_FORBIDDEN, "not a member of the group");
  }
  if (!typing_throttled(srv, c, conv, m->started, now_ms))
    for (size_t i = 0; i < g->n_members; i++)
      if (strcmp(g->members[i], c->account) != 0) typing_to(srv, c, g->members[i], m, now_ms);
  wsrv_msg_free(g);
  return 0;
}

int wsrv_handle_typing(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Typing *m,
                       uint64_t now_ms) {
  char conv[WSRV_CONV_MAX + WSRV_NAME_MAX + 1];
  if (!m->has_started || (m->to != NULL) == (m->has_group_id != 0))
    return wsrv_refuse(srv, ERR_MALFORMED, "Typing goes to an account or a group, started or not");
  if (m->to && !wh_account_ok(m->to)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  if (m->has_group_id && m->group_id.len != WSRV_ID_LEN)
    return wsrv_refuse(srv, ERR_MALFORMED, "a group id is 16 bytes");
  int rc = 0;
  if (m->has_group_id) {
    wh_group_conv(conv, m->group_id.data);
    rc = typing_group(srv, c, m, conv, now_ms);
  } else {
    snprintf(conv, sizeof conv, "%s", m->to);
    if (!typing_throttled(srv, c, conv, m->started, now_ms)) typing_to(srv, c, m->to, m, now_ms);
  }
  return rc ? rc : wsrv_send_ok(srv, c, id);
}
