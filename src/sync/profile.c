/*
 * Profiles (docs/sync-protocol.md "Profiles"): Signal's profile-key model.
 *
 * Each account has a random 32-byte profile key, made by device 1 and
 * kept in the store ("Ps"). A profile (a display name, an about text and
 * a small picture) is encrypted under a key derived from it
 * (HKDF-SHA256, "whisper-profile-v1"), with AES-256-GCM, a random nonce
 * and associated data binding the account and the profile's version; the
 * server stores that ciphertext only (ProfileSet) and hands it to anyone
 * logged in (ProfileGet). The key travels end to end, as a PROFILE_KEY
 * content (a hidden outbox entry) with the version it is for:
 *  - to this account's other devices (a Send to oneself), when the
 *    profile changes, the key is rotated, or a device asks for it (a
 *    PROFILE_KEY without a key, sent once by a device that has none);
 *  - to the contacts this account wrote to (1:1) and to the groups it is
 *    in (one group message), when the profile changes or the key is
 *    rotated, and to a new contact or group along with the first message
 *    sent to it. What went where is kept per conversation ("Pt"), so a
 *    contact gets the key once per key and version; the conversations are
 *    listed in "Pl".
 * A receiver takes a profile key only from a device of the account it
 * belongs to (the session authenticates the sender; the content names the
 * owner, which must be the sender), keeps the highest version it heard of
 * ("Pc"), and fetches and decrypts the profile: one that does not
 * authenticate under the owner's key, account and version, or is older
 * than the one held or announced, is refused (WHISPER_EV_REFUSED). A
 * profile that changed raises WHISPER_EV_PROFILE.
 *
 * Accounts whose profile is to be fetched are kept in "Pd" (fetched after
 * each login until one comes); accounts the key is withheld from after a
 * rotation in "Pw".
 */
#include <string.h>

#include "crypto/crypto.h"
#include "sync/sync_internal.h"

#define PK_LEN 32                  /* the profile key */
#define TAG_LEN 16                 /* what identifies a key sent (SHA-256, cut) */
#define P_FORMAT 1                 /* the first byte of a stored ciphertext */
#define P_PAD 512                  /* plaintexts are padded to a multiple of this */
#define P_LIST_MAX 10000           /* conversations the key goes to on a change */
#define P_DUE_MAX 10000            /* accounts waiting for a fetch */
#define P_FETCH_BATCH 64           /* fetches queued at once */
#define P_LABEL "whisper-profile-v1"
#define KEY_MAX (2 + WH_NAME_MAX)

/* --- sealing ------------------------------------------------------------------------------------ */

static int bytes_text_ok(const uint8_t *s, size_t n, size_t min, size_t max) {
  return n >= min && n <= max && (n == 0 || (s != NULL && memchr(s, 0, n) == NULL && wh_utf8_valid(s, n)));
}

int sy_profile_fields_ok(const uint8_t *name, size_t name_len, const uint8_t *about, size_t about_len,
                         const uint8_t *picture, size_t picture_len) {
  return bytes_text_ok(name, name_len, 1, WHISPER_PROFILE_NAME_MAX) &&
         bytes_text_ok(about, about_len, 0, WHISPER_PROFILE_ABOUT_MAX) &&
         picture_len <= WHISPER_PROFILE_PICTURE_MAX && (picture != NULL || picture_len == 0);
}

/* "whisper-profile-v1" || 0 || account || 0 || version (8, BE). */
static size_t ad_make(uint8_t ad[sizeof P_LABEL + WH_NAME_MAX + 9], const char *account, uint64_t version) {
  size_t n = 0, al = strlen(account);
  memcpy(ad, P_LABEL, sizeof P_LABEL - 1);
  n += sizeof P_LABEL - 1;
  ad[n++] = 0;
  memcpy(ad + n, account, al);
  n += al;
  ad[n++] = 0;
  for (int i = 0; i < 8; i++) ad[n++] = (uint8_t)(version >> (56 - 8 * i));
  return n;
}

static void derive(uint8_t out[32], const uint8_t pk[PK_LEN]) {
  wh_hkdf(out, 32, NULL, 0, pk, PK_LEN, P_LABEL);
}

int sy_profile_seal(const wh_rng *rng, const uint8_t pk[PK_LEN], const char *account, uint64_t version,
                    const uint8_t *name, size_t name_len, const uint8_t *about, size_t about_len,
                    const uint8_t *picture, size_t picture_len, whisper_buf **out) {
  *out = NULL;
  if (!wh_account_ok(account) || version == 0 ||
      !sy_profile_fields_ok(name, name_len, about, about_len, picture, picture_len))
    return WHISPER_EINVAL;
  Whisper__E2e__ProfileBody b = WHISPER__E2E__PROFILE_BODY__INIT;
  b.has_name = b.has_about = 1;
  b.name = (ProtobufCBinaryData){name_len, (uint8_t *)name};
  b.about = (ProtobufCBinaryData){about_len, (uint8_t *)about};
  if (picture_len) b.has_picture = 1, b.picture = (ProtobufCBinaryData){picture_len, (uint8_t *)picture};
  size_t bl = whisper__e2e__profile_body__get_packed_size(&b);
  size_t padded = (4 + bl + P_PAD - 1) / P_PAD * P_PAD;
  uint8_t *plain = calloc(1, padded);
  whisper_buf *blob = plain ? whisper_buf_new(NULL, 1 + WH_GCM_NONCE_LEN + padded + WH_GCM_TAG_LEN) : NULL;
  if (blob == NULL) {
    free(plain);
    return WHISPER_ENOMEM;
  }
  wh_be32(plain, (uint32_t)bl);
  whisper__e2e__profile_body__pack(&b, plain + 4);
  uint8_t key[32], ad[sizeof P_LABEL + WH_NAME_MAX + 9];
  size_t adl = ad_make(ad, account, version);
  uint8_t *nonce = blob->data + 1, *ct = nonce + WH_GCM_NONCE_LEN;
  blob->data[0] = P_FORMAT;
  int rc = WHISPER_OK;
  derive(key, pk);
  if (wh_random(rng, nonce, WH_GCM_NONCE_LEN) != 0) rc = WHISPER_ERANDOM;
  else if (wh_gcm_encrypt(ct, ct + padded, key, nonce, ad, adl, plain, padded) != 0) rc = WHISPER_EINTERNAL;
  wh_wipe(key, sizeof key);
  wh_wipe(plain, padded);
  free(plain);
  if (rc != WHISPER_OK) whisper_buf_free(blob);
  else *out = blob;
  return rc;
}

int sy_profile_open(const uint8_t pk[PK_LEN], const char *account, uint64_t version, const uint8_t *blob,
                    size_t len, Whisper__E2e__ProfileBody **out) {
  *out = NULL;
  const size_t over = 1 + WH_GCM_NONCE_LEN + WH_GCM_TAG_LEN;
  if (blob == NULL || len < over + P_PAD || len > SY_PROFILE_BLOB_MAX || (len - over) % P_PAD != 0 ||
      blob[0] != P_FORMAT || !wh_account_ok(account) || version == 0)
    return WHISPER_EINVALIDMSG;
  size_t n = len - over;
  uint8_t *plain = malloc(n);
  if (plain == NULL) return WHISPER_ENOMEM;
  uint8_t key[32], ad[sizeof P_LABEL + WH_NAME_MAX + 9];
  size_t adl = ad_make(ad, account, version);
  derive(key, pk);
  const uint8_t *nonce = blob + 1, *ct = nonce + WH_GCM_NONCE_LEN;
  int rc = wh_gcm_decrypt(plain, key, nonce, ad, adl, ct, n, ct + n) == 0 ? WHISPER_OK : WHISPER_EFORGED;
  wh_wipe(key, sizeof key);
  uint32_t bl = rc == WHISPER_OK ? wh_rd32(plain) : 0;
  if (rc == WHISPER_OK && bl > n - 4) rc = WHISPER_EINVALIDMSG;
  for (size_t i = 4 + (size_t)bl; rc == WHISPER_OK && i < n; i++)
    if (plain[i] != 0) rc = WHISPER_EINVALIDMSG; /* the padding is zeros */
  Whisper__E2e__ProfileBody *b = NULL;
  if (rc == WHISPER_OK && (b = whisper__e2e__profile_body__unpack(&wh_pb_alloc, bl, plain + 4)) == NULL)
    rc = WHISPER_EINVALIDMSG;
  if (rc == WHISPER_OK &&
      (!b->has_name || !sy_profile_fields_ok(b->name.data, b->name.len, b->about.data, b->about.len,
                                             b->picture.data, b->picture.len)))
    rc = WHISPER_EINVALIDMSG;
  wh_wipe(plain, n);
  free(plain);
  if (rc != WHISPER_OK) {
    if (b) whisper__e2e__profile_body__free_unpacked(b, &wh_pb_alloc);
    return rc;
  }
  *out = b;
  return WHISPER_OK;
}

/* --- records ------------------------------------------------------------------------------------ */

static size_t rkey(uint8_t k[KEY_MAX], char sub, const char *name) {
  size_t n = name ? strlen(name) : 0;
  k[0] = 'P';
  k[1] = (uint8_t)sub;
  if (n) memcpy(k + 2, name, n);
  return 2 + n;
}

static ProtobufCMessage *rec_load(whisper_client *c, char sub, const char *name,
                                  const ProtobufCMessageDescriptor *d, int *rc) {
  uint8_t k[KEY_MAX];
  whisper_buf *b = NULL;
  *rc = sy_rec_get(c, k, rkey(k, sub, name), &b);
  if (*rc == WHISPER_ENOTFOUND) {
    *rc = WHISPER_OK;
    return NULL;
  }
  if (*rc != WHISPER_OK) return NULL;
  ProtobufCMessage *m = protobuf_c_message_unpack(d, &wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (m == NULL) *rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored profile records are corrupt");
  return m;
}

static int rec_save(whisper_client *c, char sub, const char *name, const ProtobufCMessage *m) {
  uint8_t k[KEY_MAX];
  return sy_rec_put_msg(c, k, rkey(k, sub, name), m);
}

static void rec_free(void *m) {
  if (m) protobuf_c_message_free_unpacked(m, &wh_pb_alloc); /* wh_pb_alloc wipes */
}

/* This account's key and progress ("Ps"). */
typedef struct pself {
  int has_key;
  uint8_t key[PK_LEN];
  uint64_t version, uploaded, fanned;
  int asked, owe_key, fanout;
} pself;

static int self_load(whisper_client *c, pself *s) {
  int rc;
  memset(s, 0, sizeof *s);
  Whisper__Client__ProfileSelf *m =
      (Whisper__Client__ProfileSelf *)rec_load(c, 's', NULL, &whisper__client__profile_self__descriptor, &rc);
  if (m == NULL) return rc;
  if (m->has_key && m->key.len == PK_LEN) s->has_key = 1, memcpy(s->key, m->key.data, PK_LEN);
  else if (m->has_key) rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored profile key is corrupt");
  s->version = m->version;
  s->uploaded = m->uploaded;
  s->asked = m->asked;
  s->owe_key = m->owe_key;
  s->fanout = m->fanout;
  s->fanned = m->fanned;
  rec_free(m);
  return rc;
}

static int self_save(whisper_client *c, const pself *s) {
  Whisper__Client__ProfileSelf m = WHISPER__CLIENT__PROFILE_SELF__INIT;
  if (s->has_key) m.has_key = 1, m.key = (ProtobufCBinaryData){PK_LEN, (uint8_t *)s->key};
  m.has_version = m.has_uploaded = 1;
  m.version = s->version;
  m.uploaded = s->uploaded;
  if (s->asked) m.has_asked = m.asked = 1;
  if (s->owe_key) m.has_owe_key = m.owe_key = 1;
  if (s->fanout) m.has_fanout = m.fanout = 1;
  if (s->fanned) m.has_fanned = 1, m.fanned = s->fanned;
  return rec_save(c, 's', NULL, &m.base);
}

/* A profile: a contact's ("Pc" || account, with its key) or this
 * account's own ("Pp"). */
typedef struct pprof {
  int has_key;
  uint8_t key[PK_LEN];
  uint64_t version, have;
  whisper_buf *name, *about, *picture;
} pprof;

static void prof_free(pprof *p) {
  whisper_buf_free(p->name);
  whisper_buf_free(p->about);
  whisper_buf_free(p->picture);
  wh_wipe(p, sizeof *p);
}

static int is_self(const whisper_client *c, const char *account) {
  return account == NULL || strcmp(account, c->account) == 0;
}

static int prof_load(whisper_client *c, const char *account, pprof *p) {
  int rc, self = is_self(c, account);
  memset(p, 0, sizeof *p);
  Whisper__Client__ProfileContact *m = (Whisper__Client__ProfileContact *)rec_load(
      c, self ? 'p' : 'c', self ? NULL : account, &whisper__client__profile_contact__descriptor, &rc);
  if (m == NULL) return rc;
  if (m->has_key && m->key.len == PK_LEN) p->has_key = 1, memcpy(p->key, m->key.data, PK_LEN);
  p->version = m->version;
  p->have = m->have;
  if (m->have && (!sy_profile_fields_ok(m->name.data, m->name.len, m->about.data, m->about.len,
                                        m->picture.data, m->picture.len) ||
                  (m->has_key && m->key.len != PK_LEN)))
    rc = wh_fail(c->ctx, WHISPER_ECORRUPT, "the engine's stored profile of %s is corrupt", self ? c->account : account);
  if (rc == WHISPER_OK && m->have &&
      ((p->name = whisper_buf_new(m->name.data, m->name.len)) == NULL ||
       (p->about = whisper_buf_new(m->about.data, m->about.len)) == NULL ||
       (p->picture = whisper_buf_new(m->picture.data, m->picture.len)) == NULL))
    rc = WHISPER_ENOMEM;
  rec_free(m);
  if (rc != WHISPER_OK) prof_free(p);
  return rc;
}

static ProtobufCBinaryData bin(const whisper_buf *b) {
  return b ? (ProtobufCBinaryData){b->len, b->data} : (ProtobufCBinaryData){0, NULL};
}

static int prof_save(whisper_client *c, const char *account, const pprof *p) {
  int self = is_self(c, account);
  Whisper__Client__ProfileContact m = WHISPER__CLIENT__PROFILE_CONTACT__INIT;
  if (p->has_key && !self) m.has_key = 1, m.key = (ProtobufCBinaryData){PK_LEN, (uint8_t *)p->key};
  m.has_version = m.has_have = 1;
  m.version = p->version;
  m.have = p->have;
  if (p->have) {
    m.has_name = m.has_about = m.has_picture = 1;
    m.name = bin(p->name);
    m.about = bin(p->about);
    m.picture = bin(p->picture);
  }
  return rec_save(c, self ? 'p' : 'c', self ? NULL : account, &m.base);
}

/* What the key reached a conversation as ("Pt"). */
typedef struct psent {
  int known;     /* the conversation is listed ("Pl") */
  int has_tag;
  uint8_t tag[TAG_LEN];
  uint64_t version;
  int has_members;
  uint8_t members[32];
} psent;

static int sent_load(whisper_client *c, const char *conv, psent *s) {
  int rc;
  memset(s, 0, sizeof *s);
  Whisper__Client__ProfileSent *m =
      (Whisper__Client__ProfileSent *)rec_load(c, 't', conv, &whisper__client__profile_sent__descriptor, &rc);
  if (m == NULL) return rc;
  s->known = 1;
  if (m->has_key_tag && m->key_tag.len == TAG_LEN) s->has_tag = 1, memcpy(s->tag, m->key_tag.data, TAG_LEN);
  s->version = m->version;
  if (m->has_members && m->members.len == 32) s->has_members = 1, memcpy(s->members, m->members.data, 32);
  rec_free(m);
  return WHISPER_OK;
}

static int sent_save(whisper_client *c, const char *conv, const psent *s) {
  Whisper__Client__ProfileSent m = WHISPER__CLIENT__PROFILE_SENT__INIT;
  if (s->has_tag) m.has_key_tag = 1, m.key_tag = (ProtobufCBinaryData){TAG_LEN, (uint8_t *)s->tag};
  if (s->version) m.has_version = 1, m.version = s->version;
  if (s->has_members) m.has_members = 1, m.members = (ProtobufCBinaryData){32, (uint8_t *)s->members};
  return rec_save(c, 't', conv, &m.base);
}

/* A list of names ("Pl", "Pd", "Pw"). */
static Whisper__Client__ProfileNames *names_load(whisper_client *c, char sub, int *rc) {
  return (Whisper__Client__ProfileNames *)rec_load(c, sub, NULL, &whisper__client__profile_names__descriptor, rc);
}

static int names_has(const Whisper__Client__ProfileNames *l, const char *name) {
  for (size_t i = 0; l && i < l->n_names; i++)
    if (l->names[i] && strcmp(l->names[i], name) == 0) return 1;
  return 0;
}

/* Adds `name` (at most `max` names are kept; past that it is not added)
 * or removes it. */
static int names_change(whisper_client *c, char sub, const char *name, int add, size_t max) {
  int rc;
  Whisper__Client__ProfileNames *l = names_load(c, sub, &rc);
  if (rc != WHISPER_OK) return rc;
  int has = names_has(l, name);
  size_t n = l ? l->n_names : 0, k = 0;
  if (has == add || (add && n >= max)) {
    rec_free(l);
    return WHISPER_OK;
  }
  char **v = calloc(n + 1, sizeof *v);
  if (v == NULL) rc = WHISPER_ENOMEM;
  for (size_t i = 0; v && i < n; i++)
    if (l->names[i] && strcmp(l->names[i], name) != 0) v[k++] = l->names[i];
  if (v && add) v[k++] = (char *)name;
  if (v) {
    Whisper__Client__ProfileNames m = WHISPER__CLIENT__PROFILE_NAMES__INIT;
    m.n_names = k;
    m.names = v;
    rc = rec_save(c, sub, NULL, &m.base);
  }
  free(v);
  rec_free(l);
  return rc;
}

static void key_tag(uint8_t tag[TAG_LEN], const uint8_t key[PK_LEN]) {
  uint8_t h[32];
  sy_sha256(h, key, PK_LEN);
  memcpy(tag, h, TAG_LEN);
}

/* SHA-256 of a group's members, in the order of its signed state. */
static void members_hash(uint8_t out[32], const sy_group *g) {
  size_t n = 0;
  for (size_t i = 0; i < g->n_members; i++) n += strlen(g->members[i]) + 1;
  uint8_t *b = malloc(n ? n : 1);
  if (b == NULL) {
    memset(out, 0, 32);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < g->n_members; i++) {
    size_t l = strlen(g->members[i]) + 1;
    memcpy(b + k, g->members[i], l);
    k += l;
  }
  sy_sha256(out, b, n);
  free(b);
}

/* A read in a transaction of its own. */
#define READ(c, expr)                            \
  do {                                           \
    rc = sy_begin(c);                     \
    if (rc == WHISPER_OK) rc = wh_finish((c)->ctx, (expr)); \
  } while (0)

/* --- events ------------------------------------------------------------------------------------- */

static void profile_event(whisper_client *c, const char *account) {
  sy_event *e = sy_event_new(c, WHISPER_EV_PROFILE);
  if (e && sy_event_set(e, NULL, account, NULL, 0, NULL, 0) == WHISPER_OK) sy_event_push(c, e);
  else sy_event_free(e);
}

static void refused(whisper_client *c, const char *account) {
  sy_event *e = sy_event_new(c, WHISPER_EV_REFUSED);
  if (e == NULL) return;
  e->ev.code = WHISPER_EFORGED;
  if (sy_event_set(e, NULL, account, NULL, 0, NULL, 0) != WHISPER_OK ||
      (e->message = sy_strdup(whisper_ctx_last_error(c->ctx))) == NULL) {
    sy_event_free(e);
    return;
  }
  sy_event_push(c, e);
}

/* --- the server: upload and fetch --------------------------------------------------------------- */

static sy_req *in_flight(whisper_client *c, int kind, const char *account, uint64_t value) {
  for (sy_req *r = c->reqs; r; r = r->next)
    if (r->kind == kind && (account == NULL || strcmp(r->account, account) == 0) &&
        (value == 0 || r->value == value))
      return r;
  return NULL;
}

/* ProfileSet of this device's profile, when the server does not have it. */
static void upload(whisper_client *c) {
  if (!c->logged_in || c->close_wanted) return;
  pself s;
  pprof p;
  int rc;
  memset(&p, 0, sizeof p);
  READ(c, self_load(c, &s));
  if (rc == WHISPER_OK) READ(c, prof_load(c, NULL, &p));
  whisper_buf *blob = NULL;
  if (rc == WHISPER_OK && s.has_key && s.version > s.uploaded && p.have == s.version &&
      !in_flight(c, RQ_PROFILE_SET, NULL, s.version))
    rc = sy_profile_seal(&c->ctx->rng, s.key, c->account, s.version, p.name->data, p.name->len,
                         p.about->data, p.about->len, p.picture->data, p.picture->len, &blob);
  if (rc == WHISPER_OK && blob) {
    Whisper__Sync__ProfileSet ps = WHISPER__SYNC__PROFILE_SET__INIT;
    ps.has_ciphertext = ps.has_version = 1;
    ps.ciphertext = (ProtobufCBinaryData){blob->len, blob->data};
    ps.version = s.version;
    Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
    f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE_SET;
    f.profile_set = &ps;
    sy_req *r;
    if (sy_queue(c, &f, RQ_PROFILE_SET, 1, &r) == WHISPER_OK) r->value = s.version;
  }
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot upload the profile");
  whisper_buf_free(blob);
  prof_free(&p);
  wh_wipe(&s, sizeof s);
}

static void fetch(whisper_client *c, const char *account) {
  if (!c->logged_in || c->close_wanted || in_flight(c, RQ_PROFILE_GET, account, 0)) return;
  Whisper__Sync__ProfileGet g = WHISPER__SYNC__PROFILE_GET__INIT;
  g.account = (char *)account;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE_GET;
  f.profile_get = &g;
  sy_req *r;
  if (sy_queue(c, &f, RQ_PROFILE_GET, 1, &r) == WHISPER_OK)
    snprintf(r->account, sizeof r->account, "%s", account);
}

/* --- the key to contacts -------------------------------------------------------------------------- */

/* A PROFILE_KEY content of this account (the key, with the version; no
 * key: a request for it). */
static int notice_make(whisper_client *c, const pself *s, int with_key, const Whisper__Client__ProfileNames *withheld,
                       uint64_t now_ms, whisper_buf **out) {
  Whisper__E2e__Content ct = WHISPER__E2E__CONTENT__INIT;
  ct.has_version = ct.has_kind = ct.has_at_ms = 1;
  ct.version = SY_CONTENT_VERSION;
  ct.kind = WHISPER__E2E__CONTENT__KIND__PROFILE_KEY;
  ct.at_ms = now_ms;
  ct.profile_owner = c->account;
  if (with_key) {
    ct.has_profile_key = ct.has_profile_version = 1;
    ct.profile_key = (ProtobufCBinaryData){PK_LEN, (uint8_t *)s->key};
    ct.profile_version = s->version;
  }
  if (withheld) { /* to this account's own devices */
    ct.n_profile_withheld = withheld->n_names;
    ct.profile_withheld = withheld->names;
  }
  size_t n = whisper__e2e__content__get_packed_size(&ct);
  if ((*out = whisper_buf_new(NULL, n)) == NULL) return WHISPER_ENOMEM;
  whisper__e2e__content__pack(&ct, (*out)->data);
  return WHISPER_OK;
}

/* Puts a notice in the outbox for `conv` (a hidden entry, sent like a
 * message). */
static int notice_send(whisper_client *c, const char *conv, const whisper_buf *content, uint64_t now_ms) {
  wh_entry_extra x = {.content = content->data, .content_len = content->len, .hidden = 1};
  uint8_t id[WHISPER_CLIENT_ID_LEN];
  if (sy_block_has(c, conv)) return WHISPER_OK; /* a blocked account gets no profile key */
  c->profile_quiet++;
  int rc = sy_enqueue(c, conv, NULL, 0, &x, NULL, now_ms, id);
  c->profile_quiet--;
  return rc;
}

/* One round of notices: the key, its tag and version, who it is withheld
 * from, and the 1:1 contacts reached in this round. */
typedef struct round {
  whisper_buf *content;
  uint8_t tag[TAG_LEN];
  uint64_t version;
  Whisper__Client__ProfileNames *withheld;
  sy_name *done;
  uint64_t now;
  int all; /* 0: only where the key or version sent is older */
} round;

static int sent_current(const psent *s, const round *r, const uint8_t *members) {
  return s->has_tag && memcmp(s->tag, r->tag, TAG_LEN) == 0 && s->version >= r->version &&
         (members == NULL || (s->has_members && memcmp(s->members, members, 32) == 0));
}

/* Records what `conv` got, in a transaction of its own. */
static int mark_sent(whisper_client *c, const char *conv, const round *r, const uint8_t *members) {
  psent s;
  int rc = sy_begin(c);
  if (rc == WHISPER_OK) rc = sent_load(c, conv, &s);
  if (rc == WHISPER_OK) {
    s.has_tag = 1;
    memcpy(s.tag, r->tag, TAG_LEN);
    s.version = r->version;
    s.has_members = members != NULL;
    if (members) memcpy(s.members, members, 32);
    rc = sent_save(c, conv, &s);
  }
  return wh_finish(c->ctx, rc);
}

static int reach_one(whisper_client *c, const char *account, round *r) {
  if (strcmp(account, c->account) == 0 || sy_name_has(r->done, account) || names_has(r->withheld, account) ||
      sy_block_has(c, account)) /* (nothing goes to a blocked account: block.c) */
    return WHISPER_OK;
  int rc = sy_name_add(&r->done, account);
  psent s;
  if (rc == WHISPER_OK && !r->all) READ(c, sent_load(c, account, &s));
  if (rc != WHISPER_OK || (!r->all && sent_current(&s, r, NULL))) return rc;
  if ((rc = notice_send(c, account, r->content, r->now)) == WHISPER_OK) rc = mark_sent(c, account, r, NULL);
  return rc;
}

/* The key to conversation `conv`: a contact, or a group (one group
 * message; each member alone when the key is withheld from one of them, or
 * when this account may not send to the group). */
static int reach(whisper_client *c, const char *conv, round *r) {
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  if (!wh_group_conv_parse(conv, gid)) return reach_one(c, conv, r);
  sy_group g;
  int rc;
  READ(c, sy_group_load(c, gid, &g));
  if (rc != WHISPER_OK) return rc;
  if (!g.known || g.left || !sy_group_is_member(&g, c->account)) {
    sy_group_free(&g);
    return WHISPER_OK;
  }
  /* member by member when the key is withheld from one of them, or when
   * only admins send to the group and this account is not one */
  int withheld = sy_group_sender_why(&g, c->account) != NULL;
  for (size_t i = 0; i < g.n_members; i++) withheld |= names_has(r->withheld, g.members[i]);
  uint8_t mh[32];
  members_hash(mh, &g);
  if (withheld) {
    for (size_t i = 0; rc == WHISPER_OK && i < g.n_members; i++) rc = reach_one(c, g.members[i], r);
  } else {
    psent s;
    if (!r->all) READ(c, sent_load(c, conv, &s));
    if (rc == WHISPER_OK && (r->all || !sent_current(&s, r, mh)) &&
        (rc = notice_send(c, conv, r->content, r->now)) == WHISPER_OK)
      rc = mark_sent(c, conv, r, mh);
  }
  sy_group_free(&g);
  return rc;
}

static int round_open(whisper_client *c, round *r, const pself *s, int all, uint64_t now_ms) {
  int rc;
  memset(r, 0, sizeof *r);
  r->all = all;
  r->now = now_ms;
  r->version = s->version;
  key_tag(r->tag, s->key);
  READ(c, (r->withheld = names_load(c, 'w', &rc), rc));
  if (rc == WHISPER_OK) rc = notice_make(c, s, 1, NULL, now_ms, &r->content);
  return rc;
}

static void round_close(round *r) {
  whisper_buf_free(r->content);
  rec_free(r->withheld);
  sy_names_free(&r->done);
  memset(r, 0, sizeof *r);
}

/* The key and version to every listed conversation (`all`; else those
 * that got an older one), then, with `self`, to this account's other
 * devices. A conversation that cannot take it (a group left) is skipped. */
static int announce(whisper_client *c, const pself *s, int all, int self, uint64_t now_ms) {
  round r;
  int rc = round_open(c, &r, s, all, now_ms);
  Whisper__Client__ProfileNames *l = NULL;
  if (rc == WHISPER_OK) READ(c, (l = names_load(c, 'l', &rc), rc));
  for (size_t i = 0; rc == WHISPER_OK && l && i < l->n_names; i++) {
    int r1 = l->names[i] ? reach(c, l->names[i], &r) : WHISPER_OK;
    if (r1 != WHISPER_OK && r1 != WHISPER_ESTATE && r1 != WHISPER_EINVAL) rc = r1;
  }
  whisper_buf *own = NULL;
  if (rc == WHISPER_OK && self && (rc = notice_make(c, s, 1, r.withheld, now_ms, &own)) == WHISPER_OK)
    rc = notice_send(c, c->account, own, now_ms);
  whisper_buf_free(own);
  rec_free(l);
  round_close(&r);
  return rc;
}

/* --- what the engine calls ------------------------------------------------------------------------- */

int sy_profile_group_noted(whisper_client *c, const uint8_t gid[WHISPER_GROUP_ID_LEN]) {
  char conv[WHISPER_GROUP_CONVERSATION_LEN + 1];
  whisper_client_group_conversation(gid, conv);
  psent s;
  int rc = sent_load(c, conv, &s);
  if (rc != WHISPER_OK || s.known) return rc;
  if ((rc = names_change(c, 'l', conv, 1, P_LIST_MAX)) == WHISPER_OK) rc = sent_save(c, conv, &s);
  return rc;
}

void sy_profile_sent_to(whisper_client *c, const char *conv, uint64_t now_ms) {
  if (c->profile_quiet || is_self(c, conv)) return;
  uint8_t gid[WHISPER_GROUP_ID_LEN];
  int group = wh_group_conv_parse(conv, gid);
  psent st;
  pself s;
  int rc = sy_begin(c);
  if (rc == WHISPER_OK) rc = sent_load(c, conv, &st);
  if (rc == WHISPER_OK && !st.known && (rc = names_change(c, 'l', conv, 1, P_LIST_MAX)) == WHISPER_OK)
    rc = sent_save(c, conv, &st);
  /* writing to an account again ends the withholding (a rotation) */
  if (rc == WHISPER_OK && !group) rc = names_change(c, 'w', conv, 0, 0);
  if (rc == WHISPER_OK) rc = self_load(c, &s);
  rc = wh_finish(c->ctx, rc);
  uint8_t tag[TAG_LEN];
  if (rc == WHISPER_OK && s.has_key) key_tag(tag, s.key);
  int current = !group && st.has_tag && s.has_key && memcmp(st.tag, tag, TAG_LEN) == 0 && st.version >= s.version;
  if (rc == WHISPER_OK && s.has_key && s.version && !current) { /* (a group's members are checked in reach) */
    round r;
    if ((rc = round_open(c, &r, &s, 0, now_ms)) == WHISPER_OK) rc = reach(c, conv, &r);
    round_close(&r);
  }
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot send the profile key along");
  wh_wipe(&s, sizeof s);
}

int sy_profile_key_receive(whisper_client *c, const char *sender, const char *conv, int group, int own,
                           const Whisper__E2e__Content *ct) {
  const char *owner = ct->profile_owner;
  int with_key = ct->has_profile_key;
  if (!wh_account_ok(owner) || (with_key && ct->profile_key.len != PK_LEN) ||
      (with_key && (!ct->has_profile_version || ct->profile_version == 0)))
    return sy_fail(c, WHISPER_EINVALIDMSG, "a malformed profile key");
  if (strcmp(owner, sender) != 0)
    return wh_fail(c->ctx, WHISPER_EFORGED, "a profile key of %s from %s: only an account's own devices give its key",
                   owner, sender);
  if (!own && !group && strcmp(conv, sender) != 0)
    return wh_fail(c->ctx, WHISPER_EFORGED, "a profile key delivered under another conversation");
  int rc, took = 0;
  if (!own) {
    if (!with_key)
      return wh_fail(c->ctx, WHISPER_EFORGED, "%s asked for this account's profile key", sender);
    pprof p;
    if ((rc = prof_load(c, sender, &p)) != WHISPER_OK) return rc;
    if (!p.has_key || ct->profile_version > p.version) {
      p.has_key = 1;
      memcpy(p.key, ct->profile_key.data, PK_LEN);
      p.version = ct->profile_version;
      if ((rc = prof_save(c, sender, &p)) == WHISPER_OK)
        rc = names_change(c, 'd', sender, 1, P_DUE_MAX);
      took = 1;
    }
    prof_free(&p);
    if (took && rc == WHISPER_OK) c->profile_due = 1;
    return rc == WHISPER_OK ? took : rc;
  }
  /* from another device of this account */
  pself s;
  if ((rc = self_load(c, &s)) != WHISPER_OK) return rc;
  if (!with_key) { /* a request: answered once this entry is kept */
    if (!is_self(c, conv)) rc = sy_fail(c, WHISPER_EINVALIDMSG, "a request for the profile key to a contact");
    else if (s.has_key && s.version) s.owe_key = took = 1;
  } else {
    int newer = !s.has_key || ct->profile_version > s.version;
    if (newer) {
      s.has_key = 1;
      memcpy(s.key, ct->profile_key.data, PK_LEN);
      s.version = ct->profile_version;
      took = 1;
      pprof p;
      if ((rc = prof_load(c, NULL, &p)) == WHISPER_OK && p.have < s.version)
        rc = names_change(c, 'd', c->account, 1, P_DUE_MAX);
      prof_free(&p);
    }
    /* the other device told its contacts (its copies came before this):
     * this one tells those only it knows */
    if (is_self(c, conv) && s.version == ct->profile_version && s.fanned < s.version &&
        memcmp(s.key, ct->profile_key.data, PK_LEN) == 0)
      s.fanout = took = 1;
    /* who the key is withheld from (a rotation), before this device tells anyone */
    for (size_t i = 0; rc == WHISPER_OK && is_self(c, conv) && i < ct->n_profile_withheld; i++)
      if (wh_account_ok(ct->profile_withheld[i]) && !is_self(c, ct->profile_withheld[i]))
        rc = names_change(c, 'w', ct->profile_withheld[i], 1, P_LIST_MAX);
    /* another device wrote to a withheld contact again: it has the key now */
    if (rc == WHISPER_OK && !is_self(c, conv) && !group) rc = names_change(c, 'w', conv, 0, 0);
    if (rc == WHISPER_OK && !is_self(c, conv)) {
      /* an own copy of a notice to a contact or group: it has the key */
      psent st;
      uint8_t gid[WHISPER_GROUP_ID_LEN], mh[32];
      int has_mh = 0;
      if (group && wh_group_conv_parse(conv, gid)) {
        sy_group g;
        if ((rc = sy_group_load(c, gid, &g)) == WHISPER_OK) members_hash(mh, &g), has_mh = 1;
        sy_group_free(&g);
      }
      if (rc == WHISPER_OK) rc = sent_load(c, conv, &st);
      if (rc == WHISPER_OK && !st.known) rc = names_change(c, 'l', conv, 1, P_LIST_MAX);
      if (rc == WHISPER_OK && (!st.has_tag || ct->profile_version >= st.version)) {
        st.has_tag = 1;
        key_tag(st.tag, ct->profile_key.data);
        st.version = ct->profile_version;
        st.has_members = has_mh;
        if (has_mh) memcpy(st.members, mh, 32);
      }
      if (rc == WHISPER_OK) rc = sent_save(c, conv, &st);
    }
  }
  if (rc == WHISPER_OK && took) rc = self_save(c, &s);
  if (rc == WHISPER_OK && took) c->profile_due = 1;
  wh_wipe(&s, sizeof s);
  return rc == WHISPER_OK ? took : rc;
}

void sy_profile_flush(whisper_client *c) {
  c->profile_due = 0;
  if (!c->logged_in || c->close_wanted) return;
  pself s;
  int rc;
  READ(c, self_load(c, &s));
  if (rc != WHISPER_OK) {
    sy_error_event(c, rc, 0, "cannot read the profile state");
    return;
  }
  int ask = !s.has_key && !s.asked && c->device_id != 1, owe = s.owe_key, fanout = s.fanout;
  if (ask || owe || fanout) { /* cleared first: a crash after it loses a notice, never repeats one forever */
    s.asked |= ask;
    s.owe_key = s.fanout = 0;
    if (fanout) s.fanned = s.version;
    READ(c, self_save(c, &s));
  }
  whisper_buf *req = NULL;
  if (rc == WHISPER_OK && ask && (rc = notice_make(c, &s, 0, NULL, c->now, &req)) == WHISPER_OK)
    rc = notice_send(c, c->account, req, c->now);
  whisper_buf_free(req);
  if (rc == WHISPER_OK && s.has_key && s.version && (owe || fanout))
    rc = announce(c, &s, 0, owe, c->now); /* owed: to the asking device; fanout: the contacts */
  wh_wipe(&s, sizeof s);
  upload(c);
  Whisper__Client__ProfileNames *due = NULL;
  if (rc == WHISPER_OK) READ(c, (due = names_load(c, 'd', &rc), rc));
  for (size_t i = 0, n = 0; rc == WHISPER_OK && due && i < due->n_names && n < P_FETCH_BATCH; i++)
    if (wh_account_ok(due->names[i])) fetch(c, due->names[i]), n++;
  rec_free(due);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot send the profile key");
}

/* A Profile answer for `account`: kept if it is the owner's and not older
 * than what is held or was announced. */
static void take_profile(whisper_client *c, const char *account, const Whisper__Sync__Profile *m) {
  int self = is_self(c, account), rc;
  pself s;
  pprof p;
  memset(&p, 0, sizeof p);
  memset(&s, 0, sizeof s);
  Whisper__E2e__ProfileBody *b = NULL;
  int changed = 0, refuse = 0;
  if ((rc = sy_txn_begin(c)) != WHISPER_OK) return;
  if ((rc = self_load(c, &s)) == WHISPER_OK) rc = prof_load(c, account, &p);
  const uint8_t *key = self ? (s.has_key ? s.key : NULL) : (p.has_key ? p.key : NULL);
  uint64_t announced = self ? s.version : p.version;
  if (rc != WHISPER_OK) goto out;
  if (key == NULL) { /* nothing to read it with: not due any more */
    rc = names_change(c, 'd', account, 0, 0);
    goto out;
  }
  if (m->account == NULL || strcmp(m->account, account) != 0) {
    refuse = wh_fail(c->ctx, WHISPER_EFORGED, "the server answered with a profile of another account");
    goto out;
  }
  int orc = m->has_ciphertext && m->has_version
                ? sy_profile_open(key, account, m->version, m->ciphertext.data, m->ciphertext.len, &b)
                : WHISPER_EINVALIDMSG;
  if (orc == WHISPER_ENOMEM) {
    rc = orc;
    goto out;
  }
  if (orc != WHISPER_OK) {
    refuse = wh_fail(c->ctx, WHISPER_EFORGED,
                     "the server's profile of %s is not one %s made under its key for that version", account,
                     account);
    goto out;
  }
  if (m->version < p.have || m->version < announced) {
    refuse = wh_fail(c->ctx, WHISPER_EFORGED,
                     "the server's profile of %s (version %llu) is older than the one %s (version %llu)", account,
                     (unsigned long long)m->version, m->version < p.have ? "held" : "announced",
                     (unsigned long long)(m->version < p.have ? p.have : announced));
    goto out;
  }
  changed = p.have == 0 || p.name->len != b->name.len || memcmp(p.name->data, b->name.data, b->name.len) != 0 ||
            p.about->len != b->about.len || (b->about.len && memcmp(p.about->data, b->about.data, b->about.len)) ||
            p.picture->len != b->picture.len ||
            (b->picture.len && memcmp(p.picture->data, b->picture.data, b->picture.len));
  whisper_buf_free(p.name);
  whisper_buf_free(p.about);
  whisper_buf_free(p.picture);
  p.name = whisper_buf_new(b->name.data, b->name.len);
  p.about = whisper_buf_new(b->about.data, b->about.len);
  p.picture = whisper_buf_new(b->picture.data, b->picture.len);
  if (p.name == NULL || p.about == NULL || p.picture == NULL) {
    rc = WHISPER_ENOMEM;
    goto out;
  }
  p.have = m->version;
  if (p.version < m->version) p.version = m->version;
  rc = prof_save(c, account, &p);
  if (rc == WHISPER_OK && self && (s.version < m->version || s.uploaded < m->version)) {
    if (s.version < m->version) s.version = m->version;
    if (s.uploaded < m->version) s.uploaded = m->version; /* the server has it */
    rc = self_save(c, &s);
  }
  if (rc == WHISPER_OK) rc = names_change(c, 'd', account, 0, 0);
out:
  rc = sy_txn_end(c, rc);
  if (b) whisper__e2e__profile_body__free_unpacked(b, &wh_pb_alloc);
  prof_free(&p);
  wh_wipe(&s, sizeof s);
  if (refuse) refused(c, account);
  else if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store a profile");
  else if (changed) profile_event(c, account);
}

void sy_profile_answer(whisper_client *c, sy_req *r, const Whisper__Sync__Frame *f) {
  const Whisper__Sync__Error *e = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error : NULL;
  if (r->kind == RQ_PROFILE_GET) {
    if (f->body_case == WHISPER__SYNC__FRAME__BODY_PROFILE) take_profile(c, r->account, f->profile);
    /* else (none stored yet, or refused): still due, fetched again after the next login */
    return;
  }
  int rc;
  pself s;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_OK || (e && e->code == ERR_STATE)) {
    /* taken, or the server holds this version or a newer one from another
     * device of the account (then it is fetched: the newest wins) */
    rc = sy_txn_begin(c);
    if (rc == WHISPER_OK && (rc = self_load(c, &s)) == WHISPER_OK && s.uploaded < r->value) {
      s.uploaded = r->value;
      rc = self_save(c, &s);
    }
    if (rc == WHISPER_OK && e) rc = names_change(c, 'd', c->account, 1, P_DUE_MAX);
    rc = sy_txn_end(c, rc);
    wh_wipe(&s, sizeof s);
    if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store the profile's upload");
    if (e) {
      sy_error_event(c, WHISPER_ESTATE, (int)e->code,
                     "another device of this account set the profile at the same time: the server's is fetched");
      fetch(c, c->account);
    }
    return;
  }
  /* rate limited, or the server failed: again after the next login */
  sy_error_event(c, WHISPER_EINVAL, e ? (int)e->code : 0,
                 e && e->message ? e->message : "the server did not take the profile");
}

/* --- the API --------------------------------------------------------------------------------------- */

int whisper_client_profile_set(whisper_client *c, const char *name, const char *about, const uint8_t *picture,
                               size_t picture_len, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  if (name == NULL || about == NULL ||
      !sy_profile_fields_ok((const uint8_t *)name, strlen(name), (const uint8_t *)about, strlen(about), picture,
                            picture_len))
    return sy_fail(c, WHISPER_EINVAL,
                   "a profile is a name (1-%d bytes of UTF-8), an about text (0-%d bytes) and a picture of "
                   "at most %d bytes",
                   WHISPER_PROFILE_NAME_MAX, WHISPER_PROFILE_ABOUT_MAX, WHISPER_PROFILE_PICTURE_MAX);
  c->now = now_ms;
  pself s;
  pprof p;
  memset(&p, 0, sizeof p);
  int rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) rc = self_load(c, &s);
  if (rc == WHISPER_OK && !s.has_key) {
    if (c->device_id != 1)
      rc = sy_fail(c, WHISPER_ESTATE, "the account's profile key has not reached this device yet (the "
                                      "primary device makes it)");
    else if (wh_random(&c->ctx->rng, s.key, PK_LEN) != 0)
      rc = sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
    else
      s.has_key = 1;
  }
  if (rc == WHISPER_OK) rc = prof_load(c, NULL, &p);
  if (rc == WHISPER_OK) {
    uint64_t v = (s.version > p.have ? s.version : p.have) + 1;
    prof_free(&p);
    p.name = whisper_buf_new((const uint8_t *)name, strlen(name));
    p.about = whisper_buf_new((const uint8_t *)about, strlen(about));
    p.picture = whisper_buf_new(picture, picture_len);
    if (p.name == NULL || p.about == NULL || p.picture == NULL) rc = WHISPER_ENOMEM;
    p.have = p.version = s.version = s.fanned = v;
  }
  if (rc == WHISPER_OK) rc = prof_save(c, NULL, &p);
  if (rc == WHISPER_OK) rc = self_save(c, &s);
  rc = sy_txn_end(c, rc);
  prof_free(&p);
  if (rc == WHISPER_OK) {
    upload(c); /* before the notices: a contact fetches after the server has it */
    rc = announce(c, &s, 1, 1, now_ms);
  }
  wh_wipe(&s, sizeof s);
  return rc == WHISPER_OK ? wh_ok(c->ctx) : rc;
}

int whisper_client_profile_rotate_key(whisper_client *c, const char *withhold, uint64_t now_ms) {
  if (c == NULL) return WHISPER_EINVAL;
  if (withhold && (!wh_account_ok(withhold) || is_self(c, withhold)))
    return sy_fail(c, WHISPER_EINVAL, "withhold names another account (1-64 of [a-z0-9._-]), or NULL");
  if (c->device_id != 1)
    return sy_fail(c, WHISPER_ESTATE, "only the primary device (1) rotates the profile key");
  c->now = now_ms;
  pself s;
  pprof p;
  memset(&p, 0, sizeof p);
  int rc = sy_txn_begin(c);
  if (rc == WHISPER_OK) rc = self_load(c, &s);
  if (rc == WHISPER_OK) rc = prof_load(c, NULL, &p);
  if (rc == WHISPER_OK && (!s.has_key || p.have == 0 || p.have != s.version))
    rc = sy_fail(c, WHISPER_ESTATE, "no profile of this account is held here to rotate its key for");
  if (rc == WHISPER_OK && wh_random(&c->ctx->rng, s.key, PK_LEN) != 0)
    rc = sy_fail(c, WHISPER_ERANDOM, "the random number generator failed");
  if (rc == WHISPER_OK) {
    p.have = p.version = s.fanned = ++s.version; /* the same profile under the new key */
    rc = prof_save(c, NULL, &p);
  }
  if (rc == WHISPER_OK) rc = self_save(c, &s);
  if (rc == WHISPER_OK && withhold) rc = names_change(c, 'w', withhold, 1, P_LIST_MAX);
  rc = sy_txn_end(c, rc);
  prof_free(&p);
  if (rc == WHISPER_OK) {
    upload(c);
    rc = announce(c, &s, 1, 1, now_ms);
  }
  wh_wipe(&s, sizeof s);
  return rc == WHISPER_OK ? wh_ok(c->ctx) : rc;
}

int whisper_client_profile_get(whisper_client *c, const char *account, whisper_profile_t **out) {
  if (c == NULL) return WHISPER_EINVAL;
  if (out == NULL || (account && !wh_account_ok(account)))
    return sy_fail(c, WHISPER_EINVAL, "profile_get needs out and an account name (or NULL for this one)");
  *out = NULL;
  pprof p;
  int rc;
  READ(c, prof_load(c, account, &p));
  if (rc != WHISPER_OK) return rc;
  whisper_profile_t *r = calloc(1, sizeof *r);
  if (r == NULL) rc = WHISPER_ENOMEM;
  if (r) {
    r->version = WHISPER_PROFILE_STRUCT_VERSION;
    r->known = p.have != 0;
    r->profile_version = p.have;
    size_t nl = p.have ? p.name->len : 0, al = p.have ? p.about->len : 0, pl = p.have ? p.picture->len : 0;
    r->name = calloc(1, nl + 1);
    r->about = calloc(1, al + 1);
    r->picture = pl ? malloc(pl) : NULL;
    if (r->name == NULL || r->about == NULL || (pl && r->picture == NULL)) rc = WHISPER_ENOMEM;
    else {
      if (nl) memcpy(r->name, p.name->data, nl);
      if (al) memcpy(r->about, p.about->data, al);
      if (pl) memcpy(r->picture, p.picture->data, pl);
      r->picture_len = pl;
    }
  }
  prof_free(&p);
  if (rc != WHISPER_OK) {
    whisper_profile_free(r);
    return rc;
  }
  *out = r;
  return wh_ok(c->ctx);
}

void whisper_profile_free(whisper_profile_t *p) {
  if (p == NULL) return;
  if (p->name) wh_wipe(p->name, strlen(p->name)), free(p->name);
  if (p->about) wh_wipe(p->about, strlen(p->about)), free(p->about);
  if (p->picture) wh_wipe(p->picture, p->picture_len), free(p->picture);
  free(p);
}

int whisper_client_profile_refresh(whisper_client *c, const char *account) {
  if (c == NULL) return WHISPER_EINVAL;
  if (account && !wh_account_ok(account))
    return sy_fail(c, WHISPER_EINVAL, "profile_refresh needs an account name (or NULL for this one)");
  const char *who = account ? account : c->account;
  int self = is_self(c, who), rc, has = 0;
  pself s;
  pprof p;
  if (self) {
    READ(c, self_load(c, &s));
    has = rc == WHISPER_OK && s.has_key;
    wh_wipe(&s, sizeof s);
  } else {
    READ(c, prof_load(c, who, &p));
    has = rc == WHISPER_OK && p.has_key;
    if (rc == WHISPER_OK) prof_free(&p);
  }
  if (rc != WHISPER_OK) return rc;
  if (!has) return sy_fail(c, WHISPER_ESTATE, "no profile key of %s has reached this device", who);
  READ(c, names_change(c, 'd', who, 1, P_DUE_MAX));
  if (rc != WHISPER_OK) return rc;
  fetch(c, who);
  return wh_ok(c->ctx);
}
