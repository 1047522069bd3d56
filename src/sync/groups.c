/*
 * Group administration: who may make which change of a group, the changes
 * this device signs, joining by invite link, and the state the app reads.
 *
 * A group's state is the whole body of its last signed change
 * (e2e.GroupChangeBody): members, admins, info (name, description, picture
 * reference), settings (only admins edit info, only admins send, approval
 * of joins) and the invite link's public key. inbox.c's on_group takes a
 * change only if it follows the one held (version + 1, prev its hash),
 * its author's device signed it, and sy_group_change_why() says its
 * author was entitled to it:
 *  - an admin may make any change that leaves the group with an admin (a
 *    group with members has at least one) and does not grow it past the
 *    member limit;
 *  - a member who is not an admin may leave (the same state without it),
 *    or change the info alone, unless only admins edit the info;
 *  - someone who is not a member may join by the invite link: the same
 *    state with it added, signed also by the link's key (the
 *    invite_signature over the body, checked against the invite key the
 *    held state carries), unless approval is required.
 * The engine signs only changes its members would take (sy_group_op_change
 * runs the same rules on what it is about to sign).
 *
 * Invite links: "whisper-group:" || base64url(1 || group id || secret).
 * The secret never leaves the devices that hold the link: the group's
 * state carries the public key of the key pair derived from it
 * (SHA-256("whisper-group-invite-v1" || secret), clamped), a joiner signs
 * its join with that key, and proves the link to the server (PEEK) with a
 * signature over the group id and its account. The server, which sees
 * only public keys and signatures, cannot join an account of its own.
 * Joining: PEEK reads the latest change with its author's signed device
 * list; it must carry the link's key and verify under that list. It
 * becomes the state held (this account not a member yet), and the JOIN
 * change is signed on it. With approval required, the server only tells
 * the admins (Deliver.join_request); an admin's engine checks the request
 * (the requester's device signed it, the link's key too) and keeps it for
 * the app until an admin adds the requester.
 */
#include <sodium.h>

#include "crypto/crypto.h"
#include "sync/sync_internal.h"

static const char INVITE_CTX[] = "whisper-group-invite-v1";
static const char JOIN_CTX[] = "whisper-group-join-v1";
static const char PEEK_CTX[] = "whisper-group-peek-v1";
static const char LINK_PREFIX[] = "whisper-group:";
#define LINK_VERSION 1
#define LINK_BYTES (1 + WHISPER_GROUP_ID_LEN + 32)
#define SY_JOIN_TRIES 3 /* PEEKs per join (a group that keeps changing under it) */

/* --- shapes ------------------------------------------------------------------------------------ */

/* Well-formed UTF-8 without NUL (no overlong forms, surrogates or code
 * points above U+10FFFF). */
static int utf8_ok(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    size_t k;
    uint32_t cp, min;
    if (b == 0) return 0;
    if (b < 0x80) {
      i++;
      continue;
    }
    if ((b & 0xE0) == 0xC0) k = 1, cp = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0) k = 2, cp = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0) k = 3, cp = b & 0x07, min = 0x10000;
    else return 0;
    if (n - i <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((p[i + j] & 0xC0) != 0x80) return 0;
      cp = cp << 6 | (p[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

static int text_ok(protobuf_c_boolean has, ProtobufCBinaryData v, size_t max) {
  return !has || (v.len <= max && utf8_ok(v.data, v.len));
}

int sy_group_body_ok(const Whisper__E2e__SignedGroupChange *s, const Whisper__E2e__GroupChangeBody *b) {
  return text_ok(b->has_name, b->name, WHISPER_GROUP_NAME_MAX) &&
         text_ok(b->has_description, b->description, WHISPER_GROUP_DESCRIPTION_MAX) &&
         (!b->has_picture || b->picture.len <= WHISPER_GROUP_PICTURE_MAX) &&
         (!b->has_invite_key || (b->invite_key.len == WHISPER_PUBLIC_KEY_LEN &&
                                 whisper_public_key_check(b->invite_key.data, b->invite_key.len) ==
                                     WHISPER_OK)) &&
         (!s->has_invite_signature || s->invite_signature.len == WHISPER_SIGNATURE_LEN);
}

/* --- names ----------------------------------------------------------------------------------- */

static int has(char *const *v, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v[i], name) == 0) return 1;
  return 0;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int strv_set(char ***out, size_t *n, char *const *src, size_t ns) {
  char **v = calloc(ns + 1, sizeof *v);
  if (v == NULL) return WHISPER_ENOMEM;
  for (size_t k = 0; k < ns; k++)
    if ((v[k] = sy_strdup(src[k])) == NULL) {
      while (k) free(v[--k]);
      free(v);
      return WHISPER_ENOMEM;
    }
  for (size_t i = 0; i < *n; i++) free((*out)[i]);
  free(*out);
  *out = v;
  *n = ns;
  return WHISPER_OK;
}

/* Adds a name to a list allocated with room for it (strv_set's + 1, or
 * grown here). */
static int strv_add(char ***v, size_t *n, const char *name) {
  if (has(*v, *n, name)) return WHISPER_OK;
  char **nv = realloc(*v, (*n + 2) * sizeof *nv);
  if (nv == NULL) return WHISPER_ENOMEM;
  *v = nv;
  if ((nv[*n] = sy_strdup(name)) == NULL) return WHISPER_ENOMEM;
  (*n)++;
  return WHISPER_OK;
}

static void strv_del(char **v, size_t *n, const char *name) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp(v[i], name) == 0) {
      free(v[i]);
      memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof *v);
      (*n)--;
      return;
    }
}

/* --- states ------------------------------------------------------------------------------------ */

static int buf_set(whisper_buf **dst, int has_it, const uint8_t *p, size_t len) {
  whisper_buf *b = NULL;
  if (has_it && (b = whisper_buf_new(p, len)) == NULL) return WHISPER_ENOMEM;
  whisper_buf_free(*dst);
  *dst = b;
  return WHISPER_OK;
}

static int buf_same(const whisper_buf *a, const whisper_buf *b) {
  size_t la = a ? a->len : 0, lb = b ? b->len : 0;
  return la == lb && (la == 0 || memcmp(a->data, b->data, la) == 0);
}

static int same_info(const sy_group *a, const sy_group *b) {
  return buf_same(a->name, b->name) && buf_same(a->description, b->description) &&
         buf_same(a->picture, b->picture);
}

static int same_settings(const sy_group *a, const sy_group *b) {
  return !a->admins_edit_info == !b->admins_edit_info && !a->admins_send == !b->admins_send &&
         !a->approval == !b->approval;
}

static int same_link(const sy_group *a, const sy_group *b) {
  return a->has_invite == b->has_invite &&
         (!a->has_invite || memcmp(a->invite_key, b->invite_key, WHISPER_PUBLIC_KEY_LEN) == 0);
}

/* The state a change's body names (members, admins, info, settings, link)
 * into `g`, over what it held. */
static int state_set(sy_group *g, const Whisper__E2e__GroupChangeBody *b) {
  int rc = strv_set(&g->members, &g->n_members, b->members, b->n_members);
  if (rc == WHISPER_OK) rc = strv_set(&g->admins, &g->n_admins, b->admins, b->n_admins);
  if (rc == WHISPER_OK) rc = buf_set(&g->name, b->has_name, b->name.data, b->name.len);
  if (rc == WHISPER_OK)
    rc = buf_set(&g->description, b->has_description, b->description.data, b->description.len);
  if (rc == WHISPER_OK) rc = buf_set(&g->picture, b->has_picture, b->picture.data, b->picture.len);
  g->admins_edit_info = b->has_admins_edit_info && b->admins_edit_info;
  g->admins_send = b->has_admins_send && b->admins_send;
  g->approval = b->has_approval_required && b->approval_required;
  g->has_invite = b->has_invite_key && b->invite_key.len == WHISPER_PUBLIC_KEY_LEN;
  if (g->has_invite) memcpy(g->invite_key, b->invite_key.data, WHISPER_PUBLIC_KEY_LEN);
  else memset(g->invite_key, 0, sizeof g->invite_key);
  return rc;
}

/* A copy of the signed part of `src` (not the sender-key bookkeeping or
 * the requests), into a zeroed `dst`. */
static int state_copy(sy_group *dst, const sy_group *src) {
  memset(dst, 0, sizeof *dst);
  dst->known = src->known;
  dst->left = src->left;
  dst->legacy = src->legacy;
  dst->version = src->version;
  memcpy(dst->hash, src->hash, sizeof dst->hash);
  int rc = strv_set(&dst->members, &dst->n_members, src->members, src->n_members);
  if (rc == WHISPER_OK) rc = strv_set(&dst->admins, &dst->n_admins, src->admins, src->n_admins);
  if (rc == WHISPER_OK && src->name) rc = buf_set(&dst->name, 1, src->name->data, src->name->len);
  if (rc == WHISPER_OK && src->description)
    rc = buf_set(&dst->description, 1, src->description->data, src->description->len);
  if (rc == WHISPER_OK && src->picture)
    rc = buf_set(&dst->picture, 1, src->picture->data, src->picture->len);
  dst->admins_edit_info = src->admins_edit_info;
  dst->admins_send = src->admins_send;
  dst->approval = src->approval;
  dst->has_invite = src->has_invite;
  memcpy(dst->invite_key, src->invite_key, sizeof dst->invite_key);
  return rc;
}

/* --- who may make which change ------------------------------------------------------------------- */

static int sig_ok(const uint8_t key[WHISPER_PUBLIC_KEY_LEN], const char *ctxs, const uint8_t *body,
                  size_t len, const ProtobufCBinaryData *sig) {
  size_t cl = strlen(ctxs);
  uint8_t *msg = malloc(cl + len + 1);
  if (msg == NULL) return WHISPER_ENOMEM;
  memcpy(msg, ctxs, cl);
  if (len) memcpy(msg + cl, body, len);
  int rc = whisper_verify(key, WHISPER_PUBLIC_KEY_LEN, msg, cl + len, sig->data, sig->len);
  free(msg);
  return rc == WHISPER_ENOMEM ? rc : rc == WHISPER_OK ? 1 : 0;
}

/* The step from held state `g` to `n`, made by `author`: NULL if its
 * members would take it, else why not (*why). join_ok: the change carries
 * a signature by g's invite key. */
static int step_why(whisper_client *c, const sy_group *g, const sy_group *n, const char *author,
                    int join_ok, const char **why) {
  *why = NULL;
  if (n->n_members > 0 && n->n_admins == 0) {
    *why = "a group change that leaves the group without an admin";
    return WHISPER_OK;
  }
  if (n->n_members > c->cfg.max_group_members && n->n_members > g->n_members) {
    *why = "a group change past the member limit";
    return WHISPER_OK;
  }
  if (sy_group_is_admin(g, author)) return WHISPER_OK;
  int same_links = same_link(g, n), same_sets = same_settings(g, n);
  int same;
  if (sy_group_is_member(g, author)) {
    if (!has(n->members, n->n_members, author)) {
      /* leaving: the same group without it */
      same = wh_names_same_but(n->members, n->n_members, g->members, g->n_members, author, -1);
      if (same < 0) return WHISPER_ENOMEM;
      for (size_t i = 0; same && i < n->n_admins; i++)
        same = g->n_admins == 0 || sy_group_is_admin(g, n->admins[i]);
      if (!same || !same_info(g, n) || !same_sets || !same_links)
        *why = "a group change by a member who is not an admin";
      return WHISPER_OK;
    }
    /* the info alone */
    if ((same = wh_names_same(n->members, n->n_members, g->members, g->n_members)) == 1)
      same = wh_names_same(n->admins, n->n_admins, g->admins, g->n_admins);
    if (same < 0) return WHISPER_ENOMEM;
    if (!same || !same_sets || !same_links)
      *why = "a group change by a member who is not an admin";
    else if (g->admins_edit_info && !same_info(g, n))
      *why = "an info change by a member who is not an admin, where only admins edit the info";
    return WHISPER_OK;
  }
  /* a join by invite link: the same group with its author added */
  same = wh_names_same_but(n->members, n->n_members, g->members, g->n_members, author, 1);
  if (same == 1)
    same = wh_names_same(n->admins, n->n_admins, g->admins, g->n_admins);
  if (same < 0) return WHISPER_ENOMEM;
  if (!has(n->members, n->n_members, author) || !same || !same_info(g, n) || !same_sets ||
      !same_links)
    *why = "a group change by someone who is not a member";
  else if (!g->has_invite)
    *why = "a join by invite link to a group without a link";
  else if (!join_ok)
    *why = "a join not signed with the group's invite link";
  else if (g->approval)
    *why = "a join by invite link without an admin's approval, where approval is required";
  return WHISPER_OK;
}

int sy_group_change_why(whisper_client *c, const sy_group *g, const sy_change *ch, const char **why) {
  const Whisper__E2e__GroupChangeBody *b = ch->b;
  *why = NULL;
  int self_in = has(b->members, b->n_members, c->account);
  int author_admin = has(b->admins, b->n_admins, b->author);
  int follows = g->known && g->version && b->version == g->version + 1 &&
                memcmp(b->prev.data, g->hash, 32) == 0;
  int member = g->known && !g->left && sy_group_is_member(g, c->account);
  if (!g->known || g->version == 0 || (!member && !follows)) {
    /* a starting state */
    if (g->known && g->legacy && g->version == 0 && !g->left && sy_group_is_member(g, b->author))
      ; /* a group from before signed changes: its first one is the base */
    else if (g->known && g->version && b->version <= g->version)
      *why = "an old group change, replayed";
    else if (b->version == 1 && b->n_members && strcmp(b->author, b->members[0]) == 0 && author_admin)
      ; /* the creation, by its creator */
    else if (self_in && author_admin)
      ; /* this account added by an admin */
    else
      *why = "a group change that does not start from a state this device holds";
    if (*why == NULL && b->n_members > c->cfg.max_group_members)
      *why = "a group larger than this device's member limit";
    return WHISPER_OK;
  }
  if (b->version <= g->version) {
    *why = "an old group change, replayed";
    return WHISPER_OK;
  }
  if (!follows) {
    *why = "a group change that does not follow the one this device holds";
    return WHISPER_OK;
  }
  sy_group n;
  memset(&n, 0, sizeof n);
  int rc = state_set(&n, b);
  int join_ok = 0;
  if (rc == WHISPER_OK && g->has_invite && ch->s->has_invite_signature &&
      !sy_group_is_member(g, b->author)) {
    join_ok = sig_ok(g->invite_key, JOIN_CTX, ch->s->body.data, ch->s->body.len,
                     &ch->s->invite_signature);
    if (join_ok < 0) rc = WHISPER_ENOMEM;
  }
  if (rc == WHISPER_OK) rc = step_why(c, g, &n, b->author, join_ok, why);
  sy_group_free(&n);
  return rc;
}

int sy_group_take(whisper_client *c, sy_group *g, const Whisper__E2e__GroupChangeBody *b) {
  (void)c;
  sy_group old;
  int rc = state_copy(&old, g);
  if (rc == WHISPER_OK) rc = state_set(g, b);
  int bits = 0, same;
  if (rc == WHISPER_OK) {
    if ((same = wh_names_same(old.members, old.n_members, g->members, g->n_members)) < 0)
      rc = WHISPER_ENOMEM;
    else if (!same || !old.known) bits |= WHISPER_GROUP_CHANGED_MEMBERS;
  }
  if (rc == WHISPER_OK) {
    if ((same = wh_names_same(old.admins, old.n_admins, g->admins, g->n_admins)) < 0)
      rc = WHISPER_ENOMEM;
    else if (!same) bits |= WHISPER_GROUP_CHANGED_ADMINS;
  }
  if (!same_info(&old, g)) bits |= WHISPER_GROUP_CHANGED_INFO;
  if (!same_settings(&old, g)) bits |= WHISPER_GROUP_CHANGED_SETTINGS;
  if (!same_link(&old, g)) bits |= WHISPER_GROUP_CHANGED_LINK;
  /* join requests: gone when their account is a member, or the link changed */
  size_t w = 0;
  for (size_t i = 0; i < g->n_requests; i++) {
    if (same_link(&old, g) && !sy_group_is_member(g, g->requests[i])) g->requests[w++] = g->requests[i];
    else free(g->requests[i]);
  }
  g->n_requests = w;
  g->changed = (uint32_t)bits;
  sy_group_free(&old);
  return rc == WHISPER_OK ? bits : rc;
}

int sy_group_removes(const sy_group *g, const Whisper__E2e__GroupChangeBody *b) {
  if (g->n_members == 0) return 0;
  char **v = malloc((b->n_members + 1) * sizeof *v);
  if (v == NULL) return WHISPER_ENOMEM;
  if (b->n_members) memcpy(v, b->members, b->n_members * sizeof *v);
  qsort(v, b->n_members, sizeof *v, name_cmp);
  int gone = 0;
  for (size_t i = 0; i < g->n_members && !gone; i++)
    gone = bsearch(&g->members[i], v, b->n_members, sizeof *v, name_cmp) == NULL;
  free(v);
  return gone;
}

const char *sy_group_sender_why(const sy_group *g, const char *sender) {
  if (!g->known || !sy_group_is_member(g, sender))
    return "a group message from someone the group's members did not add";
  if (g->admins_send && !sy_group_is_admin(g, sender))
    return "a group message from a member who is not an admin, where only admins send";
  return NULL;
}

/* --- join requests (approval required) -------------------------------------------------------- */

const char *sy_group_request_why(whisper_client *c, const sy_group *g, const sy_change *ch,
                                 int *ignore) {
  const Whisper__E2e__GroupChangeBody *b = ch->b;
  *ignore = 0;
  if (!g->known || g->left || !sy_group_is_admin(g, c->account) ||
      sy_group_is_member(g, b->author)) {
    *ignore = 1; /* not for this device to decide, or nothing to decide */
    return NULL;
  }
  if (!has(b->members, b->n_members, b->author)) return "a join request that does not add its author";
  if (!g->has_invite) return "a join request to a group without an invite link";
  int ok = ch->s->has_invite_signature
               ? sig_ok(g->invite_key, JOIN_CTX, ch->s->body.data, ch->s->body.len,
                        &ch->s->invite_signature)
               : 0;
  if (ok < 0) return "out of memory";
  return ok ? NULL : "a join request not signed with the group's invite link";
}

int sy_group_request_add(sy_group *g, const char *account) {
  if (has(g->requests, g->n_requests, account)) return WHISPER_OK;
  if (g->n_requests >= SY_MAX_REQUESTS) { /* the oldest goes */
    free(g->requests[0]);
    memmove(&g->requests[0], &g->requests[1], (g->n_requests - 1) * sizeof *g->requests);
    g->n_requests--;
  }
  return strv_add(&g->requests, &g->n_requests, account);
}

/* --- invite links ------------------------------------------------------------------------------- */

/* The link's key pair: priv = SHA-256(ctx || secret), clamped. */
static int invite_keys(const uint8_t secret[32], wh_keypair *kp) {
  uint8_t msg[sizeof INVITE_CTX - 1 + 32], priv[32];
  memcpy(msg, INVITE_CTX, sizeof INVITE_CTX - 1);
  memcpy(msg + sizeof INVITE_CTX - 1, secret, 32);
  sy_sha256(priv, msg, sizeof msg);
  int rc = wh_keypair_from_priv(kp, priv) == 0 ? WHISPER_OK : WHISPER_EINTERNAL;
  wh_wipe(msg, sizeof msg);
  wh_wipe(priv, sizeof priv);
  return rc;
}

static int link_encode(char out[WHISPER_GROUP_LINK_LEN + 1], const uint8_t gid[WHISPER_GROUP_ID_LEN],
                       const uint8_t secret[32]) {
  uint8_t raw[LINK_BYTES];
  raw[0] = LINK_VERSION;
  memcpy(raw + 1, gid, WHISPER_GROUP_ID_LEN);
  memcpy(raw + 1 + WHISPER_GROUP_ID_LEN, secret, 32);
  size_t pl = sizeof LINK_PREFIX - 1;
  memcpy(out, LINK_PREFIX, pl);
  char *r = sodium_bin2base64(out + pl, WHISPER_GROUP_LINK_LEN + 1 - pl, raw, sizeof raw,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  wh_wipe(raw, sizeof raw);
  return r ? WHISPER_OK : WHISPER_EINTERNAL;
}

/* 0, or -1 for anything but a link. */
static int link_decode(const char *link, uint8_t gid[WHISPER_GROUP_ID_LEN], uint8_t secret[32]) {
  size_t pl = sizeof LINK_PREFIX - 1;
  if (link == NULL || strncmp(link, LINK_PREFIX, pl) != 0 ||
      strlen(link) != WHISPER_GROUP_LINK_LEN)
    return -1;
  uint8_t raw[LINK_BYTES + 1];
  size_t n = 0;
  const char *end = NULL;
  int ok = sodium_base642bin(raw, sizeof raw, link + pl, WHISPER_GROUP_LINK_LEN - pl, NULL, &n, &end,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
           end == link + WHISPER_GROUP_LINK_LEN && n == LINK_BYTES && raw[0] == LINK_VERSION;
  if (ok) {
    memcpy(gid, raw + 1, WHISPER_GROUP_ID_LEN);
    memcpy(secret, raw + 1 + WHISPER_GROUP_ID_LEN, 32);
  }
  wh_wipe(raw, sizeof raw);
  return ok ? 0 : -1;
}

int sy_group_peek_proof(whisper_client *c, const sy_op *o, uint8_t sig[WHISPER_SIGNATURE_LEN]) {
  wh_keypair kp;
  if (!o->edit.has_secret) return WHISPER_EINVAL;
  int rc = invite_keys(o->edit.secret, &kp);
  size_t al = strlen(c->account);
  uint8_t msg[sizeof PEEK_CTX - 1 + WHISPER_GROUP_ID_LEN + 64];
  memcpy(msg, PEEK_CTX, sizeof PEEK_CTX - 1);
  memcpy(msg + sizeof PEEK_CTX - 1, o->group_id, WHISPER_GROUP_ID_LEN);
  memcpy(msg + sizeof PEEK_CTX - 1 + WHISPER_GROUP_ID_LEN, c->account, al);
  if (rc == WHISPER_OK)
    rc = whisper_sign(c->ctx, kp.priv, msg, sizeof PEEK_CTX - 1 + WHISPER_GROUP_ID_LEN + al, sig);
  wh_wipe(&kp, sizeof kp);
  return rc;
}

void sy_edit_clear(struct sy_edit *e) {
  whisper_buf_free(e->value);
  wh_wipe(e, sizeof *e);
}

/* --- the changes this device signs ------------------------------------------------------------- */

static int set_info(sy_group *n, uint32_t field, const whisper_buf *v) {
  whisper_buf **dst = field == WHISPER_GROUP_NAME          ? &n->name
                      : field == WHISPER_GROUP_DESCRIPTION ? &n->description
                                                           : &n->picture;
  return buf_set(dst, v && v->len, v ? v->data : NULL, v ? v->len : 0);
}

static void set_setting(sy_group *n, uint32_t setting, int on) {
  if (setting == WHISPER_GROUP_ADMINS_EDIT_INFO) n->admins_edit_info = on;
  else if (setting == WHISPER_GROUP_ADMINS_SEND) n->admins_send = on;
  else n->approval = on;
}

int sy_group_op_change(whisper_client *c, sy_op *o) {
  sy_group g, n;
  memset(&n, 0, sizeof n);
  int rc = sy_group_load(c, o->group_id, &g);
  if (rc != WHISPER_OK) return rc;
  const struct sy_edit *e = &o->edit;
  int join = o->code == WHISPER__SYNC__GROUP_OP__OP__JOIN;
  int member = g.known && !g.left && sy_group_is_member(&g, c->account);
  int self_only = o->code == WHISPER__SYNC__GROUP_OP__OP__REMOVE && o->n_members == 1 &&
                  strcmp(o->members[0], c->account) == 0;
  const char *target = o->n_members ? o->members[0] : "";
  wh_keypair kp;
  memset(&kp, 0, sizeof kp);
  if (join && (!g.known || g.version == 0 || member || !e->has_secret))
    rc = sy_fail(c, WHISPER_ESTATE, member ? "this account is a member of the group already"
                                           : "the group's state to join from is not held");
  else if (!join && !member)
    rc = sy_fail(c, WHISPER_ESTATE, "this account is not a member of the group");
  if (rc == WHISPER_OK) rc = state_copy(&n, &g);
  if (rc == WHISPER_OK && join) {
    rc = strv_add(&n.members, &n.n_members, c->account);
    if (rc == WHISPER_OK) rc = invite_keys(e->secret, &kp);
  } else if (rc == WHISPER_OK && (o->code == WHISPER__SYNC__GROUP_OP__OP__ADD ||
                                  o->code == WHISPER__SYNC__GROUP_OP__OP__REMOVE)) {
    for (size_t k = 0; rc == WHISPER_OK && k < o->n_members; k++) {
      if (o->code == WHISPER__SYNC__GROUP_OP__OP__ADD) {
        rc = strv_add(&n.members, &n.n_members, o->members[k]);
      } else {
        strv_del(n.members, &n.n_members, o->members[k]);
        strv_del(n.admins, &n.n_admins, o->members[k]);
      }
    }
  } else if (rc == WHISPER_OK && e->what == SY_EDIT_PROMOTE) {
    if (!sy_group_is_member(&g, target))
      rc = sy_fail(c, WHISPER_ESTATE, "%s is not a member of the group", target);
    else rc = strv_add(&n.admins, &n.n_admins, target);
  } else if (rc == WHISPER_OK && e->what == SY_EDIT_DEMOTE) {
    if (!sy_group_is_admin(&g, target))
      rc = sy_fail(c, WHISPER_ESTATE, "%s is not an admin of the group", target);
    strv_del(n.admins, &n.n_admins, target);
  } else if (rc == WHISPER_OK && e->what == SY_EDIT_INFO) {
    rc = set_info(&n, e->field, e->value);
  } else if (rc == WHISPER_OK && e->what == SY_EDIT_SETTING) {
    set_setting(&n, e->field, e->on);
  } else if (rc == WHISPER_OK && e->what == SY_EDIT_LINK) {
    n.has_invite = e->has_key;
    memcpy(n.invite_key, e->key, sizeof n.invite_key);
  } else if (rc == WHISPER_OK) {
    rc = sy_fail(c, WHISPER_EINVAL, "an unknown group operation");
  }
  /* a group from before signed changes: its first signer is its admin */
  if (rc == WHISPER_OK && g.legacy && g.version == 0 && g.n_admins == 0 && !self_only)
    rc = strv_add(&n.admins, &n.n_admins, c->account);
  /* the last admin leaves: the first remaining member takes over (as the server does) */
  if (rc == WHISPER_OK && n.n_admins == 0 && n.n_members > 0)
    rc = strv_add(&n.admins, &n.n_admins, n.members[0]);
  if (rc == WHISPER_OK && !join && n.n_members > c->cfg.max_group_members && n.n_members > g.n_members)
    rc = sy_fail(c, WHISPER_ESTATE, "a group has at most %u members", (unsigned)c->cfg.max_group_members);
  if (rc == WHISPER_OK && join && n.n_members > c->cfg.max_group_members)
    rc = sy_fail(c, WHISPER_ESTATE, "the group is full (%u members)", (unsigned)c->cfg.max_group_members);
  /* what its members would refuse is not made (a legacy group's first
   * signed change is taken from any member; a join that needs approval is
   * a request) */
  const char *why = NULL;
  if (rc == WHISPER_OK && g.version && !(join && g.approval))
    rc = step_why(c, &g, &n, c->account, join, &why);
  if (rc == WHISPER_OK && why) rc = sy_fail(c, WHISPER_ESTATE, "%s", why);
  whisper_buf *ch = NULL;
  if (rc == WHISPER_OK) rc = sy_change_make(c, o->group_id, &g, &n, join ? kp.priv : NULL, &ch);
  if (rc == WHISPER_OK) {
    whisper_buf_free(o->change);
    o->change = ch;
  }
  wh_wipe(&kp, sizeof kp);
  sy_group_free(&n);
  sy_group_free(&g);
  return rc;
}

/* --- joining: the answers to PEEK and JOIN ----------------------------------------------------- */

static void group_event(whisper_client *c, const uint8_t *gid, int type, int status, int code,
                        const char *message) {
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  sy_event *e = sy_event_new(c, type);
  if (e == NULL) return;
  if (sy_event_set(e, conv, type == WHISPER_EV_GROUP ? c->account : NULL, NULL, 0, NULL, 0) !=
      WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.status = status;
  e->ev.code = code;
  if (message) e->message = sy_strdup(message);
  sy_event_push(c, e);
}

/* The PEEK's answer: the group's latest change becomes the state held, if
 * it carries the link's key and its author's device signed it. 0: the
 * JOIN can be signed; else an error (the sentence set). */
static int peek_take(whisper_client *c, const sy_op *o, const Whisper__Sync__GroupInfo *gi) {
  wh_keypair kp;
  sy_change ch;
  sy_devlist al;
  sy_group g;
  sy_evq evs = {NULL, NULL};
  memset(&al, 0, sizeof al);
  memset(&g, 0, sizeof g);
  int rc = invite_keys(o->edit.secret, &kp);
  wh_wipe(kp.priv, sizeof kp.priv);
  if (rc != WHISPER_OK) return rc;
  if (!gi->has_change) return sy_fail(c, WHISPER_EFORGED, "the server sent no state of the group");
  if ((rc = sy_change_parse(c, o->group_id, gi->change.data, gi->change.len, &ch)) != WHISPER_OK)
    return rc;
  const Whisper__E2e__GroupChangeBody *b = ch.b;
  if (!b->has_invite_key || memcmp(b->invite_key.data, kp.pub, WHISPER_PUBLIC_KEY_LEN) != 0) {
    sy_change_free(&ch);
    return sy_fail(c, WHISPER_ESTATE, "the group's invite link was revoked or replaced");
  }
  rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) rc = sy_devs_load(c, b->author, &al);
  if (rc == WHISPER_OK && gi->has_author_list)
    rc = sy_list_accept(c, b->author, gi->author_list.data, gi->author_list.len, &al, &evs);
  if (rc == WHISPER_OK) rc = sy_devs_save(c, b->author, &al);
  if (rc == WHISPER_OK && (rc = sy_change_verify(c, &ch, &al)) == WHISPER_OK)
    rc = sy_group_load(c, o->group_id, &g);
  int member = g.known && !g.left && sy_group_is_member(&g, c->account);
  if (rc == WHISPER_OK && member)
    rc = sy_fail(c, WHISPER_ESTATE, "this account is a member of the group already");
  else if (rc == WHISPER_OK && g.version && b->version < g.version)
    rc = sy_fail(c, WHISPER_EFORGED, "the server's state of the group is older than the one held");
  else if (rc == WHISPER_OK && g.version == b->version && memcmp(g.hash, ch.hash, 32) != 0)
    rc = sy_fail(c, WHISPER_EFORGED, "the server's state of the group is not the one held");
  else if (rc == WHISPER_OK && b->n_members + 1 > c->cfg.max_group_members)
    rc = sy_fail(c, WHISPER_ESTATE, "the group is full (%u members)", (unsigned)c->cfg.max_group_members);
  if (rc == WHISPER_OK && g.version != b->version) {
    /* the state to join from: this account not a member yet */
    int took = sy_group_take(c, &g, b);
    rc = took < 0 ? took : WHISPER_OK;
    g.known = g.left = 1;
    g.legacy = 0;
    g.version = b->version;
    memcpy(g.hash, ch.hash, 32);
    for (size_t i = 0; i < g.n_have; i++) free(g.have[i].account);
    g.n_have = 0;
    if (rc == WHISPER_OK) rc = sy_group_save(c, o->group_id, &g);
  }
  rc = sy_txn_end(c, rc);
  for (sy_event *e = evs.head, *next; e; e = next) { /* what the author's list changed */
    next = e->next;
    if (rc == WHISPER_OK) sy_event_push(c, e);
    else sy_event_free(e);
  }
  sy_group_free(&g);
  sy_devs_free(&al);
  sy_change_free(&ch);
  return rc;
}

void sy_group_join_answer(whisper_client *c, size_t i, const Whisper__Sync__Frame *f) {
  sy_op *o = &c->ops[i];
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  memcpy(gid, o->group_id, sizeof gid);
  const Whisper__Sync__Error *err = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error : NULL;
  const Whisper__Sync__GroupInfo *gi =
      f->body_case == WHISPER__SYNC__FRAME__BODY_GROUP_INFO ? f->group_info : NULL;
  int again = 0, rc;
  if (o->code == WHISPER__SYNC__GROUP_OP__OP__PEEK) {
    if (err || gi == NULL) {
      sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
      char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
      whisper_client_group_conversation(gid, conv);
      if (e && sy_event_set(e, conv, NULL, NULL, 0, NULL, 0) == WHISPER_OK) {
        e->ev.code = WHISPER_EINVAL;
        e->ev.server_code = err ? (int)err->code : 0;
        e->message = sy_strdup(err && err->message ? err->message
                                                   : "the server refused to show the group for the link");
        sy_event_push(c, e);
      } else {
        sy_event_free(e);
      }
    } else if ((rc = peek_take(c, o, gi)) != WHISPER_OK) {
      group_event(c, gid, rc == WHISPER_EFORGED ? WHISPER_EV_REFUSED : WHISPER_EV_ERROR, 0, rc,
                  whisper_ctx_last_error(c->ctx));
    } else {
      o->code = WHISPER__SYNC__GROUP_OP__OP__JOIN; /* signed when sent, on that state */
      again = 1;
    }
  } else if (err && err->code == ERR_STATE && o->edit.tries < SY_JOIN_TRIES) {
    o->code = WHISPER__SYNC__GROUP_OP__OP__PEEK; /* the group moved on: read it again */
    again = 1;
  } else if (err) {
    sy_event *e = sy_event_new(c, WHISPER_EV_ERROR);
    char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
    whisper_client_group_conversation(gid, conv);
    if (e && sy_event_set(e, conv, NULL, NULL, 0, NULL, 0) == WHISPER_OK) {
      e->ev.code = WHISPER_EINVAL;
      e->ev.server_code = (int)err->code;
      e->message = sy_strdup(err->message ? err->message : "the join was refused");
      sy_event_push(c, e);
    } else {
      sy_event_free(e);
    }
  } else if (gi && gi->requested) {
    group_event(c, gid, WHISPER_EV_GROUP, WHISPER_GROUP_JOIN_REQUESTED, 0, NULL);
  } else if (o->change) {
    /* taken: this account's own change, applied as its members apply it */
    if ((rc = sy_group_own_change(c, gid, o->change)) != WHISPER_OK)
      sy_error_event(c, rc, 0, whisper_ctx_last_error(c->ctx));
  }
  if (again) {
    o->inflight = 0;
    whisper_buf_free(o->change);
    o->change = NULL;
  } else {
    sy_op_drop(c, i); /* the secret is wiped with it */
  }
  if ((rc = sy_ops_store(c)) != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store the pending operations");
  sy_ops_flush(c);
}

/* --- what the app calls -------------------------------------------------------------------------- */

/* The group as held, for a call: this account a member (and an admin when
 * `admin`), else WHISPER_ESTATE. */
static int held_for(whisper_client *c, const uint8_t *gid, const char *admin_only, sy_group *g) {
  int rc = sy_begin(c);
  if (rc != WHISPER_OK) return rc;
  rc = wh_finish(c->ctx, sy_group_load(c, gid, g));
  if (rc != WHISPER_OK) return rc;
  if (!g->known || g->left || !sy_group_is_member(g, c->account))
    rc = sy_fail(c, WHISPER_ESTATE, "this account is not a member of that group");
  else if (admin_only && !sy_group_is_admin(g, c->account))
    rc = sy_fail(c, WHISPER_ESTATE, "only an admin may %s", admin_only);
  if (rc != WHISPER_OK) sy_group_free(g);
  return rc;
}

/* Queues a group op with an edit (which it takes: `*e` is wiped, its
 * value freed on failure), stores the pending ops and sends it if it can. */
static int edit_queue(whisper_client *c, const uint8_t *gid, int code, const char *member,
                      struct sy_edit *e) {
  sy_op *ops = c->n_ops < SY_MAX_OPS ? realloc(c->ops, (c->n_ops + 1) * sizeof *ops) : NULL;
  if (ops == NULL) {
    sy_edit_clear(e);
    return sy_fail(c, WHISPER_ENOMEM, "too many pending operations");
  }
  c->ops = ops;
  sy_op *o = &c->ops[c->n_ops];
  memset(o, 0, sizeof *o);
  o->kind = OP_GROUP;
  o->code = (uint32_t)code;
  o->has_group = 1;
  memcpy(o->group_id, gid, WHISPER_GROUP_ID_LEN);
  o->edit = *e;
  wh_wipe(e, sizeof *e); /* the op holds it now */
  c->n_ops++;
  if (member) {
    if ((o->members = calloc(1, sizeof *o->members)) == NULL ||
        (o->members[0] = sy_strdup(member)) == NULL) {
      sy_op_drop(c, c->n_ops - 1);
      return WHISPER_ENOMEM;
    }
    o->n_members = 1;
  }
  int rc = sy_ops_store(c);
  if (rc != WHISPER_OK) {
    sy_op_drop(c, c->n_ops - 1);
    return rc;
  }
  sy_ops_flush(c);
  return wh_ok(c->ctx);
}

int whisper_client_group_admin_set(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                               const char *member, int admin, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  if (group_id == NULL || !wh_account_ok(member))
    return sy_fail(c, WHISPER_EINVAL, "group_admin needs a group id and a member's account name");
  sy_group g;
  int rc = held_for(c, group_id, "promote or demote members", &g);
  if (rc != WHISPER_OK) return rc;
  if (!sy_group_is_member(&g, member))
    rc = sy_fail(c, WHISPER_ESTATE, "%s is not a member of that group", member);
  else if (!admin && !sy_group_is_admin(&g, member))
    rc = sy_fail(c, WHISPER_ESTATE, "%s is not an admin of that group", member);
  else if (!admin && g.n_admins == 1)
    rc = sy_fail(c, WHISPER_ESTATE, "a group keeps at least one admin: promote another first");
  sy_group_free(&g);
  if (rc != WHISPER_OK) return rc;
  struct sy_edit e;
  memset(&e, 0, sizeof e);
  e.what = admin ? SY_EDIT_PROMOTE : SY_EDIT_DEMOTE;
  int op = admin ? WHISPER__SYNC__GROUP_OP__OP__ADMIN : WHISPER__SYNC__GROUP_OP__OP__UPDATE;
  return edit_queue(c, group_id, op, member, &e);
}

int whisper_client_group_info_set(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                                  int field, const uint8_t *value, size_t len, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  size_t max = field == WHISPER_GROUP_NAME          ? WHISPER_GROUP_NAME_MAX
               : field == WHISPER_GROUP_DESCRIPTION ? WHISPER_GROUP_DESCRIPTION_MAX
               : field == WHISPER_GROUP_PICTURE     ? WHISPER_GROUP_PICTURE_MAX
                                                    : 0;
  if (group_id == NULL || max == 0 || (value == NULL && len))
    return sy_fail(c, WHISPER_EINVAL,
                   "set_info needs a group id, a field (name, description, picture) and a value");
  if (len > max) return sy_fail(c, WHISPER_EINVAL, "that group info field holds at most %zu bytes", max);
  if (field != WHISPER_GROUP_PICTURE && !utf8_ok(value, len))
    return sy_fail(c, WHISPER_EINVAL, "a group's name and description are UTF-8 without NUL");
  sy_group g;
  int rc = held_for(c, group_id, NULL, &g);
  if (rc != WHISPER_OK) return rc;
  if (g.admins_edit_info && !sy_group_is_admin(&g, c->account))
    rc = sy_fail(c, WHISPER_ESTATE, "only admins edit this group's info");
  sy_group_free(&g);
  if (rc != WHISPER_OK) return rc;
  struct sy_edit e;
  memset(&e, 0, sizeof e);
  e.what = SY_EDIT_INFO;
  e.field = (uint32_t)field;
  if (len && (e.value = whisper_buf_new(value, len)) == NULL) return WHISPER_ENOMEM;
  return edit_queue(c, group_id, WHISPER__SYNC__GROUP_OP__OP__UPDATE, NULL, &e);
}

int whisper_client_group_setting_set(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                             int setting, int on, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  if (group_id == NULL || setting < WHISPER_GROUP_ADMINS_EDIT_INFO || setting > WHISPER_GROUP_APPROVAL)
    return sy_fail(c, WHISPER_EINVAL,
                   "group_set needs a group id and a setting (admins-edit-info, admins-send, approval)");
  sy_group g;
  int rc = held_for(c, group_id, "change the group's settings", &g);
  if (rc != WHISPER_OK) return rc;
  sy_group_free(&g);
  struct sy_edit e;
  memset(&e, 0, sizeof e);
  e.what = SY_EDIT_SETTING;
  e.field = (uint32_t)setting;
  e.on = on != 0;
  return edit_queue(c, group_id, WHISPER__SYNC__GROUP_OP__OP__UPDATE, NULL, &e);
}

int whisper_client_group_link_generate(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                                   uint64_t now_ms, char link_out[WHISPER_GROUP_LINK_LEN + 1]) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  if (group_id == NULL || link_out == NULL)
    return sy_fail(c, WHISPER_EINVAL, "link_make needs a group id and link_out");
  sy_group g;
  int rc = held_for(c, group_id, "make or revoke the invite link", &g);
  if (rc != WHISPER_OK) return rc;
  sy_group_free(&g);
  uint8_t secret[32];
  wh_keypair kp;
  char link[WHISPER_GROUP_LINK_LEN + 1];
  struct sy_edit e;
  memset(&e, 0, sizeof e);
  if (wh_random(&c->ctx->rng, secret, sizeof secret) != 0)
    rc = sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
  if (rc == WHISPER_OK) rc = invite_keys(secret, &kp);
  if (rc == WHISPER_OK) rc = link_encode(link, group_id, secret);
  if (rc == WHISPER_OK) {
    e.what = SY_EDIT_LINK;
    e.has_key = 1;
    memcpy(e.key, kp.pub, sizeof e.key);
    rc = edit_queue(c, group_id, WHISPER__SYNC__GROUP_OP__OP__UPDATE, NULL, &e);
  }
  if (rc == WHISPER_OK) memcpy(link_out, link, sizeof link);
  wh_wipe(secret, sizeof secret);
  wh_wipe(&kp, sizeof kp);
  wh_wipe(link, sizeof link);
  return rc;
}

int whisper_client_group_link_revoke(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                                     uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  if (group_id == NULL) return sy_fail(c, WHISPER_EINVAL, "link_revoke needs a group id");
  sy_group g;
  int rc = held_for(c, group_id, "make or revoke the invite link", &g);
  if (rc != WHISPER_OK) return rc;
  sy_group_free(&g);
  struct sy_edit e;
  memset(&e, 0, sizeof e);
  e.what = SY_EDIT_LINK; /* no key: none */
  return edit_queue(c, group_id, WHISPER__SYNC__GROUP_OP__OP__UPDATE, NULL, &e);
}

int whisper_client_group_join(whisper_client *c, const char *link, uint64_t now_ms,
                              uint8_t group_id_out[WHISPER_GROUP_ID_LEN]) {
  if (c == NULL) return WHISPER_EINVAL;
  c->now = now_ms;
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  struct sy_edit e;
  memset(&e, 0, sizeof e);
  if (group_id_out == NULL || link_decode(link, gid, e.secret) != 0)
    return sy_fail(c, WHISPER_EINVAL, "not a group invite link");
  e.has_secret = 1;
  e.what = SY_EDIT_JOIN;
  sy_group g;
  int rc = sy_begin(c);
  if (rc == WHISPER_OK) rc = wh_finish(c->ctx, sy_group_load(c, gid, &g));
  if (rc == WHISPER_OK) {
    if (g.known && !g.left && sy_group_is_member(&g, c->account))
      rc = sy_fail(c, WHISPER_ESTATE, "this account is a member of that group already");
    sy_group_free(&g);
  }
  for (size_t i = 0; rc == WHISPER_OK && i < c->n_ops; i++)
    if (c->ops[i].kind == OP_GROUP && c->ops[i].edit.what == SY_EDIT_JOIN &&
        memcmp(c->ops[i].group_id, gid, WHISPER_GROUP_ID_LEN) == 0)
      rc = sy_fail(c, WHISPER_ESTATE, "a join of that group is on its way");
  if (rc == WHISPER_OK) rc = edit_queue(c, gid, WHISPER__SYNC__GROUP_OP__OP__PEEK, NULL, &e);
  else wh_wipe(&e, sizeof e);
  if (rc == WHISPER_OK) memcpy(group_id_out, gid, sizeof gid);
  return rc;
}

int whisper_client_group_leave(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                               uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  const char *self[1] = {c->account};
  return whisper_client_group_remove(c, group_id, self, 1, now_ms);
}

/* --- the state the app reads ---------------------------------------------------------------------- */

static char *text_dup(const whisper_buf *b) {
  char *s = malloc(b ? b->len + 1 : 1);
  if (s == NULL) return NULL;
  if (b && b->len) memcpy(s, b->data, b->len);
  s[b ? b->len : 0] = '\0';
  return s;
}

static int names_dup(char ***out, size_t *n, char *const *src, size_t ns) {
  *out = NULL;
  *n = 0;
  return strv_set(out, n, src, ns);
}

void whisper_group_state_free(whisper_group_state_t *s) {
  if (s == NULL) return;
  for (size_t i = 0; i < s->n_members; i++) free(s->members[i]);
  for (size_t i = 0; i < s->n_admins; i++) free(s->admins[i]);
  for (size_t i = 0; i < s->n_requests; i++) free(s->requests[i]);
  free(s->members);
  free(s->admins);
  free(s->requests);
  free(s->name);
  free(s->description);
  free(s->picture);
  free(s);
}

int whisper_client_group_state(whisper_client *c, const uint8_t group_id[WHISPER_GROUP_ID_LEN],
                               whisper_group_state_t **out) {
  if (c == NULL) return WHISPER_EINVAL;
  if (out == NULL) return sy_fail(c, WHISPER_EINVAL, "group_state needs out");
  *out = NULL;
  if (group_id == NULL) return sy_fail(c, WHISPER_EINVAL, "group_state needs a group id");
  sy_group g;
  int rc = sy_begin(c);
  if (rc == WHISPER_OK) rc = wh_finish(c->ctx, sy_group_load(c, group_id, &g));
  if (rc != WHISPER_OK) return rc;
  if (!g.known) return sy_fail(c, WHISPER_ENOTFOUND, "this device does not know that group");
  whisper_group_state_t *s = calloc(1, sizeof *s);
  rc = s ? WHISPER_OK : WHISPER_ENOMEM;
  if (rc == WHISPER_OK) {
    s->version = WHISPER_GROUP_STATE_VERSION;
    rc = names_dup(&s->members, &s->n_members, g.members, g.n_members);
  }
  if (rc == WHISPER_OK) rc = names_dup(&s->admins, &s->n_admins, g.admins, g.n_admins);
  if (rc == WHISPER_OK) rc = names_dup(&s->requests, &s->n_requests, g.requests, g.n_requests);
  if (rc == WHISPER_OK && ((s->name = text_dup(g.name)) == NULL ||
                           (s->description = text_dup(g.description)) == NULL))
    rc = WHISPER_ENOMEM;
  if (rc == WHISPER_OK && g.picture) {
    if ((s->picture = malloc(g.picture->len ? g.picture->len : 1)) == NULL) rc = WHISPER_ENOMEM;
    else {
      if (g.picture->len) memcpy(s->picture, g.picture->data, g.picture->len);
      s->picture_len = g.picture->len;
    }
  }
  if (rc == WHISPER_OK) {
    s->admins_edit_info = g.admins_edit_info;
    s->admins_send = g.admins_send;
    s->approval_required = g.approval;
    s->has_link = g.has_invite;
    s->member = !g.left && sy_group_is_member(&g, c->account);
    s->admin = s->member && sy_group_is_admin(&g, c->account);
    s->change_version = g.version;
  }
  sy_group_free(&g);
  if (rc != WHISPER_OK) {
    whisper_group_state_free(s);
    return rc;
  }
  *out = s;
  return wh_ok(c->ctx);
}
