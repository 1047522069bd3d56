/*
 * Profiles: ProfileSet and ProfileGet (docs/sync-protocol.md "Profiles").
 *
 * The server keeps, per account, the newest profile its devices uploaded:
 * ciphertext only (the devices encrypt it under a key derived from the
 * account's profile key, which the server never sees), with its version.
 * It checks only what it can: the size, that the version grows. Anyone
 * logged in may read any account's profile; whether the bytes are the
 * owner's, and the newest, is for the reader's engine to check (the
 * account and the version are bound inside the encryption).
 */
#include <string.h>

#include "server/server_internal.h"

int wsrv_is_profile_request(int body_case) {
  return body_case == WHISPER__SYNC__FRAME__BODY_PROFILE_SET ||
         body_case == WHISPER__SYNC__FRAME__BODY_PROFILE_GET;
}

static int profile_get(whisper_server *srv, const char *name, Whisper__Server__Profile **out) {
  return wsrv_get_msg(srv, WHISPER_REC_SERVER_PROFILE, (const uint8_t *)name, strlen(name),
                      &whisper__server__profile__descriptor, (ProtobufCMessage **)out);
}

/* In the caller's transaction: ERR_STATE unless the version grows. */
static int profile_store(whisper_server *srv, const wsrv_conn *c, const Whisper__Sync__ProfileSet *m) {
  Whisper__Server__Profile *old = NULL;
  int rc = profile_get(srv, c->account, &old);
  if (rc != WHISPER_OK && rc != WHISPER_ENOTFOUND) return rc;
  uint64_t held = old ? old->version : 0;
  wsrv_msg_free(old);
  if (m->version <= held)
    return wsrv_refuse(srv, ERR_STATE, "the stored profile's version is not below this one");
  Whisper__Server__Profile p = WHISPER__SERVER__PROFILE__INIT;
  p.has_version = p.has_ciphertext = 1;
  p.version = m->version;
  p.ciphertext = m->ciphertext;
  return wsrv_put_msg(srv, WHISPER_REC_SERVER_PROFILE, (const uint8_t *)c->account,
                      strlen(c->account), &p.base);
}

int wsrv_handle_profile_set(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__ProfileSet *m) {
  if (!m->has_ciphertext || m->ciphertext.len == 0 || !m->has_version || m->version == 0)
    return wsrv_refuse(srv, ERR_MALFORMED, "a profile needs its ciphertext and a version");
  if (m->ciphertext.len > WSRV_PROFILE_MAX)
    return wsrv_refuse(srv, ERR_LIMIT, "the profile is over the size limit");
  int rc = wsrv_begin(srv);
  if (rc != WHISPER_OK) return rc;
  rc = wsrv_end(srv, NULL, profile_store(srv, c, m));
  if (rc != WHISPER_OK) return rc;
  return wsrv_send_ok(srv, c, id);
}

int wsrv_handle_profile_get(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__ProfileGet *m) {
  if (!wh_account_ok(m->account)) return wsrv_refuse(srv, ERR_MALFORMED, "bad account name");
  Whisper__Server__Profile *p = NULL;
  int rc = profile_get(srv, m->account, &p);
  if (rc == WHISPER_ENOTFOUND) return wsrv_refuse(srv, ERR_NOT_FOUND, "no profile for that account");
  if (rc != WHISPER_OK) return rc;
  Whisper__Sync__Profile out = WHISPER__SYNC__PROFILE__INIT;
  out.account = m->account;
  out.has_ciphertext = p->has_ciphertext;
  out.ciphertext = p->ciphertext;
  out.has_version = 1;
  out.version = p->version;
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = WHISPER__SYNC__FRAME__BODY_PROFILE;
  f.profile = &out;
  rc = wsrv_send(srv, c->id, &f);
  wsrv_msg_free(p);
  return rc;
}
