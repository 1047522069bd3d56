/*
 * Sender keys: libsignal 0.52.x's group messages (docs/protocol.md).
 * A record per (sender address, distribution id) holds up to 5 states,
 * newest first; each state is a chain (iteration, chain key), a signing
 * key (with the private half on our own state only) and skipped seeds.
 */
#include <stdlib.h>
#include <string.h>

#include "protocol/pb.h"
#include "storage.pb-c.h"
#include "whisper/sender_key.h"
#include "whisper/history.h"
#include "wire.pb-c.h"

#define SK_VERSION 3
#define SK_MAX_STATES 5
#define SK_MAX_KEYS 2000
#define SK_MAX_JUMP 25000
#define SK_FORMAT 1
#define UUID_LEN WHISPER_DISTRIBUTION_ID_LEN

typedef struct sk_seed {
  uint32_t iteration;
  uint8_t seed[32];
} sk_seed;

typedef struct sk_state {
  uint32_t chain_id, iteration, version;
  uint64_t gen; /* own: the session generation it was made in */
  uint8_t ck[32];
  uint8_t sign_pub[WH_PUB_LEN];
  int has_priv;
  uint8_t sign_priv[WH_KEY_LEN];
  sk_seed *keys; /* skipped, oldest first */
  uint32_t nkeys;
} sk_state;

typedef struct sk_record {
  sk_state s[SK_MAX_STATES]; /* newest first */
  uint32_t n;
} sk_record;

static void state_free(sk_state *s) {
  if (s->keys) {
    wh_wipe(s->keys, s->nkeys * sizeof *s->keys);
    free(s->keys);
  }
  wh_wipe(s, sizeof *s);
}

static void record_free(sk_record *r) {
  for (uint32_t i = 0; i < r->n; i++) state_free(&r->s[i]);
  r->n = 0;
}

/* --- storage ------------------------------------------------------------------ */

static int record_key(whisper_ctx *ctx, wh_addr *k, const char *name, uint32_t device,
                      const uint8_t uuid[UUID_LEN]) {
  int rc = wh_addr_make(ctx, k, name, device);
  if (rc != WHISPER_OK) return rc;
  memcpy(k->key + k->len, uuid, UUID_LEN);
  k->len += UUID_LEN;
  return WHISPER_OK;
}

static int record_load(whisper_ctx *ctx, const wh_addr *k, sk_record *r) {
  whisper_buf *b;
  memset(r, 0, sizeof *r);
  int rc = wh_get(ctx, WHISPER_REC_SENDER_KEY, k->key, k->len, &b);
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__SenderKeyRecordStructure *p =
      whisper__store__sender_key_record_structure__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  rc = WHISPER_OK;
  if (p == NULL || p->format > SK_FORMAT || p->n_sender_key_states > SK_MAX_STATES) rc = WHISPER_ECORRUPT;
  for (size_t i = 0; rc == WHISPER_OK && i < p->n_sender_key_states; i++) {
    const Whisper__Store__SenderKeyStateStructure *ps = p->sender_key_states[i];
    const Whisper__Store__SenderChainKey *ck = ps->sender_chain_key;
    const Whisper__Store__SenderSigningKey *sk = ps->sender_signing_key;
    if (ck == NULL || ck->seed.len != 32 || sk == NULL || sk->public_key.len != WH_PUB_LEN ||
        sk->public_key.data[0] != WH_DJB_TYPE ||
        (sk->has_private_key && sk->private_key.len != WH_KEY_LEN) ||
        ps->n_sender_message_keys > SK_MAX_KEYS) {
      rc = WHISPER_ECORRUPT;
      break;
    }
    sk_state *s = &r->s[r->n++];
    s->chain_id = ps->chain_id;
    s->iteration = ck->iteration;
    s->version = ps->message_version;
    s->gen = ps->generation;
    memcpy(s->ck, ck->seed.data, 32);
    memcpy(s->sign_pub, sk->public_key.data, WH_PUB_LEN);
    if ((s->has_priv = sk->has_private_key)) memcpy(s->sign_priv, sk->private_key.data, WH_KEY_LEN);
    if (ps->n_sender_message_keys) {
      s->keys = malloc(ps->n_sender_message_keys * sizeof *s->keys);
      if (s->keys == NULL) {
        rc = WHISPER_ENOMEM;
        break;
      }
    }
    for (size_t j = 0; j < ps->n_sender_message_keys; j++) {
      const Whisper__Store__SenderChainKey *m = ps->sender_message_keys[j];
      if (m->seed.len != 32) {
        rc = WHISPER_ECORRUPT;
        break;
      }
      s->keys[s->nkeys].iteration = m->iteration;
      memcpy(s->keys[s->nkeys++].seed, m->seed.data, 32);
    }
  }
  if (p) whisper__store__sender_key_record_structure__free_unpacked(p, &wh_pb_alloc);
  if (rc != WHISPER_OK) {
    record_free(r);
    return wh_fail(ctx, rc, "the stored sender key record is corrupt");
  }
  return WHISPER_OK;
}

static int record_store(whisper_ctx *ctx, const wh_addr *k, const sk_record *r) {
  Whisper__Store__SenderKeyRecordStructure rec = WHISPER__STORE__SENDER_KEY_RECORD_STRUCTURE__INIT;
  Whisper__Store__SenderKeyStateStructure st[SK_MAX_STATES], *stp[SK_MAX_STATES];
  Whisper__Store__SenderChainKey ck[SK_MAX_STATES];
  Whisper__Store__SenderSigningKey sk[SK_MAX_STATES];
  Whisper__Store__SenderChainKey *mk[SK_MAX_STATES] = {0};
  Whisper__Store__SenderChainKey **mkp[SK_MAX_STATES] = {0};
  int rc = WHISPER_OK;
  for (uint32_t i = 0; i < r->n; i++) {
    const sk_state *s = &r->s[i];
    whisper__store__sender_key_state_structure__init(&st[i]);
    whisper__store__sender_chain_key__init(&ck[i]);
    whisper__store__sender_signing_key__init(&sk[i]);
    ck[i].has_iteration = ck[i].has_seed = 1;
    ck[i].iteration = s->iteration;
    ck[i].seed = (ProtobufCBinaryData){32, (uint8_t *)s->ck};
    sk[i].has_public_key = 1;
    sk[i].public_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->sign_pub};
    if (s->has_priv) {
      sk[i].has_private_key = 1;
      sk[i].private_key = (ProtobufCBinaryData){WH_KEY_LEN, (uint8_t *)s->sign_priv};
    }
    st[i].has_chain_id = st[i].has_message_version = 1;
    st[i].chain_id = s->chain_id;
    st[i].message_version = s->version;
    if (s->gen) st[i].has_generation = 1, st[i].generation = s->gen;
    st[i].sender_chain_key = &ck[i];
    st[i].sender_signing_key = &sk[i];
    if (s->nkeys) {
      mk[i] = calloc(s->nkeys, sizeof *mk[i]);
      mkp[i] = calloc(s->nkeys, sizeof *mkp[i]);
      if (mk[i] == NULL || mkp[i] == NULL) {
        rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
        break;
      }
      for (uint32_t j = 0; j < s->nkeys; j++) {
        whisper__store__sender_chain_key__init(&mk[i][j]);
        mk[i][j].has_iteration = mk[i][j].has_seed = 1;
        mk[i][j].iteration = s->keys[j].iteration;
        mk[i][j].seed = (ProtobufCBinaryData){32, (uint8_t *)s->keys[j].seed};
        mkp[i][j] = &mk[i][j];
      }
      st[i].n_sender_message_keys = s->nkeys;
      st[i].sender_message_keys = mkp[i];
    }
    stp[i] = &st[i];
  }
  rec.n_sender_key_states = r->n;
  rec.sender_key_states = stp;
  rec.has_format = 1;
  rec.format = SK_FORMAT;
  if (rc == WHISPER_OK) rc = wh_put_msg(ctx, WHISPER_REC_SENDER_KEY, k->key, k->len, &rec.base);
  for (uint32_t i = 0; i < r->n; i++) {
    free(mk[i]);
    free(mkp[i]);
  }
  return rc;
}

/* --- wire ----------------------------------------------------------------------- */

static int skdm_encode(const uint8_t uuid[UUID_LEN], const sk_state *s, whisper_buf **out) {
  Whisper__Wire__SenderKeyDistributionMessage m = WHISPER__WIRE__SENDER_KEY_DISTRIBUTION_MESSAGE__INIT;
  m.has_distribution_uuid = m.has_chain_id = m.has_iteration = m.has_chain_key = 1;
  m.has_signing_key = 1;
  m.distribution_uuid = (ProtobufCBinaryData){UUID_LEN, (uint8_t *)uuid};
  m.chain_id = s->chain_id;
  m.iteration = s->iteration;
  m.chain_key = (ProtobufCBinaryData){32, (uint8_t *)s->ck};
  m.signing_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->sign_pub};
  size_t n = whisper__wire__sender_key_distribution_message__get_packed_size(&m);
  *out = whisper_buf_new(NULL, 1 + n);
  if (*out == NULL) return WHISPER_ENOMEM;
  (*out)->data[0] = SK_VERSION << 4 | SK_VERSION;
  whisper__wire__sender_key_distribution_message__pack(&m, (*out)->data + 1);
  return WHISPER_OK;
}

static int sk_version_ok(uint8_t first) { return first >> 4 == SK_VERSION; }

/* --- derivation ------------------------------------------------------------------- */

static void seed_keys(uint8_t iv[16], uint8_t key[32], const uint8_t seed[32]) {
  uint8_t okm[48];
  wh_hkdf(okm, sizeof okm, NULL, 0, seed, 32, "WhisperGroup");
  memcpy(iv, okm, 16);
  memcpy(key, okm + 16, 32);
  wh_wipe(okm, sizeof okm);
}


/* --- own state ---------------------------------------------------------------------- */

static int own_key(whisper_ctx *ctx, wh_addr *k, const uint8_t uuid[UUID_LEN]) {
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  return record_key(ctx, k, ctx->name, ctx->device_id, uuid);
}

static int state_new(whisper_ctx *ctx, sk_state *s) {
  wh_keypair kp;
  uint8_t id[4];
  memset(s, 0, sizeof *s);
  if (wh_random(&ctx->rng, id, 4) != 0 || wh_random(&ctx->rng, s->ck, 32) != 0 ||
      wh_keypair_generate(&ctx->rng, &kp) != 0)
    return wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
  s->chain_id = ((uint32_t)id[0] << 24 | (uint32_t)id[1] << 16 | (uint32_t)id[2] << 8 | id[3]) >> 1;
  s->version = SK_VERSION;
  memcpy(s->sign_pub, kp.pub, WH_PUB_LEN);
  memcpy(s->sign_priv, kp.priv, WH_KEY_LEN);
  s->has_priv = 1;
  wh_wipe(&kp, sizeof kp);
  return wh_session_gen(ctx, &s->gen);
}

static int own_skdm(whisper_ctx *ctx, const uint8_t uuid[UUID_LEN], int rotate, whisper_buf **out) {
  wh_addr k;
  sk_record r;
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (uuid == NULL || out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  *out = NULL;
  if ((rc = own_key(ctx, &k, uuid)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = record_load(ctx, &k, &r);
  if (rc == WHISPER_ENOTFOUND || (rc == WHISPER_OK && (rotate || r.n == 0))) {
    record_free(&r);
    rc = state_new(ctx, &r.s[0]);
    if (rc == WHISPER_OK) {
      r.n = 1;
      rc = record_store(ctx, &k, &r);
    }
  }
  if (rc == WHISPER_OK && (rc = skdm_encode(uuid, &r.s[0], out)) != WHISPER_OK)
    rc = wh_fail(ctx, rc, "out of memory");
  record_free(&r);
  return wh_finish_out(ctx, rc, out);
}

int whisper_sender_key_generate(whisper_ctx *ctx, const uint8_t distribution_id[UUID_LEN],
                         whisper_buf **skdm_out) {
  return own_skdm(ctx, distribution_id, 0, skdm_out);
}

int whisper_sender_key_rotate(whisper_ctx *ctx, const uint8_t distribution_id[UUID_LEN],
                         whisper_buf **skdm_out) {
  return own_skdm(ctx, distribution_id, 1, skdm_out);
}

/* --- receiving an SKDM ---------------------------------------------------------------- */

static int process_in_txn(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                          const uint8_t *b, size_t len) {
  wh_addr k;
  sk_record r;
  sk_state fresh;
  int rc;
  if (b == NULL || len < 1 || !sk_version_ok(b[0]))
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "SKDM: empty or not version 3");
  Whisper__Wire__SenderKeyDistributionMessage *m =
      whisper__wire__sender_key_distribution_message__unpack(&wh_pb_alloc, len - 1, b + 1);
  if (m == NULL) return wh_fail(ctx, WHISPER_EINVALIDMSG, "SKDM: bad protobuf");
  if (!m->has_distribution_uuid || m->distribution_uuid.len != UUID_LEN || !m->has_chain_id ||
      !m->has_iteration || !m->has_chain_key || m->chain_key.len != 32 || !m->has_signing_key ||
      m->signing_key.len != WH_PUB_LEN || m->signing_key.data[0] != WH_DJB_TYPE) {
    whisper__wire__sender_key_distribution_message__free_unpacked(m, &wh_pb_alloc);
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "SKDM: a field is missing or malformed");
  }
  rc = record_key(ctx, &k, sender, device_id, m->distribution_uuid.data);
  if (rc == WHISPER_OK) {
    rc = record_load(ctx, &k, &r);
    if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  }
  if (rc == WHISPER_OK) {
    /* an identical chain is kept as it is; others with the same id go */
    int found = -1;
    for (uint32_t i = 0; i < r.n; i++)
      if (found < 0 && r.s[i].chain_id == m->chain_id &&
          memcmp(r.s[i].sign_pub, m->signing_key.data, WH_PUB_LEN) == 0)
        found = (int)i;
    if (found >= 0) {
      fresh = r.s[found];
      memset(&r.s[found], 0, sizeof r.s[found]);
    } else {
      memset(&fresh, 0, sizeof fresh);
      fresh.chain_id = m->chain_id;
      fresh.iteration = m->iteration;
      fresh.version = (uint32_t)(b[0] >> 4);
      memcpy(fresh.ck, m->chain_key.data, 32);
      memcpy(fresh.sign_pub, m->signing_key.data, WH_PUB_LEN);
    }
    sk_record out;
    memset(&out, 0, sizeof out);
    out.s[out.n++] = fresh;
    for (uint32_t i = 0; i < r.n; i++) {
      if ((int)i == found || r.s[i].chain_id == m->chain_id || out.n == SK_MAX_STATES) {
        state_free(&r.s[i]);
        continue;
      }
      out.s[out.n++] = r.s[i];
    }
    r.n = 0;
    rc = record_store(ctx, &k, &out);
    record_free(&out);
  }
  whisper__wire__sender_key_distribution_message__free_unpacked(m, &wh_pb_alloc);
  return rc;
}

/* This device's own sending state lives under its own address: a
 * distribution message claiming to come from there must not replace it. */
static int check_not_self(whisper_ctx *ctx, const char *sender, uint32_t device_id) {
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if (device_id == ctx->device_id && strcmp(sender, ctx->name) == 0)
    return wh_fail(ctx, WHISPER_EINVAL, "a sender key distribution from this very device");
  return WHISPER_OK;
}

int whisper_sender_key_process(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                          const uint8_t *skdm, size_t skdm_len) {
  wh_addr probe;
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if ((rc = wh_addr_make(ctx, &probe, sender, device_id)) != WHISPER_OK) return rc;
  if ((rc = check_not_self(ctx, sender, device_id)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_finish(ctx, process_in_txn(ctx, sender, device_id, skdm, skdm_len));
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* --- messages ----------------------------------------------------------------------- */

int whisper_sender_key_encrypt(whisper_ctx *ctx, const uint8_t uuid[UUID_LEN], const uint8_t *pt,
                          size_t pt_len, whisper_buf **out) {
  wh_addr k;
  sk_record r;
  uint8_t seed[32], iv[16], key[32], z[64];
  uint8_t *ct = NULL;
  size_t ct_len = 0;
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (uuid == NULL || out == NULL || (pt == NULL && pt_len))
    return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  if (pt_len > (size_t)INT32_MAX - 64) return wh_fail(ctx, WHISPER_EINVAL, "plaintext too large");
  *out = NULL;
  if ((rc = own_key(ctx, &k, uuid)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  memset(&r, 0, sizeof r);
  rc = record_load(ctx, &k, &r);
  if (rc == WHISPER_ENOTFOUND || (rc == WHISPER_OK && (r.n == 0 || !r.s[0].has_priv)))
    rc = wh_fail(ctx, WHISPER_ENOSESSION, "no sender key for this distribution: create it first");
  if (rc != WHISPER_OK) goto out;
  sk_state *s = &r.s[0];
  if (s->iteration == UINT32_MAX) {
    rc = wh_fail(ctx, WHISPER_ESTATE, "the sender chain is too long: rotate it");
    goto out;
  }
  uint64_t gen;
  if ((rc = wh_session_gen(ctx, &gen)) != WHISPER_OK) goto out;
  if (s->gen < gen) {
    rc = wh_fail(ctx, WHISPER_EROLLEDBACK,
                 "this sender key is from before the store was found restored: rotate it");
    goto out;
  }
  wh_chain_step(seed, s->ck); /* the record is kept only on success */
  seed_keys(iv, key, seed);
  ct_len = wh_cbc_len(pt_len);
  if ((ct = malloc(ct_len)) == NULL) {
    rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    goto out;
  }
  if (wh_cbc_encrypt(ct, key, iv, pt, pt_len) != 0) {
    rc = wh_fail(ctx, WHISPER_EINTERNAL, "AES-CBC encryption failed");
    goto out;
  }
  Whisper__Wire__SenderKeyMessage m = WHISPER__WIRE__SENDER_KEY_MESSAGE__INIT;
  m.has_distribution_uuid = m.has_chain_id = m.has_iteration = m.has_ciphertext = 1;
  m.distribution_uuid = (ProtobufCBinaryData){UUID_LEN, (uint8_t *)uuid};
  m.chain_id = s->chain_id;
  m.iteration = s->iteration;
  m.ciphertext = (ProtobufCBinaryData){ct_len, ct};
  size_t n = whisper__wire__sender_key_message__get_packed_size(&m);
  whisper_buf *b = whisper_buf_new(NULL, 1 + n + WH_SIG_LEN);
  if (b == NULL) {
    rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    goto out;
  }
  b->data[0] = (uint8_t)(s->version << 4 | SK_VERSION);
  whisper__wire__sender_key_message__pack(&m, b->data + 1);
  if (wh_random(&ctx->rng, z, sizeof z) != 0) {
    whisper_buf_free(b);
    rc = wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
    goto out;
  }
  if (wh_xeddsa_sign(b->data + 1 + n, s->sign_priv, b->data, 1 + n, z) != 0) {
    whisper_buf_free(b);
    rc = wh_fail(ctx, WHISPER_EINTERNAL, "signing failed");
    goto out;
  }
  s->iteration++;
  if ((rc = record_store(ctx, &k, &r)) != WHISPER_OK) {
    whisper_buf_free(b);
    goto out;
  }
  *out = b;
out:
  if (ct) {
    wh_wipe(ct, ct_len);
    free(ct);
  }
  wh_wipe(seed, sizeof seed);
  wh_wipe(iv, sizeof iv);
  wh_wipe(key, sizeof key);
  wh_wipe(z, sizeof z);
  record_free(&r);
  return wh_finish_out(ctx, rc, out);
}

/* The seed for iteration c of state s, storing skipped seeds. */
static int state_seed(whisper_ctx *ctx, sk_state *s, uint32_t c, uint8_t seed[32]) {
  if (c < s->iteration) {
    for (uint32_t i = 0; i < s->nkeys; i++) {
      if (s->keys[i].iteration == c) {
        memcpy(seed, s->keys[i].seed, 32);
        memmove(&s->keys[i], &s->keys[i + 1], (s->nkeys - i - 1) * sizeof *s->keys);
        s->nkeys--;
        return WHISPER_OK;
      }
    }
    return wh_fail(ctx, WHISPER_EDUPLICATE, "duplicate group message: iteration %u, chain at %u", c,
                   s->iteration);
  }
  if (c == UINT32_MAX)
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "group message iteration at the end of the chain");
  uint32_t jump = c - s->iteration;
  if (jump > SK_MAX_JUMP)
    return wh_fail(ctx, WHISPER_ETOOFAR, "group message from too far into the future (%u ahead)",
                   jump);
  uint32_t keep = jump < SK_MAX_KEYS ? jump : SK_MAX_KEYS; /* only these can survive */
  if (keep) {
    uint32_t total = s->nkeys + keep, drop = total > SK_MAX_KEYS ? total - SK_MAX_KEYS : 0;
    sk_seed *n = malloc((total - drop) * sizeof *n);
    if (n == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    uint32_t w = 0;
    for (uint32_t i = drop; i < s->nkeys; i++) n[w++] = s->keys[i];
    if (s->keys) {
      wh_wipe(s->keys, s->nkeys * sizeof *s->keys);
      free(s->keys);
    }
    s->keys = n;
    s->nkeys = w;
  }
  for (uint32_t i = s->iteration; i < c; i++) {
    if (c - i <= keep) {
      s->keys[s->nkeys].iteration = i;
      wh_chain_step(s->keys[s->nkeys++].seed, s->ck);
    } else {
      wh_chain_step(NULL, s->ck);
    }
  }
  wh_chain_step(seed, s->ck);
  s->iteration = c + 1;
  return WHISPER_OK;
}

/* Decrypts inside the caller's transaction; on failure the caller rolls back. */
static int decrypt_in_txn(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                          const uint8_t *b, size_t len, whisper_buf **pt_out) {
  wh_addr k;
  sk_record r;
  uint8_t seed[32], iv[16], key[32];
  whisper_buf *pt = NULL;
  Whisper__Wire__SenderKeyMessage *m = NULL;
  int rc;
  memset(&r, 0, sizeof r);
  if (len < 1 + WH_SIG_LEN || !sk_version_ok(b[0]))
    return wh_fail(ctx, WHISPER_EINVALIDMSG, "SenderKeyMessage: too short or not version 3");
  m = whisper__wire__sender_key_message__unpack(&wh_pb_alloc, len - 1 - WH_SIG_LEN, b + 1);
  if (m == NULL) return wh_fail(ctx, WHISPER_EINVALIDMSG, "SenderKeyMessage: bad protobuf");
  if (!m->has_distribution_uuid || m->distribution_uuid.len != UUID_LEN || !m->has_chain_id ||
      !m->has_iteration || !m->has_ciphertext) {
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "SenderKeyMessage: a field is missing or malformed");
    goto done;
  }
  if ((rc = record_key(ctx, &k, sender, device_id, m->distribution_uuid.data)) != WHISPER_OK)
    goto done;
  rc = record_load(ctx, &k, &r);
  if (rc == WHISPER_ENOTFOUND) rc = wh_fail(ctx, WHISPER_ENOSESSION, "no sender key from this sender");
  sk_state *s = NULL;
  for (uint32_t i = 0; rc == WHISPER_OK && i < r.n && s == NULL; i++)
    if (r.s[i].chain_id == m->chain_id) s = &r.s[i];
  if (rc == WHISPER_OK && s == NULL)
    rc = wh_fail(ctx, WHISPER_ENOSESSION, "no sender key for chain %u", m->chain_id);
  if (rc == WHISPER_OK && s->version != (uint32_t)(b[0] >> 4))
    rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "message version differs from the sender key's");
  if (rc == WHISPER_OK &&
      wh_xeddsa_verify(s->sign_pub + 1, b, len - WH_SIG_LEN, b + len - WH_SIG_LEN) != 0)
    rc = wh_fail(ctx, WHISPER_EINVALIDSIG, "the group message's signature does not verify");
  if (rc == WHISPER_OK) rc = state_seed(ctx, s, m->iteration, seed);
  if (rc == WHISPER_OK) {
    seed_keys(iv, key, seed);
    pt = whisper_buf_new(NULL, m->ciphertext.len + 16);
    if (pt == NULL) rc = wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
    else if (wh_cbc_decrypt(pt->data, &pt->len, key, iv, m->ciphertext.data, m->ciphertext.len) != 0)
      rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "bad group ciphertext (length or padding)");
  }
  if (rc == WHISPER_OK) rc = record_store(ctx, &k, &r);
done:
  record_free(&r);
  wh_wipe(seed, sizeof seed);
  wh_wipe(iv, sizeof iv);
  wh_wipe(key, sizeof key);
  whisper__wire__sender_key_message__free_unpacked(m, &wh_pb_alloc);
  if (rc != WHISPER_OK) {
    whisper_buf_free(pt);
    return rc;
  }
  *pt_out = pt;
  return WHISPER_OK;
}

int whisper_sender_key_decrypt(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                          const uint8_t *b, size_t len, whisper_buf **pt_out) {
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (pt_out == NULL || (b == NULL && len)) return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  *pt_out = NULL;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = decrypt_in_txn(ctx, sender, device_id, b, len, pt_out);
  return wh_finish_out(ctx, rc, pt_out);
}

int whisper_sender_key_decrypt_store(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                                const uint8_t *body, size_t body_len,
                                const whisper_message_t *in_meta, whisper_buf **plaintext_out) {
  wh_addr probe;
  whisper_buf *pt = NULL;
  whisper_message_t meta_copy, *meta = &meta_copy; /* the fields both sides have */
  int rc;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (plaintext_out) *plaintext_out = NULL;
  if (in_meta == NULL || (body == NULL && body_len))
    return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  if ((rc = wh_message_in(ctx, in_meta, "meta", &meta_copy)) != WHISPER_OK) return rc;
  if ((rc = wh_addr_make(ctx, &probe, sender, device_id)) != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_history_incoming_check(ctx, meta);
  if (rc == WHISPER_OK) rc = decrypt_in_txn(ctx, sender, device_id, body, body_len, &pt);
  if (rc == WHISPER_OK) rc = wh_history_incoming_put(ctx, meta, sender, device_id, pt->data, pt->len);
  rc = wh_finish_out(ctx, rc, &pt);
  if (rc != WHISPER_OK) return rc;
  if (plaintext_out) *plaintext_out = pt;
  else whisper_buf_free(pt);
  return WHISPER_OK;
}

/* --- distribution through 1:1 sessions ------------------------------------------------ */

int whisper_sender_key_distribute(whisper_ctx *ctx, const uint8_t uuid[UUID_LEN],
                             const whisper_device_t *devices, size_t n, uint64_t now_ms,
                             whisper_envelope_t *out) {
  whisper_buf *skdm = NULL, *content = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  if ((devices == NULL || out == NULL) && n) return wh_fail(ctx, WHISPER_EINVAL, "NULL argument");
  /* A versioned array: stepped by the caller's element size (out[0].size);
   * only the fields this library knows are written. */
  size_t esz = n ? out[0].size : sizeof *out;
  int size_rc = WH_SIZE_CHECK(ctx, "out[0]", esz, whisper_envelope_t, WHISPER_ENVELOPE);
  if (size_rc != WHISPER_OK) return size_rc;
  if (n > SIZE_MAX / esz) return wh_fail(ctx, WHISPER_EINVAL, "too many devices");
  size_t known = esz < sizeof *out ? esz : sizeof *out;
#define ENV_AT(i) ((whisper_envelope_t *)((unsigned char *)out + (i) * esz))
  for (size_t i = 0; i < n; i++) {
    memset(ENV_AT(i), 0, known);
    ENV_AT(i)->size = esz;
  }
  int rc = whisper_sender_key_generate(ctx, uuid, &skdm);
  if (rc != WHISPER_OK) return rc;
  Whisper__Wire__Content c = WHISPER__WIRE__CONTENT__INIT;
  c.has_sender_key_distribution_message = 1;
  c.sender_key_distribution_message = (ProtobufCBinaryData){skdm->len, skdm->data};
  content = whisper_buf_new(NULL, whisper__wire__content__get_packed_size(&c));
  if (content == NULL) {
    whisper_buf_free(skdm);
    return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  }
  whisper__wire__content__pack(&c, content->data);
  for (size_t i = 0; i < n; i++) {
    whisper_envelope_t *e = ENV_AT(i);
    e->status = whisper_session_encrypt(ctx, devices[i].name, devices[i].device_id, content->data,
                                        content->len, now_ms, &e->type, &e->body);
  }
#undef ENV_AT
  whisper_buf_free(content);
  whisper_buf_free(skdm);
  return wh_ok(ctx);
}

int whisper_sender_key_receive_distribution(whisper_ctx *ctx, const char *sender, uint32_t device_id,
                                       int type, const uint8_t *body, size_t body_len) {
  wh_addr a;
  whisper_buf *pt = NULL;
  int rc = wh_session_decrypt_check(ctx, &a, sender, device_id, type, body, body_len, &pt);
  if (rc == WHISPER_OK) rc = check_not_self(ctx, sender, device_id);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_session_decrypt_in_txn(ctx, &a, type, body, body_len, &pt);
  if (rc == WHISPER_OK) {
    Whisper__Wire__Content *c = whisper__wire__content__unpack(&wh_pb_alloc, pt->len, pt->data);
    if (c == NULL || !c->has_sender_key_distribution_message)
      rc = wh_fail(ctx, WHISPER_EINVALIDMSG, "the message carries no sender key distribution");
    else
      rc = process_in_txn(ctx, sender, device_id, c->sender_key_distribution_message.data,
                          c->sender_key_distribution_message.len);
    if (c) whisper__wire__content__free_unpacked(c, &wh_pb_alloc);
  }
  whisper_buf_free(pt);
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}
