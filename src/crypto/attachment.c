/*
 * Attachments in Signal's format (include/whisper/attachment.h): AES-256-CBC
 * and HMAC-SHA256 over IV || ciphertext, SHA-256 digests, and libsignal's
 * incremental MAC, all streamed with bounded memory. OpenSSL does the
 * cipher, the hashes and the MACs; this file only moves bytes between
 * them in the right order and checks what the pointer promised.
 */
#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "versioned.h"
#include "whisper/attachment.h"

#define PIECE (64 * 1024) /* bytes through the cipher at a time */
#define MAC_LEN 32
#define CHUNK_MIN 16u

uint64_t whisper_attachment_padded_size(uint64_t size) {
  /* Signal's buckets, computed in doubles as Signal computes them. Where
   * rounding puts a bucket a hair below the size itself, the size is kept
   * (Signal's padding streams then add nothing either). */
  double bucket = size ? floor(pow(1.05, ceil(log((double)size) / log(1.05)))) : 0.0;
  uint64_t padded = bucket > 541.0 ? (uint64_t)bucket : 541;
  return padded > size ? padded : size;
}

uint64_t whisper_attachment_blob_size(uint64_t size) {
  uint64_t padded = whisper_attachment_padded_size(size);
  return WHISPER_ATTACHMENT_IV_LEN + (padded / 16 + 1) * 16 + MAC_LEN;
}

uint32_t whisper_attachment_chunk_size(uint64_t blob_size) {
  const uint64_t count = 8 * 1024 / MAC_LEN, min = 64 * 1024, max = WHISPER_ATTACHMENT_CHUNK_MAX;
  if (blob_size < count * min) return (uint32_t)min;
  if (blob_size < count * max) return (uint32_t)((blob_size + count - 1) / count);
  return (uint32_t)max;
}

/* --- libsignal's incremental MAC --------------------------------------------------- */

typedef struct imac {
  wh_hmac_ctx h;
  uint32_t chunk;
  uint32_t unused; /* bytes until the next chunk boundary */
} imac;

typedef int (*imac_out)(void *arg, const uint8_t mac[MAC_LEN]);

static int imac_init(imac *m, const uint8_t *key, size_t key_len, uint32_t chunk) {
  m->chunk = m->unused = chunk;
  return wh_hmac_init(&m->h, key, key_len);
}

/* The MAC of everything so far, leaving the running state as it was. */
static int imac_peek(imac *m, uint8_t out[MAC_LEN]) {
  wh_hmac_ctx copy;
  if (wh_hmac_dup(&copy, &m->h) != 0) return -1;
  int r = wh_hmac_final(&copy, out);
  wh_hmac_free(&copy);
  return r;
}

/* Feeds bytes; at each chunk boundary the MAC so far goes to `out`. */
static int imac_update(imac *m, const uint8_t *p, size_t n, imac_out out, void *arg) {
  while (n) {
    size_t take = n < m->unused ? n : m->unused;
    if (wh_hmac_update(&m->h, p, take) != 0) return WHISPER_EINTERNAL;
    p += take;
    n -= take;
    m->unused -= (uint32_t)take;
    if (m->unused == 0) {
      uint8_t mac[MAC_LEN];
      m->unused = m->chunk;
      if (imac_peek(m, mac) != 0) return WHISPER_EINTERNAL;
      int r = out(arg, mac);
      wh_wipe(mac, sizeof mac);
      if (r != 0) return r;
    }
  }
  return WHISPER_OK;
}

/* A growing list of MACs (what the encryptor makes). */
typedef struct maclist {
  uint8_t *p;
  size_t n, cap; /* bytes */
} maclist;

static int maclist_add(void *arg, const uint8_t mac[MAC_LEN]) {
  maclist *l = arg;
  if (l->n + MAC_LEN > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16 * MAC_LEN;
    uint8_t *p = realloc(l->p, cap);
    if (p == NULL) return WHISPER_ENOMEM;
    l->p = p;
    l->cap = cap;
  }
  memcpy(l->p + l->n, mac, MAC_LEN);
  l->n += MAC_LEN;
  return 0;
}

int whisper_incremental_mac(const uint8_t *key, size_t key_len, uint32_t chunk_size,
                            const uint8_t *data, size_t len, whisper_buf **out) {
  if (out) *out = NULL;
  if ((key == NULL && key_len) || (data == NULL && len) || out == NULL || chunk_size == 0)
    return WHISPER_EINVAL;
  imac m;
  maclist l = {0};
  uint8_t last[MAC_LEN];
  int rc = imac_init(&m, key, key_len, chunk_size) == 0 ? WHISPER_OK : WHISPER_EINTERNAL;
  if (rc == WHISPER_OK) rc = imac_update(&m, data, len, maclist_add, &l);
  if (rc == WHISPER_OK) rc = wh_hmac_final(&m.h, last) == 0 ? WHISPER_OK : WHISPER_EINTERNAL;
  if (rc == WHISPER_OK) rc = maclist_add(&l, last);
  if (rc == WHISPER_OK && (*out = whisper_buf_new(l.p, l.n)) == NULL) rc = WHISPER_ENOMEM;
  wh_hmac_free(&m.h);
  free(l.p);
  return rc;
}

/* --- encrypting -------------------------------------------------------------------- */

struct whisper_attachment_encryptor {
  EVP_CIPHER_CTX *cbc;
  wh_hmac_ctx mac; /* over IV || ciphertext */
  imac inc;        /* over the whole blob */
  maclist macs;
  void *digest;    /* SHA-256 of the blob */
  void *plain;     /* SHA-256 of the plaintext */
  uint8_t iv[WHISPER_ATTACHMENT_IV_LEN];
  uint64_t size, fed, blob_size;
  int iv_out, broken;
  whisper_attachment_sink sink;
  void *user;
  uint8_t buf[PIECE + 16];
};

/* Bytes of the blob, in order: the digest and the incremental MAC see them,
 * then the sink. */
static int enc_emit(whisper_attachment_encryptor *e, const uint8_t *p, size_t n) {
  if (n == 0) return WHISPER_OK;
  if (wh_sha256_update(e->digest, p, n) != 0) return WHISPER_EINTERNAL;
  int rc = imac_update(&e->inc, p, n, maclist_add, &e->macs);
  return rc != WHISPER_OK ? rc : e->sink(e->user, p, n);
}

/* Bytes under the blob's MAC: the IV and the ciphertext. */
static int enc_macced(whisper_attachment_encryptor *e, const uint8_t *p, size_t n) {
  if (wh_hmac_update(&e->mac, p, n) != 0) return WHISPER_EINTERNAL;
  return enc_emit(e, p, n);
}

static int enc_start(whisper_attachment_encryptor *e) {
  if (e->iv_out) return WHISPER_OK;
  e->iv_out = 1;
  return enc_macced(e, e->iv, sizeof e->iv);
}

/* Plaintext (or padding) through the cipher, a piece at a time. */
static int enc_cipher(whisper_attachment_encryptor *e, const uint8_t *p, size_t n) {
  int rc = enc_start(e);
  while (rc == WHISPER_OK && n) {
    size_t take = n < PIECE ? n : PIECE;
    int outl = 0;
    if (EVP_EncryptUpdate(e->cbc, e->buf, &outl, p, (int)take) != 1) return WHISPER_EINTERNAL;
    rc = enc_macced(e, e->buf, (size_t)outl);
    p += take;
    n -= take;
  }
  return rc;
}

int whisper_attachment_encrypt_new(whisper_attachment_encryptor **out,
                                   const uint8_t key[WHISPER_ATTACHMENT_KEY_LEN],
                                   const uint8_t iv[WHISPER_ATTACHMENT_IV_LEN], uint64_t size,
                                   whisper_attachment_sink sink, void *user) {
  if (out) *out = NULL;
  if (out == NULL || key == NULL || iv == NULL || sink == NULL || size > WHISPER_ATTACHMENT_SIZE_MAX)
    return WHISPER_EINVAL;
  if (wh_crypto_init() != 0) return WHISPER_EINTERNAL;
  whisper_attachment_encryptor *e = calloc(1, sizeof *e);
  if (e == NULL) return WHISPER_ENOMEM;
  e->size = size;
  e->blob_size = whisper_attachment_blob_size(size);
  e->sink = sink;
  e->user = user;
  memcpy(e->iv, iv, sizeof e->iv);
  e->cbc = EVP_CIPHER_CTX_new();
  e->digest = wh_sha256_new();
  e->plain = wh_sha256_new();
  int ok = e->cbc && e->digest && e->plain &&
           EVP_EncryptInit_ex(e->cbc, EVP_aes_256_cbc(), NULL, key, iv) == 1 &&
           wh_hmac_init(&e->mac, key + 32, 32) == 0 &&
           imac_init(&e->inc, key + 32, 32, whisper_attachment_chunk_size(e->blob_size)) == 0;
  if (!ok) {
    whisper_attachment_encrypt_free(e);
    return WHISPER_EINTERNAL;
  }
  *out = e;
  return WHISPER_OK;
}

int whisper_attachment_encrypt_update(whisper_attachment_encryptor *e, const uint8_t *data,
                                      size_t len) {
  if (e == NULL || (data == NULL && len) || e->broken) return WHISPER_EINVAL;
  if (len > e->size - e->fed) {
    e->broken = 1;
    return WHISPER_EINVAL;
  }
  if (len == 0) return WHISPER_OK;
  e->fed += len;
  int rc = wh_sha256_update(e->plain, data, len) == 0 ? enc_cipher(e, data, len) : WHISPER_EINTERNAL;
  if (rc != WHISPER_OK) e->broken = 1;
  return rc;
}

static int finish(whisper_attachment_encryptor *e, whisper_attachment_result_t *out);

int whisper_attachment_encrypt_finish(whisper_attachment_encryptor *e,
                                      whisper_attachment_result_t *caller) {
  if (caller == NULL || caller->size < WHISPER_ATTACHMENT_RESULT_SIZE_1_0) return WHISPER_EINVAL;
  /* filled here, then the fields both sides have copied out */
  whisper_attachment_result_t result;
  memset(&result, 0, sizeof result);
  result.size = sizeof result;
  int rc = finish(e, &result);
  wh_versioned_out(caller, &result, sizeof result);
  return rc;
}

static int finish(whisper_attachment_encryptor *e, whisper_attachment_result_t *out) {
  static const uint8_t zeros[PIECE];
  if (e == NULL || e->broken || e->fed != e->size) return WHISPER_EINVAL;
  e->broken = 1; /* finished: nothing more goes in */
  uint64_t pad = whisper_attachment_padded_size(e->size) - e->size;
  int rc = enc_start(e), outl = 0;
  while (rc == WHISPER_OK && pad) {
    size_t take = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
    rc = enc_cipher(e, zeros, take);
    pad -= take;
  }
  if (rc == WHISPER_OK)
    rc = EVP_EncryptFinal_ex(e->cbc, e->buf, &outl) == 1 ? enc_macced(e, e->buf, (size_t)outl)
                                                         : WHISPER_EINTERNAL;
  uint8_t tag[MAC_LEN], last[MAC_LEN];
  if (rc == WHISPER_OK) rc = wh_hmac_final(&e->mac, tag) == 0 ? WHISPER_OK : WHISPER_EINTERNAL;
  if (rc == WHISPER_OK) rc = enc_emit(e, tag, sizeof tag); /* the MAC is not under itself */
  if (rc == WHISPER_OK) rc = wh_hmac_final(&e->inc.h, last) == 0 ? WHISPER_OK : WHISPER_EINTERNAL;
  if (rc == WHISPER_OK) rc = maclist_add(&e->macs, last);
  if (rc == WHISPER_OK) {
    int a = wh_sha256_final(e->digest, out->digest), b = wh_sha256_final(e->plain, out->plaintext_hash);
    e->digest = e->plain = NULL;
    rc = a == 0 && b == 0 ? WHISPER_OK : WHISPER_EINTERNAL;
  }
  if (rc == WHISPER_OK) {
    out->blob_size = e->blob_size;
    out->chunk_size = e->inc.chunk;
    if ((out->incremental_mac = whisper_buf_new(e->macs.p, e->macs.n)) == NULL) rc = WHISPER_ENOMEM;
  }
  if (rc != WHISPER_OK) whisper_attachment_result_clear(out);
  return rc;
}

void whisper_attachment_encrypt_free(whisper_attachment_encryptor *e) {
  if (e == NULL) return;
  EVP_CIPHER_CTX_free(e->cbc); /* wipes the key schedule */
  wh_hmac_free(&e->mac);
  wh_hmac_free(&e->inc.h);
  wh_sha256_free(e->digest);
  wh_sha256_free(e->plain);
  free(e->macs.p);
  wh_wipe(e, sizeof *e);
  free(e);
}

void whisper_attachment_result_clear(whisper_attachment_result_t *r) {
  if (r == NULL || r->size < WHISPER_ATTACHMENT_RESULT_SIZE_1_0) return;
  whisper_buf_free(r->incremental_mac);
  whisper_attachment_result_t zero;
  memset(&zero, 0, sizeof zero);
  wh_versioned_out(r, &zero, sizeof zero); /* size and newer fields kept */
}

/* --- decrypting -------------------------------------------------------------------- */

enum { ONE_PASS, FIRST_PASS, SECOND_PASS };

struct whisper_attachment_decryptor {
  EVP_CIPHER_CTX *cbc;
  wh_hmac_ctx mac; /* over IV || ciphertext */
  imac inc;
  void *digest, *plain;
  uint8_t key[WHISPER_ATTACHMENT_KEY_LEN];
  uint8_t want_digest[MAC_LEN], want_plain[MAC_LEN];
  int has_plain;
  uint8_t *macs; /* the expected incremental MACs (the pointer's, or the first pass's) */
  size_t nmacs, next;
  maclist own;   /* FIRST_PASS: the incremental MAC of the blob as it comes */
  uint64_t size, padded, blob_size;
  uint64_t got;      /* blob bytes fed (this pass) */
  uint64_t done;     /* blob bytes processed (verified, decrypted) */
  uint64_t plainpos; /* padded-plaintext bytes out of the cipher */
  uint64_t released;
  uint8_t iv[WHISPER_ATTACHMENT_IV_LEN];
  uint8_t tail[MAC_LEN]; /* the blob's MAC as it comes */
  uint8_t *chunk;        /* ONE_PASS, SECOND_PASS, fed: the bytes of the chunk being verified
                          * (allocated with the first byte fed) */
  size_t chunk_len;      /* bytes of the chunk being verified (held, or read from the source) */
  /* whisper_attachment_decrypt_source(): the blob is read, each chunk twice
   * (its MAC checked, then opened), instead of held */
  whisper_attachment_source src;
  void *src_user;
  uint8_t *rbuf;   /* PIECE bytes the source reads into */
  void *chunk_sha; /* the digest's SHA-256 as the chunk being verified began */
  uint8_t *hashes; /* the digest's SHA-256 at the end of each piece of that chunk, as first
                    * read (the blob's SHA-256 to there) */
  size_t nhashes, maxhashes;
  uint8_t blob_mac[MAC_LEN]; /* with a source: the blob's MAC, from the incremental MAC's state */
  int blob_mac_taken;
  int pass, err, chunk_failed, finished;
  int again; /* dec_finish returned WHISPER_ATTACHMENT_AGAIN (not a sink's 1) */
  whisper_attachment_sink sink;
  void *user;
  uint8_t buf[PIECE + 16];
};

/* Plaintext out of the cipher: the size's worth to the sink and the
 * plaintext hash, the rest must be the zeros of the padding. */
static int dec_release(whisper_attachment_decryptor *d, const uint8_t *p, size_t n) {
  if (n == 0) return WHISPER_OK;
  size_t keep = 0;
  if (d->plainpos < d->size) keep = d->size - d->plainpos < n ? (size_t)(d->size - d->plainpos) : n;
  for (size_t i = keep; i < n; i++)
    if (p[i] != 0) return WHISPER_ESIZE; /* a longer plaintext than the pointer says */
  d->plainpos += n;
  if (keep == 0) return WHISPER_OK;
  if (wh_sha256_update(d->plain, p, keep) != 0) return WHISPER_EINTERNAL;
  d->released += keep;
  return d->sink(d->user, p, keep);
}

/* Verified blob bytes, in order (the IV, the ciphertext, the MAC): the MAC
 * sees what it covers, the cipher opens the ciphertext. With `decrypt` 0
 * (a first pass) nothing is opened. */
static int dec_process(whisper_attachment_decryptor *d, const uint8_t *p, size_t n, int decrypt) {
  uint64_t mac_end = d->blob_size - MAC_LEN;
  while (n) {
    uint64_t at = d->done;
    size_t take;
    if (at < WHISPER_ATTACHMENT_IV_LEN) { /* the IV */
      take = n < WHISPER_ATTACHMENT_IV_LEN - at ? n : (size_t)(WHISPER_ATTACHMENT_IV_LEN - at);
      memcpy(d->iv + at, p, take);
      if (d->src == NULL && wh_hmac_update(&d->mac, p, take) != 0) return WHISPER_EINTERNAL;
      if (decrypt && at + take == WHISPER_ATTACHMENT_IV_LEN &&
          EVP_DecryptInit_ex(d->cbc, EVP_aes_256_cbc(), NULL, d->key, d->iv) != 1)
        return WHISPER_EINTERNAL;
    } else if (at < mac_end) { /* ciphertext */
      take = n < mac_end - at ? n : (size_t)(mac_end - at);
      if (take > PIECE) take = PIECE;
      if (d->src == NULL && wh_hmac_update(&d->mac, p, take) != 0) return WHISPER_EINTERNAL;
      if (decrypt) {
        int outl = 0;
        if (EVP_DecryptUpdate(d->cbc, d->buf, &outl, p, (int)take) != 1) return WHISPER_EINTERNAL;
        int rc = dec_release(d, d->buf, (size_t)outl);
        if (rc != WHISPER_OK) return rc;
      }
    } else { /* the MAC */
      take = n < d->blob_size - at ? n : (size_t)(d->blob_size - at);
      memcpy(d->tail + (at - mac_end), p, take);
    }
    d->done += take;
    p += take;
    n -= take;
  }
  return WHISPER_OK;
}

/* Reads `len` bytes of the blob at `at` into rbuf: the source's nonzero
 * value, or WHISPER_EINVAL for a source that says it read more. */
static int src_read(whisper_attachment_decryptor *d, uint64_t at, size_t len, size_t *got) {
  *got = 0;
  int rc = d->src(d->src_user, at, d->rbuf, len, got);
  if (rc == 0 && *got > len) rc = WHISPER_EINVAL;
  return rc;
}

/* The SHA-256 of what `h` has had so far, `h` left running. */
static int sha_peek(const void *h, uint8_t out[MAC_LEN]) {
  void *c = wh_sha256_dup(h);
  return c ? wh_sha256_final(c, out) : -1;
}

/* The chunk whose MAC just checked, read again from the source piece by
 * piece (as the first read cut it), each piece opened once the blob's
 * SHA-256 to its end, run again from the chunk's start over the bytes read
 * now, is the one the first read made: bytes that changed in the source
 * are never released. */
static int src_replay(whisper_attachment_decryptor *d) {
  size_t left = d->chunk_len, k = 0;
  void *sha = d->chunk_sha ? wh_sha256_dup(d->chunk_sha) : NULL;
  int rc = sha ? WHISPER_OK : WHISPER_EINTERNAL;
  while (rc == WHISPER_OK && left) {
    size_t take = left < PIECE ? left : PIECE, got = 0;
    uint8_t h[MAC_LEN];
    if ((rc = src_read(d, d->done, take, &got)) != 0) break;
    if (k >= d->nhashes || got != take) rc = WHISPER_EINTEGRITY; /* shorter than it was */
    else if (wh_sha256_update(sha, d->rbuf, take) != 0 || sha_peek(sha, h) != 0)
      rc = WHISPER_EINTERNAL;
    else if (!wh_ct_eq(h, d->hashes + k * MAC_LEN, MAC_LEN)) rc = WHISPER_EINTEGRITY; /* changed */
    else rc = dec_process(d, d->rbuf, take, 1);
    left -= take;
    k++;
  }
  wh_sha256_free(sha);
  d->nhashes = 0;
  return rc;
}

/* The chunk being verified checked: opened. */
static int dec_open_chunk(whisper_attachment_decryptor *d) {
  int rc = d->src ? src_replay(d) : dec_process(d, d->chunk, d->chunk_len, 1);
  d->chunk_len = 0;
  return rc;
}

/* An incremental MAC at a chunk boundary: it must be the next expected. */
static int dec_check_mac(void *arg, const uint8_t mac[MAC_LEN]) {
  whisper_attachment_decryptor *d = arg;
  /* the last expected MAC is the whole blob's, which only finish checks */
  if (d->next + 1 >= d->nmacs || !wh_ct_eq(mac, d->macs + d->next * MAC_LEN, MAC_LEN)) {
    d->chunk_failed = 1;
    return WHISPER_EINTEGRITY;
  }
  d->next++;
  return dec_open_chunk(d); /* verified: opened */
}

int whisper_attachment_decrypt_new(whisper_attachment_decryptor **out,
                                   const whisper_attachment_expect_t *in,
                                   whisper_attachment_sink sink, void *user) {
  if (out) *out = NULL;
  if (in == NULL || in->size < WHISPER_ATTACHMENT_EXPECT_SIZE_1_0) return WHISPER_EINVAL;
  whisper_attachment_expect_t expect, *x = &expect; /* the fields both sides have */
  wh_versioned_in(&expect, sizeof expect, in);
  if (out == NULL || x->key == NULL || x->digest == NULL || sink == NULL ||
      (x->incremental_mac == NULL && x->incremental_mac_len))
    return WHISPER_EINVAL;
  uint64_t max = x->max_size && x->max_size < WHISPER_ATTACHMENT_SIZE_MAX ? x->max_size
                                                                         : WHISPER_ATTACHMENT_SIZE_MAX;
  if (x->plaintext_size > max) return WHISPER_ETOOBIG;
  if (x->incremental_mac &&
      (x->chunk_size < CHUNK_MIN || x->chunk_size > WHISPER_ATTACHMENT_CHUNK_MAX ||
       x->incremental_mac_len == 0 || x->incremental_mac_len % MAC_LEN))
    return WHISPER_EINVALIDMSG;
  if (wh_crypto_init() != 0) return WHISPER_EINTERNAL;
  whisper_attachment_decryptor *d = calloc(1, sizeof *d);
  if (d == NULL) return WHISPER_ENOMEM;
  d->size = x->plaintext_size;
  d->padded = whisper_attachment_padded_size(x->plaintext_size);
  d->blob_size = whisper_attachment_blob_size(x->plaintext_size);
  d->sink = sink;
  d->user = user;
  memcpy(d->key, x->key, sizeof d->key);
  memcpy(d->want_digest, x->digest, MAC_LEN);
  if ((d->has_plain = x->plaintext_hash != NULL)) memcpy(d->want_plain, x->plaintext_hash, MAC_LEN);
  d->pass = x->incremental_mac ? ONE_PASS : FIRST_PASS;
  /* Without an incremental MAC the first pass makes one (libsignal's chunk
   * size for the blob), so that the second pass releases each chunk only
   * once it is the one the first pass checked: bytes that changed between
   * the passes never reach the sink. */
  uint32_t chunk = x->incremental_mac ? x->chunk_size : whisper_attachment_chunk_size(d->blob_size);
  int ok = (d->cbc = EVP_CIPHER_CTX_new()) && (d->digest = wh_sha256_new()) &&
           (d->plain = wh_sha256_new()) && wh_hmac_init(&d->mac, d->key + 32, 32) == 0 &&
           imac_init(&d->inc, d->key + 32, 32, chunk) == 0;
  if (ok && x->incremental_mac) {
    d->nmacs = x->incremental_mac_len / MAC_LEN;
    ok = (d->macs = malloc(x->incremental_mac_len)) != NULL;
    if (ok) memcpy(d->macs, x->incremental_mac, x->incremental_mac_len);
  }
  if (!ok) {
    whisper_attachment_decrypt_free(d);
    return WHISPER_ENOMEM;
  }
  *out = d;
  return WHISPER_OK;
}

/* Blob bytes [at, at + n) into the incremental MAC. With a source, its
 * state at the end of the ciphertext is also the blob's MAC (both are
 * HMAC-SHA256 under the MAC key from the blob's first byte), taken there
 * instead of running a second HMAC over the same bytes. (A chunk boundary
 * is only ever at the end of a source's piece, so a callback that reads
 * the chunk again comes after the last use of `p`.) */
static int dec_imac(whisper_attachment_decryptor *d, uint64_t at, const uint8_t *p, size_t n,
                    imac_out out, void *arg) {
  uint64_t mac_end = d->blob_size - MAC_LEN;
  if (d->src && !d->blob_mac_taken && at <= mac_end && mac_end - at <= n) {
    size_t k = (size_t)(mac_end - at);
    int rc = imac_update(&d->inc, p, k, out, arg);
    if (rc != WHISPER_OK) return rc;
    if (imac_peek(&d->inc, d->blob_mac) != 0) return WHISPER_EINTERNAL;
    d->blob_mac_taken = 1;
    p += k;
    n -= k;
  }
  return imac_update(&d->inc, p, n, out, arg);
}

static int dec_feed(whisper_attachment_decryptor *d, const uint8_t *p, size_t n);

static int dec_update(whisper_attachment_decryptor *d, const uint8_t *p, size_t n) {
  if (d->pass != FIRST_PASS && d->src == NULL && d->chunk == NULL &&
      (d->chunk = malloc(d->inc.chunk)) == NULL)
    return WHISPER_ENOMEM;
  if (d->pass != FIRST_PASS && d->src && d->chunk_len == 0 && !d->chunk_failed) {
    /* a chunk begins (a source's piece is never across a boundary): where
     * its second read's SHA-256 starts */
    wh_sha256_free(d->chunk_sha);
    if ((d->chunk_sha = wh_sha256_dup(d->digest)) == NULL) return WHISPER_ENOMEM;
  }
  if (wh_sha256_update(d->digest, p, n) != 0) return WHISPER_EINTERNAL;
  if (d->chunk_failed) { /* only the digest still runs: finish tells a wrong key */
    d->got += n;
    return WHISPER_EINTEGRITY;
  }
  /* Longer than the size says: the bytes up to the size's end go on as
   * any others (a chunk they complete is checked and opened), then
   * WHISPER_ESIZE, so that what the sink gets does not depend on where the
   * caller cut its pieces (a source never reads past the end either). */
  size_t in = n > d->blob_size - d->got ? (size_t)(d->blob_size - d->got) : n;
  int rc = dec_feed(d, p, in);
  d->got += n - in; /* all the bytes fed count (finish tells a wrong key by them) */
  return rc != WHISPER_OK ? rc : in < n ? WHISPER_ESIZE : WHISPER_OK;
}

/* Blob bytes within the size: checked (and opened, chunk by chunk). */
static int dec_feed(whisper_attachment_decryptor *d, const uint8_t *p, size_t n) {
  uint64_t at = d->got;
  d->got += n;
  if (d->pass == FIRST_PASS) { /* checked, not opened; its incremental MAC made */
    int rc = dec_imac(d, at, p, n, maclist_add, &d->own);
    return rc != WHISPER_OK ? rc : dec_process(d, p, n, 0);
  }
  while (n) { /* buffer to the next boundary; the imac callback opens the chunk */
    size_t take = n < d->inc.unused ? n : d->inc.unused;
    if (d->src == NULL) {
      memcpy(d->chunk + d->chunk_len, p, take);
    } else { /* a piece read from the source (all of this update's bytes): the digest's
              * SHA-256 to its end, to know it again */
      if (d->nhashes == d->maxhashes || take != n) return WHISPER_EINTERNAL;
      if (sha_peek(d->digest, d->hashes + d->nhashes * MAC_LEN) != 0) return WHISPER_EINTERNAL;
      d->nhashes++;
    }
    d->chunk_len += take;
    int rc = dec_imac(d, at, p, take, dec_check_mac, d);
    if (rc != WHISPER_OK) return rc;
    at += take;
    p += take;
    n -= take;
  }
  return WHISPER_OK;
}

int whisper_attachment_decrypt_update(whisper_attachment_decryptor *d, const uint8_t *data,
                                      size_t len) {
  if (d == NULL || (data == NULL && len) || d->finished) return WHISPER_EINVAL;
  if (len == 0 || (d->err && !d->chunk_failed)) return d->err;
  int rc = dec_update(d, data, len);
  if (rc != WHISPER_OK && d->err == WHISPER_OK) d->err = rc;
  return rc;
}

/* Whether the bytes fed are the blob the digest names. */
static int digest_matches(whisper_attachment_decryptor *d) {
  uint8_t got[MAC_LEN];
  int ok = wh_sha256_final(d->digest, got) == 0 && wh_ct_eq(got, d->want_digest, MAC_LEN);
  d->digest = NULL;
  return ok;
}

static int dec_finish(whisper_attachment_decryptor *d) {
  if (d->chunk_failed) /* intact blob, failing MAC: the key is wrong */
    return d->got == d->blob_size && digest_matches(d) ? WHISPER_EKEY : WHISPER_EINTEGRITY;
  if (d->err) return d->err;
  if (d->got < d->blob_size) return digest_matches(d) ? WHISPER_ESIZE : WHISPER_ETRUNCATED;
  if (d->pass != FIRST_PASS) { /* the last chunk, under the whole blob's MAC */
    uint8_t last[MAC_LEN];
    if (wh_hmac_final(&d->inc.h, last) != 0) return WHISPER_EINTERNAL;
    if (d->next + 1 != d->nmacs || !wh_ct_eq(last, d->macs + d->next * MAC_LEN, MAC_LEN))
      return digest_matches(d) ? WHISPER_EKEY : WHISPER_EINTEGRITY;
    int rc = dec_open_chunk(d);
    if (rc != WHISPER_OK) return rc;
  }
  if (!digest_matches(d)) return WHISPER_EINTEGRITY;
  uint8_t mac[MAC_LEN];
  if (d->src && !d->blob_mac_taken) return WHISPER_EINTERNAL; /* (the whole blob came) */
  if (d->src) memcpy(mac, d->blob_mac, MAC_LEN);
  else if (wh_hmac_final(&d->mac, mac) != 0) return WHISPER_EINTERNAL;
  if (!wh_ct_eq(mac, d->tail, MAC_LEN)) /* the blob is the one named: so is the MAC key not */
    return d->pass == FIRST_PASS ? WHISPER_EKEY : WHISPER_EINTEGRITY;
  if (d->pass == FIRST_PASS) { /* checked: now again, opening it chunk by chunk */
    uint8_t last[MAC_LEN];
    if (wh_hmac_final(&d->inc.h, last) != 0) return WHISPER_EINTERNAL;
    int rc = maclist_add(&d->own, last);
    if (rc != WHISPER_OK) return rc;
    d->macs = d->own.p;
    d->nmacs = d->own.n / MAC_LEN;
    d->own = (maclist){0};
    d->pass = SECOND_PASS;
    d->got = d->done = 0;
    if ((d->digest = wh_sha256_new()) == NULL) return WHISPER_ENOMEM;
    d->again = 1;
    return WHISPER_ATTACHMENT_AGAIN;
  }
  int outl = 0;
  if (EVP_DecryptFinal_ex(d->cbc, d->buf, &outl) != 1) return WHISPER_EINTEGRITY; /* bad PKCS#7 */
  int rc = dec_release(d, d->buf, (size_t)outl);
  if (rc != WHISPER_OK) return rc;
  if (d->plainpos != d->padded || d->released != d->size) return WHISPER_ESIZE;
  uint8_t ph[MAC_LEN];
  int ok = wh_sha256_final(d->plain, ph) == 0;
  d->plain = NULL;
  if (!ok) return WHISPER_EINTERNAL;
  if (d->has_plain && !wh_ct_eq(ph, d->want_plain, MAC_LEN)) return WHISPER_ESIZE;
  return WHISPER_OK;
}

int whisper_attachment_decrypt_finish(whisper_attachment_decryptor *d) {
  if (d == NULL || d->finished) return WHISPER_EINVAL;
  d->again = 0;
  int rc = dec_finish(d), again = d->again;
  if (!again) d->finished = 1;
  if (rc != WHISPER_OK && !again && d->err == WHISPER_OK) d->err = rc;
  if (again) {
    /* the MACs run again over the second pass (the bytes must be the same) */
    wh_hmac_free(&d->mac);
    wh_hmac_free(&d->inc.h);
    d->blob_mac_taken = 0;
    if (wh_hmac_init(&d->mac, d->key + 32, 32) != 0 || imac_init(&d->inc, d->key + 32, 32, d->inc.chunk) != 0)
      rc = d->err = WHISPER_EINTERNAL;
  }
  return rc;
}

/* One pass over the blob from the source, through update: the whole blob
 * at once in a first pass, else chunk by chunk (each piece inside one
 * chunk, so that the piece that ends a chunk is the last update's bytes
 * when its MAC opens the chunk, read again into the same buffer). Then one
 * byte past the end, which must not be there. */
static int src_pass(whisper_attachment_decryptor *d) {
  for (;;) {
    size_t want = PIECE, got = 0;
    if (d->pass != FIRST_PASS && d->inc.unused < want) want = d->inc.unused;
    if (d->got >= d->blob_size) want = 1;
    else if (d->blob_size - d->got < want) want = (size_t)(d->blob_size - d->got);
    int rc = src_read(d, d->got, want, &got);
    if (rc != 0) return rc;
    if (got == 0) return WHISPER_OK; /* the blob's end: finish says whether it was early */
    rc = whisper_attachment_decrypt_update(d, d->rbuf, got);
    /* a chunk that fails: the rest only digested, so that finish tells a wrong key */
    if (rc != WHISPER_OK && !(rc == WHISPER_EINTEGRITY && d->chunk_failed)) return rc;
    if (got < want) return WHISPER_OK;
  }
}

int whisper_attachment_decrypt_source(whisper_attachment_decryptor *d,
                                      whisper_attachment_source source, void *user) {
  if (d == NULL || source == NULL || d->finished || d->got != 0 || d->src != NULL)
    return WHISPER_EINVAL;
  d->src = source;
  d->src_user = user;
  d->maxhashes = (d->inc.chunk + PIECE - 1) / PIECE;
  int rc = (d->rbuf = malloc(PIECE)) && (d->hashes = malloc(d->maxhashes * MAC_LEN))
               ? WHISPER_OK
               : WHISPER_ENOMEM;
  while (rc == WHISPER_OK) {
    rc = src_pass(d);
    if (rc != WHISPER_OK) break;
    rc = whisper_attachment_decrypt_finish(d);
    if (d->finished) break;
    rc = WHISPER_OK; /* WHISPER_ATTACHMENT_AGAIN: the second pass, from the first byte */
  }
  if (!d->finished) { /* stopped by an error before finish */
    d->finished = 1;
    if (d->err == WHISPER_OK) d->err = rc;
  }
  if (d->rbuf) wh_wipe(d->rbuf, PIECE);
  free(d->rbuf);
  free(d->hashes);
  wh_sha256_free(d->chunk_sha);
  d->rbuf = d->hashes = NULL;
  d->chunk_sha = NULL;
  return rc;
}

uint64_t whisper_attachment_decrypt_released(const whisper_attachment_decryptor *d) {
  return d ? d->released : 0;
}

void whisper_attachment_decrypt_free(whisper_attachment_decryptor *d) {
  if (d == NULL) return;
  EVP_CIPHER_CTX_free(d->cbc);
  wh_hmac_free(&d->mac);
  wh_hmac_free(&d->inc.h);
  wh_sha256_free(d->digest);
  wh_sha256_free(d->plain);
  free(d->macs);
  free(d->own.p);
  wh_sha256_free(d->chunk_sha);
  if (d->chunk) wh_wipe(d->chunk, d->inc.chunk);
  free(d->chunk);
  wh_wipe(d, sizeof *d);
  free(d);
}
