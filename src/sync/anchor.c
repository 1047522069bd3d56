/*
 * A store restored from a copy is caught before it reuses a key.
 *
 * The engine keeps an epoch in its progress record ("s"), with an id made
 * once for the store. The epoch only grows: at every login and every
 * SY_ANCHOR_EVERY messages sent. Each time,
 * WHISPER_EV_ANCHOR hands the app the anchor (id || epoch) to keep outside
 * the file, in the platform keystore: a small value, not a write per
 * message. On the next start the app gives it back
 * (whisper_client_anchor_check): a store whose epoch is below its anchor
 * was restored from a copy. Then no session in it encrypts again
 * (whisper_sessions_distrust: each gets a fresh session first), its sender
 * keys are rotated as they are used, and WHISPER_EV_ROLLBACK says so.
 *
 * Without the anchor a whole-file restore cannot be seen from inside the
 * file (docs/security.md). One session row restored alone is caught in any
 * case by the library's send marks (WHISPER_EROLLEDBACK), kept in a row of
 * their own: the engine then starts a fresh session with that device.
 */
#include "sync/sync_internal.h"

#define SY_ANCHOR_EVERY 64 /* messages sent between two epochs */

void sy_rollback_event(whisper_client *c, const char *account, uint32_t device) {
  sy_event *e = sy_event_new(c, WHISPER_EV_ROLLBACK);
  if (e == NULL) return;
  if (account && sy_event_set(e, account, account, NULL, 0, NULL, 0) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  e->ev.from_device = device;
  sy_event_push(c, e);
}

static void anchor_event(whisper_client *c) {
  uint8_t a[WHISPER_ANCHOR_LEN];
  sy_event *e = sy_event_new(c, WHISPER_EV_ANCHOR);
  if (e == NULL) return;
  memcpy(a, c->store_id, sizeof c->store_id);
  for (int i = 0; i < 8; i++) a[8 + i] = (uint8_t)(c->epoch >> (56 - 8 * i));
  if (sy_event_set(e, NULL, NULL, NULL, 0, a, sizeof a) != WHISPER_OK) {
    sy_event_free(e);
    return;
  }
  sy_event_push(c, e);
}

/* A new epoch, stored (its own transaction), and the app told. */
int sy_epoch_next(whisper_client *c) {
  int made = 0;
  for (size_t i = 0; i < sizeof c->store_id; i++) made |= c->store_id[i];
  uint8_t id[8];
  memcpy(id, c->store_id, sizeof id);
  if (!made && wh_random(&c->ctx->rng, c->store_id, sizeof c->store_id) != 0)
    return wh_fail(c->ctx, WHISPER_ERANDOM, "the random number generator failed");
  c->epoch++;
  c->sent_since = 0;
  int rc = sy_state_save(c);
  if (rc != WHISPER_OK) {
    c->epoch--;
    memcpy(c->store_id, id, sizeof id);
    return rc;
  }
  anchor_event(c);
  return WHISPER_OK;
}

void sy_epoch_count(whisper_client *c) {
  if (++c->sent_since < SY_ANCHOR_EVERY) return;
  int rc = sy_epoch_next(c);
  if (rc != WHISPER_OK) sy_error_event(c, rc, 0, "cannot store the store's epoch");
}

int whisper_client_anchor(whisper_client *c, uint8_t out[WHISPER_ANCHOR_LEN]) {
  if (c == NULL || out == NULL) return WHISPER_EINVAL;
  memcpy(out, c->store_id, sizeof c->store_id);
  for (int i = 0; i < 8; i++) out[8 + i] = (uint8_t)(c->epoch >> (56 - 8 * i));
  return WHISPER_OK;
}

int whisper_client_anchor_check(whisper_client *c, const uint8_t *anchor, size_t len,
                                int *restored) {
  if (c == NULL) return WHISPER_EINVAL;
  if (anchor == NULL || len != WHISPER_ANCHOR_LEN || restored == NULL)
    return sy_fail(c, WHISPER_EINVAL, "an anchor is %d bytes", WHISPER_ANCHOR_LEN);
  *restored = 0;
  if (memcmp(anchor, c->store_id, sizeof c->store_id) != 0)
    return sy_fail(c, WHISPER_EINVAL, "that anchor is another store's");
  uint64_t epoch = 0;
  for (int i = 0; i < 8; i++) epoch = epoch << 8 | anchor[8 + i];
  if (epoch <= c->epoch) return wh_ok(c->ctx);
  /* restored from a copy: nothing in it encrypts again as it is */
  *restored = 1;
  int rc = whisper_sessions_distrust(c->ctx);
  if (rc != WHISPER_OK) return rc;
  c->epoch = epoch; /* above everything the lost copy ever was */
  if ((rc = sy_epoch_next(c)) != WHISPER_OK) return rc;
  sy_rollback_event(c, NULL, 0);
  return wh_ok(c->ctx);
}
