/* The local identity, prekeys, bundles, and trust of remote identities. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "versioned.h"
#include "protocol/pb.h"
#include "storage.pb-c.h"

#define LOCAL_FORMAT 1
static const char META_PREKEY_NEXT[] = "prekey_next";
static const char META_SPK_CURRENT[] = "signed_prekey_current";
static const char META_PREKEY_COUNT[] = "prekey_count";
static const char META_SPK_RETIRED[] = "signed_prekeys_retired";

static int write_msg(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
                     const ProtobufCMessage *m, int add) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL) return wh_fail(ctx, WHISPER_ENOMEM, "out of memory");
  protobuf_c_message_pack(m, buf);
  int rc = add ? wh_add(ctx, kind, key, key_len, buf, n) : wh_put(ctx, kind, key, key_len, buf, n);
  wh_wipe(buf, n);
  free(buf);
  return rc;
}

int wh_put_msg(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
               const ProtobufCMessage *m) {
  return write_msg(ctx, kind, key, key_len, m, 0);
}

int wh_add_msg(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
               const ProtobufCMessage *m) {
  return write_msg(ctx, kind, key, key_len, m, 1);
}

static int meta_get_u32(whisper_ctx *ctx, const char *name, uint32_t *v) {
  whisper_buf *b;
  int rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)name, strlen(name), &b);
  if (rc != WHISPER_OK) return rc;
  if (b->len != 4) {
    whisper_buf_free(b);
    return wh_fail(ctx, WHISPER_ECORRUPT, "stored counter %s is corrupt", name);
  }
  *v = (uint32_t)b->data[0] << 24 | (uint32_t)b->data[1] << 16 | (uint32_t)b->data[2] << 8 |
       b->data[3];
  whisper_buf_free(b);
  return WHISPER_OK;
}

static int meta_put_u32(whisper_ctx *ctx, const char *name, uint32_t v) {
  uint8_t be[4];
  wh_be32(be, v);
  return wh_put(ctx, WHISPER_REC_META, (const uint8_t *)name, strlen(name), be, 4);
}

int wh_local_identity(whisper_ctx *ctx) {
  whisper_buf *b;
  if (ctx->have_identity) return WHISPER_OK;
  int rc = wh_get(ctx, WHISPER_REC_LOCAL_IDENTITY, NULL, 0, &b);
  if (rc == WHISPER_ENOTFOUND)
    return wh_fail(ctx, WHISPER_ESTATE, "this device has no identity yet");
  if (rc != WHISPER_OK) return rc;
  Whisper__Store__LocalIdentity *li =
      whisper__store__local_identity__unpack(&wh_pb_alloc, b->len, b->data);
  whisper_buf_free(b);
  if (li == NULL || li->format != LOCAL_FORMAT || li->public_key.len != WH_PUB_LEN ||
      li->private_key.len != WH_KEY_LEN || li->name == NULL || strlen(li->name) == 0 ||
      strlen(li->name) > WH_NAME_MAX) {
    if (li) whisper__store__local_identity__free_unpacked(li, &wh_pb_alloc);
    return wh_fail(ctx, WHISPER_ECORRUPT, "the stored local identity is corrupt");
  }
  memcpy(ctx->identity.pub, li->public_key.data, WH_PUB_LEN);
  memcpy(ctx->identity.priv, li->private_key.data, WH_KEY_LEN);
  ctx->registration_id = li->registration_id;
  ctx->device_id = li->device_id;
  strcpy(ctx->name, li->name);
  ctx->have_identity = 1;
  whisper__store__local_identity__free_unpacked(li, &wh_pb_alloc);
  return WHISPER_OK;
}

static int signed_prekey_make(whisper_ctx *ctx, uint32_t id, uint64_t now_ms) {
  wh_keypair kp;
  uint8_t z[64], sig[WH_SIG_LEN], key[4];
  int rc;
  if (wh_keypair_generate(&ctx->rng, &kp) != 0 || wh_random(&ctx->rng, z, sizeof z) != 0) {
    rc = wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
    goto out;
  }
  if (wh_xeddsa_sign(sig, ctx->identity.priv, kp.pub, WH_PUB_LEN, z) != 0) {
    rc = wh_fail(ctx, WHISPER_EINTERNAL, "signing the signed prekey failed");
    goto out;
  }
  Whisper__Store__SignedPreKeyRecord r = WHISPER__STORE__SIGNED_PRE_KEY_RECORD__INIT;
  r.has_id = r.has_public_key = r.has_private_key = r.has_signature = r.has_timestamp = 1;
  r.id = id;
  r.public_key = (ProtobufCBinaryData){WH_PUB_LEN, kp.pub};
  r.private_key = (ProtobufCBinaryData){WH_KEY_LEN, kp.priv};
  r.signature = (ProtobufCBinaryData){WH_SIG_LEN, sig};
  r.timestamp = now_ms;
  wh_be32(key, id);
  rc = wh_put_msg(ctx, WHISPER_REC_SIGNED_PREKEY, key, 4, &r.base);
  if (rc == WHISPER_OK) rc = meta_put_u32(ctx, META_SPK_CURRENT, id);
out:
  wh_wipe(&kp, sizeof kp);
  wh_wipe(z, sizeof z);
  return rc;
}

static int identity_store(whisper_ctx *ctx, const char *name, uint32_t device_id,
                          uint32_t registration_id, const wh_keypair *kp, int with_spk,
                          uint64_t now_ms) {
  wh_addr a;
  whisper_buf *b;
  int rc = wh_addr_make(ctx, &a, name, device_id);
  if (rc != WHISPER_OK) return rc;
  if (registration_id > 16380) return wh_fail(ctx, WHISPER_EINVAL, "registration id over 16380");
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_get(ctx, WHISPER_REC_LOCAL_IDENTITY, NULL, 0, &b);
  if (rc == WHISPER_OK) {
    whisper_buf_free(b);
    return wh_finish(ctx, wh_fail(ctx, WHISPER_ESTATE, "this device already has an identity"));
  }
  if (rc != WHISPER_ENOTFOUND) return wh_finish(ctx, rc);
  while (registration_id == 0) {
    uint8_t r[2];
    if (wh_random(&ctx->rng, r, 2) != 0)
      return wh_finish(ctx, wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed"));
    registration_id = ((uint32_t)r[0] << 8 | r[1]) & 0x3FFF;
    if (registration_id > 16380) registration_id = 0;
  }
  Whisper__Store__LocalIdentity li = WHISPER__STORE__LOCAL_IDENTITY__INIT;
  li.has_format = li.has_public_key = li.has_private_key = 1;
  li.has_registration_id = li.has_device_id = 1;
  li.format = LOCAL_FORMAT;
  li.public_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)kp->pub};
  li.private_key = (ProtobufCBinaryData){WH_KEY_LEN, (uint8_t *)kp->priv};
  li.registration_id = registration_id;
  li.name = (char *)name;
  li.device_id = device_id;
  rc = wh_put_msg(ctx, WHISPER_REC_LOCAL_IDENTITY, NULL, 0, &li.base);
  if (rc == WHISPER_OK) rc = wh_local_identity(ctx);
  if (rc == WHISPER_OK && with_spk) rc = signed_prekey_make(ctx, 1, now_ms);
  if (rc != WHISPER_OK) ctx->have_identity = 0;
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) {
    ctx->have_identity = 0;
    return rc;
  }
  return wh_ok(ctx);
}

int whisper_identity_generate(whisper_ctx *ctx, const char *name, uint32_t device_id,
                            uint32_t registration_id, uint64_t now_ms) {
  wh_keypair kp;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (wh_keypair_generate(&ctx->rng, &kp) != 0)
    return wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
  int rc = identity_store(ctx, name, device_id, registration_id, &kp, 1, now_ms);
  wh_wipe(&kp, sizeof kp);
  return rc;
}

int whisper_identity_import(whisper_ctx *ctx, const char *name, uint32_t device_id,
                            uint32_t registration_id, const whisper_keypair_t *identity) {
  wh_keypair kp;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (identity == NULL) return wh_fail(ctx, WHISPER_EINVAL, "identity is NULL");
  if (wh_keypair_from_priv(&kp, identity->priv) != 0)
    return wh_fail(ctx, WHISPER_EINTERNAL, "cannot derive the public key");
  if (memcmp(kp.pub, identity->pub, WH_PUB_LEN) != 0) {
    wh_wipe(&kp, sizeof kp);
    return wh_fail(ctx, WHISPER_EINVALIDKEY, "the public key does not match the private key");
  }
  int rc = identity_store(ctx, name, device_id, registration_id, &kp, 0, 0);
  wh_wipe(&kp, sizeof kp);
  return rc;
}

int whisper_identity_get(whisper_ctx *ctx, uint8_t pub[WHISPER_PUBLIC_KEY_LEN],
                         uint32_t *registration_id, const char **name_out, uint32_t *device_id) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if (pub) memcpy(pub, ctx->identity.pub, WH_PUB_LEN);
  if (registration_id) *registration_id = ctx->registration_id;
  if (name_out) *name_out = ctx->name;
  if (device_id) *device_id = ctx->device_id;
  return wh_ok(ctx);
}

int whisper_signed_prekey_rotate(whisper_ctx *ctx, uint64_t now_ms, uint64_t max_age_ms,
                                 uint64_t grace_ms, int *rotated) {
  wh_keypair kp;
  uint32_t cur = 0;
  uint64_t made = 0;
  whisper_buf *b = NULL;
  Whisper__Store__RetiredSignedPreKeys *old = NULL;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (rotated) *rotated = 0;
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = meta_get_u32(ctx, META_SPK_CURRENT, &cur);
  if (rc == WHISPER_ENOTFOUND) rc = wh_fail(ctx, WHISPER_ESTATE, "no signed prekey yet");
  if (rc == WHISPER_OK) rc = wh_load_prekey(ctx, WHISPER_REC_SIGNED_PREKEY, cur, &kp, NULL, &made);
  wh_wipe(&kp, sizeof kp);
  if (rc == WHISPER_OK) {
    rc = wh_get(ctx, WHISPER_REC_META, (const uint8_t *)META_SPK_RETIRED, strlen(META_SPK_RETIRED), &b);
    if (rc == WHISPER_OK) {
      old = whisper__store__retired_signed_pre_keys__unpack(&wh_pb_alloc, b->len, b->data);
      if (old == NULL || old->n_id != old->n_retired_at)
        rc = wh_fail(ctx, WHISPER_ECORRUPT, "the retired signed prekeys list is corrupt");
    } else if (rc == WHISPER_ENOTFOUND) {
      rc = WHISPER_OK;
    }
  }
  /* the kept list: the retired ones still in their grace, plus the current
   * one if it is replaced now */
  size_t n_old = old ? old->n_id : 0;
  uint32_t ids[65];
  uint64_t at[65];
  size_t n = 0;
  for (size_t i = 0; rc == WHISPER_OK && i < n_old; i++) {
    if (old->retired_at[i] + grace_ms < now_ms || n == 64) {
      uint8_t k[4];
      wh_be32(k, old->id[i]);
      rc = wh_del(ctx, WHISPER_REC_SIGNED_PREKEY, k, 4);
    } else {
      ids[n] = old->id[i];
      at[n++] = old->retired_at[i];
    }
  }
  int rotate = rc == WHISPER_OK && (max_age_ms == 0 || made + max_age_ms < now_ms);
  if (rotate) {
    rc = signed_prekey_make(ctx, cur + 1, now_ms);
    ids[n] = cur;
    at[n++] = now_ms;
  }
  if (rc == WHISPER_OK) {
    Whisper__Store__RetiredSignedPreKeys r = WHISPER__STORE__RETIRED_SIGNED_PRE_KEYS__INIT;
    r.n_id = r.n_retired_at = n;
    r.id = ids;
    r.retired_at = at;
    rc = wh_put_msg(ctx, WHISPER_REC_META, (const uint8_t *)META_SPK_RETIRED,
                    strlen(META_SPK_RETIRED), &r.base);
  }
  if (old) whisper__store__retired_signed_pre_keys__free_unpacked(old, &wh_pb_alloc);
  whisper_buf_free(b);
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) return rc;
  if (rotated) *rotated = rotate;
  return wh_ok(ctx);
}

int wh_signed_prekey_current(whisper_ctx *ctx, uint32_t *id, uint64_t *made_ms) {
  wh_keypair kp;
  int rc = wh_begin(ctx);
  if (rc != WHISPER_OK) return rc;
  rc = meta_get_u32(ctx, META_SPK_CURRENT, id);
  if (rc == WHISPER_ENOTFOUND) rc = wh_fail(ctx, WHISPER_ESTATE, "no signed prekey yet");
  if (rc == WHISPER_OK) rc = wh_load_prekey(ctx, WHISPER_REC_SIGNED_PREKEY, *id, &kp, NULL, made_ms);
  wh_wipe(&kp, sizeof kp);
  return wh_finish(ctx, rc);
}

int whisper_signed_prekey_generate(whisper_ctx *ctx, uint32_t id, uint64_t now_ms) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_finish(ctx, signed_prekey_make(ctx, id, now_ms));
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int wh_prekey_count_add(whisper_ctx *ctx, int32_t delta) {
  uint32_t n = 0;
  int rc = meta_get_u32(ctx, META_PREKEY_COUNT, &n);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  int64_t v = (int64_t)n + delta;
  return meta_put_u32(ctx, META_PREKEY_COUNT, v < 0 ? 0 : (uint32_t)v);
}

int whisper_prekeys_count(whisper_ctx *ctx, uint32_t *count) {
  if (ctx == NULL) return WHISPER_EINVAL;
  if (count == NULL) return wh_fail(ctx, WHISPER_EINVAL, "count is NULL");
  *count = 0;
  int rc = wh_begin(ctx);
  if (rc != WHISPER_OK) return rc;
  rc = meta_get_u32(ctx, META_PREKEY_COUNT, count);
  if (rc == WHISPER_ENOTFOUND) rc = WHISPER_OK;
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

static int prekeys_make(whisper_ctx *ctx, uint32_t count, uint32_t *first_id) {
  uint32_t next = 1;
  int rc = meta_get_u32(ctx, META_PREKEY_NEXT, &next);
  if (rc == WHISPER_ENOTFOUND) next = 1, rc = WHISPER_OK;
  else if (rc != WHISPER_OK) return rc;
  if (count == 0 || (uint64_t)next + count > UINT32_MAX)
    return wh_fail(ctx, WHISPER_EINVAL, "prekey count is 0 or the ids are exhausted");
  if (first_id) *first_id = next;
  for (uint32_t i = 0; i < count && rc == WHISPER_OK; i++) {
    wh_keypair kp;
    uint8_t key[4];
    if (wh_keypair_generate(&ctx->rng, &kp) != 0)
      return wh_fail(ctx, WHISPER_ERANDOM, "the random number generator failed");
    Whisper__Store__PreKeyRecord r = WHISPER__STORE__PRE_KEY_RECORD__INIT;
    r.has_id = r.has_public_key = r.has_private_key = 1;
    r.id = next + i;
    r.public_key = (ProtobufCBinaryData){WH_PUB_LEN, kp.pub};
    r.private_key = (ProtobufCBinaryData){WH_KEY_LEN, kp.priv};
    wh_be32(key, r.id);
    rc = wh_put_msg(ctx, WHISPER_REC_PREKEY, key, 4, &r.base);
    wh_wipe(&kp, sizeof kp);
  }
  if (rc == WHISPER_OK) rc = meta_put_u32(ctx, META_PREKEY_NEXT, next + count);
  if (rc == WHISPER_OK) rc = wh_prekey_count_add(ctx, (int32_t)count);
  return rc;
}

int whisper_prekeys_generate(whisper_ctx *ctx, uint32_t count, uint32_t *first_id) {
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = wh_finish(ctx, prekeys_make(ctx, count, first_id));
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* Loads a stored key pair record (prekey or signed prekey). */
int wh_load_prekey(whisper_ctx *ctx, int kind, uint32_t id, wh_keypair *kp, uint8_t *sig,
                   uint64_t *ts) {
  uint8_t key[4];
  whisper_buf *b;
  wh_be32(key, id);
  int rc = wh_get(ctx, kind, key, 4, &b);
  if (rc != WHISPER_OK) return rc;
  ProtobufCBinaryData pub, priv, s = {0, NULL};
  uint64_t t = 0;
  void *m;
  if (kind == WHISPER_REC_PREKEY) {
    Whisper__Store__PreKeyRecord *r = whisper__store__pre_key_record__unpack(&wh_pb_alloc, b->len, b->data);
    m = r;
    if (r) pub = r->public_key, priv = r->private_key;
  } else {
    Whisper__Store__SignedPreKeyRecord *r =
        whisper__store__signed_pre_key_record__unpack(&wh_pb_alloc, b->len, b->data);
    m = r;
    if (r) pub = r->public_key, priv = r->private_key, s = r->signature, t = r->timestamp;
  }
  whisper_buf_free(b);
  rc = WHISPER_OK;
  if (m == NULL || pub.len != WH_PUB_LEN || priv.len != WH_KEY_LEN ||
      (kind == WHISPER_REC_SIGNED_PREKEY && s.len != WH_SIG_LEN)) {
    rc = wh_fail(ctx, WHISPER_ECORRUPT, "stored prekey %u is corrupt", id);
  } else {
    memcpy(kp->pub, pub.data, WH_PUB_LEN);
    memcpy(kp->priv, priv.data, WH_KEY_LEN);
    if (sig) memcpy(sig, s.data, WH_SIG_LEN);
    if (ts) *ts = t;
  }
  if (m) protobuf_c_message_free_unpacked(m, &wh_pb_alloc);
  return rc;
}

/* Checks that kp's public key is the one of its private key. */
static int keypair_check(whisper_ctx *ctx, const whisper_keypair_t *key, wh_keypair *kp) {
  if (key == NULL) return wh_fail(ctx, WHISPER_EINVAL, "key is NULL");
  if (wh_keypair_from_priv(kp, key->priv) != 0 || memcmp(kp->pub, key->pub, WH_PUB_LEN) != 0) {
    wh_wipe(kp, sizeof *kp);
    return wh_fail(ctx, WHISPER_EINVALIDKEY, "the public key does not match the private key");
  }
  return WHISPER_OK;
}

int whisper_signed_prekey_import(whisper_ctx *ctx, uint32_t id, const whisper_keypair_t *key,
                                 const uint8_t signature[WHISPER_SIGNATURE_LEN],
                                 uint64_t timestamp_ms) {
  wh_keypair kp;
  uint8_t k[4];
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if (signature == NULL) return wh_fail(ctx, WHISPER_EINVAL, "signature is NULL");
  if ((rc = keypair_check(ctx, key, &kp)) != WHISPER_OK) return rc;
  if (wh_xeddsa_verify(ctx->identity.pub + 1, kp.pub, WH_PUB_LEN, signature) != 0) {
    wh_wipe(&kp, sizeof kp);
    return wh_fail(ctx, WHISPER_EINVALIDSIG, "the signature is not the identity's");
  }
  Whisper__Store__SignedPreKeyRecord r = WHISPER__STORE__SIGNED_PRE_KEY_RECORD__INIT;
  r.has_id = r.has_public_key = r.has_private_key = r.has_signature = r.has_timestamp = 1;
  r.id = id;
  r.public_key = (ProtobufCBinaryData){WH_PUB_LEN, kp.pub};
  r.private_key = (ProtobufCBinaryData){WH_KEY_LEN, kp.priv};
  r.signature = (ProtobufCBinaryData){WH_SIG_LEN, (uint8_t *)signature};
  r.timestamp = timestamp_ms;
  wh_be32(k, id);
  if ((rc = wh_begin(ctx)) == WHISPER_OK) {
    rc = wh_put_msg(ctx, WHISPER_REC_SIGNED_PREKEY, k, 4, &r.base);
    if (rc == WHISPER_OK) rc = meta_put_u32(ctx, META_SPK_CURRENT, id);
    rc = wh_finish(ctx, rc);
  }
  wh_wipe(&kp, sizeof kp);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int whisper_prekey_import(whisper_ctx *ctx, uint32_t id, const whisper_keypair_t *key) {
  wh_keypair kp;
  uint8_t k[4];
  uint32_t next = 1;
  if (ctx == NULL) return WHISPER_EINVAL;
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if (id == UINT32_MAX) return wh_fail(ctx, WHISPER_EINVAL, "prekey id out of range");
  if ((rc = keypair_check(ctx, key, &kp)) != WHISPER_OK) return rc;
  Whisper__Store__PreKeyRecord r = WHISPER__STORE__PRE_KEY_RECORD__INIT;
  r.has_id = r.has_public_key = r.has_private_key = 1;
  r.id = id;
  r.public_key = (ProtobufCBinaryData){WH_PUB_LEN, kp.pub};
  r.private_key = (ProtobufCBinaryData){WH_KEY_LEN, kp.priv};
  wh_be32(k, id);
  if ((rc = wh_begin(ctx)) == WHISPER_OK) {
    rc = wh_put_msg(ctx, WHISPER_REC_PREKEY, k, 4, &r.base);
    if (rc == WHISPER_OK) {
      rc = meta_get_u32(ctx, META_PREKEY_NEXT, &next);
      if (rc == WHISPER_ENOTFOUND) next = 1, rc = WHISPER_OK;
    }
    if (rc == WHISPER_OK && id >= next) rc = meta_put_u32(ctx, META_PREKEY_NEXT, id + 1);
    if (rc == WHISPER_OK) rc = wh_prekey_count_add(ctx, 1);
    rc = wh_finish(ctx, rc);
  }
  wh_wipe(&kp, sizeof kp);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int whisper_bundle_generate(whisper_ctx *ctx, int with_prekey, whisper_prekey_bundle_t *caller) {
  wh_keypair kp;
  uint32_t spk_id;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (caller == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  int size_rc = WH_SIZE_CHECK(ctx, "out", caller->size, whisper_prekey_bundle_t, WHISPER_PREKEY_BUNDLE);
  if (size_rc != WHISPER_OK) return size_rc;
  /* filled here, then the fields both sides have copied out */
  whisper_prekey_bundle_t bundle, *out = &bundle;
  memset(out, 0, sizeof *out);
  int rc = wh_local_identity(ctx);
  if (rc != WHISPER_OK) return rc;
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  rc = meta_get_u32(ctx, META_SPK_CURRENT, &spk_id);
  if (rc == WHISPER_ENOTFOUND) rc = wh_fail(ctx, WHISPER_ESTATE, "no signed prekey yet");
  if (rc == WHISPER_OK)
    rc = wh_load_prekey(ctx, WHISPER_REC_SIGNED_PREKEY, spk_id, &kp, out->signed_prekey_signature,
                        NULL);
  if (rc == WHISPER_OK) {
    out->signed_prekey_id = spk_id;
    memcpy(out->signed_prekey, kp.pub, WH_PUB_LEN);
  }
  if (rc == WHISPER_OK && with_prekey) {
    rc = prekeys_make(ctx, 1, &out->prekey_id);
    if (rc == WHISPER_OK) rc = wh_load_prekey(ctx, WHISPER_REC_PREKEY, out->prekey_id, &kp, NULL, NULL);
    if (rc == WHISPER_OK) {
      out->has_prekey = 1;
      memcpy(out->prekey, kp.pub, WH_PUB_LEN);
    }
  }
  wh_wipe(&kp, sizeof kp);
  out->registration_id = ctx->registration_id;
  out->device_id = ctx->device_id;
  memcpy(out->identity_key, ctx->identity.pub, WH_PUB_LEN);
  rc = wh_finish(ctx, rc);
  if (rc != WHISPER_OK) memset(out, 0, sizeof *out);
  wh_versioned_out(caller, out, sizeof *out);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

/* --- trust ----------------------------------------------------------------- */

/* A device's remembered key and the name-wide one (set by trusting a key
 * for WHISPER_ALL_DEVICES) each carry a sequence number; the newer of the
 * two is the key expected from that device. */
static const char META_TRUST_SEQ[] = "trust_seq";

typedef struct remote_id {
  int present;
  uint8_t key[WH_PUB_LEN];
  uint64_t seq;
  uint64_t changed_at; /* 0: never changed; 1: changed at an unknown time */
} remote_id;

static int remote_parse(whisper_ctx *ctx, const uint8_t *b, size_t n, remote_id *out) {
  Whisper__Store__RemoteIdentity *r = whisper__store__remote_identity__unpack(&wh_pb_alloc, n, b);
  if (r == NULL || r->identity_key.len != WH_PUB_LEN) {
    if (r) whisper__store__remote_identity__free_unpacked(r, &wh_pb_alloc);
    return wh_fail(ctx, WHISPER_ECORRUPT, "a stored remote identity is corrupt");
  }
  out->present = 1;
  memcpy(out->key, r->identity_key.data, WH_PUB_LEN);
  out->seq = r->seq;
  out->changed_at = r->has_changed_at ? r->changed_at : 0;
  whisper__store__remote_identity__free_unpacked(r, &wh_pb_alloc);
  return WHISPER_OK;
}

static int remote_load(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
                       remote_id *out) {
  const uint8_t *v;
  size_t n;
  memset(out, 0, sizeof *out);
  int rc = wh_get_view(ctx, kind, key, key_len, &v, &n);
  if (rc == WHISPER_ENOTFOUND) return WHISPER_OK;
  if (rc != WHISPER_OK) return rc;
  return remote_parse(ctx, v, n, out);
}

/* `changed_at`: when the key replaced a different one (0: it did not; 1:
 * at a time the caller did not give). */
static int remote_put(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
                      const uint8_t id_key[WH_PUB_LEN], uint64_t changed_at) {
  uint32_t seq = 0;
  int rc = meta_get_u32(ctx, META_TRUST_SEQ, &seq);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  if ((rc = meta_put_u32(ctx, META_TRUST_SEQ, seq + 1)) != WHISPER_OK) return rc;
  Whisper__Store__RemoteIdentity r = WHISPER__STORE__REMOTE_IDENTITY__INIT;
  r.has_identity_key = r.has_seq = 1;
  r.identity_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)id_key};
  r.has_changed_at = changed_at != 0;
  r.changed_at = changed_at;
  r.seq = (uint64_t)seq + 1;
  return wh_put_msg(ctx, kind, key, key_len, &r.base);
}

/* The name part of an address key (up to the 0x00). */
static size_t addr_name_len(const wh_addr *a) { return a->len - 5; }

/*
 * The trust memo: for the last few addresses checked, the bytes of the
 * two rows expected_key() reads (the device's and the name's, or their
 * absence) and the key they expect. The rows are read every time (the
 * store is the truth); they are decoded only when their bytes are not the
 * ones remembered.
 */
#define TRUST_ROW_MAX 96 /* a RemoteIdentity is at most 57 bytes as written here */
#define TRUST_SLOTS 4

typedef struct trust_row {
  int present;
  size_t len; /* > TRUST_ROW_MAX: not kept */
  uint8_t b[TRUST_ROW_MAX];
} trust_row;

typedef struct trust_slot {
  wh_addr a; /* a.len 0: unused */
  trust_row row[2];
  remote_id want;
  uint64_t used;
} trust_slot;

struct wh_trust_memo {
  trust_slot slot[TRUST_SLOTS];
  uint64_t clock;
};

void wh_trust_memo_free(whisper_ctx *ctx) {
  free(ctx->trust_memo);
  ctx->trust_memo = NULL;
}

static int rows_equal(const trust_row *x, const trust_row *y) {
  return x->present == y->present && x->len == y->len && x->len <= TRUST_ROW_MAX &&
         memcmp(x->b, y->b, x->len) == 0;
}

/* The key expected from a device, if any: the newer of the device's and
 * the name's. */
static int expected_key(whisper_ctx *ctx, const wh_addr *a, remote_id *out) {
  const int kinds[2] = {WHISPER_REC_REMOTE_IDENTITY, WHISPER_REC_TRUSTED_NAME};
  const size_t lens[2] = {a->len, addr_name_len(a)};
  trust_row row[2];
  remote_id id[2];
  int parsed[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    const uint8_t *v;
    size_t n;
    memset(&id[i], 0, sizeof id[i]);
    row[i].present = 0;
    row[i].len = 0;
    int rc = wh_get_view(ctx, kinds[i], a->key, lens[i], &v, &n);
    if (rc == WHISPER_ENOTFOUND) continue;
    if (rc != WHISPER_OK) return rc;
    row[i].present = 1;
    row[i].len = n;
    if (n <= TRUST_ROW_MAX) {
      memcpy(row[i].b, v, n);
    } else { /* parsed now: the view ends at the next read */
      if ((rc = remote_parse(ctx, v, n, &id[i])) != WHISPER_OK) return rc;
      parsed[i] = 1;
    }
  }
  struct wh_trust_memo *m = ctx->trust_memo;
  trust_slot *sl = NULL;
  for (int i = 0; m && i < TRUST_SLOTS; i++)
    if (m->slot[i].a.len == a->len && memcmp(m->slot[i].a.key, a->key, a->len) == 0)
      sl = &m->slot[i];
  if (sl && rows_equal(&sl->row[0], &row[0]) && rows_equal(&sl->row[1], &row[1])) {
    sl->used = ++m->clock;
    *out = sl->want;
    return WHISPER_OK;
  }
  for (int i = 0; i < 2; i++)
    if (row[i].present && !parsed[i]) {
      int rc = remote_parse(ctx, row[i].b, row[i].len, &id[i]);
      if (rc != WHISPER_OK) return rc;
    }
  *out = id[1].present && (!id[0].present || id[1].seq > id[0].seq) ? id[1] : id[0];
  if (row[0].len > TRUST_ROW_MAX || row[1].len > TRUST_ROW_MAX) return WHISPER_OK;
  if (m == NULL && (m = ctx->trust_memo = calloc(1, sizeof *m)) == NULL) return WHISPER_OK;
  if (sl == NULL) {
    sl = &m->slot[0];
    for (int i = 1; i < TRUST_SLOTS; i++)
      if (m->slot[i].used < sl->used) sl = &m->slot[i];
    sl->a = *a;
  }
  sl->row[0] = row[0];
  sl->row[1] = row[1];
  sl->want = *out;
  sl->used = ++m->clock;
  return WHISPER_OK;
}

int wh_identity_is_trusted(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN],
                           int *trusted) {
  remote_id want;
  int rc = expected_key(ctx, a, &want);
  if (rc != WHISPER_OK) return rc;
  /* trust on first use */
  *trusted = !want.present || memcmp(want.key, key, WH_PUB_LEN) == 0;
  return WHISPER_OK;
}

int wh_identity_check_save(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN]) {
  /* inside a batch (one transaction, nothing else changes trust) the last
   * addresses found trusted are remembered */
  if (ctx->record_cache)
    for (int i = 0; i < WH_IDENTITY_MEMO; i++) {
      const wh_identity_memo *m = &ctx->identity_memo[i];
      if (m->valid && m->addr.len == a->len && memcmp(m->addr.key, a->key, a->len) == 0 &&
          memcmp(m->key, key, WH_PUB_LEN) == 0)
        return WHISPER_OK;
    }
  remote_id want;
  int rc = expected_key(ctx, a, &want);
  if (rc != WHISPER_OK) return rc;
  if (want.present && memcmp(want.key, key, WH_PUB_LEN) != 0)
    return wh_fail(ctx, WHISPER_EUNTRUSTED, "the identity key of this device changed");
  if (!want.present) rc = remote_put(ctx, WHISPER_REC_REMOTE_IDENTITY, a->key, a->len, key, 0);
  if (rc == WHISPER_OK && ctx->record_cache) {
    wh_identity_memo *m = &ctx->identity_memo[ctx->identity_memo_next++ % WH_IDENTITY_MEMO];
    m->addr = *a;
    memcpy(m->key, key, WH_PUB_LEN);
    m->valid = 1;
  }
  return rc;
}

/* Saves `key` as the one expected from the device; if it replaces a
 * different one, the change is stamped `now_ms` (at least 1). */
static int identity_save_at(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN],
                            uint64_t now_ms) {
  remote_id want;
  int rc = expected_key(ctx, a, &want);
  if (rc != WHISPER_OK) return rc;
  if (want.present && memcmp(want.key, key, WH_PUB_LEN) == 0) return WHISPER_OK;
  uint64_t changed_at = want.present ? (now_ms ? now_ms : 1) : 0;
  return remote_put(ctx, WHISPER_REC_REMOTE_IDENTITY, a->key, a->len, key, changed_at);
}

int wh_identity_save(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN]) {
  return identity_save_at(ctx, a, key, 0);
}

/* The name-wide key: stamped when it replaces a different name-wide key. */
static int name_trust_at(whisper_ctx *ctx, const wh_addr *a, const uint8_t key[WH_PUB_LEN],
                         uint64_t now_ms) {
  remote_id old;
  int rc = remote_load(ctx, WHISPER_REC_TRUSTED_NAME, a->key, addr_name_len(a), &old);
  if (rc != WHISPER_OK) return rc;
  int changed = old.present && memcmp(old.key, key, WH_PUB_LEN) != 0;
  return remote_put(ctx, WHISPER_REC_TRUSTED_NAME, a->key, addr_name_len(a), key,
                    changed ? (now_ms ? now_ms : 1) : 0);
}

int whisper_identity_trust(whisper_ctx *ctx, const char *name, uint32_t device_id,
                           const uint8_t *key, size_t key_len) {
  return whisper_identity_trust_at(ctx, name, device_id, key, key_len, 0);
}

int whisper_identity_trust_at(whisper_ctx *ctx, const char *name, uint32_t device_id,
                              const uint8_t *key, size_t key_len, uint64_t now_ms) {
  wh_addr a;
  if (ctx == NULL) return WHISPER_EINVAL;
  int all = device_id == WHISPER_ALL_DEVICES;
  int rc = wh_addr_make(ctx, &a, name, all ? 0 : device_id);
  if (rc != WHISPER_OK) return rc;
  if (!wh_pub_ok(key, key_len)) return wh_fail(ctx, WHISPER_EINVALIDKEY, "malformed identity key");
  if ((rc = wh_begin(ctx)) != WHISPER_OK) return rc;
  if (all)
    rc = name_trust_at(ctx, &a, key, now_ms);
  else
    rc = identity_save_at(ctx, &a, key, now_ms);
  rc = wh_finish(ctx, rc);
  return rc == WHISPER_OK ? wh_ok(ctx) : rc;
}

int whisper_identity_remote(whisper_ctx *ctx, const char *name, uint32_t device_id,
                            uint8_t key[WHISPER_PUBLIC_KEY_LEN]) {
  if (key == NULL) return ctx ? wh_fail(ctx, WHISPER_EINVAL, "key is NULL") : WHISPER_EINVAL;
  whisper_identity_info_t info = WHISPER_IDENTITY_INFO_INIT;
  int rc = whisper_identity_info(ctx, name, device_id, &info);
  if (rc == WHISPER_OK) memcpy(key, info.key, WH_PUB_LEN);
  return rc;
}

int whisper_identity_info(whisper_ctx *ctx, const char *name, uint32_t device_id,
                          whisper_identity_info_t *out) {
  wh_addr a;
  if (ctx == NULL) return WHISPER_EINVAL;
  if (out == NULL) return wh_fail(ctx, WHISPER_EINVAL, "out is NULL");
  /* A versioned struct: the caller's size says how much of it there is. */
  int rc = WH_SIZE_CHECK(ctx, "out", out->size, whisper_identity_info_t, WHISPER_IDENTITY_INFO);
  if (rc != WHISPER_OK) return rc;
  whisper_identity_info_t info;
  memset(&info, 0, sizeof info);
  rc = wh_addr_make(ctx, &a, name, device_id);
  if (rc != WHISPER_OK) return rc;
  remote_id want;
  rc = expected_key(ctx, &a, &want);
  if (rc != WHISPER_OK) return rc;
  if (!want.present)
    return wh_fail(ctx, WHISPER_ENOTFOUND, "no identity known for %s.%u", name, device_id);
  memcpy(info.key, want.key, WH_PUB_LEN);
  info.changed = want.changed_at != 0;
  info.changed_at_ms = want.changed_at > 1 ? want.changed_at : 0;
  wh_versioned_out(out, &info, sizeof info); /* the fields both sides have */
  return wh_ok(ctx);
}
