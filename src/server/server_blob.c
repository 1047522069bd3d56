/*
 * Upload tokens for the blob store (docs/sync-protocol.md "Blobs").
 *
 * A logged-in device asks (UploadAuth) and gets a token (UploadToken) that
 * the blob store beside the server (whisperd's /v1/blobs) checks with
 * whisper_server_upload_token_check(). The token is self-contained, so the
 * server keeps no table of them:
 *
 *   raw   = 0x01 || expires_ms (8, BE) || device id (4, BE) || account (1..64)
 *   mac   = HMAC-SHA256(secret, "whisper-upload-v1" || raw), first 16 bytes
 *   token = base64url(raw || mac), without padding (40..124 characters)
 *
 * The secret is 32 random bytes made once and kept in the store (META
 * "upload_secret"), so tokens outlive a restart and any server on the same
 * store checks them. HMAC is OpenSSL's; the MAC is compared in constant
 * time. A token names its device, and a device removed from its account
 * has its tokens refused at once (the check reads the account); a token is
 * not bound to a device's keys, so a device id registered again on the
 * account before a token lapses would be taken for the old one.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <string.h>

#include "server/server_internal.h"

#define TOKEN_FORMAT 0x01
#define TOKEN_HEAD 13 /* format, expiry, device */
#define TOKEN_MAC_LEN 16
#define TOKEN_RAW_MAX (TOKEN_HEAD + WSRV_NAME_MAX + TOKEN_MAC_LEN)
#define TOKEN_LABEL "whisper-upload-v1"

static const char META_SECRET[] = "upload_secret";

int wsrv_upload_secret_init(whisper_server *srv) {
  whisper_buf *b;
  int rc = wsrv_get(srv, WHISPER_REC_SERVER_META, (const uint8_t *)META_SECRET,
                    strlen(META_SECRET), &b);
  if (rc == WHISPER_OK) {
    if (b->len == WSRV_SECRET_LEN)
      memcpy(srv->upload_secret, b->data, WSRV_SECRET_LEN);
    else
      rc = wsrv_fail(srv, WHISPER_ECORRUPT, "the upload token secret is corrupt");
    whisper_buf_free(b);
    return rc;
  }
  if (rc != WHISPER_ENOTFOUND) return rc;
  if (wh_random(&srv->rng, srv->upload_secret, WSRV_SECRET_LEN) != 0)
    return wsrv_fail(srv, WHISPER_ERANDOM, "the random number generator failed");
  return wsrv_put(srv, WHISPER_REC_SERVER_META, (const uint8_t *)META_SECRET, strlen(META_SECRET),
                  srv->upload_secret, WSRV_SECRET_LEN);
}

/* The MAC of raw[0..n): HMAC-SHA256 over the label and raw, cut to 16
 * bytes. 0, or -1 when OpenSSL fails. */
static int token_mac(const whisper_server *srv, const uint8_t *raw, size_t n,
                     uint8_t mac[TOKEN_MAC_LEN]) {
  uint8_t msg[sizeof TOKEN_LABEL - 1 + TOKEN_RAW_MAX], full[EVP_MAX_MD_SIZE];
  unsigned full_len = 0;
  memcpy(msg, TOKEN_LABEL, sizeof TOKEN_LABEL - 1);
  memcpy(msg + sizeof TOKEN_LABEL - 1, raw, n);
  if (HMAC(EVP_sha256(), srv->upload_secret, WSRV_SECRET_LEN, msg, sizeof TOKEN_LABEL - 1 + n,
           full, &full_len) == NULL ||
      full_len < TOKEN_MAC_LEN)
    return -1;
  memcpy(mac, full, TOKEN_MAC_LEN);
  wh_wipe(full, sizeof full);
  return 0;
}

/* The token of (account, device) lapsing at expires_ms, NUL-terminated,
 * into out (WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1 bytes). */
static int token_make(whisper_server *srv, const char *account, uint32_t device,
                      uint64_t expires_ms, char out[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1]) {
  uint8_t raw[TOKEN_RAW_MAX];
  size_t an = strlen(account), n = TOKEN_HEAD + an;
  raw[0] = TOKEN_FORMAT;
  wh_be64(raw + 1, expires_ms);
  wh_be32(raw + 9, device);
  memcpy(raw + TOKEN_HEAD, account, an);
  if (token_mac(srv, raw, n, raw + n) != 0)
    return wsrv_fail(srv, WHISPER_EINTERNAL, "HMAC-SHA256 failed (OpenSSL)");
  sodium_bin2base64(out, WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1, raw, n + TOKEN_MAC_LEN,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return WHISPER_OK;
}

int wsrv_handle_upload_auth(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__UploadAuth *m, uint64_t now_ms) {
  if (m->has_size && m->size > srv->cfg.blob_max_size)
    return wsrv_refuse(srv, ERR_LIMIT, "the blob is over the server's size limit");
  char token[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1];
  uint64_t expires = wsrv_after(now_ms, srv->cfg.upload_token_ttl_ms);
  int rc = token_make(srv, c->account, c->device_id, expires, token);
  if (rc != WHISPER_OK) return rc;
  Whisper__Sync__UploadToken t = WHISPER__SYNC__UPLOAD_TOKEN__INIT;
  t.token = token;
  t.has_expires_ms = t.has_max_size = 1;
  t.expires_ms = expires;
  t.max_size = srv->cfg.blob_max_size;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN;
  f.upload_token = &t;
  rc = wsrv_send(srv, c->id, &f);
  wh_wipe(token, sizeof token);
  return rc;
}

/* Decodes the token's base64url into raw; its length, or 0 when it is not
 * the canonical encoding of a token's length. */
static size_t token_decode(const char *token, size_t len, uint8_t raw[TOKEN_RAW_MAX]) {
  char again[WHISPER_SERVER_UPLOAD_TOKEN_MAX + 1];
  size_t n = 0;
  if (len > WHISPER_SERVER_UPLOAD_TOKEN_MAX) return 0;
  if (sodium_base642bin(raw, TOKEN_RAW_MAX, token, len, NULL, &n, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
    return 0;
  if (n < TOKEN_HEAD + 1 + TOKEN_MAC_LEN) return 0;
  /* one token, one spelling: unused low bits set in the last character
   * would decode to the same bytes */
  sodium_bin2base64(again, sizeof again, raw, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  if (strlen(again) != len || memcmp(again, token, len) != 0) return 0;
  return n;
}

/* The token's fields after its layout and MAC are checked. */
static int token_open(whisper_server *srv, const char *token, size_t len, char account[WSRV_NAME_MAX + 1],
                      uint32_t *device, uint64_t *expires) {
  uint8_t raw[TOKEN_RAW_MAX], mac[TOKEN_MAC_LEN];
  size_t n = token_decode(token, len, raw);
  if (n == 0 || raw[0] != TOKEN_FORMAT)
    return wsrv_fail(srv, WHISPER_EINVALIDMSG, "not an upload token");
  size_t body = n - TOKEN_MAC_LEN, an = body - TOKEN_HEAD;
  memcpy(account, raw + TOKEN_HEAD, an);
  account[an] = 0;
  *device = wh_rd32(raw + 9);
  *expires = wh_rd64(raw + 1);
  if (memchr(account, 0, an) || !wh_account_ok(account) || !wsrv_device_ok(1, *device))
    return wsrv_fail(srv, WHISPER_EINVALIDMSG, "an upload token with a bad account or device");
  if (token_mac(srv, raw, body, mac) != 0)
    return wsrv_fail(srv, WHISPER_EINTERNAL, "HMAC-SHA256 failed (OpenSSL)");
  if (CRYPTO_memcmp(mac, raw + body, TOKEN_MAC_LEN) != 0)
    return wsrv_fail(srv, WHISPER_EINVALIDSIG, "the upload token's MAC is wrong");
  return WHISPER_OK;
}

/* WHISPER_OK when `account` still lists `device`. */
static int device_exists(whisper_server *srv, const char *account, uint32_t device) {
  Whisper__Server__Account *a = NULL;
  int rc = wsrv_account_get(srv, account, &a);
  if (rc == WHISPER_ENOTFOUND)
    return wsrv_fail(srv, rc, "the upload token's account no longer exists");
  if (rc != WHISPER_OK) return rc;
  if (!wsrv_account_has(a, device))
    rc = wsrv_fail(srv, WHISPER_ENOTFOUND, "the upload token's device no longer exists");
  wsrv_msg_free(a);
  return rc;
}

int whisper_server_upload_token_check(whisper_server *srv, const char *token, size_t len,
                                      uint64_t now_ms, char *account_out, size_t account_cap,
                                      uint32_t *device_out) {
  if (srv == NULL) return WHISPER_EINVAL;
  if ((token == NULL && len) || account_out == NULL || device_out == NULL)
    return wsrv_fail(srv, WHISPER_EINVAL, "upload_token_check needs a token, account_out and device_out");
  char account[WSRV_NAME_MAX + 1];
  uint32_t device = 0;
  uint64_t expires = 0;
  int rc = token_open(srv, token ? token : "", len, account, &device, &expires);
  if (rc != WHISPER_OK) return rc;
  if (now_ms >= expires) return wsrv_fail(srv, WHISPER_ESTATE, "the upload token has expired");
  rc = device_exists(srv, account, device);
  if (rc != WHISPER_OK) return rc;
  if (strlen(account) + 1 > account_cap)
    return wsrv_fail(srv, WHISPER_EINVAL, "account_out is too small for the token's account");
  memcpy(account_out, account, strlen(account) + 1);
  *device_out = device;
  srv->last_error[0] = 0;
  return WHISPER_OK;
}
