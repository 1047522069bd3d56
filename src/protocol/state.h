/*
 * Session state and session records (what is kept per remote device), with
 * their serialized form (storage.proto: SessionStructure/RecordStructure).
 */
#ifndef WH_STATE_H
#define WH_STATE_H

#include "internal.h"

#define WH_MAX_RECV_CHAINS 5
#define WH_MAX_MSG_KEYS 2000
#define WH_MAX_ARCHIVED 40
#define WH_MAX_JUMP 25000
#define WH_SESSION_VERSION 3
#define WH_MAX_PENDING_AGE_S (30u * 24 * 3600)
#define WH_RECORD_FORMAT 1

typedef struct wh_msgkey {
  uint32_t index;
  uint8_t cipher[32], mac[32], iv[16];
} wh_msgkey;

typedef struct wh_chain {
  uint8_t ratchet[WH_PUB_LEN];
  uint8_t ck[32];
  uint32_t index;
  wh_msgkey *keys; /* skipped message keys, OLDEST first (serialized newest first) */
  uint32_t nkeys, cap;
} wh_chain;

typedef struct wh_state {
  uint32_t version;
  uint8_t local_ik[WH_PUB_LEN], remote_ik[WH_PUB_LEN];
  uint8_t root[32];
  uint32_t previous_counter;
  int has_sender;
  wh_chain sender;
  uint8_t sender_priv[WH_KEY_LEN];
  wh_chain recv[WH_MAX_RECV_CHAINS]; /* oldest first */
  uint32_t nrecv;
  int has_pending, pending_has_prekey;
  uint32_t pending_prekey_id;
  int32_t pending_spk_id;
  uint8_t pending_base[WH_PUB_LEN];
  uint64_t pending_ts; /* seconds */
  uint32_t remote_reg, local_reg;
  uint8_t alice_base[WH_PUB_LEN];
  uint64_t sender_gen; /* the session generation its sending chain was made in */
} wh_state;

typedef struct wh_record {
  int has_current;
  wh_state cur;
  whisper_buf *archived[WH_MAX_ARCHIVED]; /* serialized states, newest first */
  uint32_t narchived;
} wh_record;

void wh_chain_free(wh_chain *c);
void wh_state_free(wh_state *s);
void wh_record_free(wh_record *r);

/* Appends a skipped key (the newest); drops the oldest beyond the limit.
 * Returns 0 or -1 (out of memory). */
int wh_chain_push_key(wh_chain *c, const wh_msgkey *k);

/* Serialized forms. Decoders validate every length and count and return
 * WHISPER_ECORRUPT (with no partial output to free) on bad bytes. */
int wh_state_encode(const wh_state *s, whisper_buf **out);
int wh_state_decode(wh_state *s, const uint8_t *data, size_t len);
int wh_record_encode(const wh_record *r, whisper_buf **out);
int wh_record_decode(wh_record *r, const uint8_t *data, size_t len);
/* The encoders without allocation: the exact length, then the bytes
 * written at `p` (returns the end). The same bytes as the _pb versions,
 * which go through protobuf-c and serve as the tests' reference. A plan
 * filled by wh_record_encoded_len() saves wh_record_encode_to() working
 * the sizes out again (NULL: none). */
typedef struct wh_state_plan {
  size_t len, sender, pending, recv[WH_MAX_RECV_CHAINS];
} wh_state_plan;
size_t wh_state_encoded_len(const wh_state *s);
uint8_t *wh_state_encode_to(const wh_state *s, uint8_t *p);
size_t wh_record_encoded_len(const wh_record *r, wh_state_plan *plan);
uint8_t *wh_record_encode_to(const wh_record *r, const wh_state_plan *plan, uint8_t *p);
int wh_state_encode_pb(const wh_state *s, whisper_buf **out);
int wh_record_encode_pb(const wh_record *r, whisper_buf **out);

/* Makes `s` current, archiving the old current state (pending prekey
 * cleared in the archived copy; at most 40 kept). Takes `s` by value. */
int wh_record_promote(wh_record *r, wh_state *s);

#endif
