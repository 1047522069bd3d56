/* The sender key fuzzers' scenario and model: see fuzz_sender_key.h. */
#include "fuzz_sender_key.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.pb-c.h"
#include "wire.pb-c.h"

/* Two RFC 4122 version-4 UUIDs. */
const uint8_t fzg_d1[WHISPER_DISTRIBUTION_ID_LEN] = {0x5e, 0x3a, 0x1f, 0x0c, 0x8d, 0x22,
                                                     0x4b, 0x7e, 0x9a, 0x61, 0x03, 0xc4,
                                                     0x5f, 0xe2, 0x17, 0x90};
const uint8_t fzg_d2[WHISPER_DISTRIBUTION_ID_LEN] = {0x0b, 0x7c, 0x44, 0x19, 0xa2, 0x6e,
                                                     0x4d, 0x31, 0xb8, 0x05, 0x72, 0xee,
                                                     0x3d, 0x98, 0x4a, 0x66};

/* --- model -------------------------------------------------------------------- */

int fzg_in(int rc, fzg_set set) {
  /* a code outside core.h's ranges, or past 9 in its group, is in no set */
  return rc <= 0 && rc > -120 && -rc % 20 < 10 && (set & FZG_BIT(rc)) != 0;
}

void fzg_ck_advance(uint8_t out[32], const uint8_t ck[32], uint32_t n) {
  static const uint8_t two = 0x02;
  uint8_t k[32];
  memcpy(k, ck, 32);
  for (uint32_t i = 0; i < n; i++) crypto_auth_hmacsha256(k, &two, 1, k);
  memcpy(out, k, 32);
}

void fzg_ck_seed(uint8_t out[32], const uint8_t ck[32]) {
  static const uint8_t one = 0x01;
  crypto_auth_hmacsha256(out, &one, 1, ck);
}

void fzg_record_free(fzg_record *r) {
  for (uint32_t i = 0; i < FZG_MAX_STATES; i++) {
    free(r->s[i].key_it);
    free(r->s[i].key_seed);
  }
  memset(r, 0, sizeof *r);
}

int fzg_record_decode(fzg_record *r, const uint8_t *b, size_t len) {
  memset(r, 0, sizeof *r);
  Whisper__Store__SenderKeyRecordStructure *p =
      whisper__store__sender_key_record_structure__unpack(NULL, len, b);
  int ok = p != NULL && p->format <= 1 && p->n_sender_key_states <= FZG_MAX_STATES;
  for (size_t i = 0; ok && i < p->n_sender_key_states; i++) {
    const Whisper__Store__SenderKeyStateStructure *ps = p->sender_key_states[i];
    const Whisper__Store__SenderChainKey *ck = ps->sender_chain_key;
    const Whisper__Store__SenderSigningKey *sk = ps->sender_signing_key;
    if (ck == NULL || ck->seed.len != 32 || sk == NULL || sk->public_key.len != 33 ||
        sk->public_key.data[0] != 0x05 ||
        (sk->has_private_key && sk->private_key.len != 32) ||
        ps->n_sender_message_keys > FZG_MAX_KEYS) {
      ok = 0;
      break;
    }
    fzg_state *s = &r->s[r->n++];
    s->chain_id = ps->chain_id;
    s->iteration = ck->iteration;
    s->version = ps->message_version;
    memcpy(s->ck, ck->seed.data, 32);
    memcpy(s->pub, sk->public_key.data, 33);
    if ((s->has_priv = sk->has_private_key)) memcpy(s->priv, sk->private_key.data, 32);
    size_t nk = ps->n_sender_message_keys;
    s->key_it = malloc((nk ? nk : 1) * sizeof *s->key_it);
    s->key_seed = malloc((nk ? nk : 1) * sizeof *s->key_seed);
    FZ_ASSERT(s->key_it != NULL && s->key_seed != NULL, "out of memory");
    for (size_t j = 0; j < nk; j++) {
      const Whisper__Store__SenderChainKey *m = ps->sender_message_keys[j];
      if (m->seed.len != 32) {
        ok = 0;
        break;
      }
      s->key_it[s->nkeys] = m->iteration;
      memcpy(s->key_seed[s->nkeys++], m->seed.data, 32);
    }
  }
  if (p) whisper__store__sender_key_record_structure__free_unpacked(p, NULL);
  if (!ok) fzg_record_free(r);
  return ok;
}

int fzg_state_eq(const fzg_state *a, const fzg_state *b) {
  if (a->chain_id != b->chain_id || a->iteration != b->iteration || a->version != b->version ||
      memcmp(a->ck, b->ck, 32) != 0 || memcmp(a->pub, b->pub, 33) != 0 ||
      a->has_priv != b->has_priv || (a->has_priv && memcmp(a->priv, b->priv, 32) != 0) ||
      a->nkeys != b->nkeys)
    return 0;
  for (uint32_t i = 0; i < a->nkeys; i++)
    if (a->key_it[i] != b->key_it[i] || memcmp(a->key_seed[i], b->key_seed[i], 32) != 0) return 0;
  return 1;
}

int fzg_skdm_parse(fzg_skdm *o, const uint8_t *b, size_t len) {
  memset(o, 0, sizeof *o);
  if (len < 1 || b[0] >> 4 != FZG_VERSION) return 0;
  Whisper__Wire__SenderKeyDistributionMessage *m =
      whisper__wire__sender_key_distribution_message__unpack(NULL, len - 1, b + 1);
  if (m == NULL) return 0;
  int ok = m->has_distribution_uuid && m->distribution_uuid.len == 16 && m->has_chain_id &&
           m->has_iteration && m->has_chain_key && m->chain_key.len == 32 &&
           m->has_signing_key && m->signing_key.len == 33 && m->signing_key.data[0] == 0x05;
  if (ok) {
    memcpy(o->uuid, m->distribution_uuid.data, 16);
    o->chain_id = m->chain_id;
    o->iteration = m->iteration;
    memcpy(o->ck, m->chain_key.data, 32);
    memcpy(o->pub, m->signing_key.data, 33);
  }
  whisper__wire__sender_key_distribution_message__free_unpacked(m, NULL);
  return ok;
}

int fzg_skm_parse(fzg_skm *o, const uint8_t *b, size_t len) {
  memset(o, 0, sizeof *o);
  if (len < 1 + 64 || b[0] >> 4 != FZG_VERSION) return 0;
  Whisper__Wire__SenderKeyMessage *m =
      whisper__wire__sender_key_message__unpack(NULL, len - 1 - 64, b + 1);
  if (m == NULL) return 0;
  int ok = m->has_distribution_uuid && m->distribution_uuid.len == 16 && m->has_chain_id &&
           m->has_iteration && m->has_ciphertext;
  if (ok) {
    memcpy(o->uuid, m->distribution_uuid.data, 16);
    o->chain_id = m->chain_id;
    o->iteration = m->iteration;
  }
  whisper__wire__sender_key_message__free_unpacked(m, NULL);
  return ok;
}

int fzg_find_chain(const fzg_record *r, uint32_t chain_id) {
  for (uint32_t i = 0; i < r->n; i++)
    if (r->s[i].chain_id == chain_id) return (int)i;
  return -1;
}

fzg_set fzg_expect_decrypt(const fzg_record *r, const fzg_chain *ch, uint32_t c, int *real_key) {
  uint8_t ck[32], seed[32];
  *real_key = 0;
  int i = fzg_find_chain(r, ch->chain_id);
  if (i < 0) return FZG_BIT(WHISPER_ENOSESSION);
  const fzg_state *s = &r->s[i];
  if (s->version != FZG_VERSION) return FZG_BIT(WHISPER_EINVALIDMSG);
  fzg_set set = 0;
  /* another encoding of the same key may still verify */
  if (memcmp(s->pub, ch->pub, 33) != 0) set |= FZG_BIT(WHISPER_EINVALIDSIG);
  if (c < s->iteration) {
    for (uint32_t k = 0; k < s->nkeys; k++) {
      if (s->key_it[k] != c) continue;
      fzg_ck_advance(ck, ch->ck0, c);
      fzg_ck_seed(seed, ck);
      *real_key = memcmp(seed, s->key_seed[k], 32) == 0;
      /* a wrong key gives bad padding, or (1 in ~256) garbage */
      return set | FZG_BIT(WHISPER_OK) | (*real_key ? 0 : FZG_BIT(WHISPER_EINVALIDMSG));
    }
    return set | FZG_BIT(WHISPER_EDUPLICATE);
  }
  if (c == UINT32_MAX) return set | FZG_BIT(WHISPER_EINVALIDMSG); /* the end of the chain */
  if (c - s->iteration > FZG_MAX_JUMP) return set | FZG_BIT(WHISPER_ETOOFAR);
  fzg_ck_advance(ck, ch->ck0, s->iteration);
  *real_key = memcmp(ck, s->ck, 32) == 0;
  return set | FZG_BIT(WHISPER_OK) | (*real_key ? 0 : FZG_BIT(WHISPER_EINVALIDMSG));
}

void fzg_check_decrypt_update(const fzg_record *b, const fzg_record *a, uint32_t chain_id,
                              uint32_t c) {
  FZ_ASSERT(a->n == b->n, "a decrypt changed the number of states: %u -> %u", b->n, a->n);
  int j = fzg_find_chain(b, chain_id);
  FZ_ASSERT(j >= 0, "a decrypt succeeded on chain %u that the record does not hold", chain_id);
  for (uint32_t i = 0; i < b->n; i++)
    if ((int)i != j)
      FZ_ASSERT(fzg_state_eq(&b->s[i], &a->s[i]), "a decrypt on state %d changed state %u", j,
                i);
  const fzg_state *o = &b->s[j], *n = &a->s[j];
  FZ_ASSERT(n->chain_id == o->chain_id && n->version == o->version &&
                memcmp(n->pub, o->pub, 33) == 0 && n->has_priv == o->has_priv &&
                (!o->has_priv || memcmp(n->priv, o->priv, 32) == 0),
            "a decrypt changed the identity of the state");
  if (c < o->iteration) {
    /* a skipped key: the first one with that iteration goes */
    uint32_t k = 0;
    while (k < o->nkeys && o->key_it[k] != c) k++;
    FZ_ASSERT(k < o->nkeys, "a decrypt below the chain (%u < %u) without a skipped key", c,
              o->iteration);
    FZ_ASSERT(n->iteration == o->iteration && memcmp(n->ck, o->ck, 32) == 0,
              "a decrypt from a skipped key moved the chain");
    FZ_ASSERT(n->nkeys == o->nkeys - 1, "a decrypt from a skipped key left %u keys of %u",
              n->nkeys, o->nkeys);
    for (uint32_t i = 0; i < n->nkeys; i++) {
      uint32_t from = i < k ? i : i + 1;
      FZ_ASSERT(n->key_it[i] == o->key_it[from] &&
                    memcmp(n->key_seed[i], o->key_seed[from], 32) == 0,
                "a decrypt from a skipped key reordered the others");
    }
    return;
  }
  uint32_t jump = c - o->iteration;
  uint32_t keep = jump < FZG_MAX_KEYS ? jump : FZG_MAX_KEYS;
  uint32_t total = o->nkeys + keep, want = total < FZG_MAX_KEYS ? total : FZG_MAX_KEYS;
  FZ_ASSERT(c != UINT32_MAX, "a decrypt succeeded at iteration 2^32-1");
  FZ_ASSERT(n->iteration == c + 1, "a decrypt at %u left the chain at %u", c, n->iteration);
  FZ_ASSERT(n->nkeys == want, "a decrypt skipping %u left %u keys, wanted %u", jump, n->nkeys,
            want);
  uint8_t ck[32], seed[32];
  fzg_ck_advance(ck, o->ck, jump + 1);
  FZ_ASSERT(memcmp(ck, n->ck, 32) == 0, "a decrypt left the wrong chain key");
  /* the old keys that survive, then the `keep` newest skipped ones */
  uint32_t old_kept = want - keep;
  for (uint32_t i = 0; i < old_kept; i++) {
    uint32_t from = o->nkeys - old_kept + i;
    FZ_ASSERT(n->key_it[i] == o->key_it[from] && memcmp(n->key_seed[i], o->key_seed[from], 32) == 0,
              "a decrypt lost or reordered an old skipped key");
  }
  fzg_ck_advance(ck, o->ck, jump - keep);
  for (uint32_t i = 0; i < keep; i++) {
    const uint32_t at = old_kept + i;
    FZ_ASSERT(n->key_it[at] == c - keep + i, "skipped key %u has iteration %u, wanted %u", at,
              n->key_it[at], c - keep + i);
    fzg_ck_seed(seed, ck);
    FZ_ASSERT(memcmp(seed, n->key_seed[at], 32) == 0, "skipped key %u has the wrong seed", at);
    fzg_ck_advance(ck, ck, 1);
  }
}

void fzg_check_process_update(const fzg_record *b, const fzg_record *a, const fzg_skdm *m) {
  int found = -1;
  for (uint32_t i = 0; i < b->n && found < 0; i++)
    if (b->s[i].chain_id == m->chain_id && memcmp(b->s[i].pub, m->pub, 33) == 0) found = (int)i;
  FZ_ASSERT(a->n >= 1, "processing an SKDM left no state");
  if (found >= 0) {
    FZ_ASSERT(fzg_state_eq(&a->s[0], &b->s[found]),
              "a repeated SKDM (chain %u) did not keep its state as it was", m->chain_id);
  } else {
    const fzg_state *s = &a->s[0];
    FZ_ASSERT(s->chain_id == m->chain_id && s->iteration == m->iteration &&
                  s->version == FZG_VERSION && memcmp(s->ck, m->ck, 32) == 0 &&
                  memcmp(s->pub, m->pub, 33) == 0 && !s->has_priv && s->nkeys == 0,
              "the state made from an SKDM differs from the SKDM");
  }
  uint32_t n = 1;
  for (uint32_t i = 0; i < b->n && n < FZG_MAX_STATES; i++) {
    if (b->s[i].chain_id == m->chain_id) continue;
    FZ_ASSERT(n < a->n, "processing an SKDM dropped old state %u (chain %u)", i, b->s[i].chain_id);
    FZ_ASSERT(fzg_state_eq(&a->s[n], &b->s[i]),
              "processing an SKDM: state %u is not old state %u (chain %u)", n, i,
              b->s[i].chain_id);
    n++;
  }
  FZ_ASSERT(a->n == n, "processing an SKDM left %u states, wanted %u", a->n, n);
}

int fzg_decrypt_check(fz_dev *d, const fzg_world *w, const fzg_record *r, const fzg_chain *ch,
                      uint32_t it, const uint8_t *m, size_t len, fzg_set extra,
                      int strict_replay) {
  wh_addr key;
  int real = 0;
  char what[64];
  whisper_buf *pt = NULL;
  if (ch == &w->d2)
    snprintf(what, sizeof what, "sender_key_decrypt D2 at %u", it);
  else
    snprintf(what, sizeof what, "sender_key_decrypt C%d at %u", (int)(ch - w->chain) + 1, it);
  fzg_key(&key, "alice", 1, ch->uuid);
  fzg_set want = r ? fzg_expect_decrypt(r, ch, it, &real) | extra : FZG_BIT(WHISPER_ECORRUPT);

  fz_call_begin(d);
  int rc = whisper_sender_key_decrypt(d->ctx, "alice", 1, m, len, &pt);
  FZ_ASSERT(fzg_in(rc, want), "%s returned %d (%s); allowed: %#llx", what, rc,
            whisper_ctx_last_error(d->ctx), (unsigned long long)want);
  FZ_ASSERT((rc == WHISPER_OK) == (pt != NULL), "%s: rc %d but plaintext %p", what, rc,
            (void *)pt);
  if (rc == WHISPER_OK) {
    char text[32];
    if (real && fzg_text(w, ch, it, text))
      FZ_ASSERT(pt->len == strlen(text) && memcmp(pt->data, text, pt->len) == 0,
                "%s: wrong plaintext with the real key", what);
    whisper_buf *after = fz_get(d, WHISPER_REC_SENDER_KEY, key.key, key.len), *after2, *pt2 = NULL;
    fzg_record a;
    FZ_ASSERT(after != NULL && fzg_record_decode(&a, after->data, after->len),
              "%s succeeded and left a record that does not decode", what);
    fzg_check_decrypt_update(r, &a, ch->chain_id, it);
    /* the same bytes again */
    int real2;
    fzg_set want2 = fzg_expect_decrypt(&a, ch, it, &real2) | extra;
    if (strict_replay) want2 = FZG_BIT(WHISPER_EDUPLICATE);
    unsigned committed = d->fs.committed_writes;
    int rc2 = whisper_sender_key_decrypt(d->ctx, "alice", 1, m, len, &pt2);
    FZ_ASSERT(fzg_in(rc2, want2), "%s: the replay returned %d (%s); allowed: %#llx", what, rc2,
              whisper_ctx_last_error(d->ctx), (unsigned long long)want2);
    FZ_ASSERT(!d->fs.outer->depth, "%s: the replay left a transaction open", what);
    if (rc2 != WHISPER_OK) {
      after2 = fz_get(d, WHISPER_REC_SENDER_KEY, key.key, key.len);
      FZ_ASSERT(d->fs.committed_writes == committed && fz_buf_eq(after, after2),
                "%s: the failed replay (%d) wrote", what, rc2);
      whisper_buf_free(after2);
    }
    fzg_record_free(&a);
    whisper_buf_free(after);
    whisper_buf_free(pt2);
  }
  fz_call_end(d, rc, what);
  whisper_buf_free(pt);
  return rc;
}

/* --- store helpers --------------------------------------------------------------- */

void fzg_key(wh_addr *k, const char *name, uint32_t dev, const uint8_t uuid[16]) {
  fz_addr(k, name, dev);
  memcpy(k->key + k->len, uuid, 16);
  k->len += 16;
}

void fzg_put_or_del(fz_dev *d, int kind, const wh_addr *k, const whisper_buf *val) {
  int rc;
  if (val)
    rc = d->fs.inner->ops.put(d->fs.inner->user, kind, k->key, k->len, val->data, val->len);
  else
    rc = d->fs.inner->ops.del(d->fs.inner->user, kind, k->key, k->len);
  FZ_ASSERT(rc == WHISPER_OK || (val == NULL && rc == WHISPER_ENOTFOUND),
            "restoring a record failed: %d", rc);
}

/* --- scenario ------------------------------------------------------------------- */

int fzg_text(const fzg_world *w, const fzg_chain *ch, uint32_t it, char buf[32]) {
  if (ch == &w->d2) {
    if (it != 0) return 0;
    snprintf(buf, 32, "D2.%u", it);
    return 1;
  }
  int x = (int)(ch - w->chain);
  if (x < 0 || x >= FZG_CHAINS) return 0;
  if (it < FZG_MSGS) {
    snprintf(buf, 32, "C%d.%u", x + 1, it);
    return 1;
  }
  if (x == FZG_BOB_CHAIN && (it == FZG_FAR_OK || it == FZG_FAR_TOO)) {
    snprintf(buf, 32, "far %u", it);
    return 1;
  }
  return 0;
}

static void chain_init(fzg_chain *ch, const uint8_t *uuid, whisper_buf *skdm) {
  fzg_skdm m;
  FZ_ASSERT(fzg_skdm_parse(&m, skdm->data, skdm->len), "cannot parse our own SKDM");
  FZ_ASSERT(memcmp(m.uuid, uuid, 16) == 0 && m.iteration == 0, "unexpected SKDM");
  ch->uuid = uuid;
  ch->chain_id = m.chain_id;
  memcpy(ch->ck0, m.ck, 32);
  memcpy(ch->pub, m.pub, 33);
  ch->skdm = skdm;
}

static whisper_buf *g_encrypt(fz_dev *d, const uint8_t *uuid, const char *text) {
  whisper_buf *m = NULL;
  int rc = whisper_sender_key_encrypt(d->ctx, uuid, (const uint8_t *)text, strlen(text), &m);
  FZ_ASSERT(rc == WHISPER_OK, "%s sender_key_encrypt: %d (%s)", d->name, rc,
            whisper_ctx_last_error(d->ctx));
  return m;
}

static void g_process(fz_dev *d, const char *from, const whisper_buf *skdm) {
  int rc = whisper_sender_key_process(d->ctx, from, 1, skdm->data, skdm->len);
  FZ_ASSERT(rc == WHISPER_OK, "%s sender_key_process: %d (%s)", d->name, rc,
            whisper_ctx_last_error(d->ctx));
}

static void g_decrypt(fz_dev *d, const char *from, const whisper_buf *m, int want,
                      const char *text) {
  whisper_buf *pt = NULL;
  int rc = whisper_sender_key_decrypt(d->ctx, from, 1, m->data, m->len, &pt);
  FZ_ASSERT(rc == want, "%s sender_key_decrypt: %d (%s), wanted %d", d->name, rc,
            whisper_ctx_last_error(d->ctx), want);
  if (text)
    FZ_ASSERT(pt->len == strlen(text) && memcmp(pt->data, text, pt->len) == 0,
              "%s sender_key_decrypt: wrong plaintext", d->name);
  whisper_buf_free(pt);
}

/* Re-encodes an SKDM with changes. */
static whisper_buf *skdm_variant(const whisper_buf *src, uint8_t first, const uint32_t *chain_id,
                                 const uint8_t *pub, int drop_ck) {
  Whisper__Wire__SenderKeyDistributionMessage *m =
      whisper__wire__sender_key_distribution_message__unpack(NULL, src->len - 1, src->data + 1);
  FZ_ASSERT(m != NULL, "cannot parse our own SKDM");
  Whisper__Wire__SenderKeyDistributionMessage v = *m; /* shallow: m keeps its buffers */
  if (chain_id) v.chain_id = *chain_id;
  if (pub) v.signing_key = (ProtobufCBinaryData){33, (uint8_t *)pub};
  if (drop_ck) v.has_chain_key = 0;
  size_t n = whisper__wire__sender_key_distribution_message__get_packed_size(&v);
  whisper_buf *out = whisper_buf_new(NULL, 1 + n);
  FZ_ASSERT(out != NULL, "out of memory");
  out->data[0] = first;
  whisper__wire__sender_key_distribution_message__pack(&v, out->data + 1);
  whisper__wire__sender_key_distribution_message__free_unpacked(m, NULL);
  return out;
}

typedef void (*record_edit)(Whisper__Store__SenderKeyRecordStructure *p, void *arg);

/* Re-encodes a stored sender key record after `edit` (which only changes
 * scalars and bytes in place). */
static whisper_buf *record_variant(const whisper_buf *src, record_edit edit, void *arg) {
  Whisper__Store__SenderKeyRecordStructure *p =
      whisper__store__sender_key_record_structure__unpack(NULL, src->len, src->data);
  FZ_ASSERT(p != NULL, "cannot parse our own sender key record");
  edit(p, arg);
  whisper_buf *out =
      whisper_buf_new(NULL, whisper__store__sender_key_record_structure__get_packed_size(p));
  FZ_ASSERT(out != NULL, "out of memory");
  whisper__store__sender_key_record_structure__pack(p, out->data);
  whisper__store__sender_key_record_structure__free_unpacked(p, NULL);
  return out;
}

static void edit_iteration(Whisper__Store__SenderKeyRecordStructure *p, void *arg) {
  /* arg: {iteration, ck[32]} of state 0 */
  const uint8_t *a = arg;
  uint32_t it;
  memcpy(&it, a, 4);
  p->sender_key_states[0]->sender_chain_key->iteration = it;
  p->sender_key_states[0]->sender_chain_key->has_iteration = 1;
  memcpy(p->sender_key_states[0]->sender_chain_key->seed.data, a + 4, 32);
}
static void edit_no_priv(Whisper__Store__SenderKeyRecordStructure *p, void *arg) {
  (void)arg;
  p->sender_key_states[0]->sender_signing_key->has_private_key = 0;
}
static void edit_version2(Whisper__Store__SenderKeyRecordStructure *p, void *arg) {
  (void)arg;
  for (size_t i = 0; i < p->n_sender_key_states; i++) p->sender_key_states[i]->message_version = 2;
}
static void edit_key_type(Whisper__Store__SenderKeyRecordStructure *p, void *arg) {
  (void)arg;
  p->sender_key_states[0]->sender_signing_key->public_key.data[0] = 0x06;
}
static void edit_same_id(Whisper__Store__SenderKeyRecordStructure *p, void *arg) {
  (void)arg;
  p->sender_key_states[1]->chain_id = p->sender_key_states[0]->chain_id;
}
static void edit_no_format(Whisper__Store__SenderKeyRecordStructure *p, void *arg) {
  (void)arg;
  p->has_format = 0;
}

static whisper_buf *plain_record(uint32_t format) {
  Whisper__Store__SenderKeyRecordStructure rs = WHISPER__STORE__SENDER_KEY_RECORD_STRUCTURE__INIT;
  rs.has_format = 1;
  rs.format = format;
  whisper_buf *b =
      whisper_buf_new(NULL, whisper__store__sender_key_record_structure__get_packed_size(&rs));
  FZ_ASSERT(b != NULL, "out of memory");
  whisper__store__sender_key_record_structure__pack(&rs, b->data);
  return b;
}

/* Alice's C6 state, planted at `it` (her record at C6 is `c6`, iteration
 * FZG_MSGS), encrypts one message. */
static whisper_buf *far_message(fz_dev *alice, const wh_addr *own, const whisper_buf *c6,
                                const fzg_chain *ch, uint32_t it) {
  uint8_t arg[36];
  char text[32];
  memcpy(arg, &it, 4);
  fzg_ck_advance(arg + 4, ch->ck0, it);
  whisper_buf *rec = record_variant(c6, edit_iteration, arg);
  fz_put_raw(alice, WHISPER_REC_SENDER_KEY, own->key, own->len, rec->data, rec->len);
  whisper_buf_free(rec);
  snprintf(text, sizeof text, "far %u", it);
  return g_encrypt(alice, fzg_d1, text);
}

fzg_world *fzg_scenario(fz_seeds *skdm_seeds, fz_seeds *msg_seeds, fz_seeds *rec_seeds) {
  fzg_world *w = calloc(1, sizeof *w);
  FZ_ASSERT(w != NULL, "out of memory");
  fz_dev *alice = fz_dev_new("alice", 1, 0xA5), *bob = fz_dev_new("bob", 1, 0xB5);
  whisper_buf *adv[FZG_CHAINS] = {0}, *alice_c6 = NULL, *bob_one = NULL;
  wh_addr own, at_bob;
  char text[32];
  int rc;
  fzg_key(&own, "alice", 1, fzg_d1);
  fzg_key(&at_bob, "alice", 1, fzg_d1);

  /* alice: C1..C7, six messages each; an SKDM at iteration 3 of each */
  for (int x = 0; x < FZG_CHAINS; x++) {
    whisper_buf *s = NULL;
    rc = x == 0 ? whisper_sender_key_generate(alice->ctx, fzg_d1, &s)
                : whisper_sender_key_rotate(alice->ctx, fzg_d1, &s);
    FZ_ASSERT(rc == WHISPER_OK, "alice create/rotate: %d", rc);
    chain_init(&w->chain[x], fzg_d1, s);
    for (uint32_t i = 0; i < FZG_MSGS; i++) {
      if (i == 3) {
        rc = whisper_sender_key_generate(alice->ctx, fzg_d1, &adv[x]);
        FZ_ASSERT(rc == WHISPER_OK, "alice create: %d", rc);
      }
      fzg_text(w, &w->chain[x], i, text);
      w->chain[x].msg[i] = g_encrypt(alice, fzg_d1, text);
    }
    if (x == FZG_BOB_CHAIN) alice_c6 = fz_get(alice, WHISPER_REC_SENDER_KEY, own.key, own.len);
  }
  whisper_buf *alice_own = fz_get(alice, WHISPER_REC_SENDER_KEY, own.key, own.len);
  FZ_ASSERT(alice_c6 != NULL && alice_own != NULL, "alice has no own sender key record");
  {
    whisper_buf *s = NULL;
    FZ_ASSERT(whisper_sender_key_generate(alice->ctx, fzg_d2, &s) == WHISPER_OK, "create D2");
    chain_init(&w->d2, fzg_d2, s);
    w->d2.msg[0] = g_encrypt(alice, fzg_d2, "D2.0");
  }

  /* bob: C1..C6 (C1 is evicted by C6); C6 read at 0, 1, 3; C5 at 0 */
  for (int x = 0; x <= FZG_BOB_CHAIN; x++) {
    g_process(bob, "alice", w->chain[x].skdm);
    if (x == 0) bob_one = fz_get(bob, WHISPER_REC_SENDER_KEY, at_bob.key, at_bob.len);
  }
  g_decrypt(bob, "alice", w->chain[5].msg[0], WHISPER_OK, "C6.0");
  g_decrypt(bob, "alice", w->chain[5].msg[1], WHISPER_OK, "C6.1");
  g_decrypt(bob, "alice", w->chain[5].msg[3], WHISPER_OK, "C6.3");
  g_decrypt(bob, "alice", w->chain[4].msg[0], WHISPER_OK, "C5.0");
  g_decrypt(bob, "alice", w->chain[0].msg[0], WHISPER_ENOSESSION, NULL);
  g_decrypt(bob, "alice", w->chain[6].msg[0], WHISPER_ENOSESSION, NULL);
  whisper_buf *bob_five = fz_get(bob, WHISPER_REC_SENDER_KEY, at_bob.key, at_bob.len);
  FZ_ASSERT(bob_one != NULL && bob_five != NULL, "bob has no sender key record");
  {
    fzg_record r;
    FZ_ASSERT(fzg_record_decode(&r, bob_five->data, bob_five->len), "bob's record");
    FZ_ASSERT(r.n == 5 && r.s[0].chain_id == w->chain[5].chain_id && r.s[0].iteration == 4 &&
                  r.s[0].nkeys == 1 && r.s[0].key_it[0] == 2,
              "bob's record is not as planned");
    fzg_record_free(&r);
  }

  /* the far messages, from an advanced copy of alice's C6 state */
  w->far_ok = far_message(alice, &own, alice_c6, &w->chain[5], FZG_FAR_OK);
  w->far_too = far_message(alice, &own, alice_c6, &w->chain[5], FZG_FAR_TOO);

  /* --- seeds: SKDMs for bob --- */
  fz_seeds_add(skdm_seeds, "repeat_newest", w->chain[5].skdm, 0);
  fz_seeds_add(skdm_seeds, "repeat_older", w->chain[2].skdm, 0);
  fz_seeds_add(skdm_seeds, "repeat_advanced", adv[5], 0);
  fz_seeds_add(skdm_seeds, "same_id_other_key",
               skdm_variant(w->chain[6].skdm, 0x33, &w->chain[3].chain_id, NULL, 0), 1);
  fz_seeds_add(skdm_seeds, "new_chain_evicts", w->chain[6].skdm, 0);
  fz_seeds_add(skdm_seeds, "new_chain_advanced", adv[6], 0);
  fz_seeds_add(skdm_seeds, "evicted_chain", w->chain[0].skdm, 0);
  fz_seeds_add(skdm_seeds, "new_distribution", w->d2.skdm, 0);
  {
    uint8_t pub[33];
    memcpy(pub, w->chain[6].pub, 33);
    pub[0] = 0x06;
    fz_seeds_add(skdm_seeds, "bad_key_type", skdm_variant(w->chain[6].skdm, 0x33, NULL, pub, 0),
                 1);
  }
  fz_seeds_add(skdm_seeds, "version2", skdm_variant(w->chain[6].skdm, 0x22, NULL, NULL, 0), 1);
  fz_seeds_add(skdm_seeds, "no_chain_key", skdm_variant(w->chain[6].skdm, 0x33, NULL, NULL, 1),
               1);

  /* --- seeds: SenderKeyMessages to bob --- */
  fz_seeds_add(msg_seeds, "next", w->chain[5].msg[4], 0);
  fz_seeds_add(msg_seeds, "skipped_key", w->chain[5].msg[2], 0);
  fz_seeds_add(msg_seeds, "duplicate", w->chain[5].msg[1], 0);
  fz_seeds_add(msg_seeds, "ahead", w->chain[5].msg[5], 0);
  fz_seeds_add(msg_seeds, "older_chain", w->chain[4].msg[3], 0);
  fz_seeds_add(msg_seeds, "older_chain_first", w->chain[1].msg[0], 0);
  fz_seeds_add(msg_seeds, "evicted_chain", w->chain[0].msg[0], 0);
  fz_seeds_add(msg_seeds, "unknown_chain", w->chain[6].msg[0], 0);
  fz_seeds_add(msg_seeds, "other_distribution", w->d2.msg[0], 0);
  if (msg_seeds) {
    whisper_buf *bad = whisper_buf_new(w->chain[5].msg[4]->data, w->chain[5].msg[4]->len);
    FZ_ASSERT(bad != NULL, "out of memory");
    bad->data[bad->len - 10] ^= 0x01;
    fz_seeds_add(msg_seeds, "bad_signature", bad, 1);
  }
  fz_seeds_add(msg_seeds, "far_limit", w->far_ok, 0);
  fz_seeds_add(msg_seeds, "too_far", w->far_too, 0);

  /* --- seeds: sender key records --- */
  fz_seeds_add(rec_seeds, "received_five", bob_five, 0);
  fz_seeds_add(rec_seeds, "received_one", bob_one, 0);
  fz_seeds_add(rec_seeds, "own_state", alice_own, 0);
  fz_seeds_add(rec_seeds, "empty", plain_record(1), 1);
  fz_seeds_add(rec_seeds, "newer_format", plain_record(2), 1);
  if (rec_seeds) {
    uint8_t arg[36];
    uint32_t it = UINT32_MAX;
    fz_seeds_add(rec_seeds, "no_private_key", record_variant(alice_own, edit_no_priv, NULL), 1);
    fz_seeds_add(rec_seeds, "version2_states", record_variant(bob_five, edit_version2, NULL), 1);
    fz_seeds_add(rec_seeds, "bad_key_type", record_variant(bob_five, edit_key_type, NULL), 1);
    fz_seeds_add(rec_seeds, "own_bad_key_type", record_variant(alice_own, edit_key_type, NULL), 1);
    fz_seeds_add(rec_seeds, "same_chain_id_twice", record_variant(bob_five, edit_same_id, NULL), 1);
    fz_seeds_add(rec_seeds, "format_absent", record_variant(bob_one, edit_no_format, NULL), 1);
    memcpy(arg, &it, 4);
    memset(arg + 4, 0x42, 32);
    fz_seeds_add(rec_seeds, "max_iteration", record_variant(alice_own, edit_iteration, arg), 1);
  }

  for (int x = 0; x < FZG_CHAINS; x++) whisper_buf_free(adv[x]);
  whisper_buf_free(alice_c6);
  whisper_buf_free(alice_own);
  whisper_buf_free(bob_one);
  whisper_buf_free(bob_five);
  fz_dev_free(alice);
  w->bob = bob;
  return w;
}

static void chain_free(fzg_chain *ch) {
  whisper_buf_free(ch->skdm);
  for (int i = 0; i < FZG_MSGS; i++) whisper_buf_free(ch->msg[i]);
}

void fzg_world_free(fzg_world *w) {
  if (w == NULL) return;
  for (int x = 0; x < FZG_CHAINS; x++) chain_free(&w->chain[x]);
  chain_free(&w->d2);
  whisper_buf_free(w->far_ok);
  whisper_buf_free(w->far_too);
  fz_dev_free(w->bob);
  free(w);
}
