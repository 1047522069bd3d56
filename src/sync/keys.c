/*
 * Reading public values from the protocol's stored records: a one-time
 * prekey's public key (to upload it) and the registration id a session
 * knows (the server checks it against the device's). Records are in the
 * formats of src/protocol/identity.c and src/protocol/state.c.
 */
#include "protocol/state.h"
#include "sync/sync_internal.h"

int sy_prekey_public(whisper_ctx *ctx, uint32_t id, uint8_t pub[WHISPER_PUBLIC_KEY_LEN]) {
  wh_keypair kp;
  int rc = wh_load_prekey(ctx, WHISPER_REC_PREKEY, id, &kp, NULL, NULL);
  if (rc == WHISPER_OK) memcpy(pub, kp.pub, WHISPER_PUBLIC_KEY_LEN);
  wh_wipe(&kp, sizeof kp);
  return rc;
}

uint32_t sy_session_regid(whisper_ctx *ctx, const char *name, uint32_t device) {
  wh_addr a;
  whisper_buf *b = NULL;
  wh_record r;
  uint32_t regid = 0;
  if (wh_addr_make(ctx, &a, name, device) != WHISPER_OK) return 0;
  if (wh_get(ctx, WHISPER_REC_SESSION, a.key, a.len, &b) != WHISPER_OK) return 0;
  memset(&r, 0, sizeof r);
  if (wh_record_decode(&r, b->data, b->len) == WHISPER_OK) {
    if (r.has_current) regid = r.cur.remote_reg;
    wh_record_free(&r);
  }
  whisper_buf_free(b);
  return regid;
}
