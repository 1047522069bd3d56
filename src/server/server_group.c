/*
 * Groups: GroupOp CREATE / ADD / REMOVE / ADMIN / INFO. The server keeps
 * members and admins; every change takes a server_seq and appends an
 * ENTRY_GROUP (members after the change, removed) to every device of
 * every member, old and new. Every GroupOp is answered with GroupInfo.
 *
 * An op may carry the author's e2e.SignedGroupChange. The server does not
 * verify its signature (members do) but keeps the chain: the change must
 * be for this group, version 1 for CREATE, else the stored change's
 * version + 1 with `prev` the SHA-256 of the stored change's body
 * (ERR_STATE: the author rebuilds on the newer state). It is stored as
 * the group's latest, travels with every ENTRY_GROUP of the op and with
 * GroupInfo. The membership the server routes by is still the op's.
 *
 * Administration (members check every change; the server checks the
 * shape and keeps its routing table in step with what admins sign):
 *  - ADMIN and UPDATE (a change that keeps the membership: demote, info,
 *    settings, invite link) carry a change; an admin's change sets the
 *    server's admins to the change's (those that are members), and a
 *    non-admin's (an info edit) must keep them;
 *  - PEEK: anyone holding the group's invite link reads its latest change
 *    (and its author's signed device list), proving the link with a
 *    signature by the link's key (invite_key in the stored change) over
 *    "whisper-group-peek-v1" || group id || account;
 *  - JOIN: a non-member's change that adds itself, by its own device,
 *    signed also by the link's key ("whisper-group-join-v1" || body). With
 *    approval required nothing changes: the admins' devices get the
 *    request (Deliver.join_request) and the answer says `requested`.
 * The server never sees a link's secret, only its public key and
 * signatures bound to one account and one change: it cannot join an
 * account of its own with a link it carried.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

/* A list of names pointing into the frame or the stored record. */
typedef struct names {
  char **v;
  size_t n;
} names;

static int names_has(const names *l, const char *s) { return wsrv_group_has(l->v, l->n, s); }

/* The lists are allocated large enough for every name they can get. */
static void names_add(names *l, char *s) {
  if (!names_has(l, s)) l->v[l->n++] = s;
}

static void names_remove(names *l, const char *s) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0) {
      memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
      l->n--;
      return;
    }
}

/* A SignedGroupChange, parsed. */
typedef struct signed_change {
  Whisper__E2e__SignedGroupChange *sc;
  Whisper__E2e__GroupChangeBody *body;
} signed_change;

typedef struct group_change {
  names members, admins, removed, notify; /* notify: members old and new */
  int changed, exists;
  Whisper__Server__Group *rec; /* the stored group the names point into */
  signed_change op_change;     /* the op's change (sc NULL: none) */
  ProtobufCBinaryData latest;  /* the group's latest change after the op */
  int has_latest;
  signed_change stored;        /* the stored change, parsed (PEEK, JOIN) */
  int request;                 /* JOIN with approval required: the admins are asked */
  Whisper__Server__Account *author; /* PEEK: the latest change's author (its signed list) */
} group_change;

static int change_alloc(group_change *g, size_t cap) {
  g->members.v = malloc(cap * sizeof(char *));
  g->admins.v = malloc(cap * sizeof(char *));
  g->removed.v = malloc(cap * sizeof(char *));
  g->notify.v = malloc(cap * sizeof(char *));
  return g->members.v && g->admins.v && g->removed.v && g->notify.v;
}

static void signed_change_free(signed_change *s) {
  if (s->body) whisper__e2e__group_change_body__free_unpacked(s->body, &wh_pb_alloc);
  if (s->sc) whisper__e2e__signed_group_change__free_unpacked(s->sc, &wh_pb_alloc);
  memset(s, 0, sizeof *s);
}

static void change_free(group_change *g) {
  free(g->members.v);
  free(g->admins.v);
  free(g->removed.v);
  free(g->notify.v);
  signed_change_free(&g->op_change);
  signed_change_free(&g->stored);
  wsrv_msg_free(g->author);
}

/* --- signed changes ------------------------------------------------------- */

/* Parses a SignedGroupChange: a body with a version. 0 or -1. */
static int signed_change_parse(ProtobufCBinaryData raw, signed_change *out) {
  out->sc = whisper__e2e__signed_group_change__unpack(&wh_pb_alloc, raw.len, raw.data);
  if (out->sc == NULL || !out->sc->has_body) return -1;
  out->body = whisper__e2e__group_change_body__unpack(&wh_pb_alloc, out->sc->body.len,
                                                      out->sc->body.data);
  return out->body && out->body->has_version ? 0 : -1;
}

static int sha256(uint8_t out[32], const ProtobufCBinaryData *b) {
  unsigned int n = 0;
  static const uint8_t none[1];
  return EVP_Digest(b->len ? b->data : none, b->len, out, &n, EVP_sha256(), NULL) == 1 && n == 32
             ? 0
             : -1;
}

/* The op's change (if any) parses, is for this group, INFO and PEEK carry
 * none, UPDATE and JOIN carry one. */
static int op_change_parse(whisper_server *srv, const Whisper__Sync__GroupOp *m, group_change *g) {
  int needs = m->op == WHISPER__SYNC__GROUP_OP__OP__UPDATE || m->op == WHISPER__SYNC__GROUP_OP__OP__JOIN;
  if (!m->has_change && needs)
    return wsrv_refuse(srv, ERR_MALFORMED, "GroupOp UPDATE and JOIN carry a change");
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__PEEK &&
      !wsrv_bytes_ok(m->has_invite_proof, m->invite_proof, WHISPER_SIGNATURE_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "GroupOp PEEK carries a 64-byte invite_proof");
  if (!m->has_change) return 0;
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__INFO || m->op == WHISPER__SYNC__GROUP_OP__OP__PEEK)
    return wsrv_refuse(srv, ERR_MALFORMED, "GroupOp INFO and PEEK carry no change");
  if (signed_change_parse(m->change, &g->op_change) != 0)
    return wsrv_refuse(srv, ERR_MALFORMED, "the group change does not parse");
  const Whisper__E2e__GroupChangeBody *b = g->op_change.body;
  if (!wsrv_bytes_ok(b->has_group_id, b->group_id, WSRV_ID_LEN) ||
      memcmp(b->group_id.data, m->group_id.data, WSRV_ID_LEN) != 0)
    return wsrv_refuse(srv, ERR_MALFORMED, "the group change is for another group");
  return 0;
}

/* The op's change follows the stored one: version 1 for a new group,
 * else the stored version + 1 with prev = SHA-256 of the stored body. */
static int chain_check(whisper_server *srv, const Whisper__Server__Group *rec,
                       const group_change *g) {
  const Whisper__E2e__GroupChangeBody *b = g->op_change.body;
  signed_change stored = {0};
  uint8_t h[32];
  uint64_t want = 1;
  int rc = 0;
  if (b == NULL) return 0;
  if (rec && !rec->has_change) /* a group from before signed changes: its first is version 1 */
    return b->version == 1 && !b->has_prev
               ? 0
               : wsrv_refuse(srv, ERR_STATE, "the group's first signed change must be version 1");
  if (rec && signed_change_parse(rec->change, &stored) != 0)
    rc = wsrv_fail(srv, WHISPER_ECORRUPT, "a stored group change is corrupt");
  else if (rec && sha256(h, &stored.sc->body) != 0)
    rc = wsrv_fail(srv, WHISPER_EINTERNAL, "SHA-256 failed");
  else if (rec && stored.body->version == UINT64_MAX)
    rc = wsrv_refuse(srv, ERR_STATE, "the group change's version is exhausted");
  if (rc == 0 && rec) {
    want = stored.body->version + 1;
    if (!wsrv_bytes_ok(b->has_prev, b->prev, sizeof h) || memcmp(b->prev.data, h, sizeof h) != 0)
      rc = wsrv_refuse(srv, ERR_STATE, "the group change does not follow the stored one (prev)");
  }
  if (rc == 0 && b->version != want)
    rc = wsrv_refuse(srv, ERR_STATE, "the group change's version is not the stored one + 1");
  signed_change_free(&stored);
  return rc;
}

/* --- the operations ------------------------------------------------------- */

static int accounts_exist(whisper_server *srv, char *const *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    Whisper__Server__Account *a;
    int rc = wsrv_account_get(srv, v[i], &a);
    if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such account");
    if (rc != WHISPER_OK) return rc;
    wsrv_msg_free(a);
  }
  return 0;
}

static int op_create(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__GroupOp *m,
                     group_change *g) {
  if (g->exists) return wsrv_refuse(srv, ERR_EXISTS, "that group exists");
  names_add(&g->members, c->account);
  names_add(&g->admins, c->account);
  for (size_t i = 0; i < m->n_members; i++) names_add(&g->members, m->members[i]);
  g->changed = 1;
  return accounts_exist(srv, m->members, m->n_members);
}

static int op_add(whisper_server *srv, const Whisper__Sync__GroupOp *m, group_change *g) {
  for (size_t i = 0; i < m->n_members; i++) {
    if (names_has(&g->members, m->members[i])) continue;
    names_add(&g->members, m->members[i]);
    g->changed = 1;
  }
  return accounts_exist(srv, m->members, m->n_members);
}

/* An admin removes anyone; a member may remove itself (leave). A group
 * left without admins gets its first member as admin; an empty group is
 * deleted. */
static int op_remove(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__GroupOp *m,
                     group_change *g, int admin) {
  for (size_t i = 0; i < m->n_members; i++)
    if (!admin && strcmp(m->members[i], c->account) != 0)
      return wsrv_refuse(srv, ERR_FORBIDDEN, "only admins remove others");
  for (size_t i = 0; i < m->n_members; i++) {
    if (!names_has(&g->members, m->members[i])) continue;
    names_remove(&g->members, m->members[i]);
    names_remove(&g->admins, m->members[i]);
    names_add(&g->removed, m->members[i]);
    g->changed = 1;
  }
  if (g->admins.n == 0 && g->members.n > 0) names_add(&g->admins, g->members.v[0]);
  return 0;
}

/* XEdDSA by `key` (33 bytes) over ctx || a || b: 1 yes, 0 no, <0 out of memory. */
static int invite_sig_ok(const ProtobufCBinaryData *key, const char *ctx, const uint8_t *a, size_t al,
                         const uint8_t *b, size_t bl, const ProtobufCBinaryData *sig) {
  size_t cl = strlen(ctx);
  uint8_t *msg = malloc(cl + al + bl + 1);
  if (msg == NULL) return -1;
  memcpy(msg, ctx, cl);
  if (al) memcpy(msg + cl, a, al);
  if (bl) memcpy(msg + cl + al, b, bl);
  int rc = whisper_verify(key->data, key->len, msg, cl + al + bl, sig->data, sig->len);
  free(msg);
  return rc == WHISPER_OK;
}

/* The stored change's invite key (NULL: no link). */
static const ProtobufCBinaryData *invite_key(whisper_server *srv, const Whisper__Server__Group *rec,
                                             group_change *g, int *rc) {
  *rc = 0;
  if (rec == NULL || !rec->has_change) return NULL;
  if (g->stored.body == NULL && signed_change_parse(rec->change, &g->stored) != 0) {
    *rc = wsrv_fail(srv, WHISPER_ECORRUPT, "a stored group change is corrupt");
    return NULL;
  }
  const Whisper__E2e__GroupChangeBody *b = g->stored.body;
  return b->has_invite_key && b->invite_key.len == WHISPER_PUBLIC_KEY_LEN ? &b->invite_key : NULL;
}

/* PEEK: the link, proven by a signature of its key over the group id and
 * the account; the answer carries the latest change and its author's
 * signed device list. */
static int op_peek(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__GroupOp *m,
                   group_change *g) {
  int rc;
  const ProtobufCBinaryData *key = invite_key(srv, g->rec, g, &rc);
  if (rc) return rc;
  if (key == NULL) return wsrv_refuse(srv, ERR_FORBIDDEN, "the group has no invite link");
  int ok = invite_sig_ok(key, "whisper-group-peek-v1", m->group_id.data, WSRV_ID_LEN,
                         (const uint8_t *)c->account, strlen(c->account), &m->invite_proof);
  if (ok < 0) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (!ok) return wsrv_refuse(srv, ERR_FORBIDDEN, "not the group's invite link");
  const char *author = g->stored.body->author;
  if (author && wh_account_ok(author)) {
    rc = wsrv_account_get(srv, author, &g->author);
    if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  }
  return 0;
}

/* JOIN: a change by this device that adds this account, signed with the
 * group's current invite link. With approval required: a request. */
static int op_join(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__GroupOp *m,
                   group_change *g) {
  int rc;
  const ProtobufCBinaryData *key = invite_key(srv, g->rec, g, &rc);
  if (rc) return rc;
  const Whisper__E2e__SignedGroupChange *sc = g->op_change.sc;
  const Whisper__E2e__GroupChangeBody *b = g->op_change.body;
  if (key == NULL) return wsrv_refuse(srv, ERR_FORBIDDEN, "the group has no invite link");
  if (names_has(&g->members, c->account)) return wsrv_refuse(srv, ERR_EXISTS, "already a member");
  if (b->author == NULL || strcmp(b->author, c->account) != 0 || !b->has_author_device ||
      b->author_device != c->device_id)
    return wsrv_refuse(srv, ERR_FORBIDDEN, "a join is signed by the joining device");
  int ok = sc->has_invite_signature && sc->invite_signature.len == WHISPER_SIGNATURE_LEN
               ? invite_sig_ok(key, "whisper-group-join-v1", sc->body.data, sc->body.len, NULL, 0,
                               &sc->invite_signature)
               : 0;
  if (ok < 0) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (!ok) return wsrv_refuse(srv, ERR_FORBIDDEN, "not the group's invite link");
  (void)m;
  if (g->stored.body->has_approval_required && g->stored.body->approval_required) {
    g->request = 1;
    return 0;
  }
  names_add(&g->members, c->account);
  g->changed = 1;
  return 0;
}

static int bytes_same(protobuf_c_boolean ha, ProtobufCBinaryData a, protobuf_c_boolean hb,
                      ProtobufCBinaryData b) {
  size_t la = ha ? a.len : 0, lb = hb ? b.len : 0;
  return la == lb && (la == 0 || memcmp(a.data, b.data, la) == 0);
}

#define FLAG(b, f) ((b)->has_##f && (b)->f)

/* What an honest server checks of a change before it stores it, so that
 * a member cannot stall the group's chain with a change every member
 * refuses: it is signed by the device that sends it (under the identity
 * key it registered), and someone who is not an admin of the stored state
 * changes only what members let them: leaving (the same state without
 * it), the info alone (unless only admins edit it), joining (the same
 * state with it). Members check everything again. */
static int change_entitled(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__GroupOp *m,
                           group_change *g, const Whisper__Server__Group *rec) {
  const Whisper__E2e__SignedGroupChange *sc = g->op_change.sc;
  const Whisper__E2e__GroupChangeBody *b = g->op_change.body;
  if (b == NULL) return 0;
  if (b->author == NULL || strcmp(b->author, c->account) != 0 || !b->has_author_device ||
      b->author_device != c->device_id)
    return wsrv_refuse(srv, ERR_FORBIDDEN, "a group change is signed by the device that sends it");
  Whisper__Server__Device *dev = NULL;
  int rc = wsrv_device_get(srv, c->account, c->device_id, &dev);
  if (rc != WHISPER_OK) return rc == WHISPER_ENOTFOUND ? wsrv_refuse(srv, ERR_AUTH, "unknown device") : rc;
  int ok = dev->has_identity_key && sc->has_signature &&
           invite_sig_ok(&dev->identity_key, "whisper-group-v1", sc->body.data, sc->body.len, NULL, 0,
                         &sc->signature);
  wsrv_msg_free(dev);
  if (ok < 0) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  if (!ok) return wsrv_refuse(srv, ERR_FORBIDDEN, "the group change's signature does not verify");
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__CREATE || g->request) return 0;
  const ProtobufCBinaryData *key = invite_key(srv, rec, g, &rc); /* parses the stored change */
  (void)key;
  if (rc) return rc;
  const Whisper__E2e__GroupChangeBody *h = g->stored.body;
  if (h == NULL || h->n_admins == 0) return 0; /* no signed admins yet: the server's own rules */
  for (size_t i = 0; i < h->n_admins; i++)
    if (strcmp(h->admins[i], c->account) == 0) return 0;
  int member = 0;
  for (size_t i = 0; i < h->n_members && !member; i++) member = strcmp(h->members[i], c->account) == 0;
  /* the change leaves members and admins as they were, but for its author
   * (joining, leaving, no longer an admin) */
  int op = !member ? 1 : m->op == WHISPER__SYNC__GROUP_OP__OP__REMOVE ? -1 : 0;
  int same_members =
      wh_names_same_but(b->members, b->n_members, h->members, h->n_members, c->account, op);
  int same_admins =
      wh_names_same_but(b->admins, b->n_admins, h->admins, h->n_admins, c->account, -1);
  if (same_members < 0 || same_admins < 0) return wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  int info = bytes_same(b->has_name, b->name, h->has_name, h->name) &&
             bytes_same(b->has_description, b->description, h->has_description, h->description) &&
             bytes_same(b->has_picture, b->picture, h->has_picture, h->picture);
  int rest = FLAG(b, admins_edit_info) == FLAG(h, admins_edit_info) &&
             FLAG(b, admins_send) == FLAG(h, admins_send) &&
             FLAG(b, approval_required) == FLAG(h, approval_required) &&
             bytes_same(b->has_invite_key, b->invite_key, h->has_invite_key, h->invite_key);
  int info_ok = info || (m->op == WHISPER__SYNC__GROUP_OP__OP__UPDATE && !FLAG(h, admins_edit_info));
  if (!same_members || !same_admins || !rest || !info_ok)
    return wsrv_refuse(srv, ERR_FORBIDDEN, "a group change its members would refuse from a non-admin");
  return 0;
}

/* An admin's change sets the server's admins (those that are members; a
 * non-admin's leaves them as they are: members refuse what it may claim). */
static void admins_follow(group_change *g, int admin) {
  const Whisper__E2e__GroupChangeBody *b = g->op_change.body;
  if (b == NULL || !admin) return;
  size_t n = 0;
  for (size_t i = 0; i < b->n_admins; i++)
    if (names_has(&g->members, b->admins[i]) && !names_has(&(names){g->admins.v, n}, b->admins[i]))
      g->admins.v[n++] = b->admins[i];
  if (n == 0 && g->members.n > 0) g->admins.v[n++] = g->members.v[0];
  g->admins.n = n; /* (an op with a change counts as a change) */
}

static int op_admin(whisper_server *srv, const Whisper__Sync__GroupOp *m, group_change *g) {
  for (size_t i = 0; i < m->n_members; i++) {
    if (!names_has(&g->members, m->members[i]))
      return wsrv_refuse(srv, ERR_NOT_FOUND, "not a member of the group");
    if (names_has(&g->admins, m->members[i])) continue;
    names_add(&g->admins, m->members[i]);
    g->changed = 1;
  }
  return 0;
}

static int apply_op(whisper_server *srv, wsrv_conn *c, const Whisper__Sync__GroupOp *m,
                    group_change *g) {
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__CREATE) return op_create(srv, c, m, g);
  if (!g->exists) return wsrv_refuse(srv, ERR_NOT_FOUND, "no such group");
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__PEEK) return op_peek(srv, c, m, g);
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__JOIN) return op_join(srv, c, m, g);
  if (!names_has(&g->members, c->account))
    return wsrv_refuse(srv, ERR_FORBIDDEN, "not a member of the group");
  int admin = names_has(&g->admins, c->account), rc;
  if (m->op == WHISPER__SYNC__GROUP_OP__OP__REMOVE) rc = op_remove(srv, c, m, g, admin);
  else if (m->op == WHISPER__SYNC__GROUP_OP__OP__INFO) return 0;
  else if (m->op == WHISPER__SYNC__GROUP_OP__OP__UPDATE) rc = 0; /* members check what changed */
  else if (!admin) return wsrv_refuse(srv, ERR_FORBIDDEN, "not an admin of the group");
  else if (m->op == WHISPER__SYNC__GROUP_OP__OP__ADD) rc = op_add(srv, m, g);
  else rc = op_admin(srv, m, g);
  if (rc == 0) admins_follow(g, admin);
  return rc;
}

/* --- storing and telling -------------------------------------------------- */

static int group_write(whisper_server *srv, const uint8_t *gid, const group_change *g) {
  if (g->members.n == 0) return wsrv_del(srv, WHISPER_REC_SERVER_GROUP, gid, WSRV_ID_LEN);
  Whisper__Server__Group rec = WHISPER__SERVER__GROUP__INIT;
  rec.members = g->members.v;
  rec.n_members = g->members.n;
  rec.admins = g->admins.v;
  rec.n_admins = g->admins.n;
  rec.has_change = g->has_latest;
  rec.change = g->latest;
  return wsrv_put_msg(srv, WHISPER_REC_SERVER_GROUP, gid, WSRV_ID_LEN, &rec.base);
}

/* A join request (approval required): to every device of every admin. */
static int notify_request(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx,
                          const Whisper__Sync__GroupOp *m, group_change *g, uint64_t now_ms) {
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_server_seq = d.has_group_id = 1;
  d.kind = ENTRY_GROUP;
  d.sender = c->account;
  d.sender_device = c->device_id;
  d.server_ts = now_ms;
  d.group_id = (ProtobufCBinaryData){WSRV_ID_LEN, m->group_id.data};
  d.has_join_request = 1;
  d.join_request = m->change;
  int rc = wsrv_next_server_seq(srv, &d.server_seq);
  for (size_t i = 0; i < g->admins.n && rc == WHISPER_OK; i++) {
    rc = wsrv_mailbox_append_account(srv, fx, g->admins.v[i], 0, &d, 1);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  }
  return rc;
}

static int notify(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx, const Whisper__Sync__GroupOp *m,
                  group_change *g, uint64_t now_ms) {
  const uint8_t *gid = m->group_id.data;
  Whisper__Sync__Deliver d = WHISPER__SYNC__DELIVER__INIT;
  int rc = WHISPER_OK;
  for (size_t i = 0; i < g->members.n; i++) names_add(&g->notify, g->members.v[i]);
  d.has_kind = d.has_sender_device = d.has_server_ts = d.has_server_seq = d.has_group_id = 1;
  d.kind = ENTRY_GROUP;
  d.sender = c->account;
  d.sender_device = c->device_id;
  d.server_ts = now_ms;
  d.group_id = (ProtobufCBinaryData){WSRV_ID_LEN, (uint8_t *)gid};
  d.members = g->members.v;
  d.n_members = g->members.n;
  d.removed = g->removed.v;
  d.n_removed = g->removed.n;
  d.has_group_change = m->has_change;
  d.group_change = m->change;
  rc = wsrv_next_server_seq(srv, &d.server_seq);
  for (size_t i = 0; i < g->notify.n && rc == WHISPER_OK; i++) {
    rc = wsrv_mailbox_append_account(srv, fx, g->notify.v[i], 0, &d, 1);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  }
  return rc;
}

static int group_store(whisper_server *srv, wsrv_conn *c, wsrv_fx *fx,
                       const Whisper__Sync__GroupOp *m, group_change *g, uint64_t now_ms) {
  Whisper__Server__Group *rec = NULL;
  int rc = wsrv_group_get(srv, m->group_id.data, &rec);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  g->exists = rc == WHISPER_OK;
  size_t have = rec ? rec->n_members + rec->n_admins : 0;
  rc = change_alloc(g, have + m->n_members + 2) ? WHISPER_OK
                                                 : wsrv_fail(srv, WHISPER_ENOMEM, "out of memory");
  for (size_t i = 0; rec && rc == WHISPER_OK && i < rec->n_members; i++) {
    names_add(&g->members, rec->members[i]);
    names_add(&g->notify, rec->members[i]);
  }
  for (size_t i = 0; rec && rc == WHISPER_OK && i < rec->n_admins; i++)
    names_add(&g->admins, rec->admins[i]);
  g->rec = rec; /* borrowed while applying (PEEK, JOIN read the stored change) */
  if (rc == WHISPER_OK) rc = apply_op(srv, c, m, g);
  g->rec = NULL;
  if (rc == WHISPER_OK && g->members.n > srv->cfg.max_group_members)
    rc = wsrv_refuse(srv, ERR_LIMIT, "too many members");
  if (rc == WHISPER_OK && !g->request) rc = chain_check(srv, rec, g);
  if (rc == WHISPER_OK) rc = change_entitled(srv, c, m, g, rec);
  if (rc == WHISPER_OK && g->request) rc = notify_request(srv, c, fx, m, g, now_ms);
  /* an op with a change moves the chain: stored and told even when the
   * membership stays (a join request changes nothing) */
  if (m->has_change && !g->request) {
    g->changed = 1;
    g->has_latest = 1;
    g->latest = m->change;
  } else if (rec && rec->has_change) {
    g->has_latest = 1;
    g->latest = rec->change;
  }
  if (rc == WHISPER_OK && g->changed) rc = group_write(srv, m->group_id.data, g);
  if (rc == WHISPER_OK && g->changed) rc = notify(srv, c, fx, m, g, now_ms);
  if (g->members.n == 0) g->has_latest = 0; /* deleted, with its change */
  /* the names point into rec: it lives until the answer is out */
  if (rc == WHISPER_OK) g->rec = rec;
  else wsrv_msg_free(rec);
  return rc;
}

static int answer_info(whisper_server *srv, wsrv_conn *c, uint64_t id, const uint8_t *gid,
                       const group_change *g) {
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  Whisper__Sync__GroupInfo gi = WHISPER__SYNC__GROUP_INFO__INIT;
  gi.has_group_id = 1;
  gi.group_id = (ProtobufCBinaryData){WSRV_ID_LEN, (uint8_t *)gid};
  gi.members = g->members.v;
  gi.n_members = g->members.n;
  gi.admins = g->admins.v;
  gi.n_admins = g->admins.n;
  gi.removed = g->removed.v;
  gi.n_removed = g->removed.n;
  gi.has_change = g->has_latest;
  gi.change = g->latest;
  if (g->request) gi.has_requested = gi.requested = 1;
  if (g->author && g->author->has_signed_list) {
    gi.has_author_list = 1;
    gi.author_list = g->author->signed_list;
  }
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_GROUP_INFO;
  f.group_info = &gi;
  return wsrv_send(srv, c->id, &f);
}

static int group_check(whisper_server *srv, const Whisper__Sync__GroupOp *m) {
  if (!m->has_op || m->op < WHISPER__SYNC__GROUP_OP__OP__CREATE ||
      m->op > WHISPER__SYNC__GROUP_OP__OP__PEEK)
    return wsrv_refuse(srv, ERR_MALFORMED, "GroupOp needs an op");
  if (!wsrv_bytes_ok(m->has_group_id, m->group_id, WSRV_ID_LEN))
    return wsrv_refuse(srv, ERR_MALFORMED, "a group id is 16 bytes");
  if (m->n_members > srv->cfg.max_group_members)
    return wsrv_refuse(srv, ERR_LIMIT, "too many members");
  for (size_t i = 0; i < m->n_members; i++)
    if (!wh_account_ok(m->members[i])) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  return 0;
}

int wsrv_handle_group(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__GroupOp *m,
                      uint64_t now_ms) {
  group_change g = {0};
  int rc = group_check(srv, m);
  if (rc == 0) rc = op_change_parse(srv, m, &g);
  if (rc) {
    change_free(&g);
    return rc;
  }
  wsrv_fx fx = {0};
  if ((rc = wsrv_begin(srv)) != WHISPER_OK) {
    change_free(&g);
    return rc;
  }
  rc = wsrv_end(srv, &fx, group_store(srv, c, &fx, m, &g, now_ms));
  if (rc == WHISPER_OK) {
    answer_info(srv, c, id, m->group_id.data, &g);
    wsrv_fx_apply(srv, &fx, now_ms);
  }
  wsrv_msg_free(g.rec);
  change_free(&g);
  wsrv_fx_free(&fx);
  return rc;
}
