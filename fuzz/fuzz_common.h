/*
 * Shared by the fuzz targets and the corpus generator: a deterministic RNG,
 * a store wrapper that watches every write, devices, and the scenarios
 * that build each target's fixed state (and, in gen_corpus, its seeds).
 *
 * The scenarios are deterministic: a fuzz target that runs one rebuilds
 * exactly the devices gen_corpus used, so the committed seed messages are
 * valid against the target's state (until the library changes how it draws
 * randomness: then regenerate the corpus, see README.md).
 */
#ifndef WHISPER_FUZZ_COMMON_H
#define WHISPER_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "protocol/state.h"

/* The fixed clock of every call. */
#define FZ_NOW 1700000000000ULL

/* Prints the failed condition and a sentence, then abort()s (a "crash"). */
void fz_die(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
#define FZ_ASSERT(cond, ...)                                   \
  do {                                                         \
    if (!(cond)) fz_die(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

/* 1 when FUZZ_VERBOSE is set (to something other than 0): trace calls. */
int fz_verbose(void);

/* 1 if rc is one of the documented codes (WHISPER_OK .. WHISPER_EROLLEDBACK). */
int fz_rc_known(int rc);
/* 1 if rc is one of the n codes that follow. */
int fz_rc_in(int rc, int n, ...);

/* --- deterministic randomness ------------------------------------------- */

/* A seeded stream: libsodium's randombytes_buf_deterministic keyed by the
 * seed xor a per-call counter. */
typedef struct fz_rng {
  uint8_t seed[32];
  uint64_t counter;
} fz_rng;
int fz_rng_fn(void *user, uint8_t *out, size_t len);

/* --- the watching store ------------------------------------------------- */

/* A record written during a fuzz call, with its value before the call. */
typedef struct fz_touch {
  int kind;
  uint8_t *key;
  size_t key_len;
  whisper_buf *orig; /* NULL: the record did not exist */
} fz_touch;

/* Wraps a memory store. Between fz_call_begin() and fz_call_end() it keeps
 * the original value of every record written and counts transactions that
 * committed writes. */
typedef struct fz_store {
  whisper_store *inner; /* the memory store */
  whisper_store *outer; /* the wrapper, used by the context */
  int tracking;
  fz_touch *touched;
  size_t ntouched, cap;
  unsigned txn_writes;       /* writes in the open transaction */
  unsigned committed_writes; /* transactions committed with writes */
  unsigned sp_writes[64];    /* txn_writes when each open savepoint began */
  unsigned n_sp;
  /* the journal: every record written since fz_journal_begin(), with its
   * value before its first write (targets that run several calls per
   * input and put the store back once, at the end) */
  int journaling;
  fz_touch *journal;
  size_t njournal, jcap;
} fz_store;

/* A watching store over a fresh memory store (fz_dev_new makes one per
 * device; the server target makes its own). */
void fz_store_open(fz_store *f);
void fz_store_close(fz_store *f);

/* Watching one call without the device machinery (fz_call_begin/_end do
 * this and more for a device): begin clears the touched records and the
 * count of committed writes; after the call, f->committed_writes and
 * fz_store_changed() say whether it changed the store: the first record
 * written whose bytes differ from its value before the call, or NULL;
 * end stops watching and forgets the touched records (no restore). */
void fz_watch_begin(fz_store *f);
const fz_touch *fz_store_changed(fz_store *f);
void fz_watch_end(fz_store *f);

/* The journal over a whole input: begin starts remembering the value of
 * every record before its first write; restore puts them all back (no
 * transaction may be open) and stops. */
void fz_journal_begin(fz_store *f);
void fz_journal_restore(fz_store *f);

/* --- devices ------------------------------------------------------------ */

typedef struct fz_dev {
  fz_store fs;
  whisper_ctx *ctx;
  fz_rng rng;
  const char *name;
  uint32_t device_id;
} fz_dev;

/* A device with an identity (name, device id) and signed prekey 1; every
 * byte of randomness comes from `seed`. Aborts on any failure. */
fz_dev *fz_dev_new(const char *name, uint32_t device_id, uint8_t seed);
void fz_dev_free(fz_dev *d);

/* Brackets one fuzzed operation on `d`:
 *  - begin: resets the RNG to a fixed per-call stream and starts watching;
 *  - end(rc): checks no store transaction is left open; if rc is not
 *    WHISPER_OK, checks that no transaction committed a write and that
 *    every record written is back to its value before the call (a failing
 *    call must change no state); then puts every record written back to
 *    its value before the call, so that the next input sees the same
 *    state. `what` names the operation in the abort message (and in the
 *    trace printed when FUZZ_VERBOSE=1 is set). */
void fz_call_begin(fz_dev *d);
void fz_call_end(fz_dev *d, int rc, const char *what);

/* Direct access to the inner store, not watched (snapshots, planting). */
whisper_buf *fz_get(fz_dev *d, int kind, const uint8_t *key, size_t key_len);
void fz_put_raw(fz_dev *d, int kind, const uint8_t *key, size_t key_len, const uint8_t *val,
                size_t val_len);
/* The stored session record with (name, device_id), or NULL. */
whisper_buf *fz_session_record(fz_dev *d, const char *name, uint32_t device_id);
/* The address key of (name, device_id). */
void fz_addr(wh_addr *a, const char *name, uint32_t device_id);
/* 1 if the two buffers (either may be NULL) hold the same bytes. */
int fz_buf_eq(const whisper_buf *a, const whisper_buf *b);

/* --- scenario helpers --------------------------------------------------- */

/* Encrypts `text` from `from` to (to, to_dev); checks the type if nonzero. */
whisper_buf *fz_send(fz_dev *from, const char *to, uint32_t to_dev, const char *text,
                     int want_type);
/* Decrypts and checks the plaintext is `text`. */
void fz_recv(fz_dev *to, const char *from, uint32_t from_dev, int type, const whisper_buf *m,
             const char *text);
/* `a` starts a session with `b` (as b->name, b->device_id) from b's bundle. */
void fz_connect(fz_dev *a, fz_dev *b, int with_prekey);

/* A named seed (a message body, a bundle or a record). */
typedef struct fz_seed {
  char name[48];
  whisper_buf *bytes;
} fz_seed;
typedef struct fz_seeds {
  fz_seed items[96];
  size_t n;
} fz_seeds;
/* Adds a copy of `b` (or takes ownership when `take`). */
void fz_seeds_add(fz_seeds *s, const char *name, whisper_buf *b, int take);
void fz_seeds_free(fz_seeds *s);

/* --- scenarios ---------------------------------------------------------- */
/* Each builds the fixed devices of one target and, if `seeds` is not NULL,
 * collects that target's seed inputs. The devices returned belong to the
 * caller. */

/* fuzz_signal_message: bob ("bob".1) holds a session with alice.1 that has
 * an archived state, skipped keys and several receiver chains; seeds are
 * SignalMessages from alice (new, skipped, duplicate, archived-session,
 * new-ratchet, far-ahead ones) and one of bob's own. */
fz_dev *fz_scenario_signal(fz_seeds *seeds);

/* fuzz_prekey_message: bob holds one-time prekeys, signed prekeys 1 and 2,
 * and a session with alice.1 set up by a PreKey message; seeds are PreKey
 * messages from alice (with and without a one-time prekey, repeated,
 * duplicate), from another identity, and malformed variants. */
fz_dev *fz_scenario_prekey(fz_seeds *seeds);

/* fuzz_bundle: carol holds a session with bob.1 (so bob's identity is
 * known); seeds are serialized bundles (bob's with and without a one-time
 * prekey, another identity's, bad signature, long keys, low-order signed
 * prekey with a valid signature, missing fields). */
fz_dev *fz_scenario_bundle(fz_seeds *seeds);

/* fuzz_session_record: alice after a conversation with bob.1; seeds are
 * her session records with bob at each stage (pending prekey, a skipped
 * key, two receiver chains, one and five archived states, a state promoted
 * back from the archive, all delivered), bob's record with her, an empty
 * record and a newer format. msgs[] receives the fixed messages from bob,
 * all real: [0] a SignalMessage whose key alice skipped, [1] the next
 * SignalMessage on bob's later chain, [2] a PreKeySignalMessage from a
 * session bob starts. */
#define FZ_RECORD_MSGS 3
fz_dev *fz_scenario_record(fz_seeds *seeds, whisper_buf *msgs[FZ_RECORD_MSGS]);

#endif
