/*
 * fuzz_attachment: the streaming attachment decryptor (whisper/attachment.h)
 * against an independent model of Signal's format (OpenSSL one-shots:
 * AES-256-CBC, HMAC-SHA256 over each prefix, SHA-256).
 *
 * Input (bytes past the end read as 0):
 *   [0]    flags: & 3 the mode (0..2 a real blob, mutated; 3 everything from
 *          the input), 4 a plaintext hash in the expectation, 8 a chunk size
 *          chosen by [4..5] (else libsignal's for the blob), 16 a plaintext
 *          of up to 65535 bytes (else up to 2047), 32 stop feeding at the
 *          first failing update (and free without finish), 64 the second
 *          pass in other pieces.
 *   real blob: [1..2] the plaintext's size, [3] the seed of key, IV and
 *          plaintext, [4..5] the chosen chunk size (16 + v % 4096), [6] & 15
 *          the number of operations, then 4 bytes each (op, a, b, c):
 *            0 flip a blob bit        1 cut the blob      2 append bytes
 *            3 another size           4 drop a MAC        5 add a MAC
 *            6 flip a MAC bit         7 any chunk size    8 chunk size +- a
 *            9 flip a key bit        10 flip a digest bit 11 the plaintext
 *                                                            hash flipped/dropped
 *           12 a maximum size        13 flip a bit of the second pass only
 *           14 cut the second pass   15 cut the MAC list (any length)
 *   everything from the input: [1..64] key, [65..68] size, [69..100]
 *          digest, [101..132] plaintext hash, [133..136] chunk size, [137]
 *          MAC list length, the list, [..+2] blob length, the blob.
 *   The rest of the input: the sizes of the pieces fed (1 + 37 * byte each,
 *   cycled; none: all at once).
 *
 * The decryptor runs twice on each input: with the incremental MAC (one
 * pass, when the expectation has one) and without it (two passes: the
 * blob again, or the second-pass bytes, after WHISPER_ATTACHMENT_AGAIN).
 * Each time it is also fed the blob (and the second pass) whole, and
 * it also reads the blob itself (whisper_attachment_decrypt_source())
 * from a source that gives the blob's bytes the first time each is read
 * and the second pass's bytes when read again.
 * Asserts:
 *  - decrypt_new gives ETOOBIG exactly for a size above the maximum,
 *    EINVALIDMSG exactly for a chunk size out of 16..2 MiB or a MAC list
 *    that is empty or not whole MACs, else OK;
 *  - after a failing update every later one gives the same code; after
 *    finish (but AGAIN) update and finish give EINVAL;
 *  - the first pass's finish gives AGAIN exactly when the blob has the
 *    size's length, the digest and its MAC under the expectation's key;
 *  - WHISPER_OK exactly when the model opens the blob as the expectation
 *    says (length, digest, MAC, PKCS#7, zeros to Signal's bucket, the
 *    plaintext hash, every incremental MAC libsignal would make at that
 *    chunk size; and, in two passes, the second pass the same bytes); the
 *    output is then the plaintext, all of it;
 *  - on any error, the plaintext released is the model's decryption of the
 *    bytes fed, and no more than the verified bytes hold: with the
 *    incremental MAC, the whole chunks whose MACs the model verifies up to
 *    the first that fails (all of the blob once the last MAC verifies);
 *    in two passes nothing unless the first pass checked, then no more
 *    than the second pass's bytes before its first byte that differs from
 *    the first pass's;
 *  - in a real blob altered one way only, the error is the documented
 *    one: cut short ETRUNCATED, flipped bytes EINTEGRITY, bytes appended
 *    ESIZE, another MAC key EKEY, another AES key ESIZE or EINTEGRITY,
 *    another digest EINTEGRITY, another size or plaintext hash ESIZE,
 *    another MAC list or chunk size EKEY;
 *  - the encryptor's blob of the untouched input opens in the model, and
 *    its incremental MAC is the model's;
 *  - fed whole, it releases the same bytes and gives the same result as
 *    fed in the input's pieces (where the pieces end changes nothing);
 *  - read from the source: WHISPER_OK only when the model opens the blob,
 *    and then the plaintext; never more than the fed decryptor may release
 *    nor more than the bytes before the first that the second pass
 *    changes, all of them the blob's; when the second pass's bytes are the
 *    blob's, WHISPER_OK exactly when the model opens it, and the
 *    documented error for a single alteration, as fed, and the same
 *    bytes and result as fed (unless stopped early); never more than 64
 *    KiB asked for at a time.
 * gen_corpus compiles this file with FZA_SEEDS_ONLY and calls
 * fza_gen_seeds().
 */
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "whisper/attachment.h"

#define CHUNK_MAX WHISPER_ATTACHMENT_CHUNK_MAX
#define SIZE_MAX_ WHISPER_ATTACHMENT_SIZE_MAX

/* --- the input ------------------------------------------------------------------------ */

typedef struct reader {
  const uint8_t *p;
  size_t n, at;
} reader;

static uint8_t rd8(reader *r) { return r->at < r->n ? r->p[r->at++] : (r->at++, 0); }
static uint32_t rd16(reader *r) { return rd8(r) | (uint32_t)rd8(r) << 8; }
static uint32_t rd32(reader *r) { return rd16(r) | rd16(r) << 16; }
static void rdn(reader *r, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = rd8(r);
}

typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static void b_reserve(bytes *b, size_t n) {
  if (n <= b->cap) return;
  b->cap = n * 2 + 64;
  b->p = realloc(b->p, b->cap);
  FZ_ASSERT(b->p != NULL, "out of memory");
}
static void b_set(bytes *b, const uint8_t *p, size_t n) {
  b_reserve(b, n);
  if (n) memcpy(b->p, p, n);
  b->n = n;
}
static void b_insert(bytes *b, size_t at, const uint8_t *p, size_t n) {
  b_reserve(b, b->n + n);
  memmove(b->p + at + n, b->p + at, b->n - at);
  memcpy(b->p + at, p, n);
  b->n += n;
}
static int b_eq(const bytes *a, const bytes *b) {
  return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* What a decryption is told (the decryptor's expectation, owned). */
typedef struct expect {
  uint8_t key[64], digest[32], ph[32];
  int has_ph;
  uint64_t size, max;
  bytes macs;
  uint32_t chunk;
} expect;

/* --- the model ------------------------------------------------------------------------ */

static uint64_t padded_model(uint64_t n) {
  double b = n ? floor(pow(1.05, ceil(log((double)n) / log(1.05)))) : 0.0;
  uint64_t p = b > 541.0 ? (uint64_t)b : 541;
  return p > n ? p : n;
}

/* The blob's length for a size; 0 for a size the format does not take. */
static uint64_t blob_model(uint64_t n) {
  if (n > SIZE_MAX_) return 0;
  return 16 + (padded_model(n) / 16 + 1) * 16 + 32;
}

static void sha256(const uint8_t *p, size_t n, uint8_t out[32]) {
  FZ_ASSERT(EVP_Digest(n ? p : (const uint8_t *)"", n, out, NULL, EVP_sha256(), NULL) == 1, "sha256");
}

static EVP_MAC *hmac_alg;

static EVP_MAC_CTX *hmac_new(const uint8_t key[32]) {
  if (hmac_alg == NULL) hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
  FZ_ASSERT(hmac_alg != NULL, "HMAC");
  EVP_MAC_CTX *c = EVP_MAC_CTX_new(hmac_alg);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  FZ_ASSERT(c && EVP_MAC_init(c, key, 32, params) == 1, "HMAC init");
  return c;
}

static void hmac_out(EVP_MAC_CTX *c, uint8_t out[32], int keep) {
  EVP_MAC_CTX *d = keep ? EVP_MAC_CTX_dup(c) : c;
  size_t l = 0;
  FZ_ASSERT(d && EVP_MAC_final(d, out, &l, 32) == 1 && l == 32, "HMAC final");
  if (keep) EVP_MAC_CTX_free(d);
}

static void hmac(const uint8_t key[32], const uint8_t *p, size_t n, uint8_t out[32]) {
  EVP_MAC_CTX *c = hmac_new(key);
  FZ_ASSERT(EVP_MAC_update(c, p, n) == 1, "HMAC update");
  hmac_out(c, out, 0);
  EVP_MAC_CTX_free(c);
}

/* libsignal's incremental MAC of `b` at `chunk`: HMAC-SHA256 of each
 * prefix ending on a chunk boundary, then of the whole. */
static void imac_model(const uint8_t key[32], uint32_t chunk, const bytes *b, bytes *out) {
  EVP_MAC_CTX *c = hmac_new(key);
  out->n = 0;
  b_reserve(out, (b->n / chunk + 1) * 32);
  for (size_t at = 0; at + chunk <= b->n; at += chunk) {
    FZ_ASSERT(EVP_MAC_update(c, b->p + at, chunk) == 1, "HMAC update");
    hmac_out(c, out->p + out->n, 1);
    out->n += 32;
  }
  size_t whole = b->n / chunk * chunk;
  FZ_ASSERT(EVP_MAC_update(c, b->p + whole, b->n - whole) == 1, "HMAC update");
  hmac_out(c, out->p + out->n, 0);
  out->n += 32;
  EVP_MAC_CTX_free(c);
}

/* AES-256-CBC of the blob's whole blocks after the IV, without padding
 * removed: what a decryptor can release, byte for byte. */
static void cbc_model(const uint8_t key[32], const bytes *b, bytes *out) {
  out->n = 0;
  if (b->n < 32) return;
  size_t len = (b->n - 16) / 16 * 16;
  b_reserve(out, len);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int l1 = 0, l2 = 0;
  FZ_ASSERT(c && EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, key, b->p) == 1 &&
                EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
                EVP_DecryptUpdate(c, out->p, &l1, b->p + 16, (int)len) == 1 &&
                EVP_DecryptFinal_ex(c, out->p + l1, &l2) == 1 && (size_t)(l1 + l2) == len,
            "AES-CBC");
  EVP_CIPHER_CTX_free(c);
  out->n = len;
}

static int chunk_ok(const expect *x) {
  return x->chunk >= 16 && x->chunk <= CHUNK_MAX && x->macs.n && x->macs.n % 32 == 0;
}

/* The first pass's checks: the length, the digest, the MAC. */
static int first_pass_model(const bytes *b, const expect *x) {
  uint8_t d[32], m[32];
  if (b->n != blob_model(x->size)) return 0;
  sha256(b->p, b->n, d);
  if (memcmp(d, x->digest, 32) != 0) return 0;
  hmac(x->key + 32, b->p, b->n - 32, m);
  return memcmp(m, b->p + b->n - 32, 32) == 0;
}

/* Whether the blob opens as `x` says; its plaintext into `pt`. */
static int open_model(const bytes *b, const expect *x, int inc, bytes *pt) {
  pt->n = 0;
  if (!first_pass_model(b, x)) return 0;
  if (inc) {
    bytes m = {0};
    if (!chunk_ok(x)) return 0;
    imac_model(x->key + 32, x->chunk, b, &m);
    int same = b_eq(&m, &x->macs);
    free(m.p);
    if (!same) return 0;
  }
  uint64_t padded = padded_model(x->size);
  b_reserve(pt, b->n);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int l1 = 0, l2 = 0;
  FZ_ASSERT(c && EVP_DecryptInit_ex(c, EVP_aes_256_cbc(), NULL, x->key, b->p) == 1 &&
                EVP_DecryptUpdate(c, pt->p, &l1, b->p + 16, (int)(b->n - 48)) == 1,
            "AES-CBC");
  int ok = EVP_DecryptFinal_ex(c, pt->p + l1, &l2) == 1; /* PKCS#7 */
  EVP_CIPHER_CTX_free(c);
  if (!ok || (uint64_t)(l1 + l2) != padded) return 0;
  for (uint64_t i = x->size; i < padded; i++)
    if (pt->p[i] != 0) return 0;
  pt->n = (size_t)x->size;
  if (x->has_ph) {
    uint8_t h[32];
    sha256(pt->p, pt->n, h);
    if (memcmp(h, x->ph, 32) != 0) return 0;
  }
  return 1;
}

/* With the incremental MAC: the blob bytes whose MACs verify, from the
 * start (whole chunks, all of the blob once its last MAC verifies). */
static size_t verified_model(const bytes *b, const expect *x) {
  uint64_t end = blob_model(x->size);
  size_t limit = end && end < b->n ? (size_t)end : b->n, nmacs = x->macs.n / 32, j = 0;
  EVP_MAC_CTX *c = hmac_new(x->key + 32);
  uint8_t mac[32];
  size_t at = 0;
  for (; at + x->chunk <= limit; at += x->chunk) {
    FZ_ASSERT(EVP_MAC_update(c, b->p + at, x->chunk) == 1, "HMAC update");
    hmac_out(c, mac, 1);
    if (j + 1 >= nmacs || memcmp(mac, x->macs.p + 32 * j, 32) != 0) break;
    j++;
  }
  size_t v = j * x->chunk;
  if (at + x->chunk > limit && b->n == end && j + 1 == nmacs) { /* every boundary verified */
    FZ_ASSERT(EVP_MAC_update(c, b->p + at, b->n - at) == 1, "HMAC update");
    hmac_out(c, mac, 0);
    if (memcmp(mac, x->macs.p + 32 * j, 32) == 0) v = b->n;
  }
  EVP_MAC_CTX_free(c);
  return v;
}

/* --- running the decryptor ------------------------------------------------------------ */

static int sink_add(void *user, const uint8_t *data, size_t len) {
  bytes *b = user;
  FZ_ASSERT(len > 0, "an empty sink call");
  b_reserve(b, b->n + len);
  memcpy(b->p + b->n, data, len);
  b->n += len;
  return 0;
}

typedef struct feed {
  const uint8_t *sizes;
  size_t n, at;
} feed;

static size_t next_piece(feed *f) {
  if (f->n == 0) return SIZE_MAX;
  size_t s = 1 + 37 * (size_t)f->sizes[f->at++ % f->n];
  return s;
}

/* Feeds `b` in pieces; the first failing update's code (0: none). Every
 * update after a failing one gives the same code. */
static int feed_all(whisper_attachment_decryptor *d, const bytes *b, feed *f, int stop) {
  int first = WHISPER_OK;
  for (size_t at = 0; at < b->n;) {
    size_t take = next_piece(f);
    if (take > b->n - at) take = b->n - at;
    int rc = whisper_attachment_decrypt_update(d, b->p + at, take);
    FZ_ASSERT(fz_rc_in(rc, 3, WHISPER_OK, WHISPER_EINTEGRITY, WHISPER_ESIZE), "update gave %d", rc);
    if (first != WHISPER_OK)
      FZ_ASSERT(rc == first, "update gave %d after %d", rc, first);
    if (rc != WHISPER_OK && first == WHISPER_OK) first = rc;
    if (rc != WHISPER_OK && stop) break;
    at += take;
  }
  return first;
}

enum { D_SIZE = 1, D_KEY_AES = 2, D_KEY_MAC = 4, D_DIGEST = 8, D_PH = 16, D_MACS = 32, D_CHUNK = 64 };
enum { B_SAME, B_PREFIX, B_EXTENDED, B_FLIPPED, B_OTHER };

typedef struct run {
  const bytes *blob, *second; /* the blob, and the second pass's bytes */
  const expect *x;
  int inc, stop, structured;
  int diffs, bclass; /* structured: what differs from the untouched input */
  feed f1, f2;
} run;

static int bclass_of(const bytes *b0, const bytes *b) {
  size_t m = b0->n < b->n ? b0->n : b->n;
  int common = m == 0 || memcmp(b0->p, b->p, m) == 0;
  if (common) return b->n == b0->n ? B_SAME : b->n < b0->n ? B_PREFIX : B_EXTENDED;
  return b->n == b0->n ? B_FLIPPED : B_OTHER;
}

static size_t first_diff(const bytes *a, const bytes *b) {
  size_t m = a->n < b->n ? a->n : b->n, i = 0;
  while (i < m && a->p[i] == b->p[i]) i++;
  return i;
}

/* The code a single alteration must give (0: no single one, any error). */
static int single_cause(const run *r) {
  int d = r->diffs;
  if (!r->inc) d &= ~(D_MACS | D_CHUNK);
  if (!r->inc && !b_eq(r->blob, r->second)) return 0;
  if (d == 0) {
    switch (r->bclass) {
    case B_PREFIX: return WHISPER_ETRUNCATED;
    case B_EXTENDED: return WHISPER_ESIZE;
    case B_FLIPPED: return WHISPER_EINTEGRITY;
    default: return 0;
    }
  }
  if (r->bclass != B_SAME) return 0;
  if (d == D_KEY_MAC) return WHISPER_EKEY;
  if (d == D_DIGEST) return WHISPER_EINTEGRITY;
  if (d == D_SIZE || d == D_PH) return WHISPER_ESIZE;
  if ((d & ~(D_MACS | D_CHUNK)) == 0) return WHISPER_EKEY;
  return 0;
}

/* The source of whisper_attachment_decrypt_source(): the blob's bytes at
 * and after the highest offset read so far, the second pass's below it
 * (read again). */
typedef struct source {
  const bytes *first, *again;
  uint64_t seen;
  size_t largest;
} source;

static int source_read(void *user, uint64_t offset, uint8_t *buf, size_t len, size_t *got) {
  source *s = user;
  size_t n = 0;
  if (len > s->largest) s->largest = len;
  for (; n < len; n++) {
    uint64_t at = offset + n;
    const bytes *b = at < s->seen ? s->again : s->first;
    if (at >= b->n) break;
    buf[n] = b->p[at];
  }
  if (offset + n > s->seen) s->seen = offset + n;
  *got = n;
  return 0;
}

/* What finish documents (never EINTERNAL here). */
static int finish_code(int rc) {
  return fz_rc_in(rc, 5, WHISPER_OK, WHISPER_ETRUNCATED, WHISPER_EKEY, WHISPER_EINTEGRITY, WHISPER_ESIZE);
}

/* The fed decryptor's run with the blob (and the second pass) fed whole,
 * as decrypt_once runs it in pieces: the result of finish, or of the
 * failing update when `stop`. */
static int fed_whole(const whisper_attachment_expect_t *e, const run *r, bytes *out) {
  whisper_attachment_decryptor *d = NULL;
  FZ_ASSERT(whisper_attachment_decrypt_new(&d, e, sink_add, out) == WHISPER_OK, "decrypt_new");
  feed whole = {NULL, 0, 0};
  int rc = feed_all(d, r->blob, &whole, r->stop);
  if (rc == WHISPER_OK || !r->stop) {
    rc = whisper_attachment_decrypt_finish(d);
    if (rc == WHISPER_ATTACHMENT_AGAIN) {
      int urc = feed_all(d, r->second, &whole, r->stop);
      rc = urc != WHISPER_OK && r->stop ? urc : whisper_attachment_decrypt_finish(d);
    }
  }
  whisper_attachment_decrypt_free(d);
  return rc;
}

static void decrypt_once(const run *r0) {
  run r = *r0;
  const expect *x = r.x;
  whisper_attachment_expect_t e = WHISPER_ATTACHMENT_EXPECT_INIT;
  e.key = x->key;
  e.plaintext_size = x->size;
  e.digest = x->digest;
  e.plaintext_hash = x->has_ph ? x->ph : NULL;
  if (r.inc) {
    e.incremental_mac = x->macs.p ? x->macs.p : (const uint8_t *)"";
    e.incremental_mac_len = x->macs.n;
    e.chunk_size = x->chunk;
  }
  e.max_size = x->max;
  bytes out = {0}, pt = {0}, stream = {0};
  whisper_attachment_decryptor *d = NULL;
  int rc = whisper_attachment_decrypt_new(&d, &e, sink_add, &out);
  uint64_t max = x->max && x->max < SIZE_MAX_ ? x->max : SIZE_MAX_;
  int want = x->size > max ? WHISPER_ETOOBIG
             : r.inc && !chunk_ok(x) ? WHISPER_EINVALIDMSG
                                     : WHISPER_OK;
  FZ_ASSERT(rc == want, "decrypt_new gave %d, not %d", rc, want);
  if (rc != WHISPER_OK) {
    FZ_ASSERT(d == NULL, "a refused decryptor");
    return;
  }
  int urc = feed_all(d, r.blob, &r.f1, r.stop), passes = 1;
  const bytes *fed = r.blob;
  if (urc != WHISPER_OK && r.stop) {
    rc = urc;
  } else {
    rc = whisper_attachment_decrypt_finish(d);
    FZ_ASSERT(rc == WHISPER_ATTACHMENT_AGAIN ? !r.inc : finish_code(rc), "finish gave %d", rc);
    if (!r.inc) {
      int first = urc == WHISPER_OK && first_pass_model(r.blob, x);
      FZ_ASSERT((rc == WHISPER_ATTACHMENT_AGAIN) == first, "the first pass gave %d, the model %s", rc,
                first ? "checks" : "refuses");
      FZ_ASSERT(whisper_attachment_decrypt_released(d) == 0 && out.n == 0, "the first pass released");
    }
    if (rc == WHISPER_ATTACHMENT_AGAIN) {
      passes = 2;
      fed = r.second;
      urc = feed_all(d, r.second, &r.f2, r.stop);
      rc = urc != WHISPER_OK && r.stop ? urc : whisper_attachment_decrypt_finish(d);
      FZ_ASSERT(finish_code(rc), "finish gave %d", rc);
    }
    if (!(urc != WHISPER_OK && r.stop)) {
      FZ_ASSERT(whisper_attachment_decrypt_update(d, (const uint8_t *)"x", 1) == WHISPER_EINVAL,
                "update after finish");
      FZ_ASSERT(whisper_attachment_decrypt_finish(d) == WHISPER_EINVAL, "finish after finish");
    }
  }
  uint64_t released = whisper_attachment_decrypt_released(d);
  FZ_ASSERT(released == out.n, "released %llu, the sink got %zu", (unsigned long long)released, out.n);
  int ok = open_model(r.blob, x, r.inc, &pt) && (r.inc || b_eq(r.blob, r.second));
  if (fz_verbose())
    fprintf(stderr, "  %s: rc %d (update %d), %d passes, released %zu, model %s\n",
            r.inc ? "incremental" : "two passes", rc, urc, passes, out.n, ok ? "opens" : "refuses");
  FZ_ASSERT((rc == WHISPER_OK) == ok, "the decryptor gave %d, the model %s the blob", rc,
            ok ? "opens" : "refuses");
  if (ok) {
    FZ_ASSERT(b_eq(&out, &pt), "the output (%zu bytes) is not the plaintext (%zu)", out.n, pt.n);
  } else {
    /* no more than the verified bytes hold, and exactly what they decrypt to */
    size_t v = 0;
    if (r.inc) v = verified_model(r.blob, x);
    else if (passes == 2) v = first_diff(r.blob, r.second);
    uint64_t limit = v > 16 ? v - 16 : 0;
    if (limit > x->size) limit = x->size;
    FZ_ASSERT(out.n <= limit, "released %zu bytes, %llu verified (%s, %zu verified blob bytes)", out.n,
              (unsigned long long)limit, r.inc ? "incremental" : "two passes", v);
    cbc_model(x->key, fed, &stream);
    FZ_ASSERT(out.n <= stream.n && (out.n == 0 || memcmp(out.p, stream.p, out.n) == 0),
              "the released bytes are not the blob's plaintext");
    int cause = r.structured && !r.stop ? single_cause(&r) : 0;
    if (cause && r.diffs == D_KEY_AES)
      FZ_ASSERT(rc == WHISPER_ESIZE || rc == WHISPER_EINTEGRITY, "another AES key gave %d", rc);
    else if (cause)
      FZ_ASSERT(rc == cause, "gave %d, not %d (diffs %#x, blob %d)", rc, cause, r.diffs, r.bclass);
  }
  whisper_attachment_decrypt_free(d);

  /* where the pieces end changes nothing: fed whole, the same bytes out
   * and the same result */
  bytes wout = {0};
  int whole_rc = fed_whole(&e, &r, &wout);
  FZ_ASSERT(whole_rc == rc && b_eq(&wout, &out),
            "fed whole: %d and %zu bytes; in pieces: %d and %zu bytes", whole_rc, wout.n, rc, out.n);
  free(wout.p);

  /* the same, the decryptor reading the blob itself */
  bytes sout = {0};
  source src = {r.blob, r.second, 0, 0};
  FZ_ASSERT(whisper_attachment_decrypt_new(&d, &e, sink_add, &sout) == WHISPER_OK, "decrypt_new");
  int src_rc = whisper_attachment_decrypt_source(d, source_read, &src);
  FZ_ASSERT(finish_code(src_rc), "decrypt_source gave %d", src_rc);
  FZ_ASSERT(whisper_attachment_decrypt_released(d) == sout.n, "decrypt_source: released");
  FZ_ASSERT(whisper_attachment_decrypt_finish(d) == WHISPER_EINVAL, "finish after decrypt_source");
  FZ_ASSERT(src.largest <= 65536, "decrypt_source asked for %zu bytes", src.largest);
  whisper_attachment_decrypt_free(d);
  if (fz_verbose())
    fprintf(stderr, "  source: rc %d, released %zu\n", src_rc, sout.n);
  FZ_ASSERT(src_rc != WHISPER_OK || ok, "decrypt_source opened what the model refuses");
  if (src_rc == WHISPER_OK) {
    FZ_ASSERT(b_eq(&sout, &pt), "decrypt_source's output is not the plaintext");
  } else {
    size_t v = r.inc ? verified_model(r.blob, x) : 0, same = first_diff(r.blob, r.second);
    if (!r.inc && first_pass_model(r.blob, x)) v = same;
    if (v > same) v = same;
    uint64_t limit = v > 16 ? v - 16 : 0;
    if (limit > x->size) limit = x->size;
    FZ_ASSERT(sout.n <= limit, "decrypt_source released %zu bytes, %llu verified", sout.n,
              (unsigned long long)limit);
    cbc_model(x->key, r.blob, &stream);
    FZ_ASSERT(sout.n <= stream.n && (sout.n == 0 || memcmp(sout.p, stream.p, sout.n) == 0),
              "decrypt_source released bytes that are not the blob's plaintext");
  }
  if (b_eq(r.blob, r.second)) {
    FZ_ASSERT((src_rc == WHISPER_OK) == ok, "decrypt_source gave %d, the model %s", src_rc,
              ok ? "opens" : "refuses");
    /* the bytes a source gives are the bytes fed: the same out, the same result */
    if (!r.stop)
      FZ_ASSERT(src_rc == rc && b_eq(&sout, &out),
                "decrypt_source: %d and %zu bytes; fed: %d and %zu bytes", src_rc, sout.n, rc,
                out.n);
    int cause = r.structured && !ok ? single_cause(&r) : 0;
    if (cause && r.diffs == D_KEY_AES)
      FZ_ASSERT(src_rc == WHISPER_ESIZE || src_rc == WHISPER_EINTEGRITY,
                "decrypt_source: another AES key gave %d", src_rc);
    else if (cause)
      FZ_ASSERT(src_rc == cause, "decrypt_source gave %d, not %d (diffs %#x, blob %d)", src_rc,
                cause, r.diffs, r.bclass);
  }
  free(sout.p);
  free(out.p);
  free(pt.p);
  free(stream.p);
}

/* --- building the input's blob and expectation ------------------------------------------- */

static void fill(uint64_t *s, uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    p[i] = (uint8_t)(*s >> 32);
  }
}

static void flip(bytes *b, uint32_t at, uint8_t bit) {
  if (b->n) b->p[at % b->n] ^= (uint8_t)(1u << (bit & 7));
}

static void run_input(const uint8_t *data, size_t size) {
  reader r = {data, size, 0};
  uint8_t flags = rd8(&r);
  expect x, x0;
  memset(&x, 0, sizeof x);
  memset(&x0, 0, sizeof x0);
  bytes blob = {0}, blob0 = {0}, second = {0}, pt = {0};
  int structured = (flags & 3) != 3;
  if (structured) {
    uint32_t n = rd16(&r);
    n = flags & 16 ? n : n % 2048;
    uint64_t s = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)rd8(&r) << 32 | n);
    uint32_t chosen = 16 + rd16(&r) % 4096;
    uint8_t iv[16];
    fill(&s, x.key, 64);
    fill(&s, iv, 16);
    b_reserve(&pt, n);
    fill(&s, pt.p, n);
    pt.n = n;
    /* the untouched blob, by the library's encryptor */
    whisper_attachment_encryptor *e = NULL;
    whisper_attachment_result_t res = WHISPER_ATTACHMENT_RESULT_INIT;
    FZ_ASSERT(whisper_attachment_encrypt_new(&e, x.key, iv, n, sink_add, &blob) == WHISPER_OK, "encrypt_new");
    FZ_ASSERT(whisper_attachment_encrypt_update(e, pt.p, n) == WHISPER_OK, "encrypt_update");
    FZ_ASSERT(whisper_attachment_encrypt_finish(e, &res) == WHISPER_OK, "encrypt_finish");
    whisper_attachment_encrypt_free(e);
    x.size = n;
    memcpy(x.digest, res.digest, 32);
    memcpy(x.ph, res.plaintext_hash, 32);
    x.has_ph = (flags & 4) != 0;
    x.chunk = flags & 8 ? chosen : res.chunk_size;
    FZ_ASSERT(res.chunk_size == whisper_attachment_chunk_size(blob.n), "chunk size");
    imac_model(x.key + 32, x.chunk, &blob, &x.macs);
    if (!(flags & 8))
      FZ_ASSERT(b_eq(&x.macs, &(bytes){res.incremental_mac->data, res.incremental_mac->len, 0}),
                "the encryptor's incremental MAC is not the model's");
    whisper_attachment_result_clear(&res);
    bytes check = {0};
    FZ_ASSERT(open_model(&blob, &x, 1, &check) && b_eq(&check, &pt), "the encryptor's blob does not open");
    free(check.p);
    x0 = x;
    x0.macs = (bytes){0};
    b_set(&x0.macs, x.macs.p, x.macs.n);
    b_set(&blob0, blob.p, blob.n);
    /* the operations; those on the second pass after the others */
    int nops = rd8(&r) & 15;
    uint8_t later[16][4];
    int nlater = 0;
    for (int i = 0; i < nops; i++) {
      uint8_t op = rd8(&r) & 15, a = rd8(&r), b = rd8(&r), c = rd8(&r);
      uint32_t ab = a | (uint32_t)b << 8, abc = ab | (uint32_t)c << 16;
      size_t nm = x.macs.n / 32;
      switch (op) {
      case 0: flip(&blob, ab, c); break;
      case 1: blob.n = ab % (blob.n + 1); break;
      case 2: {
        uint8_t more[64];
        for (int k = 0; k <= a % 64; k++) more[k] = (uint8_t)(b ^ k * c);
        b_insert(&blob, blob.n, more, (size_t)(a % 64) + 1);
        break;
      }
      case 3:
        if (c & 1) x.size = (uint64_t)ab << (c >> 2);
        else if ((int16_t)ab < 0 && (uint64_t)-(int16_t)ab > x.size) x.size = 0;
        else x.size += (uint64_t)(int64_t)(int16_t)ab; /* wraps to x.size - |ab| */
        break;
      case 4:
        if (nm) {
          size_t k = a % nm;
          memmove(x.macs.p + 32 * k, x.macs.p + 32 * (k + 1), x.macs.n - 32 * (k + 1));
          x.macs.n -= 32;
        }
        break;
      case 5: {
        uint8_t m[32];
        if (nm) memcpy(m, x.macs.p + 32 * (b % nm), 32);
        else memset(m, c, 32);
        if (c & 1) m[c % 32] ^= 1;
        b_insert(&x.macs, 32 * (a % (nm + 1)), m, 32);
        break;
      }
      case 6: flip(&x.macs, ab, c); break;
      case 7: x.chunk = abc; break;
      case 8: x.chunk += (uint32_t)(int8_t)a; break;
      case 9: x.key[a % 64] ^= (uint8_t)(1u << (b & 7)); break;
      case 10: x.digest[a % 32] ^= (uint8_t)(1u << (b & 7)); break;
      case 11:
        if (c & 1) x.has_ph = !x.has_ph;
        else x.ph[a % 32] ^= (uint8_t)(1u << (b & 7));
        break;
      case 12: x.max = abc; break;
      default:
        later[nlater][0] = op, later[nlater][1] = a, later[nlater][2] = b, later[nlater][3] = c;
        nlater++;
        break;
      }
    }
    b_set(&second, blob.p, blob.n);
    for (int i = 0; i < nlater; i++) {
      uint32_t ab = later[i][1] | (uint32_t)later[i][2] << 8;
      if (later[i][0] == 13) flip(&second, ab, later[i][3]);
      if (later[i][0] == 14) second.n = ab % (second.n + 1);
      if (later[i][0] == 15) x.macs.n = later[i][1] % (x.macs.n + 1);
    }
  } else {
    rdn(&r, x.key, 64);
    x.size = rd32(&r);
    rdn(&r, x.digest, 32);
    rdn(&r, x.ph, 32);
    x.has_ph = (flags & 4) != 0;
    x.chunk = rd32(&r);
    size_t nm = rd8(&r);
    b_reserve(&x.macs, nm);
    rdn(&r, x.macs.p, nm);
    x.macs.n = nm;
    size_t nb = rd16(&r);
    b_reserve(&blob, nb);
    rdn(&r, blob.p, nb);
    blob.n = nb;
    b_set(&second, blob.p, blob.n);
  }
  /* what differs from the untouched input */
  int diffs = 0;
  if (structured) {
    diffs |= x.size != x0.size ? D_SIZE : 0;
    diffs |= memcmp(x.key, x0.key, 32) ? D_KEY_AES : 0;
    diffs |= memcmp(x.key + 32, x0.key + 32, 32) ? D_KEY_MAC : 0;
    diffs |= memcmp(x.digest, x0.digest, 32) ? D_DIGEST : 0;
    diffs |= x.has_ph && memcmp(x.ph, x0.ph, 32) ? D_PH : 0;
    diffs |= !b_eq(&x.macs, &x0.macs) ? D_MACS : 0;
    diffs |= x.chunk != x0.chunk ? D_CHUNK : 0;
  }
  run rn;
  memset(&rn, 0, sizeof rn);
  rn.blob = &blob;
  rn.second = &second;
  rn.x = &x;
  rn.stop = (flags & 32) != 0;
  rn.structured = structured;
  rn.diffs = diffs;
  rn.bclass = structured ? bclass_of(&blob0, &blob) : B_OTHER;
  const uint8_t *rest = r.at < size ? data + r.at : NULL;
  size_t nrest = r.at < size ? size - r.at : 0;
  rn.f1 = (feed){rest, nrest, 0};
  rn.f2 = (feed){rest, nrest, flags & 64 ? nrest / 2 + 1 : 0};
  for (int inc = 1; inc >= 0; inc--) {
    rn.inc = inc;
    rn.f1.at = 0;
    rn.f2.at = flags & 64 ? nrest / 2 + 1 : 0;
    decrypt_once(&rn);
  }
  if (structured && fz_verbose())
    fprintf(stderr, "  n %zu, blob %zu -> %zu, chunk %u, diffs %#x\n", pt.n, blob0.n, blob.n, x.chunk, diffs);
  free(blob.p);
  free(blob0.p);
  free(second.p);
  free(pt.p);
  free(x.macs.p);
  free(x0.macs.p);
}

/* --- seeds ---------------------------------------------------------------------------- */

void fza_gen_seeds(fz_seeds *s);

static void seed(fz_seeds *s, const char *name, const uint8_t *p, size_t n) {
  run_input(p, n); /* each seed must pass the target's checks */
  fz_seeds_add(s, name, whisper_buf_new(p, n), 1);
}

/* A real blob: flags, size, seed, chosen chunk, then operations. */
static void seed_ops(fz_seeds *s, const char *name, uint8_t flags, uint16_t n, uint16_t chunk,
                     const uint8_t (*ops)[4], int nops, const uint8_t *pieces, size_t npieces) {
  uint8_t b[7 + 16 * 4 + 64];
  size_t at = 0;
  b[at++] = flags;
  b[at++] = (uint8_t)n, b[at++] = (uint8_t)(n >> 8);
  b[at++] = 0x5A;
  b[at++] = (uint8_t)(chunk - 16), b[at++] = (uint8_t)((chunk - 16) >> 8);
  b[at++] = (uint8_t)nops;
  for (int i = 0; i < nops; i++) memcpy(b + at, ops[i], 4), at += 4;
  if (npieces) memcpy(b + at, pieces, npieces);
  seed(s, name, b, at + npieces);
}

void fza_gen_seeds(fz_seeds *s) {
  static const uint8_t pieces[] = {3, 200, 1, 17, 90, 255, 0, 44};
  /* untouched: libsignal's chunk size, chosen ones, with a plaintext hash */
  seed_ops(s, "untouched", 0, 1000, 16, NULL, 0, pieces, sizeof pieces);
  seed_ops(s, "untouched_hash", 4, 1000, 16, NULL, 0, pieces, sizeof pieces);
  seed_ops(s, "untouched_chunk_64", 8 | 4, 1500, 64, NULL, 0, pieces, sizeof pieces);
  seed_ops(s, "untouched_chunk_16", 8, 300, 16, NULL, 0, NULL, 0);
  seed_ops(s, "untouched_whole_chunks", 8, 541, 148, NULL, 0, pieces, sizeof pieces); /* 592 = 4 * 148 */
  seed_ops(s, "untouched_two_chunks", 16 | 4, 65535, 16, NULL, 0, pieces, sizeof pieces);
  seed_ops(s, "empty", 4, 0, 16, NULL, 0, NULL, 0);
  /* one alteration each, over chunks of 100 bytes */
  static const struct {
    const char *name;
    uint8_t op[4];
  } one[] = {
      {"flip_iv", {0, 3, 0, 1}},          {"flip_chunk_2", {0, 150, 0, 4}},
      {"flip_last_block", {0, 0xFF, 0x03, 7}}, {"flip_mac", {0, 0x40, 0x04, 0}},
      {"cut", {1, 250, 0, 0}},            {"cut_on_boundary", {1, 200, 0, 0}},
      {"append", {2, 9, 0x55, 3}},        {"size_up", {3, 1, 0, 0}},
      {"size_down", {3, 0xFF, 0xFF, 0}},  {"size_other_bucket", {3, 0x00, 0x10, 0}},
      {"size_huge", {3, 0xFF, 0xFF, 0xFD}}, {"drop_mac", {4, 2, 0, 0}},
      {"add_mac", {5, 1, 1, 0}},          {"flip_incremental_mac", {6, 70, 0, 2}},
      {"chunk_any", {7, 0x10, 0x27, 0}},   {"chunk_near", {8, 0xFC, 0, 0}},
      {"key_aes", {9, 5, 0, 0}},          {"key_mac", {9, 40, 3, 0}},
      {"digest", {10, 7, 1, 0}},          {"plaintext_hash", {11, 0, 2, 0}},
      {"no_plaintext_hash", {11, 0, 0, 1}}, {"max_size", {12, 0xE7, 0x03, 0}},
      {"second_pass_flip", {13, 0x20, 0x02, 5}}, {"second_pass_cut", {14, 0x00, 0x01, 0}},
      {"macs_cut", {15, 33, 0, 0}},
  };
  for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
    seed_ops(s, one[i].name, 8 | 4, 1000, 100, &one[i].op, 1, pieces, sizeof pieces);
  static const uint8_t stop_ops[][4] = {{0, 150, 0, 4}};
  seed_ops(s, "flip_stop", 8 | 32, 1000, 100, stop_ops, 1, pieces, sizeof pieces);
  static const uint8_t two[][4] = {{0, 150, 0, 4}, {3, 1, 0, 0}};
  seed_ops(s, "flip_and_size", 8 | 64, 1000, 100, two, 2, pieces, sizeof pieces);
  /* everything from the input */
  uint8_t raw[138 + 64 + 2 + 600];
  memset(raw, 0x33, sizeof raw);
  raw[0] = 3 | 4;
  raw[65] = 0xE8, raw[66] = 0x03, raw[67] = raw[68] = 0; /* size 1000 */
  raw[133] = 100, raw[134] = raw[135] = raw[136] = 0;     /* chunk 100 */
  raw[137] = 64;
  raw[138 + 64] = 0x58, raw[138 + 64 + 1] = 0x02;         /* a 600-byte blob */
  seed(s, "raw", raw, sizeof raw);
}

#ifndef FZA_SEEDS_ONLY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  run_input(data, size);
  return 0;
}
#endif
