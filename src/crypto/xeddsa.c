/*
 * Signal's XEdDSA signatures on Curve25519 keys, as libsignal implements
 * them (see docs/protocol.md): composed from libsodium's Ed25519 core
 * operations. libsodium exports no GF(2^255-19) arithmetic, so the map from
 * the Montgomery u to the Edwards y, y = (u - 1) / (u + 1), needs the small
 * field module below (5 limbs of 51 bits). It handles public data only.
 */
#include <sodium.h>
#include <string.h>

#include "crypto/crypto.h"

typedef unsigned __int128 u128;
typedef uint64_t fe[5];

#define MASK51 ((UINT64_C(1) << 51) - 1)

static uint64_t load64_le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Loads 255 bits (bit 255 ignored); the value may be >= p. */
static void fe_frombytes(fe h, const uint8_t s[32]) {
  h[0] = load64_le(s) & MASK51;
  h[1] = (load64_le(s + 6) >> 3) & MASK51;
  h[2] = (load64_le(s + 12) >> 6) & MASK51;
  h[3] = (load64_le(s + 19) >> 1) & MASK51;
  h[4] = (load64_le(s + 24) >> 12) & MASK51;
}

static void fe_carry(fe h) {
  uint64_t c;
  c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
  c = h[1] >> 51; h[1] &= MASK51; h[2] += c;
  c = h[2] >> 51; h[2] &= MASK51; h[3] += c;
  c = h[3] >> 51; h[3] &= MASK51; h[4] += c;
  c = h[4] >> 51; h[4] &= MASK51; h[0] += 19 * c;
  c = h[0] >> 51; h[0] &= MASK51; h[1] += c;
}

/* Canonical little-endian encoding (fully reduced mod p). */
static void fe_tobytes(uint8_t s[32], const fe f) {
  fe h;
  uint64_t q;
  memcpy(h, f, sizeof h);
  fe_carry(h);
  fe_carry(h); /* now every limb < 2^51 */
  /* q = 1 iff h >= p */
  q = (h[0] + 19) >> 51;
  q = (h[1] + q) >> 51;
  q = (h[2] + q) >> 51;
  q = (h[3] + q) >> 51;
  q = (h[4] + q) >> 51;
  h[0] += 19 * q; /* h - p = h + 19 - 2^255: carry up, then drop 2^255 */
  h[1] += h[0] >> 51; h[0] &= MASK51;
  h[2] += h[1] >> 51; h[1] &= MASK51;
  h[3] += h[2] >> 51; h[2] &= MASK51;
  h[4] += h[3] >> 51; h[3] &= MASK51;
  h[4] &= MASK51;
  uint64_t w[4];
  w[0] = h[0] | (h[1] << 51);
  w[1] = (h[1] >> 13) | (h[2] << 38);
  w[2] = (h[2] >> 26) | (h[3] << 25);
  w[3] = (h[3] >> 39) | (h[4] << 12);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 8; j++) s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
}

static void fe_add(fe h, const fe f, const fe g) {
  for (int i = 0; i < 5; i++) h[i] = f[i] + g[i];
  fe_carry(h);
}

static void fe_sub(fe h, const fe f, const fe g) {
  /* add 2p so that limbs never go negative (inputs are carried, < 2^52) */
  h[0] = f[0] + UINT64_C(0xFFFFFFFFFFFDA) - g[0];
  for (int i = 1; i < 5; i++) h[i] = f[i] + UINT64_C(0xFFFFFFFFFFFFE) - g[i];
  fe_carry(h);
}

static void fe_mul(fe h, const fe f, const fe g) {
  uint64_t g1 = 19 * g[1], g2 = 19 * g[2], g3 = 19 * g[3], g4 = 19 * g[4];
  u128 r0 = (u128)f[0] * g[0] + (u128)f[1] * g4 + (u128)f[2] * g3 + (u128)f[3] * g2 +
            (u128)f[4] * g1;
  u128 r1 = (u128)f[0] * g[1] + (u128)f[1] * g[0] + (u128)f[2] * g4 + (u128)f[3] * g3 +
            (u128)f[4] * g2;
  u128 r2 = (u128)f[0] * g[2] + (u128)f[1] * g[1] + (u128)f[2] * g[0] + (u128)f[3] * g4 +
            (u128)f[4] * g3;
  u128 r3 = (u128)f[0] * g[3] + (u128)f[1] * g[2] + (u128)f[2] * g[1] + (u128)f[3] * g[0] +
            (u128)f[4] * g4;
  u128 r4 = (u128)f[0] * g[4] + (u128)f[1] * g[3] + (u128)f[2] * g[2] + (u128)f[3] * g[1] +
            (u128)f[4] * g[0];
  r1 += (uint64_t)(r0 >> 51);
  r2 += (uint64_t)(r1 >> 51);
  r3 += (uint64_t)(r2 >> 51);
  r4 += (uint64_t)(r3 >> 51);
  h[0] = ((uint64_t)r0 & MASK51) + 19 * (uint64_t)(r4 >> 51);
  h[1] = (uint64_t)r1 & MASK51;
  h[2] = (uint64_t)r2 & MASK51;
  h[3] = (uint64_t)r3 & MASK51;
  h[4] = (uint64_t)r4 & MASK51;
  fe_carry(h);
}

static void fe_sqn(fe h, const fe f, int n) {
  fe_mul(h, f, f);
  while (--n > 0) fe_mul(h, h, h);
}

/* z^(p-2), the addition chain of ref10's fe_invert. */
static void fe_invert(fe out, const fe z) {
  fe z2, z9, z11, a, b, c, t;
  fe_sqn(z2, z, 1);
  fe_sqn(t, z2, 2);
  fe_mul(z9, t, z);
  fe_mul(z11, z9, z2);
  fe_sqn(t, z11, 1);
  fe_mul(a, t, z9);     /* 2^5 - 1 */
  fe_sqn(t, a, 5);
  fe_mul(b, t, a);      /* 2^10 - 1 */
  fe_sqn(t, b, 10);
  fe_mul(c, t, b);      /* 2^20 - 1 */
  fe_sqn(t, c, 20);
  fe_mul(t, t, c);      /* 2^40 - 1 */
  fe_sqn(t, t, 10);
  fe_mul(a, t, b);      /* 2^50 - 1 */
  fe_sqn(t, a, 50);
  fe_mul(b, t, a);      /* 2^100 - 1 */
  fe_sqn(t, b, 100);
  fe_mul(t, t, b);      /* 2^200 - 1 */
  fe_sqn(t, t, 50);
  fe_mul(t, t, a);      /* 2^250 - 1 */
  fe_sqn(t, t, 5);
  fe_mul(out, t, z11);  /* 2^255 - 21 */
}

static const uint8_t p_minus_1[32] = {
    0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};

/* Montgomery u (bit 255 ignored) to the Edwards public key with the given
 * sign bit. Fails for u = -1, where u + 1 has no inverse. */
static int mont_to_edwards(uint8_t a[32], const uint8_t u_bytes[32], uint8_t sign) {
  fe u, one = {1, 0, 0, 0, 0}, num, den, inv, y;
  uint8_t canon[32];
  fe_frombytes(u, u_bytes);
  fe_tobytes(canon, u);
  if (memcmp(canon, p_minus_1, 32) == 0) return -1;
  fe_sub(num, u, one);
  fe_add(den, u, one);
  fe_invert(inv, den);
  fe_mul(y, num, inv);
  fe_tobytes(a, y);
  a[31] |= (uint8_t)(sign << 7);
  return 0;
}

static void reduce32(uint8_t out[32], const uint8_t in[32]) {
  uint8_t wide[64] = {0};
  memcpy(wide, in, 32);
  crypto_core_ed25519_scalar_reduce(out, wide);
  sodium_memzero(wide, sizeof wide);
}

int wh_xeddsa_sign(uint8_t sig[WH_SIG_LEN], const uint8_t priv[WH_KEY_LEN], const uint8_t *msg,
                   size_t msg_len, const uint8_t random[64]) {
  uint8_t k[32], a[32], A[32], r[32], R[32], h[32], ha[32], s[32], digest[64];
  uint8_t prefix[32];
  crypto_hash_sha512_state st;
  int rc = -1;

  memcpy(k, priv, 32);
  wh_clamp(k);
  reduce32(a, k);
  if (crypto_scalarmult_ed25519_base_noclamp(A, k) != 0) goto out;
  uint8_t sign_bit = A[31] & 0x80;

  memset(prefix, 0xFF, sizeof prefix);
  prefix[0] = 0xFE;
  crypto_hash_sha512_init(&st);
  crypto_hash_sha512_update(&st, prefix, sizeof prefix);
  crypto_hash_sha512_update(&st, k, sizeof k);
  crypto_hash_sha512_update(&st, msg, msg_len);
  crypto_hash_sha512_update(&st, random, 64);
  crypto_hash_sha512_final(&st, digest);
  crypto_core_ed25519_scalar_reduce(r, digest);
  if (crypto_scalarmult_ed25519_base_noclamp(R, r) != 0) goto out; /* r = 0: negligible */

  crypto_hash_sha512_init(&st);
  crypto_hash_sha512_update(&st, R, 32);
  crypto_hash_sha512_update(&st, A, 32);
  crypto_hash_sha512_update(&st, msg, msg_len);
  crypto_hash_sha512_final(&st, digest);
  crypto_core_ed25519_scalar_reduce(h, digest);
  crypto_core_ed25519_scalar_mul(ha, h, a);
  crypto_core_ed25519_scalar_add(s, ha, r);

  memcpy(sig, R, 32);
  memcpy(sig + 32, s, 32);
  sig[63] = (uint8_t)((sig[63] & 0x7F) | sign_bit);
  rc = 0;
out:
  sodium_memzero(k, sizeof k);
  sodium_memzero(a, sizeof a);
  sodium_memzero(r, sizeof r);
  sodium_memzero(ha, sizeof ha);
  sodium_memzero(digest, sizeof digest);
  sodium_memzero(&st, sizeof st);
  return rc;
}

int wh_xeddsa_verify(const uint8_t pub[32], const uint8_t *msg, size_t msg_len,
                     const uint8_t sig[WH_SIG_LEN]) {
  uint8_t A[32], rs[64], s[32];
  static const uint8_t empty[1];
  if (mont_to_edwards(A, pub, sig[63] >> 7) != 0) return -1;
  memcpy(s, sig + 32, 32);
  s[31] &= 0x7F;
  if (s[31] & 0xE0) return -1;
  memcpy(rs, sig, 32);
  reduce32(rs + 32, s); /* libsignal accepts s in [L, 2^253) and reduces it */
  return crypto_sign_ed25519_verify_detached(rs, msg ? msg : empty, msg_len, A) == 0 ? 0 : -1;
}
