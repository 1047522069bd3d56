/*
 * Shared by the group (sender key) fuzz targets and gen_corpus: the fixed
 * group scenario, and a small independent model of what the library keeps
 * in a sender key record, so that the targets can predict the results of
 * whisper_sender_key_process / _decrypt / _encrypt / _generate.
 *
 * The scenario (fzg_scenario) is deterministic, like those of
 * fuzz_common.c: alice.1 creates distribution D1 and rotates it six times
 * (chains C1..C7, six messages each, iterations 0..5); bob.1 processes the
 * SKDMs of C1..C6 (so C1 is evicted: he holds C6, C5, C4, C3, C2, newest
 * first) and decrypts C6 at 0, 1 and 3 (iteration 4, a skipped key for 2)
 * and C5 at 0. C7 and distribution D2 (one message) stay unknown to him.
 * Two "far" C6 messages (iterations 25004 and 25005, exactly at and just
 * past the 25000 limit for bob's C6) are made by planting an advanced copy
 * of alice's C6 state.
 */
#ifndef WHISPER_FUZZ_SENDER_KEY_H
#define WHISPER_FUZZ_SENDER_KEY_H

#include "fuzz_common.h"
#include "whisper/sender_key.h"

/* The library's limits (sender_key.h, src/protocol/sender_key.c). */
#define FZG_MAX_STATES 5
#define FZG_MAX_KEYS 2000
#define FZG_MAX_JUMP 25000
#define FZG_VERSION 3

#define FZG_CHAINS 7 /* C1..C7, index 0..6 */
#define FZG_MSGS 6   /* messages per chain, iterations 0..5 */
#define FZG_BOB_CHAIN 5      /* C6: bob's newest chain, at iteration 4, skipped key 2 */
#define FZG_FAR_OK 25004u    /* C6 iteration exactly FZG_MAX_JUMP ahead of bob */
#define FZG_FAR_TOO 25005u   /* one more */

extern const uint8_t fzg_d1[WHISPER_DISTRIBUTION_ID_LEN], fzg_d2[WHISPER_DISTRIBUTION_ID_LEN];

/* One of alice's chains, as an SKDM at iteration 0 describes it. */
typedef struct fzg_chain {
  const uint8_t *uuid; /* fzg_d1 or fzg_d2 */
  uint32_t chain_id;
  uint8_t ck0[32];  /* chain key at iteration 0 */
  uint8_t pub[33];  /* signing key, serialized */
  whisper_buf *skdm; /* the SKDM at iteration 0 */
  whisper_buf *msg[FZG_MSGS]; /* SenderKeyMessages at iterations 0..5 (D2: [0] only) */
} fzg_chain;

typedef struct fzg_world {
  fz_dev *bob; /* the receiver, see above */
  fzg_chain chain[FZG_CHAINS];
  fzg_chain d2;
  whisper_buf *far_ok, *far_too; /* C6 at FZG_FAR_OK, FZG_FAR_TOO */
} fzg_world;

/* Builds the world. The three seed sets (any may be NULL) receive SKDMs for
 * fuzz_skdm, SenderKeyMessages for fuzz_sender_key_message and sender key
 * records for fuzz_sender_key_record. */
fzg_world *fzg_scenario(fz_seeds *skdm_seeds, fz_seeds *msg_seeds, fz_seeds *record_seeds);
void fzg_world_free(fzg_world *w);

/* The plaintext alice encrypted for (chain, iteration) into buf; 0 if no
 * such message was made. */
int fzg_text(const fzg_world *w, const fzg_chain *ch, uint32_t iteration, char buf[32]);

/* --- the model ------------------------------------------------------------ */

typedef struct fzg_state {
  uint32_t chain_id, iteration, version;
  uint8_t ck[32], pub[33];
  int has_priv;
  uint8_t priv[32];
  uint32_t nkeys;
  uint32_t *key_it;       /* skipped keys, in stored order */
  uint8_t (*key_seed)[32];
} fzg_state;

typedef struct fzg_record {
  fzg_state s[FZG_MAX_STATES];
  uint32_t n;
} fzg_record;

/* Decodes a stored sender key record by the rules the library documents
 * (src/protocol/sender_key.c, record_load): 1 if it decodes, 0 if the library
 * must answer WHISPER_ECORRUPT. `r` is zeroed on failure. */
int fzg_record_decode(fzg_record *r, const uint8_t *b, size_t len);
void fzg_record_free(fzg_record *r);
int fzg_state_eq(const fzg_state *a, const fzg_state *b);

typedef struct fzg_skdm {
  uint8_t uuid[16];
  uint32_t chain_id, iteration;
  uint8_t ck[32], pub[33];
} fzg_skdm;
/* 1 if whisper_sender_key_process must accept the bytes (else EINVALIDMSG). */
int fzg_skdm_parse(fzg_skdm *m, const uint8_t *b, size_t len);

typedef struct fzg_skm {
  uint8_t uuid[16];
  uint32_t chain_id, iteration;
} fzg_skm;
/* 1 if whisper_sender_key_decrypt gets past parsing (else EINVALIDMSG). */
int fzg_skm_parse(fzg_skm *m, const uint8_t *b, size_t len);

/* ck advanced n steps (HMAC-SHA256(ck, 0x02) each), and the message seed
 * (HMAC-SHA256(ck, 0x01)); computed with libsodium, not the library. */
void fzg_ck_advance(uint8_t out[32], const uint8_t ck[32], uint32_t n);
void fzg_ck_seed(uint8_t out[32], const uint8_t ck[32]);

/* A set of return codes: FZG_BIT(rc) for each. A code's bit is its place
 * in core.h's ranges (20 codes a group, fewer than 10 used in each): group
 * * 10 + its place in the group, so every code up to the fatal group's
 * fits in 64 bits. */
typedef uint64_t fzg_set;
#define FZG_IDX(rc) ((unsigned)(-(rc)) / 20u * 10u + (unsigned)(-(rc)) % 20u)
#define FZG_BIT(rc) ((fzg_set)1 << FZG_IDX(rc))
int fzg_in(int rc, fzg_set set);

/* The codes whisper_sender_key_decrypt may give for alice's real message at
 * `iteration` of chain `ch` against record r (which decodes). *real_key is
 * set to 1 when the key that would be used is the real one (so a success
 * must give alice's plaintext). */
fzg_set fzg_expect_decrypt(const fzg_record *r, const fzg_chain *ch, uint32_t iteration,
                            int *real_key);

/* The index of the first state with this chain id, or -1. */
int fzg_find_chain(const fzg_record *r, uint32_t chain_id);

/* Checks (FZ_ASSERT) that `after` is what a successful decrypt of
 * `iteration` on chain `chain_id` makes of `before`. */
void fzg_check_decrypt_update(const fzg_record *before, const fzg_record *after,
                              uint32_t chain_id, uint32_t iteration);

/* Checks (FZ_ASSERT) that `after` is what processing m makes of `before`:
 * the state with m's chain id and signing key if there was one (unchanged),
 * else a fresh state from m, first; then the old states without m's chain
 * id, in order, up to 5 in all. */
void fzg_check_process_update(const fzg_record *before, const fzg_record *after,
                              const fzg_skdm *m);

/* Runs whisper_sender_key_decrypt on `d` of the bytes m, which are alice's
 * message at `iteration` of chain `ch` when the signature verifies, from
 * "alice".1, in one fz_call bracket. `r` is the decoded record stored under
 * (alice.1, ch->uuid), NULL if it does not decode (then only
 * WHISPER_ECORRUPT is allowed). Asserts: the code is in
 * fzg_expect_decrypt's set plus `extra`; a success gives alice's plaintext
 * when the key is the real one, and writes the record
 * fzg_check_decrypt_update expects; the same bytes then give a code allowed
 * against the new record (WHISPER_EDUPLICATE only, if `strict_replay`),
 * and when that fails it writes nothing. Returns the first call's code. */
int fzg_decrypt_check(fz_dev *d, const fzg_world *w, const fzg_record *r, const fzg_chain *ch,
                      uint32_t iteration, const uint8_t *m, size_t len, fzg_set extra,
                      int strict_replay);

/* --- store helpers -------------------------------------------------------- */

/* The sender key record key: address key of (name, dev) || uuid. */
void fzg_key(wh_addr *k, const char *name, uint32_t dev, const uint8_t uuid[16]);
/* Puts `val` (NULL: deletes) under (kind, key), unwatched. */
void fzg_put_or_del(fz_dev *d, int kind, const wh_addr *k, const whisper_buf *val);

#endif
