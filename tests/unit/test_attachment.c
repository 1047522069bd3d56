/* Attachments: Signal's blob format checked against OpenSSL's one-shot
 * primitives (an independent computation), libsignal's chunk sizes, the
 * streaming both ways with pieces of any size, and every way a download can
 * go wrong, each with its own error and no unverified byte released. The
 * vectors in tests/vectors/attachment.json were made by node:crypto and
 * libsignal's IncrementalMac (tests/interop/attachment/attachment.js, which
 * also checks both directions with Node); test_vectors checks them here,
 * without Node. */
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "test.h"

/* --- sinks ------------------------------------------------------------------------ */

typedef struct sinkbuf {
  uint8_t *p;
  size_t n, cap;
  int fail_at; /* return this once n passes `fail_after` (0: never) */
  size_t fail_after;
} sinkbuf;

static int sink_add(void *user, const uint8_t *data, size_t len) {
  sinkbuf *s = user;
  if (s->fail_at && s->n + len > s->fail_after) return s->fail_at;
  if (s->n + len > s->cap) {
    s->cap = (s->n + len) * 2;
    s->p = realloc(s->p, s->cap);
  }
  memcpy(s->p + s->n, data, len);
  s->n += len;
  return 0;
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
  rng_state = rng_state * 1103515245u + 12345u;
  return rng_state >> 8;
}

/* Encrypts `pt` fed in random pieces. */
static int encrypt(const uint8_t key[64], const uint8_t iv[16], const uint8_t *pt, size_t n,
                   sinkbuf *blob, whisper_attachment_result_t *res) {
  whisper_attachment_encryptor *e = NULL;
  int rc = whisper_attachment_encrypt_new(&e, key, iv, n, sink_add, blob);
  for (size_t at = 0; rc == WHISPER_OK && at < n;) {
    size_t take = 1 + rnd() % 100000;
    if (take > n - at) take = n - at;
    rc = whisper_attachment_encrypt_update(e, pt + at, take);
    at += take;
  }
  if (rc == WHISPER_OK) rc = whisper_attachment_encrypt_finish(e, res);
  whisper_attachment_encrypt_free(e);
  return rc;
}

/* A source for whisper_attachment_decrypt_source(): `len` bytes at `p`;
 * from the moment offset `change_at` has been read once, later reads of it
 * and after it get the blob with that byte flipped (`flip`) or cut there
 * (`cut`). It counts the bytes read and the largest read asked for. */
typedef struct source {
  const uint8_t *p;
  size_t len;
  size_t change_at;
  int flip, cut, fail_at_read; /* fail_at_read: return 55 at that read (1-based; 0: never) */
  int claim_more;              /* say one byte more than asked was read */
  size_t seen;                 /* the highest offset read + 1 */
  size_t bytes, reads, largest;
} source;

static int source_read(void *user, uint64_t offset, uint8_t *buf, size_t len, size_t *got) {
  source *s = user;
  s->reads++;
  if (s->fail_at_read && (int)s->reads == s->fail_at_read) return 55;
  if (len > s->largest) s->largest = len;
  int changed = (s->flip || s->cut) && s->seen > s->change_at;
  size_t end = changed && s->cut ? s->change_at : s->len;
  size_t n = offset >= end ? 0 : end - offset < len ? (size_t)(end - offset) : len;
  if (n) memcpy(buf, s->p + offset, n);
  if (changed && s->flip && s->change_at >= offset && s->change_at < offset + n)
    buf[s->change_at - offset] ^= 0x20;
  if (offset + n > s->seen) s->seen = offset + n;
  s->bytes += n;
  *got = n + (s->claim_more ? 1 : 0);
  return 0;
}

/* Decrypts with the decryptor reading `src` itself. */
static int decrypt_from(const whisper_attachment_expect_t *x, source *src, sinkbuf *out) {
  whisper_attachment_decryptor *d = NULL;
  int rc = whisper_attachment_decrypt_new(&d, x, sink_add, out);
  if (rc != WHISPER_OK) return rc;
  rc = whisper_attachment_decrypt_source(d, source_read, src);
  CHECK(rc != WHISPER_ATTACHMENT_AGAIN);
  /* (a sink that failed was given the bytes it refused) */
  CHECK(whisper_attachment_decrypt_released(d) == out->n || out->fail_at);
  /* finished, whatever it returned */
  CHECK_RC(whisper_attachment_decrypt_update(d, (const uint8_t *)"x", 1), WHISPER_EINVAL);
  CHECK_RC(whisper_attachment_decrypt_finish(d), WHISPER_EINVAL);
  CHECK_RC(whisper_attachment_decrypt_source(d, source_read, src), WHISPER_EINVAL);
  whisper_attachment_decrypt_free(d);
  return rc;
}

/* How a caller cuts the blob into updates: pieces of `fixed` bytes (0 and
 * no seed: the whole blob in one update); or, with a `seed`, of random
 * sizes 1..`max` from the pattern's own RNG (restarted each pass, so that
 * no other test moves it); or, with `at_ends`, cut at each of the
 * boundaries where a mistake would show: an AES block after the IV, the
 * 64 KiB cipher piece and chunk, and the blob's MAC (its first and last
 * byte), one byte either side. */
typedef struct piecing {
  size_t fixed;
  uint32_t seed;
  size_t max;
  int at_ends;
} piecing;

static const piecing WHOLE = {0, 0, 0, 0};
/* Every decrypt() below checks these against the whole blob fed at once. */
static const piecing DEFAULT_PIECES[] = {
    {0, 1, 150000, 0}, {0, 2, 5000, 0}, {65537, 0, 0, 0}, {0, 0, 0, 1}};

/* The end of the update that starts at `at` in a `len`-byte blob. */
static size_t piece_end(const piecing *pc, uint32_t *state, size_t at, size_t len) {
  size_t end = len;
  if (pc->at_ends) {
    const size_t ends[] = {15, 16, 17, 31, 32, 33, 65535, 65536, 65537, 131071, 131072, 131073};
    const size_t tail[] = {33, 32, 31, 1};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
      if (ends[i] > at && ends[i] < end) end = ends[i];
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
      if (len >= tail[i] && len - tail[i] > at && len - tail[i] < end) end = len - tail[i];
  } else if (pc->seed) {
    *state = *state * 1103515245u + 12345u;
    end = at + 1 + (*state >> 8) % pc->max;
  } else if (pc->fixed) {
    end = at + pc->fixed;
  }
  return end < len ? end : len;
}

static int decrypt_fed(const whisper_attachment_expect_t *x, const uint8_t *blob, size_t len,
                       sinkbuf *out, int stop, const piecing *pc);

/* Decrypts `blob` (len bytes) fed whole; the result of finish, or of the
 * first failing update when `stop` is set. Two passes when there is no
 * incremental MAC. It decrypts the blob again fed in each of the pieces of
 * `pcs` (DEFAULT_PIECES when NULL) and, unless `stop`, with the decryptor
 * reading it (whisper_attachment_decrypt_source()): each must give the
 * same result and release the same bytes, byte for byte, whatever the
 * result. */
static int decrypt_with(const whisper_attachment_expect_t *x, const uint8_t *blob, size_t len,
                        sinkbuf *out, int stop, const piecing *pcs, size_t npcs) {
  size_t before = out->n;
  int rc = decrypt_fed(x, blob, len, out, stop, &WHOLE);
  if (pcs == NULL) {
    pcs = DEFAULT_PIECES;
    npcs = sizeof DEFAULT_PIECES / sizeof DEFAULT_PIECES[0];
  }
  for (size_t i = 0; i < npcs; i++) {
    sinkbuf cut = {0};
    cut.fail_at = out->fail_at;
    cut.fail_after = out->fail_after;
    int crc = decrypt_fed(x, blob, len, &cut, stop, &pcs[i]);
    if (crc != rc || cut.n != out->n - before)
      fprintf(stderr, "pieces {%zu, %u, %zu, %d}: %d and %zu bytes, whole: %d and %zu bytes\n",
              pcs[i].fixed, pcs[i].seed, pcs[i].max, pcs[i].at_ends, crc, cut.n, rc,
              out->n - before);
    CHECK(crc == rc && cut.n == out->n - before &&
          (cut.n == 0 || memcmp(cut.p, out->p + before, cut.n) == 0));
    free(cut.p);
  }
  if (stop) return rc;
  sinkbuf again = {0};
  source src = {blob, len, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  again.fail_at = out->fail_at;
  again.fail_after = out->fail_after;
  CHECK_RC(decrypt_from(x, &src, &again), rc);
  CHECK(again.n == out->n - before &&
        (again.n == 0 || memcmp(again.p, out->p + before, again.n) == 0));
  CHECK(src.largest <= 65536);
  free(again.p);
  return rc;
}

static int decrypt(const whisper_attachment_expect_t *x, const uint8_t *blob, size_t len,
                   sinkbuf *out, int stop) {
  return decrypt_with(x, blob, len, out, stop, NULL, 0);
}

static int decrypt_fed(const whisper_attachment_expect_t *x, const uint8_t *blob, size_t len,
                       sinkbuf *out, int stop, const piecing *pc) {
  whisper_attachment_decryptor *d = NULL;
  int rc = whisper_attachment_decrypt_new(&d, x, sink_add, out);
  if (rc != WHISPER_OK) return rc;
  for (int pass = 0; pass < 2; pass++) {
    int urc = WHISPER_OK;
    uint32_t state = pc->seed;
    for (size_t at = 0; at < len;) {
      size_t take = piece_end(pc, &state, at, len) - at;
      int r = whisper_attachment_decrypt_update(d, blob + at, take);
      if (r != WHISPER_OK && urc == WHISPER_OK) urc = r;
      if (r != WHISPER_OK && stop) break;
      at += take;
    }
    if (urc != WHISPER_OK && stop) {
      whisper_attachment_decrypt_free(d);
      return urc;
    }
    rc = whisper_attachment_decrypt_finish(d);
    if (rc != WHISPER_ATTACHMENT_AGAIN) break;
  }
  whisper_attachment_decrypt_free(d);
  return rc;
}

static whisper_attachment_expect_t expect_of(const uint8_t key[64], size_t size,
                                             const whisper_attachment_result_t *r, int incremental) {
  whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
  x.key = key;
  x.plaintext_size = size;
  x.digest = r->digest;
  x.plaintext_hash = r->plaintext_hash;
  if (incremental) {
    x.incremental_mac = r->incremental_mac->data;
    x.incremental_mac_len = r->incremental_mac->len;
    x.chunk_size = r->chunk_size;
  }
  return x;
}

/* --- sizes ------------------------------------------------------------------------ */

static void test_sizes(void) {
  /* Signal's buckets: 541 at least, then powers of 1.05 (floored) */
  CHECK(whisper_attachment_padded_size(0) == 541);
  CHECK(whisper_attachment_padded_size(1) == 541);
  CHECK(whisper_attachment_padded_size(541) == 541);
  CHECK(whisper_attachment_padded_size(542) == 568); /* (Node computes the same) */
  CHECK(whisper_attachment_padded_size(1000000) == 1041743);
  for (uint64_t n = 0; n < 3000000; n += 1 + n / 7) {
    uint64_t p = whisper_attachment_padded_size(n);
    CHECK(p >= n && p <= (n < 541 ? 541 : n + n / 20 + 1));
  }
  CHECK(whisper_attachment_blob_size(0) == 16 + 544 + 32);
  CHECK(whisper_attachment_blob_size(1000000) == 16 + 1041744 + 32);
  /* libsignal's table (incremental_mac.rs, chunk_sizes_sha256) */
  const uint64_t K = 1024, M = 1024 * 1024;
  struct { uint64_t size, chunk; } t[] = {
      {0, 64 * K},        {K, 64 * K},           {100 * K, 64 * K},      {10 * M, 64 * K},
      {20 * M, 80 * K},   {100 * M, 400 * K},    {200 * M, 800 * K},     {256 * M, M},
      {512 * M, 2 * M},   {1024 * M, 2 * M},     {2048 * M, 2 * M}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    CHECK(whisper_attachment_chunk_size(t[i].size) == t[i].chunk);
}

/* --- the incremental MAC against one-shot HMACs of each prefix ---------------------- */

static void test_incremental_mac(void) {
  uint8_t key[32], data[1000];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(0xA0 + i);
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7);
  size_t lens[] = {0, 1, 31, 32, 33, 64, 999, 1000};
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    size_t n = lens[k];
    whisper_buf *macs = NULL;
    CHECK_RC(whisper_incremental_mac(key, sizeof key, 32, data, n, &macs), WHISPER_OK);
    size_t count = n / 32 + 1; /* one per whole chunk, and the whole */
    CHECK(macs && macs->len == count * 32);
    for (size_t c = 0; macs && c < count; c++) {
      size_t prefix = c + 1 < count ? (c + 1) * 32 : n;
      uint8_t want[32];
      unsigned wl = 0;
      HMAC(EVP_sha256(), key, sizeof key, data, prefix, want, &wl);
      CHECK(memcmp(macs->data + c * 32, want, 32) == 0);
    }
    whisper_buf_free(macs);
  }
  whisper_buf *m = NULL;
  CHECK_RC(whisper_incremental_mac(key, 32, 0, data, 10, &m), WHISPER_EINVAL);
}

/* --- the blob against OpenSSL one-shots --------------------------------------------- */

static void check_blob(const uint8_t key[64], const uint8_t iv[16], const uint8_t *pt, size_t n,
                       const sinkbuf *blob, const whisper_attachment_result_t *r) {
  uint64_t padded = whisper_attachment_padded_size(n);
  CHECK(blob->n == whisper_attachment_blob_size(n) && r->blob_size == blob->n);
  CHECK(memcmp(blob->p, iv, 16) == 0);
  /* the MAC: HMAC-SHA256(mac key, IV || ciphertext) */
  uint8_t mac[32];
  unsigned ml = 0;
  HMAC(EVP_sha256(), key + 32, 32, blob->p, blob->n - 32, mac, &ml);
  CHECK(memcmp(mac, blob->p + blob->n - 32, 32) == 0);
  /* the digests */
  uint8_t d[32];
  EVP_Digest(blob->p, blob->n, d, NULL, EVP_sha256(), NULL);
  CHECK(memcmp(d, r->digest, 32) == 0);
  EVP_Digest(n ? pt : (const uint8_t *)"", n, d, NULL, EVP_sha256(), NULL);
  CHECK(memcmp(d, r->plaintext_hash, 32) == 0);
  /* the ciphertext opens to the plaintext and zeros, PKCS#7-padded */
  uint8_t *open = malloc(blob->n);
  int l1 = 0, l2 = 0;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, key, iv);
  CHECK(EVP_DecryptUpdate(c, open, &l1, blob->p + 16, (int)(blob->n - 48)) == 1);
  CHECK(EVP_DecryptFinal_ex(c, open + l1, &l2) == 1);
  EVP_CIPHER_CTX_free(c);
  CHECK((uint64_t)(l1 + l2) == padded);
  CHECK(n == 0 || memcmp(open, pt, n) == 0);
  int zeros = 1;
  for (uint64_t i = n; i < padded; i++) zeros &= open[i] == 0;
  CHECK(zeros);
  free(open);
  /* the incremental MAC is libsignal's over the whole blob, keyed by the MAC key */
  whisper_buf *im = NULL;
  CHECK_RC(whisper_incremental_mac(key + 32, 32, whisper_attachment_chunk_size(blob->n), blob->p,
                                   blob->n, &im),
           WHISPER_OK);
  CHECK(im && r->incremental_mac && im->len == r->incremental_mac->len &&
        memcmp(im->data, r->incremental_mac->data, im->len) == 0);
  CHECK(r->chunk_size == whisper_attachment_chunk_size(blob->n));
  whisper_buf_free(im);
}

static void test_round_trips(void) {
  rng_state = 1345; /* each test its own plaintexts, whatever ran before */
  uint8_t key[64], iv[16];
  for (size_t i = 0; i < 64; i++) key[i] = (uint8_t)(i * 3 + 1);
  for (size_t i = 0; i < 16; i++) iv[i] = (uint8_t)(0xF0 - i);
  size_t sizes[] = {0, 1, 15, 16, 17, 540, 541, 542, 65535, 65536, 200000, 1048583, 3 * 1048576};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    uint8_t *pt = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) pt[i] = (uint8_t)(rnd());
    sinkbuf blob = {0}, out = {0}, out2 = {0};
    whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
    CHECK_RC(encrypt(key, iv, pt, n, &blob, &r), WHISPER_OK);
    check_blob(key, iv, pt, n, &blob, &r);
    /* the same key and IV make the same blob (how an upload resumes) */
    sinkbuf again = {0};
    whisper_attachment_result_t r2 = WHISPER_ATTACHMENT_RESULT_INIT;
    CHECK_RC(encrypt(key, iv, pt, n, &again, &r2), WHISPER_OK);
    CHECK(again.n == blob.n && memcmp(again.p, blob.p, blob.n) == 0);
    whisper_attachment_result_clear(&r2);
    free(again.p);
    /* decrypted with the incremental MAC, and in two passes without it */
    whisper_attachment_expect_t x = expect_of(key, n, &r, 1);
    CHECK_RC(decrypt(&x, blob.p, blob.n, &out, 0), WHISPER_OK);
    CHECK(out.n == n && (n == 0 || memcmp(out.p, pt, n) == 0));
    x = expect_of(key, n, &r, 0);
    CHECK_RC(decrypt(&x, blob.p, blob.n, &out2, 0), WHISPER_OK);
    CHECK(out2.n == n && (n == 0 || memcmp(out2.p, pt, n) == 0));
    whisper_attachment_result_clear(&r);
    free(blob.p);
    free(out.p);
    free(out2.p);
    free(pt);
  }
}

/* The versioned result and expectation structs (docs/api.md): a size
 * below 1.0's is refused, nothing written and the encryptor unchanged; a
 * later caller's bigger struct is read and filled up to the fields the
 * library knows, its newer ones left alone. */
static void test_versioned_structs(void) {
  uint8_t key[64], iv[16], pt[3000];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 7 + 3);
  for (size_t i = 0; i < sizeof iv; i++) iv[i] = (uint8_t)i;
  for (size_t i = 0; i < sizeof pt; i++) pt[i] = (uint8_t)(i * 131 + 7);
  sinkbuf blob = {0}, out = {0};
  whisper_attachment_encryptor *e = NULL;
  CHECK_RC(whisper_attachment_encrypt_new(&e, key, iv, sizeof pt, sink_add, &blob), WHISPER_OK);
  CHECK_RC(whisper_attachment_encrypt_update(e, pt, sizeof pt), WHISPER_OK);
  whisper_attachment_result_t old;
  for (int k = 0; k < 2; k++) {
    memset(&old, 0x5a, sizeof old);
    old.size = k ? WHISPER_ATTACHMENT_RESULT_SIZE_1_0 - 1 : 0;
    size_t before = blob.n;
    CHECK_RC(whisper_attachment_encrypt_finish(e, &old), WHISPER_EINVAL);
    CHECK(old.blob_size == 0x5a5a5a5a5a5a5a5aull && old.digest[0] == 0x5a && blob.n == before);
    whisper_attachment_result_clear(&old); /* a size it cannot trust: nothing freed or written */
    CHECK(old.blob_size == 0x5a5a5a5a5a5a5a5aull);
  }
  struct later_result {
    whisper_attachment_result_t r;
    uint64_t newer;
  } later;
  memset(&later, 0x5a, sizeof later);
  later.r.size = sizeof later;
  /* the encryptor was not spent by the refusals */
  CHECK_RC(whisper_attachment_encrypt_finish(e, &later.r), WHISPER_OK);
  whisper_attachment_encrypt_free(e);
  CHECK(later.r.size == sizeof later && later.newer == 0x5a5a5a5a5a5a5a5aull);
  CHECK(later.r.blob_size == blob.n && later.r.incremental_mac != NULL);
  struct later_expect {
    whisper_attachment_expect_t x;
    uint64_t newer;
  } lx;
  memset(&lx, 0xff, sizeof lx); /* newer fields the library must not read */
  lx.x = expect_of(key, sizeof pt, &later.r, 1);
  lx.x.size = sizeof lx;
  CHECK_RC(decrypt(&lx.x, blob.p, blob.n, &out, 0), WHISPER_OK);
  CHECK(out.n == sizeof pt && memcmp(out.p, pt, sizeof pt) == 0);
  whisper_attachment_decryptor *d = (whisper_attachment_decryptor *)1;
  whisper_attachment_expect_t ox = expect_of(key, sizeof pt, &later.r, 1);
  ox.size = 0;
  CHECK_RC(whisper_attachment_decrypt_new(&d, &ox, sink_add, &out), WHISPER_EINVAL);
  CHECK(d == NULL);
  ox.size = WHISPER_ATTACHMENT_EXPECT_SIZE_1_0 - 1;
  CHECK_RC(whisper_attachment_decrypt_new(&d, &ox, sink_add, &out), WHISPER_EINVAL);
  CHECK(d == NULL);
  /* clearing frees and zeroes what the library knows, no more */
  whisper_attachment_result_clear(&later.r);
  CHECK(later.r.size == sizeof later && later.r.incremental_mac == NULL && later.r.blob_size == 0);
  CHECK(later.newer == 0x5a5a5a5a5a5a5a5aull);
  free(blob.p);
  free(out.p);
}

/* --- what goes wrong --------------------------------------------------------------- */

/* How many plaintext bytes the chunks entirely before blob offset `bad`
 * hold: the most a decryptor may release when the blob is bad from there. */
static size_t verified_before(size_t bad, uint32_t chunk) {
  size_t whole = bad / chunk * chunk; /* blob bytes in whole chunks before it */
  return whole > 16 ? whole - 16 : 0;
}

static void test_failures(void) {
  rng_state = 2345; /* each test its own plaintexts, whatever ran before */
  uint8_t key[64], iv[16], wrong[64];
  for (size_t i = 0; i < 64; i++) key[i] = (uint8_t)(i + 9);
  memcpy(wrong, key, 64);
  wrong[40] ^= 1; /* the MAC key differs */
  memset(iv, 7, sizeof iv);
  size_t n = 300000; /* 5 chunks of 64 KiB */
  uint8_t *pt = malloc(n);
  for (size_t i = 0; i < n; i++) pt[i] = (uint8_t)rnd();
  sinkbuf blob = {0};
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  CHECK_RC(encrypt(key, iv, pt, n, &blob, &r), WHISPER_OK);
  uint32_t chunk = r.chunk_size;

  for (int inc = 1; inc >= 0; inc--) {
    whisper_attachment_expect_t x = expect_of(key, n, &r, inc);
    sinkbuf out = {0};
    /* truncation: the end missing */
    size_t cuts[] = {blob.n - 1, blob.n - 32, blob.n / 2, 10, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      out.n = 0;
      CHECK_RC(decrypt(&x, blob.p, cuts[i], &out, 0), WHISPER_ETRUNCATED);
      CHECK(out.n <= (inc ? verified_before(cuts[i], chunk) : 0));
    }
    /* a wrong key: the blob is intact, the key does not open it; nothing comes out */
    whisper_attachment_expect_t xw = x;
    xw.key = wrong;
    out.n = 0;
    CHECK_RC(decrypt(&xw, blob.p, blob.n, &out, 0), WHISPER_EKEY);
    CHECK(out.n == 0);
    /* a flipped bit anywhere: in the IV, early, mid-chunk, on a boundary, the last
     * ciphertext block, the MAC */
    size_t flips[] = {0, 15, 16, 100, chunk - 1, chunk, 2 * chunk + 5, blob.n - 40, blob.n - 33,
                      blob.n - 32, blob.n - 1};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
      blob.p[flips[i]] ^= 0x10;
      out.n = 0;
      CHECK_RC(decrypt(&x, blob.p, blob.n, &out, 0), WHISPER_EINTEGRITY);
      CHECK(out.n <= (inc ? verified_before(flips[i], chunk) : 0));
      /* and an update says so as soon as the chunk is in */
      if (inc) {
        out.n = 0;
        CHECK_RC(decrypt(&x, blob.p, blob.n, &out, 1), WHISPER_EINTEGRITY);
        CHECK(out.n <= verified_before(flips[i], chunk));
      }
      blob.p[flips[i]] ^= 0x10;
    }
    /* a wrong size: another bucket (the blob is shorter or longer than it says) */
    whisper_attachment_expect_t xs = x;
    xs.plaintext_size = n + 100000;
    out.n = 0;
    CHECK_RC(decrypt(&xs, blob.p, blob.n, &out, 0), WHISPER_ESIZE);
    xs.plaintext_size = n - 100000;
    out.n = 0;
    CHECK_RC(decrypt(&xs, blob.p, blob.n, &out, 0), WHISPER_ESIZE);
    /* ... or the same bucket: a few bytes off either way */
    xs.plaintext_size = n - 3;
    out.n = 0;
    CHECK_RC(decrypt(&xs, blob.p, blob.n, &out, 0), WHISPER_ESIZE);
    xs.plaintext_size = n + 3;
    out.n = 0;
    CHECK_RC(decrypt(&xs, blob.p, blob.n, &out, 0), WHISPER_ESIZE);
    /* a plaintext hash that is not the plaintext's */
    uint8_t ph[32];
    memcpy(ph, r.plaintext_hash, 32);
    ph[0] ^= 1;
    xs = x;
    xs.plaintext_hash = ph;
    out.n = 0;
    CHECK_RC(decrypt(&xs, blob.p, blob.n, &out, 0), WHISPER_ESIZE);
    /* oversize: refused before a byte is read */
    xs = x;
    xs.max_size = n - 1;
    whisper_attachment_decryptor *d = NULL;
    CHECK_RC(whisper_attachment_decrypt_new(&d, &xs, sink_add, &out), WHISPER_ETOOBIG);
    CHECK(d == NULL);
    /* the sink's own error stops the stream */
    sinkbuf failing = {0};
    failing.fail_at = 77;
    failing.fail_after = 1000;
    CHECK_RC(decrypt(&x, blob.p, blob.n, &failing, 1), 77);
    free(failing.p);
    free(out.p);
  }
  /* malformed incremental MACs in the pointer */
  whisper_attachment_expect_t x = expect_of(key, n, &r, 1);
  whisper_attachment_decryptor *d = NULL;
  x.incremental_mac_len = 33;
  CHECK_RC(whisper_attachment_decrypt_new(&d, &x, sink_add, NULL), WHISPER_EINVALIDMSG);
  x = expect_of(key, n, &r, 1);
  x.chunk_size = WHISPER_ATTACHMENT_CHUNK_MAX + 1;
  CHECK_RC(whisper_attachment_decrypt_new(&d, &x, sink_add, NULL), WHISPER_EINVALIDMSG);
  /* one MAC missing from the list, or one too many */
  x = expect_of(key, n, &r, 1);
  x.incremental_mac_len -= 32;
  sinkbuf out = {0};
  CHECK_RC(decrypt(&x, blob.p, blob.n, &out, 0), WHISPER_EKEY);
  x.incremental_mac_len += 32;
  x.incremental_mac += 32; /* the first MAC gone */
  x.incremental_mac_len -= 32;
  out.n = 0;
  CHECK_RC(decrypt(&x, blob.p, blob.n, &out, 0), WHISPER_EKEY);
  CHECK(out.n == 0);
  free(out.p);

  /* the encryptor refuses more or fewer bytes than it was told */
  whisper_attachment_encryptor *e = NULL;
  sinkbuf sb = {0};
  whisper_attachment_result_t rr = WHISPER_ATTACHMENT_RESULT_INIT;
  CHECK_RC(whisper_attachment_encrypt_new(&e, key, iv, 10, sink_add, &sb), WHISPER_OK);
  CHECK_RC(whisper_attachment_encrypt_update(e, pt, 9), WHISPER_OK);
  CHECK_RC(whisper_attachment_encrypt_finish(e, &rr), WHISPER_EINVAL);
  whisper_attachment_encrypt_free(e);
  CHECK_RC(whisper_attachment_encrypt_new(&e, key, iv, 10, sink_add, &sb), WHISPER_OK);
  CHECK_RC(whisper_attachment_encrypt_update(e, pt, 11), WHISPER_EINVAL);
  whisper_attachment_encrypt_free(e);
  CHECK_RC(whisper_attachment_encrypt_new(&e, key, iv, WHISPER_ATTACHMENT_SIZE_MAX + 1, sink_add,
                                          &sb),
           WHISPER_EINVAL);
  free(sb.p);
  whisper_attachment_result_clear(&r);
  free(blob.p);
  free(pt);
}

/* Without an incremental MAC, a second pass whose bytes are not the first
 * pass's (a file changed on disk, a blob fetched again from a server that
 * serves another) releases only the chunks that are the same as those the
 * first pass checked. */
static void test_second_pass_changed(void) {
  rng_state = 3345; /* each test its own plaintexts, whatever ran before */
  uint8_t key[64], iv[16];
  for (size_t i = 0; i < 64; i++) key[i] = (uint8_t)(i * 5 + 2);
  memset(iv, 0x3C, sizeof iv);
  size_t n = 300000;
  uint8_t *pt = malloc(n);
  for (size_t i = 0; i < n; i++) pt[i] = (uint8_t)rnd();
  sinkbuf blob = {0};
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  CHECK_RC(encrypt(key, iv, pt, n, &blob, &r), WHISPER_OK);
  uint32_t chunk = whisper_attachment_chunk_size(blob.n);
  uint8_t *other = malloc(blob.n);
  size_t flips[] = {0, 20, 100000, 2 * (size_t)chunk, blob.n - 40, blob.n - 1}, cuts[] = {0, 70000, blob.n - 1};
  for (size_t k = 0; k < sizeof flips / sizeof flips[0] + sizeof cuts / sizeof cuts[0]; k++) {
    int cut = k >= sizeof flips / sizeof flips[0];
    size_t at = cut ? cuts[k - sizeof flips / sizeof flips[0]] : flips[k];
    memcpy(other, blob.p, blob.n);
    if (!cut) other[at] ^= 0x08;
    whisper_attachment_expect_t x = expect_of(key, n, &r, 0);
    whisper_attachment_decryptor *d = NULL;
    sinkbuf out = {0};
    CHECK_RC(whisper_attachment_decrypt_new(&d, &x, sink_add, &out), WHISPER_OK);
    CHECK_RC(whisper_attachment_decrypt_update(d, blob.p, blob.n), WHISPER_OK);
    CHECK_RC(whisper_attachment_decrypt_finish(d), WHISPER_ATTACHMENT_AGAIN);
    int urc = WHISPER_OK;
    for (size_t i = 0; i < (cut ? at : blob.n); i += 1000) {
      size_t take = (cut ? at : blob.n) - i < 1000 ? (cut ? at : blob.n) - i : 1000;
      int u = whisper_attachment_decrypt_update(d, other + i, take);
      if (urc == WHISPER_OK) urc = u;
    }
    /* an update says so once the chunk is in; the last chunk is checked by finish */
    CHECK(urc == (cut || at >= blob.n / chunk * chunk ? WHISPER_OK : WHISPER_EINTEGRITY));
    CHECK_RC(whisper_attachment_decrypt_finish(d), cut ? WHISPER_ETRUNCATED : WHISPER_EINTEGRITY);
    CHECK(out.n <= verified_before(at, chunk) && out.n == whisper_attachment_decrypt_released(d));
    CHECK(out.n == 0 || memcmp(out.p, pt, out.n) == 0);
    whisper_attachment_decrypt_free(d);
    free(out.p);
  }
  free(other);
  whisper_attachment_result_clear(&r);
  free(blob.p);
  free(pt);
}

/* --- pieces of every size ---------------------------------------------------------- */

/* Every way of cutting a blob into updates releases the same bytes and
 * returns the same as the blob fed whole (and as the decryptor reading it
 * itself), on success and on each failure: 1 byte at a time, an AES block
 * and a MAC's length one byte either side, the 64 KiB piece and chunk one
 * byte either side, cuts at those boundaries and at the blob's MAC, and
 * random sizes from several seeds. */
static void test_pieces(void) {
  rng_state = 5345;
  static const piecing all[] = {
      {1, 0, 0, 0},      {15, 0, 0, 0},     {16, 0, 0, 0},     {17, 0, 0, 0},
      {31, 0, 0, 0},     {32, 0, 0, 0},     {33, 0, 0, 0},     {4095, 0, 0, 0},
      {65535, 0, 0, 0},  {65536, 0, 0, 0},  {65537, 0, 0, 0},  {150000, 0, 0, 0},
      {0, 0, 0, 1},      {0, 1, 150000, 0}, {0, 2, 150000, 0}, {0, 3, 70000, 0},
      {0, 4, 5000, 0},   {0, 5, 100, 0},    {0, 6, 33, 0},     {0, 7, 200000, 0}};
  uint8_t key[64], iv[16], wrong[64];
  for (size_t i = 0; i < 64; i++) key[i] = (uint8_t)(i * 11 + 5);
  memcpy(wrong, key, sizeof wrong);
  wrong[50] ^= 4;
  memset(iv, 0x42, sizeof iv);
  size_t sizes[] = {1000, 200000};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = sizes[k];
    uint8_t *pt = malloc(n);
    for (size_t i = 0; i < n; i++) pt[i] = (uint8_t)rnd();
    sinkbuf blob = {0};
    whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
    CHECK_RC(encrypt(key, iv, pt, n, &blob, &r), WHISPER_OK);
    uint32_t chunk = r.chunk_size;
    for (int inc = 1; inc >= 0; inc--) {
      /* the blob as it is; a pointer whose size is another bucket's, smaller
       * (the blob is longer than it says) or bigger; a few bytes short; cut
       * short; a bit flipped mid-chunk and in the MAC; a wrong key; a wrong
       * key and a smaller size (a chunk that fails before that size's end
       * says so, however the blob was cut: not a wrong key alone; found by
       * fuzz_attachment) */
      enum { OK, SMALLER, BIGGER, SHORT, CUT, FLIP, FLIP_MAC, KEY, KEY_SMALLER, CASES };
      const int want[CASES] = {WHISPER_OK,         WHISPER_ESIZE,      WHISPER_ESIZE,
                               WHISPER_ESIZE,      WHISPER_ETRUNCATED, WHISPER_EINTEGRITY,
                               WHISPER_EINTEGRITY, WHISPER_EKEY,
                               inc && whisper_attachment_blob_size(n / 2) >= chunk
                                   ? WHISPER_EINTEGRITY
                                   : WHISPER_ESIZE};
      for (int c = 0; c < CASES; c++) {
        whisper_attachment_expect_t x =
            expect_of(c == KEY || c == KEY_SMALLER ? wrong : key, n, &r, inc);
        size_t len = c == CUT ? blob.n / 2 : blob.n, bad = blob.n;
        if (c == SMALLER || c == KEY_SMALLER) x.plaintext_size = n / 2;
        if (c == BIGGER) x.plaintext_size = n * 2;
        if (c == SHORT) x.plaintext_size = n - 3;
        if (c == FLIP) bad = blob.n / 2;
        if (c == FLIP_MAC) bad = blob.n - 20;
        if (c == CUT) bad = len;
        if (c == FLIP || c == FLIP_MAC) blob.p[bad] ^= 0x01;
        sinkbuf out = {0};
        CHECK_RC(decrypt_with(&x, blob.p, len, &out, 0, all, sizeof all / sizeof all[0]), want[c]);
        /* only verified bytes, and those the sender's */
        CHECK(out.n == 0 || memcmp(out.p, pt, out.n) == 0);
        /* a pointer size below the blob's: its first bytes, once verified, may
         * come out before the padding shows the size is wrong (the caller
         * discards them) */
        size_t most = c == KEY_SMALLER              ? 0
                      : c == SMALLER || c == SHORT ? (size_t)x.plaintext_size
                      : inc                      ? verified_before(bad, chunk)
                                                 : 0;
        CHECK(c == OK ? out.n == n : out.n <= most);
        if (c == FLIP || c == FLIP_MAC) blob.p[bad] ^= 0x01;
        free(out.p);
      }
    }
    whisper_attachment_result_clear(&r);
    free(blob.p);
    free(pt);
  }
}

/* --- the decryptor reading the blob itself ------------------------------------------ */

/* The incremental MAC of `blob` at `chunk`, as a pointer would carry it. */
static whisper_attachment_expect_t expect_chunk(const uint8_t key[64], size_t n,
                                                const whisper_attachment_result_t *r,
                                                const sinkbuf *blob, uint32_t chunk,
                                                whisper_buf **im) {
  whisper_attachment_expect_t x = expect_of(key, n, r, 1);
  CHECK_RC(whisper_incremental_mac(key + 32, 32, chunk, blob->p, blob->n, im), WHISPER_OK);
  x.incremental_mac = (*im)->data;
  x.incremental_mac_len = (*im)->len;
  x.chunk_size = chunk;
  return x;
}

/* Plaintext bytes a decryptor reading the source may have released when
 * blob offset `bad` changed between its reads: the chunks before it, and
 * the 64 KiB pieces before it in its chunk. */
static size_t source_verified_before(size_t bad, uint32_t chunk) {
  size_t start = bad / chunk * chunk, whole = start + (bad - start) / 65536 * 65536;
  return whole > 16 ? whole - 16 : 0;
}

static void test_source(void) {
  rng_state = 4345; /* each test its own plaintexts, whatever ran before */
  uint8_t key[64], iv[16];
  for (size_t i = 0; i < 64; i++) key[i] = (uint8_t)(i * 7 + 3);
  memset(iv, 0x5A, sizeof iv);
  size_t n = 700000;
  uint8_t *pt = malloc(n);
  for (size_t i = 0; i < n; i++) pt[i] = (uint8_t)rnd();
  sinkbuf blob = {0};
  whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
  CHECK_RC(encrypt(key, iv, pt, n, &blob, &r), WHISPER_OK);

  /* chunks of several pieces (the last one short), of exactly one, of less
   * than one, and a blob of whole chunks: opened, each chunk read twice,
   * never more than 64 KiB asked for at a time */
  uint32_t chunks[] = {200000, 65536, 1000, (uint32_t)blob.n / 4, (uint32_t)blob.n,
                       WHISPER_ATTACHMENT_CHUNK_MAX};
  CHECK(blob.n % 4 == 0);
  for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
    whisper_buf *im = NULL;
    whisper_attachment_expect_t x = expect_chunk(key, n, &r, &blob, chunks[k], &im);
    sinkbuf out = {0};
    source src = {blob.p, blob.n, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_RC(decrypt_from(&x, &src, &out), WHISPER_OK);
    CHECK(out.n == n && memcmp(out.p, pt, n) == 0);
    CHECK(src.bytes == 2 * blob.n && src.largest <= 65536);
    /* and what the fed decryptor releases, from the same pointer */
    sinkbuf fed = {0};
    CHECK_RC(decrypt_fed(&x, blob.p, blob.n, &fed, 0, &DEFAULT_PIECES[0]), WHISPER_OK);
    CHECK(fed.n == n && memcmp(fed.p, pt, n) == 0);
    free(fed.p);
    free(out.p);
    whisper_buf_free(im);
  }
  /* without an incremental MAC: the blob read three times (the first pass whole) */
  whisper_attachment_expect_t x0 = expect_of(key, n, &r, 0);
  sinkbuf out = {0};
  source src = {blob.p, blob.n, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK_RC(decrypt_from(&x0, &src, &out), WHISPER_OK);
  CHECK(out.n == n && memcmp(out.p, pt, n) == 0 && src.bytes == 3 * blob.n);

  /* a source whose bytes change (or that gets shorter) once read: nothing
   * of the changed piece or after it comes out */
  size_t at[] = {0, 16, 1000, 65535, 65536, 150000, 199999, 200000, 300000, blob.n - 33, blob.n - 1};
  for (int inc = 1; inc >= 0; inc--) {
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
      for (int cut = 0; cut < 2; cut++) {
        whisper_buf *im = NULL;
        whisper_attachment_expect_t x = inc ? expect_chunk(key, n, &r, &blob, 200000, &im) : x0;
        source ch = {blob.p, blob.n, at[i], !cut, cut, 0, 0, 0, 0, 0, 0};
        out.n = 0;
        int rc = decrypt_from(&x, &ch, &out);
        /* a piece read again that differs, or a chunk whose MAC (in two
         * passes, the first pass's) fails; cut, the blob may also end
         * before a chunk is first read */
        CHECK(rc == WHISPER_EINTEGRITY || (cut && rc == WHISPER_ETRUNCATED));
        CHECK(out.n <= (inc ? source_verified_before(at[i], 200000)
                            : verified_before(at[i], whisper_attachment_chunk_size(blob.n))));
        CHECK(out.n == 0 || memcmp(out.p, pt, out.n) == 0);
        whisper_buf_free(im);
      }
    }
  }
  /* a blob cut short, a byte more, a flipped byte, another MAC key */
  for (int inc = 1; inc >= 0; inc--) {
    whisper_attachment_expect_t x = expect_of(key, n, &r, inc);
    source s1 = {blob.p, blob.n - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    out.n = 0;
    CHECK_RC(decrypt_from(&x, &s1, &out), WHISPER_ETRUNCATED);
    uint8_t *longer = malloc(blob.n + 1);
    memcpy(longer, blob.p, blob.n);
    longer[blob.n] = 0;
    source s2 = {longer, blob.n + 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    out.n = 0;
    CHECK_RC(decrypt_from(&x, &s2, &out), WHISPER_ESIZE);
    longer[300000] ^= 1;
    source s3 = {longer, blob.n, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    out.n = 0;
    CHECK_RC(decrypt_from(&x, &s3, &out), WHISPER_EINTEGRITY);
    CHECK(out.n <= (inc ? verified_before(300000, r.chunk_size) : 0));
    free(longer);
    uint8_t wrong[64];
    memcpy(wrong, key, 64);
    wrong[50] ^= 4;
    whisper_attachment_expect_t xw = x;
    xw.key = wrong;
    source s4 = {blob.p, blob.n, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    out.n = 0;
    CHECK_RC(decrypt_from(&xw, &s4, &out), WHISPER_EKEY);
    CHECK(out.n == 0 && s4.bytes >= blob.n); /* read to its end, to tell a wrong key */
    /* the source's error, at its first read and later; one that says it read more */
    for (int f = 1; f <= 9; f += 4) {
      source s5 = {blob.p, blob.n, 0, 0, 0, f, 0, 0, 0, 0, 0};
      out.n = 0;
      CHECK_RC(decrypt_from(&x, &s5, &out), 55);
    }
    source s6 = {blob.p, blob.n, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    out.n = 0;
    CHECK_RC(decrypt_from(&x, &s6, &out), WHISPER_EINVAL);
    CHECK(out.n == 0);
    /* the sink's error */
    sinkbuf failing = {0};
    failing.fail_at = 77;
    failing.fail_after = 100000;
    source s7 = {blob.p, blob.n, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK_RC(decrypt_from(&x, &s7, &failing), 77);
    free(failing.p);
  }
  /* refused: no decryptor, no source, bytes already fed, finished */
  whisper_attachment_expect_t x = expect_of(key, n, &r, 1);
  whisper_attachment_decryptor *d = NULL;
  CHECK_RC(whisper_attachment_decrypt_source(NULL, source_read, &src), WHISPER_EINVAL);
  CHECK_RC(whisper_attachment_decrypt_new(&d, &x, sink_add, &out), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_source(d, NULL, &src), WHISPER_EINVAL);
  CHECK_RC(whisper_attachment_decrypt_update(d, blob.p, 10), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_source(d, source_read, &src), WHISPER_EINVAL);
  whisper_attachment_decrypt_free(d);
  CHECK_RC(whisper_attachment_decrypt_new(&d, &x, sink_add, &out), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_finish(d), WHISPER_ETRUNCATED);
  CHECK_RC(whisper_attachment_decrypt_source(d, source_read, &src), WHISPER_EINVAL);
  whisper_attachment_decrypt_free(d);
  /* the first pass fed, the second read from the source */
  out.n = 0;
  CHECK_RC(whisper_attachment_decrypt_new(&d, &x0, sink_add, &out), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_update(d, blob.p, blob.n), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_finish(d), WHISPER_ATTACHMENT_AGAIN);
  source s8 = {blob.p, blob.n, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK_RC(whisper_attachment_decrypt_source(d, source_read, &s8), WHISPER_OK);
  CHECK(out.n == n && memcmp(out.p, pt, n) == 0 && s8.bytes == 2 * blob.n);
  whisper_attachment_decrypt_free(d);
  /* a sink that returns 1 (WHISPER_ATTACHMENT_AGAIN's value) as finish
   * releases the last chunk: that is the sink's value, and the decryptor
   * is finished */
  sinkbuf one = {0};
  one.fail_at = 1;
  one.fail_after = n - 10;
  CHECK_RC(whisper_attachment_decrypt_new(&d, &x, sink_add, &one), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_update(d, blob.p, blob.n), WHISPER_OK);
  CHECK_RC(whisper_attachment_decrypt_finish(d), 1);
  CHECK_RC(whisper_attachment_decrypt_finish(d), WHISPER_EINVAL);
  CHECK_RC(whisper_attachment_decrypt_update(d, blob.p, 1), WHISPER_EINVAL);
  whisper_attachment_decrypt_free(d);
  free(one.p);
  free(out.p);
  whisper_attachment_result_clear(&r);
  free(blob.p);
  free(pt);
}

/* --- vectors made by node:crypto and libsignal (tests/vectors/attachment.json) ------ */

static void to_hex(char *out, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
  out[2 * n] = 0;
}

static int hex_is(const char *want, const uint8_t *p, size_t n) {
  char *got = malloc(2 * n + 1);
  to_hex(got, p, n);
  int same = want && strcmp(want, got) == 0;
  free(got);
  return same;
}

static uint64_t field_u(const json_value *o, const char *key) {
  uint64_t v = 0;
  CHECK(json_u53(json_get(o, key), &v) == 0);
  return v;
}

/* A vector's key, IV and plaintext: the AES-256-CTR keystream under
 * SHA-256("libwhisper attachment vector: " || seed), IV zero, over 80 + n
 * zeros (key, IV, plaintext in that order). */
static uint8_t *vector_stream(const char *seed, size_t n) {
  char label[128];
  uint8_t k[32], iv[16] = {0};
  snprintf(label, sizeof label, "libwhisper attachment vector: %s", seed);
  EVP_Digest(label, strlen(label), k, NULL, EVP_sha256(), NULL);
  uint8_t *s = calloc(80 + n, 1);
  int l = 0;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  CHECK(EVP_EncryptInit_ex(c, EVP_aes_256_ctr(), NULL, k, iv) == 1 &&
        EVP_EncryptUpdate(c, s, &l, s, (int)(80 + n)) == 1 && (size_t)l == 80 + n);
  EVP_CIPHER_CTX_free(c);
  return s;
}

static void test_vectors(void) {
  json_value *v = load_vector("attachment.json");
  const json_value *vs = json_get(v, "vectors");
  CHECK(vs && vs->type == JSON_ARRAY && vs->count >= 8);
  for (size_t i = 0; vs && i < vs->count; i++) {
    const json_value *t = vs->items[i];
    const char *seed = json_str(json_get(t, "seed"), NULL);
    size_t n = (size_t)field_u(t, "size");
    CHECK(seed != NULL);
    uint8_t *s = vector_stream(seed ? seed : "", n), *key = s, *iv = s + 64, *pt = s + 80;
    CHECK(hex_is(json_str(json_get(t, "key_hex"), NULL), key, 64));
    CHECK(hex_is(json_str(json_get(t, "iv_hex"), NULL), iv, 16));
    /* sizes */
    uint64_t blob_size = field_u(t, "blob_size");
    CHECK(whisper_attachment_padded_size(n) == field_u(t, "padded_size"));
    CHECK(whisper_attachment_blob_size(n) == blob_size);
    CHECK(whisper_attachment_chunk_size(blob_size) == field_u(t, "chunk_size"));
    /* the same blob: its digest (SHA-256 of all of it), the plaintext's hash,
     * libsignal's incremental MAC */
    sinkbuf blob = {0}, out = {0}, out2 = {0};
    whisper_attachment_result_t r = WHISPER_ATTACHMENT_RESULT_INIT;
    CHECK_RC(encrypt(key, iv, pt, n, &blob, &r), WHISPER_OK);
    CHECK(blob.n == blob_size && r.blob_size == blob_size);
    CHECK(hex_is(json_str(json_get(t, "digest_hex"), NULL), r.digest, 32));
    CHECK(hex_is(json_str(json_get(t, "plaintext_sha256_hex"), NULL), r.plaintext_hash, 32));
    CHECK(r.chunk_size == field_u(t, "chunk_size"));
    CHECK(r.incremental_mac && r.incremental_mac->len == 32 * field_u(t, "incremental_mac_count"));
    const char *imac_hex = json_str(json_get(t, "incremental_mac_hex"), NULL);
    uint8_t *imac = NULL;
    size_t imac_len = 0;
    if (imac_hex) {
      CHECK(r.incremental_mac && hex_is(imac_hex, r.incremental_mac->data, r.incremental_mac->len));
      imac = unhex(imac_hex, &imac_len);
    } else if (r.incremental_mac) { /* a long list: its SHA-256 */
      uint8_t h[32];
      EVP_Digest(r.incremental_mac->data, r.incremental_mac->len, h, NULL, EVP_sha256(), NULL);
      CHECK(hex_is(json_str(json_get(t, "incremental_mac_sha256_hex"), NULL), h, 32));
      imac_len = r.incremental_mac->len;
      imac = malloc(imac_len);
      memcpy(imac, r.incremental_mac->data, imac_len);
    }
    /* decrypted from what the vector says, with its incremental MAC and without */
    uint8_t digest[32] = {0};
    const char *digest_hex = json_str(json_get(t, "digest_hex"), NULL);
    unhex_to(digest, 32, digest_hex ? digest_hex : "");
    whisper_attachment_expect_t x = WHISPER_ATTACHMENT_EXPECT_INIT;
    x.key = key;
    x.plaintext_size = n;
    x.digest = digest;
    x.incremental_mac = imac;
    x.incremental_mac_len = imac_len;
    x.chunk_size = (uint32_t)field_u(t, "chunk_size");
    CHECK_RC(decrypt(&x, blob.p, blob.n, &out, 0), WHISPER_OK);
    CHECK(out.n == n && (n == 0 || memcmp(out.p, pt, n) == 0));
    x.incremental_mac = NULL;
    x.incremental_mac_len = 0;
    CHECK_RC(decrypt(&x, blob.p, blob.n, &out2, 0), WHISPER_OK);
    CHECK(out2.n == n && (n == 0 || memcmp(out2.p, pt, n) == 0));
    whisper_attachment_result_clear(&r);
    free(imac);
    free(blob.p);
    free(out.p);
    free(out2.p);
    free(s);
  }
  /* Signal's buckets and libsignal's chunk sizes at chosen points */
  const json_value *pads = json_get(v, "padded_sizes"), *chunks = json_get(v, "chunk_sizes");
  CHECK(pads && pads->type == JSON_ARRAY && pads->count >= 10);
  CHECK(chunks && chunks->type == JSON_ARRAY && chunks->count >= 5);
  for (size_t i = 0; pads && i < pads->count; i++) {
    uint64_t size = 0, padded = 0;
    CHECK(pads->items[i]->count == 2 && json_u53(pads->items[i]->items[0], &size) == 0 &&
          json_u53(pads->items[i]->items[1], &padded) == 0);
    CHECK(whisper_attachment_padded_size(size) == padded);
  }
  for (size_t i = 0; chunks && i < chunks->count; i++) {
    uint64_t size = 0, chunk = 0;
    CHECK(chunks->items[i]->count == 2 && json_u53(chunks->items[i]->items[0], &size) == 0 &&
          json_u53(chunks->items[i]->items[1], &chunk) == 0);
    CHECK(whisper_attachment_chunk_size(size) == chunk);
  }
  json_free(v);
}

int main(void) {
  test_sizes();
  test_incremental_mac();
  test_round_trips();
  test_failures();
  test_second_pass_changed();
  test_source();
  test_vectors();
  test_versioned_structs();
  test_pieces();
  return test_done();
}
