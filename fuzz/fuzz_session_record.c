/*
 * fuzz_session_record: the input is a stored session record.
 *
 * 1. The codec: wh_record_decode returns WHISPER_OK or WHISPER_ECORRUPT;
 *    on success encode -> decode -> encode gives two byte-identical
 *    encodings, and the direct encoder writes the bytes protobuf-c packs
 *    (wh_record_encode_pb); every archived state is decoded with
 *    wh_state_decode and, when it decodes, round-trips the same way.
 * 2. The API on the record: the input is planted in alice's store as her
 *    session with bob.1, then whisper_session_exists, _encrypt, and
 *    _decrypt with two fixed SignalMessages and a fixed
 *    PreKeySignalMessage from bob (all real: they decrypt against the seed
 *    records, see fz_scenario_record) run on it. Asserts: a record that does not decode gives WHISPER_ECORRUPT
 *    everywhere; exists and encrypt agree (usable <=> encrypt does not
 *    answer WHISPER_ENOSESSION); encrypt's message type follows the
 *    pending prekey; every code is documented; a failing call changes
 *    nothing; a successful call writes a record that decodes, and a
 *    decrypted message does not decrypt twice. Everything written is
 *    restored after each call.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static fz_dev *alice;
static whisper_buf *msgs[FZ_RECORD_MSGS];
static wh_addr bob_addr;

static void setup_once(void) {
  if (alice) return;
  alice = fz_scenario_record(NULL, msgs);
  fz_addr(&bob_addr, "bob", 1);
}

static void state_roundtrip(const whisper_buf *b) {
  wh_state s, s2;
  whisper_buf *e1 = NULL, *e2 = NULL;
  int rc = wh_state_decode(&s, b->data, b->len);
  FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_ECORRUPT, "wh_state_decode returned %d", rc);
  if (rc != WHISPER_OK) return;
  FZ_ASSERT(wh_state_encode(&s, &e1) == WHISPER_OK, "wh_state_encode failed");
  FZ_ASSERT(wh_state_encode_pb(&s, &e2) == WHISPER_OK, "wh_state_encode_pb failed");
  FZ_ASSERT(fz_buf_eq(e1, e2), "the direct state encoder differs from protobuf-c's");
  whisper_buf_free(e2);
  rc = wh_state_decode(&s2, e1->data, e1->len);
  FZ_ASSERT(rc == WHISPER_OK, "a state we encoded does not decode: %d", rc);
  FZ_ASSERT(wh_state_encode(&s2, &e2) == WHISPER_OK, "wh_state_encode failed");
  FZ_ASSERT(fz_buf_eq(e1, e2), "state encode(decode(encode(x))) differs from encode(x)");
  wh_state_free(&s);
  wh_state_free(&s2);
  whisper_buf_free(e1);
  whisper_buf_free(e2);
}

/* The written record must decode. */
static void check_written_record(const char *what) {
  whisper_buf *now = fz_get(alice, WHISPER_REC_SESSION, bob_addr.key, bob_addr.len);
  wh_record r;
  FZ_ASSERT(now != NULL, "%s succeeded and the record is gone", what);
  FZ_ASSERT(wh_record_decode(&r, now->data, now->len) == WHISPER_OK,
            "%s succeeded and wrote a record that does not decode", what);
  wh_record_free(&r);
  whisper_buf_free(now);
}

static void try_decrypt(int type, const whisper_buf *m, int decodes) {
  whisper_buf *pt = NULL, *pt2 = NULL;
  const char *what = type == WHISPER_MSG_PREKEY ? "decrypt PreKey" : "decrypt SignalMessage";
  fz_call_begin(alice);
  int rc = whisper_session_decrypt(alice->ctx, "bob", 1, type, m->data, m->len, &pt);
  if (!decodes)
    FZ_ASSERT(rc == WHISPER_ECORRUPT, "%s on a corrupt record returned %d (%s)", what, rc,
              whisper_ctx_last_error(alice->ctx));
  else
    FZ_ASSERT(fz_rc_in(rc, 7, WHISPER_OK, WHISPER_EINVALIDMSG, WHISPER_EDUPLICATE, WHISPER_ETOOFAR,
                       WHISPER_ENOSESSION, WHISPER_EUNTRUSTED, WHISPER_ECORRUPT),
              "%s returned %d (%s)", what, rc, whisper_ctx_last_error(alice->ctx));
  if (rc == WHISPER_OK) {
    check_written_record(what);
    unsigned committed = alice->fs.committed_writes;
    int rc2 = whisper_session_decrypt(alice->ctx, "bob", 1, type, m->data, m->len, &pt2);
    FZ_ASSERT(rc2 != WHISPER_OK, "%s: the same message decrypted twice", what);
    FZ_ASSERT(alice->fs.committed_writes == committed, "%s: a failed replay committed writes",
              what);
    whisper_buf_free(pt2);
  }
  fz_call_end(alice, rc, what);
  whisper_buf_free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wh_record r;
  int has_pending = 0;
  setup_once();

  /* 1. the codec */
  int drc = wh_record_decode(&r, data, size);
  FZ_ASSERT(drc == WHISPER_OK || drc == WHISPER_ECORRUPT, "wh_record_decode returned %d", drc);
  if (drc == WHISPER_OK) {
    wh_record r2;
    whisper_buf *e1 = NULL, *e2 = NULL;
    FZ_ASSERT(r.narchived <= WH_MAX_ARCHIVED, "%u archived states", r.narchived);
    FZ_ASSERT(r.cur.nrecv <= WH_MAX_RECV_CHAINS, "%u receiver chains", r.cur.nrecv);
    FZ_ASSERT(wh_record_encode(&r, &e1) == WHISPER_OK, "wh_record_encode failed");
    FZ_ASSERT(wh_record_encode_pb(&r, &e2) == WHISPER_OK, "wh_record_encode_pb failed");
    FZ_ASSERT(fz_buf_eq(e1, e2), "the direct record encoder differs from protobuf-c's");
    whisper_buf_free(e2);
    int rc = wh_record_decode(&r2, e1->data, e1->len);
    FZ_ASSERT(rc == WHISPER_OK, "a record we encoded does not decode: %d", rc);
    FZ_ASSERT(wh_record_encode(&r2, &e2) == WHISPER_OK, "wh_record_encode failed");
    FZ_ASSERT(fz_buf_eq(e1, e2), "record encode(decode(encode(x))) differs from encode(x)");
    for (uint32_t i = 0; i < r.narchived; i++) state_roundtrip(r.archived[i]);
    has_pending = r.has_current && r.cur.has_pending;
    wh_record_free(&r);
    wh_record_free(&r2);
    whisper_buf_free(e1);
    whisper_buf_free(e2);
  }

  /* 2. the API on the planted record */
  fz_put_raw(alice, WHISPER_REC_SESSION, bob_addr.key, bob_addr.len, data, size);

  int exists = -1;
  fz_call_begin(alice);
  int rc = whisper_session_exists(alice->ctx, "bob", 1, FZ_NOW, &exists);
  fz_call_end(alice, rc, "session_exists");
  if (drc != WHISPER_OK) {
    FZ_ASSERT(rc == WHISPER_ECORRUPT, "session_exists on a corrupt record returned %d", rc);
  } else {
    FZ_ASSERT(rc == WHISPER_OK && (exists == 0 || exists == 1), "session_exists: %d, %d", rc,
              exists);
  }

  int type = 0;
  whisper_buf *out = NULL;
  fz_call_begin(alice);
  rc = whisper_session_encrypt(alice->ctx, "bob", 1, (const uint8_t *)"fuzz", 4, FZ_NOW, &type,
                               &out);
  if (drc != WHISPER_OK)
    FZ_ASSERT(rc == WHISPER_ECORRUPT, "encrypt on a corrupt record returned %d", rc);
  else if (exists)
    /* (EROLLEDBACK: a seed is the real session at an earlier point, and the
     * harness encrypted past it: that chain's keys were used) */
    FZ_ASSERT(rc == WHISPER_OK || rc == WHISPER_EUNTRUSTED || rc == WHISPER_EROLLEDBACK,
              "encrypt on a usable session returned %d (%s)", rc,
              whisper_ctx_last_error(alice->ctx));
  else
    FZ_ASSERT(rc == WHISPER_ENOSESSION, "encrypt on an unusable session returned %d (%s)", rc,
              whisper_ctx_last_error(alice->ctx));
  FZ_ASSERT((rc == WHISPER_OK) == (out != NULL), "encrypt rc %d but output %p", rc, (void *)out);
  if (rc == WHISPER_OK) {
    FZ_ASSERT(type == (has_pending ? WHISPER_MSG_PREKEY : WHISPER_MSG_WHISPER),
              "encrypt gave type %d with pending=%d", type, has_pending);
    check_written_record("encrypt");
  }
  fz_call_end(alice, rc, "encrypt");
  whisper_buf_free(out);

  try_decrypt(WHISPER_MSG_WHISPER, msgs[0], drc == WHISPER_OK);
  try_decrypt(WHISPER_MSG_WHISPER, msgs[1], drc == WHISPER_OK);
  try_decrypt(WHISPER_MSG_PREKEY, msgs[2], drc == WHISPER_OK);
  return 0;
}
