/* Crypto core: known answers from RFCs, the wire sheet and libsignal's
 * vectors (tests/vectors/), plus the refusals. White-box: uses src/crypto. */
#include "crypto/crypto.h"
#include "test.h"

static void test_hkdf_hmac(void) {
  /* RFC 5869 test case 1 */
  uint8_t ikm[22], salt[13], okm[42], want[42];
  memset(ikm, 0x0b, sizeof ikm);
  for (int i = 0; i < 13; i++) salt[i] = (uint8_t)i;
  const uint8_t info[] = {0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0};
  wh_hkdf(okm, sizeof okm, salt, sizeof salt, ikm, sizeof ikm, (const char *)info);
  unhex_to(want, 42,
           "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  CHECK(memcmp(okm, want, 42) == 0);
  /* no salt = 32 zero bytes = empty salt (RFC 5869 test case 3 uses empty) */
  uint8_t okm3[42], want3[42];
  wh_hkdf(okm3, sizeof okm3, NULL, 0, ikm, sizeof ikm, "");
  unhex_to(want3, 42,
           "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
  CHECK(memcmp(okm3, want3, 42) == 0);

  /* libsignal's chain KAT: message keys and next chain key */
  uint8_t ck[32], seed[32], mk[80], next[32], w[80];
  const uint8_t one = 1, two = 2;
  unhex_to(ck, 32, "8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f");
  wh_hmac(seed, ck, 32, &one, 1);
  wh_hkdf(mk, 80, NULL, 0, seed, 32, "WhisperMessageKeys");
  unhex_to(w, 80,
           "bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217"
           "c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b"
           "afa8207986b692a116d4b40bbff72d6c");
  CHECK(memcmp(mk, w, 80) == 0);
  wh_hmac(next, ck, 32, &two, 1);
  unhex_to(w, 32, "28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d");
  CHECK(memcmp(next, w, 32) == 0);
}

static void test_aes(void) {
  uint8_t key[32], iv[16], pt[10], ct[16], want[16], back[32];
  size_t n = 0;
  unhex_to(key, 32, "4e22eb16d964779994222e82192ce9f747da72dc4abe49dfdeeb71d0ffe3796e");
  unhex_to(iv, 16, "6f8a557ddc0a140c878063a6d5f31d3d");
  unhex_to(pt, 10, "30736294a124482a4159");
  unhex_to(want, 16, "dd3f573ab4508b9ed0e45e0baf5608f3");
  CHECK(wh_cbc_len(10) == 16);
  CHECK(wh_cbc_len(16) == 32);
  CHECK(wh_cbc_len(0) == 16);
  CHECK(wh_cbc_encrypt(ct, key, iv, pt, 10) == 0);
  CHECK(memcmp(ct, want, 16) == 0);
  CHECK(wh_cbc_decrypt(back, &n, key, iv, ct, 16) == 0 && n == 10 && memcmp(back, pt, 10) == 0);
  CHECK(wh_cbc_decrypt(back, &n, key, iv, ct, 0) != 0);  /* empty */
  CHECK(wh_cbc_decrypt(back, &n, key, iv, ct, 15) != 0); /* not a block multiple */
  ct[15] ^= 0x01;                                        /* padding destroyed */
  CHECK(wh_cbc_decrypt(back, &n, key, iv, ct, 16) != 0);
}

/* AES-256-GCM: the GCM specification's test case 16 (AES-256, 96-bit IV,
 * with associated data), and a tag or AD changed. */
static void test_gcm(void) {
  uint8_t key[32], iv[12], ad[20], pt[60], ct[60], want[60], tag[16], want_tag[16], back[60];
  unhex_to(key, 32, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  unhex_to(iv, 12, "cafebabefacedbaddecaf888");
  unhex_to(ad, 20, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
  unhex_to(pt, 60,
           "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
           "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  unhex_to(want, 60,
           "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
           "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662");
  unhex_to(want_tag, 16, "76fc6ece0f4e1768cddf8853bb2d551b");
  CHECK(wh_gcm_encrypt(ct, tag, key, iv, ad, sizeof ad, pt, sizeof pt) == 0);
  CHECK(memcmp(ct, want, sizeof ct) == 0 && memcmp(tag, want_tag, 16) == 0);
  CHECK(wh_gcm_decrypt(back, key, iv, ad, sizeof ad, ct, sizeof ct, tag) == 0 &&
        memcmp(back, pt, sizeof pt) == 0);
  tag[0] ^= 1;
  CHECK(wh_gcm_decrypt(back, key, iv, ad, sizeof ad, ct, sizeof ct, tag) != 0);
  CHECK(back[0] == 0 && back[59] == 0); /* nothing unauthenticated left */
  tag[0] ^= 1;
  ad[0] ^= 1;
  CHECK(wh_gcm_decrypt(back, key, iv, ad, sizeof ad, ct, sizeof ct, tag) != 0);
  ad[0] ^= 1;
  ct[59] ^= 1;
  CHECK(wh_gcm_decrypt(back, key, iv, ad, sizeof ad, ct, sizeof ct, tag) != 0);
  /* empty plaintext, no associated data */
  CHECK(wh_gcm_encrypt(ct, tag, key, iv, NULL, 0, NULL, 0) == 0);
  CHECK(wh_gcm_decrypt(back, key, iv, NULL, 0, ct, 0, tag) == 0);
}

static void test_agreement(void) {
  json_value *v = load_vector("agreement.json");
  const json_value *pairs = json_get(v, "pairs");
  CHECK(pairs && pairs->count == 10);
  for (size_t i = 0; pairs && i < pairs->count; i++) {
    const json_value *a = json_get(pairs->items[i], "a"), *b = json_get(pairs->items[i], "b");
    wh_keypair ka, kb;
    uint8_t in[32], pub[33], s1[32], s2[32], want[32];
    unhex_to(in, 32, jstr(a, "private_input_hex"));
    wh_keypair_from_priv(&ka, in);
    unhex_to(pub, 33, jstr(a, "public_hex"));
    CHECK(memcmp(ka.pub, pub, 33) == 0);
    unhex_to(want, 32, jstr(a, "private_hex"));
    CHECK(memcmp(ka.priv, want, 32) == 0); /* clamped */
    unhex_to(in, 32, jstr(b, "private_input_hex"));
    wh_keypair_from_priv(&kb, in);
    unhex_to(want, 32, jstr(pairs->items[i], "shared_secret_hex"));
    CHECK(wh_dh(s1, ka.priv, kb.pub) == 0 && memcmp(s1, want, 32) == 0);
    CHECK(wh_dh(s2, kb.priv, ka.pub) == 0 && memcmp(s2, want, 32) == 0);
  }
  json_free(v);

  /* the wire sheet's X25519 vector, and a low-order key refused */
  uint8_t priv[32], pub[33] = {5}, out[32], want[32];
  unhex_to(priv, 32, "c806439dc9d2c476ffed8f2580c0888d58ab406bf7ae3698879021b96bb4bf59");
  unhex_to(pub + 1, 32, "653614993d2b15ee9e5fd3d86ce719ef4ec1daae1886a87b3f5fa9565a27a22f");
  unhex_to(want, 32, "325f239328941ced6e673b86ba41017448e99b649a9c3806c1dd7ca4c477e629");
  CHECK(wh_dh(out, priv, pub) == 0 && memcmp(out, want, 32) == 0);
  uint8_t zero[33] = {5};
  CHECK(wh_dh(out, priv, zero) != 0);
  uint8_t allzero[32] = {0};
  CHECK(memcmp(out, allzero, 32) == 0); /* and nothing left behind */
}

static void test_signatures(void) {
  json_value *v = load_vector("signature.json");
  const json_value *keys = json_get(v, "keys");
  int checked = 0;
  for (size_t i = 0; keys && i < keys->count; i++) {
    const json_value *k = keys->items[i];
    size_t pl;
    uint8_t *pub = unhex(jstr(k, "public_hex"), &pl);
    const json_value *sigs = json_get(k, "signatures");
    for (size_t j = 0; sigs && j < sigs->count; j++) {
      size_t ml, sl, fl, wl;
      uint8_t *msg = unhex(jstr(sigs->items[j], "message_hex"), &ml);
      uint8_t *sig = unhex(jstr(sigs->items[j], "signature_hex"), &sl);
      uint8_t *flip = unhex(jstr(sigs->items[j], "flipped_signature_hex"), &fl);
      uint8_t *wrong = unhex(jstr(sigs->items[j], "wrong_message_hex"), &wl);
      CHECK_RC(whisper_verify(pub, pl, msg, ml, sig, sl), WHISPER_OK);
      CHECK_RC(whisper_verify(pub, pl, msg, ml, flip, fl), WHISPER_EINVALIDSIG);
      CHECK_RC(whisper_verify(pub, pl, wrong, wl, sig, sl), WHISPER_EINVALIDSIG);
      checked++;
      free(msg), free(sig), free(flip), free(wrong);
    }
    /* our own signatures verify, with either sign bit */
    uint8_t priv[32], s[64], z[64], m[5] = "hello";
    unhex_to(priv, 32, jstr(k, "private_hex"));
    randombytes_buf(z, sizeof z);
    CHECK(wh_xeddsa_sign(s, priv, m, sizeof m, z) == 0);
    CHECK_RC(whisper_verify(pub, pl, m, sizeof m, s, 64), WHISPER_OK);
    s[63] ^= 0x80; /* the sign bit matters */
    CHECK_RC(whisper_verify(pub, pl, m, sizeof m, s, 64), WHISPER_EINVALIDSIG);
    CHECK_RC(whisper_verify(pub, pl, m, sizeof m, s, 63), WHISPER_EINVALIDSIG);
    free(pub);
  }
  CHECK(checked == 30);
  json_free(v);

  /* the sheet's deterministic XEdDSA vector: exact bytes */
  uint8_t priv[32], msg[33], z[64], want[64], sig[64];
  unhex_to(priv, 32, "088aa42f16e8533b45e190091580fc8ca4a588919dab80a706f23b357c0b0365");
  unhex_to(msg, 33, "052ee3b05056ee0f571ac175fa457df3567f5b70a7d8b1df3e5f2f488e27106d63");
  unhex_to(z, 64,
           "7b483e32ed327f6583f9dbb329a0e7e115c5caefec0f5fa9d6a7a2fea71b0d2a"
           "ca0edd551e0fdd70565793027ee97110f258edfb11150bf547a03dc793f335bf");
  unhex_to(want, 64,
           "a316218f002564371c39259bd679f459a58cb7035bd2b606dfd58acb82d9aff3"
           "35c1638c9d1f2841290d9324cb3f0337ad9ebf83180a3baef20a9373e6ab0e0f");
  CHECK(wh_xeddsa_sign(sig, priv, msg, 33, z) == 0 && memcmp(sig, want, 64) == 0);

  /* libsignal's own vector (its key is given as 32 bytes: prefix 0x05) */
  uint8_t pub[33] = {5}, m2[33];
  unhex_to(pub + 1, 32, "ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64");
  unhex_to(m2, 33, "05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a");
  unhex_to(sig, 64,
           "5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfb"
           "ede82deb9dcd9fae0bfbb821569b3d9001bd8130cd11d486cef047bd60b86e88");
  CHECK_RC(whisper_verify(pub, 33, m2, 33, sig, 64), WHISPER_OK);
  /* bit 255 of the key is ignored */
  pub[32] |= 0x80;
  CHECK_RC(whisper_verify(pub, 33, m2, 33, sig, 64), WHISPER_OK);
  /* u = p - 1 is refused */
  uint8_t pm1[33] = {5, 0xec};
  memset(pm1 + 2, 0xff, 30);
  pm1[32] = 0x7f;
  CHECK_RC(whisper_verify(pm1, 33, m2, 33, sig, 64), WHISPER_EINVALIDSIG);
  /* a malformed key */
  pub[0] = 6;
  CHECK_RC(whisper_verify(pub, 33, m2, 33, sig, 64), WHISPER_EINVALIDKEY);
  CHECK_RC(whisper_verify(pub + 1, 32, m2, 33, sig, 64), WHISPER_EINVALIDKEY);
  /* s >= 2^253 refused; s + L (non-canonical, < 2^253) accepted like libsignal */
  pub[0] = 5;
  pub[32] &= 0x7f;
  uint8_t bad[64];
  memcpy(bad, sig, 64);
  bad[63] |= 0x20;
  CHECK_RC(whisper_verify(pub, 33, m2, 33, bad, 64), WHISPER_EINVALIDSIG);
  static const uint8_t L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
  memcpy(bad, sig, 64);
  unsigned carry = 0;
  uint8_t sign = bad[63] & 0x80;
  bad[63] &= 0x7f;
  for (int i = 0; i < 32; i++) {
    unsigned t = bad[32 + i] + L[i] + carry;
    bad[32 + i] = (uint8_t)t;
    carry = t >> 8;
  }
  bad[63] |= sign;
  CHECK_RC(whisper_verify(pub, 33, m2, 33, bad, 64), WHISPER_OK);
}

static void test_keys_api(void) {
  whisper_store *st;
  whisper_ctx *ctx;
  whisper_keypair_t kp, kp2;
  test_rng rng = {0};
  CHECK_RC(whisper_store_memory_new(&st), WHISPER_OK);
  CHECK_RC(whisper_ctx_new(&ctx, st), WHISPER_OK);
  CHECK_RC(whisper_ctx_new(NULL, st), WHISPER_EINVAL);
  CHECK_RC(whisper_keypair_generate(ctx, &kp), WHISPER_OK);
  CHECK(kp.pub[0] == 5 && (kp.priv[0] & 7) == 0 && (kp.priv[31] & 0xc0) == 0x40);
  CHECK_RC(whisper_keypair_from_private(kp.priv, &kp2), WHISPER_OK);
  CHECK(memcmp(kp.pub, kp2.pub, 33) == 0);
  uint8_t sig[64];
  CHECK_RC(whisper_sign(ctx, kp.priv, (const uint8_t *)"x", 1, sig), WHISPER_OK);
  CHECK_RC(whisper_verify(kp.pub, 33, (const uint8_t *)"x", 1, sig, 64), WHISPER_OK);
  CHECK_RC(whisper_verify(kp.pub, 33, (const uint8_t *)"y", 1, sig, 64), WHISPER_EINVALIDSIG);
  /* a failing RNG is an error, not garbage */
  rng.fail = 1;
  whisper_ctx_rng_set(ctx, test_rng_fn, &rng);
  CHECK_RC(whisper_keypair_generate(ctx, &kp), WHISPER_ERANDOM);
  CHECK(strlen(whisper_ctx_last_error(ctx)) > 0);
  CHECK(whisper_version() == WHISPER_VERSION_NUMBER && whisper_version() != 0);
  CHECK(strcmp(whisper_strerror(WHISPER_EDUPLICATE), "duplicate message") == 0);
  CHECK(strcmp(whisper_strerror(12345), "unknown error") == 0);
  whisper_keypair_wipe(&kp);
  whisper_ctx_free(ctx);
  whisper_store_free(st);
  whisper_ctx_free(NULL);
  whisper_store_free(NULL);
  whisper_buf_free(NULL);
}

int main(void) {
  if (wh_crypto_init() != 0) return 2;
  test_hkdf_hmac();
  test_aes();
  test_gcm();
  test_agreement();
  test_signatures();
  test_keys_api();
  return test_done();
}
