/*
 * Shared by the sync protocol targets (fuzz_server, fuzz_client,
 * fuzz_sync_frame) and gen_corpus: frame helpers, the input formats, and
 * the deterministic worlds each target starts every input from.
 *
 *  - The server world: a server store in which alice (devices 1 and 2,
 *    the second linked through a link code), bob.1 and carol.1 are
 *    registered with one-time prekeys, alice has a group with bob and
 *    carol, five messages from alice wait in bob.1's mailbox (with their
 *    copies in alice.2's), and alice has two more link codes, not
 *    approved. dave.1, erin.2, alice.3 and alice.4 have keys but are not
 *    registered. Every request is made of real keys and XEdDSA signatures
 *    (whisper_identity_generate, whisper_sign).
 *  - The client world: alice.1's store after her engine ran against a
 *    scripted server (fzs_respond): registered, logged in, a 1:1 message
 *    to bob and a group message sent, a group with bob; then, offline, a
 *    message to bob and one to carol left in the outbox, a read receipt
 *    and a group ADD pending. bob, carol, alice.2 and "mallory" (another
 *    identity claiming to be bob.1) have keys for real ciphertexts.
 *
 * Both are rebuilt identically by every process (fixed RNG streams, fixed
 * clock), so gen_corpus's seeds stay valid against the targets' state.
 */
#ifndef WHISPER_FUZZ_SYNC_H
#define WHISPER_FUZZ_SYNC_H

#include "fuzz_common.h"
#include "sync.pb-c.h"
#include "whisper/client.h"
#include "whisper/server.h"

typedef Whisper__Sync__Frame fzs_frame;

/* --- frames ------------------------------------------------------------- */

/* Packs `f` with version 1 (unless f->has_version is set) and, if id is
 * not 0, that id. */
whisper_buf *fzs_pack(fzs_frame *f, uint64_t id);
/* protobuf-c's unpack with the library's allocator; NULL if not a frame. */
fzs_frame *fzs_unpack(const uint8_t *b, size_t n);
void fzs_frame_free(fzs_frame *f);
/* Bodies a client sends (Register .. Ping). */
int fzs_is_request(int body_case);
/* Bodies the server sends (Challenge .. Pong). */
int fzs_is_server_body(int body_case);
/* Bodies the server pushes on its own, with id 0. */
int fzs_is_push(int body_case);
/* A short name of a body, for traces. */
const char *fzs_body_name(int body_case);

/* Server frames: Ok (with prekeys_left 50 if with_left), Error (id 0:
 * none), the Challenge of fuzz_client (nonce fzs_nonce). */
whisper_buf *fzs_ok(uint64_t id, int with_left);
whisper_buf *fzs_error(uint64_t id, uint32_t code, const char *msg);
whisper_buf *fzs_challenge(void);

/* Requests made of real keys (client -> server). */
whisper_buf *fzs_register(fz_dev *d, uint64_t id, uint32_t n_prekeys, const uint8_t *link_code);
whisper_buf *fzs_hello(uint64_t id, const char *account, uint32_t device);
/* Auth signed by d's identity key over "whisper-login-v1" || nonce. */
whisper_buf *fzs_auth(fz_dev *d, uint64_t id, const uint8_t *nonce, size_t nonce_len,
                      uint64_t resume_after);

/* Requests of a logged-in device (fuzz_server's seeds build them; other
 * targets' seeds use them too): a 1:1 Send of fake ciphertexts to `to`'s
 * devices (with registration ids if not NULL) and copies for the
 * sender's own devices; Typing to an account or a group; PresenceSet;
 * PresenceSubscribe; Ack. fzs_regid: d's registration id. */
uint32_t fzs_regid(fz_dev *d);
whisper_buf *fzs_send_direct(uint64_t id, const uint8_t *client_id, const char *to,
                             const uint32_t *to_devs, const uint32_t *to_regids, size_t n_to,
                             const uint32_t *own_devs, size_t n_own, const char *body);
whisper_buf *fzs_typing(uint64_t id, const char *to, const uint8_t *gid, int started);
whisper_buf *fzs_presence_set(uint64_t id, int visible, int receipts);
whisper_buf *fzs_subscribe(uint64_t id, const char *const *accts, size_t n);
whisper_buf *fzs_ack(uint64_t id, uint64_t up_to);

/* --- inputs: a byte script ---------------------------------------------- */

typedef struct fzs_script {
  uint8_t *data;
  size_t len, cap;
} fzs_script;
void fzs_put(fzs_script *s, const void *p, size_t n);
void fzs_put_byte(fzs_script *s, uint8_t b);
/* The script's bytes as a buffer (the script is emptied). */
whisper_buf *fzs_take(fzs_script *s);

/*
 * fuzz_server's input: a sequence of operations on FZS_SLOTS connection
 * slots (slot k is connection id k + 1). Each operation starts with one
 * byte, kind << 2 | slot (the top three bits are ignored, but for RECV):
 *   0..3 RECV   the next two bytes (big-endian) are a length n, then n
 *               bytes (fewer if the input ends) arrive as one frame on
 *               the slot; with the top three bits all set (FZS_DEFER),
 *               the output is left queued until the next operation (a
 *               CLOSE then drops it), and the answer is not checked;
 *   4 OPEN      opens the slot's connection (the server sends a Challenge);
 *   5 CLOSE     the slot's connection closes;
 *   6 TICK      one byte t: the clock moves t * 100 ms (t < 128) or
 *               (t - 127) * 15 s, then whisper_server_tick();
 *   7 LOGIN     one byte d: Hello and Auth, signed over the slot's
 *               challenge by device d % FZS_NDEV, resume_after d >> 3.
 */
#define FZS_SLOTS 4
#define FZS_OP_RECV 0
#define FZS_OP_OPEN 4
#define FZS_OP_CLOSE 5
#define FZS_OP_TICK 6
#define FZS_OP_LOGIN 7
#define FZS_DEFER 0xE0
void fzs_op_recv(fzs_script *s, int slot, const whisper_buf *frame);
void fzs_op_recv_deferred(fzs_script *s, int slot, const whisper_buf *frame);
void fzs_op(fzs_script *s, int kind, int slot, int arg); /* arg < 0: none */

/*
 * fuzz_client's input: the first byte picks the mode (% FZS_CLIENT_MODES),
 * the engine's state before the first fuzzed frame; then records:
 *   0xFF: the app trusts the key of the last EV_IDENTITY (if any) and
 *     calls whisper_client_retry();
 *   0xFE: whisper_client_send() to bob; 0xFD: whisper_client_send_group()
 *     to alice's group; 0xFC: whisper_client_link_approve() of alice.3's
 *     link token (fzs_link_token); 0xFB: whisper_client_profile_set()
 *     (a name, an about text and a 16-byte picture); 0xFA:
 *     whisper_client_profile_refresh() of alice's own profile;
 *     0xF9: whisper_client_block() of bob; 0xF8: whisper_client_unblock()
 *     of bob; 0xF7: whisper_client_report() of the conversation with bob
 *     (3 messages);
 *   another byte t with the top bit set: the clock moves (t & 0x7f) *
 *     500 ms, then whisper_client_tick();
 *   else two bytes (big-endian, 15 bits) are a length n, then n bytes
 *     (fewer if the input ends) go to whisper_client_receive().
 */
#define FZS_APP_RETRY 0xFF
#define FZS_APP_SEND 0xFE
#define FZS_APP_SEND_GROUP 0xFD
#define FZS_APP_LINK_APPROVE 0xFC
#define FZS_APP_PROFILE_SET 0xFB
#define FZS_APP_PROFILE_REFRESH 0xFA
#define FZS_APP_BLOCK 0xF9
#define FZS_APP_UNBLOCK 0xF8
#define FZS_APP_REPORT 0xF7
#define FZS_APP_MIN 0xF7 /* records at or above it are app calls */
enum {
  FZS_MODE_HELLO = 0,    /* alice.1 connected: Hello (id 1) sent, no challenge yet */
  FZS_MODE_AUTH = 1,     /* the challenge came: Auth (id 2) sent */
  FZS_MODE_ONLINE = 2,   /* Auth answered Ok: logged in; what the engine sends after a login is
                          * out (today: PresenceSet id 3, the pending read receipt id 4, the
                          * group ADD id 5, the outbox's first Send id 6, to bob, and Ack id 7;
                          * gen_corpus learns the ids by running the same start) */
  FZS_MODE_REGISTER = 3, /* erin.1, never registered: Register (id 1) sent */
  FZS_MODE_LINK = 4,     /* alice.3, a new device of alice: LinkRequest (id 1) sent */
  FZS_CLIENT_MODES = 5
};
void fzs_client_frame(fzs_script *s, const whisper_buf *frame);
void fzs_client_tick(fzs_script *s, unsigned half_seconds); /* < FZS_APP_MIN - 0x80 */

/* --- the server world ---------------------------------------------------- */

enum {
  FZS_ALICE1, FZS_ALICE2, FZS_BOB1, FZS_CAROL1, /* registered */
  FZS_DAVE1,  /* a new account */
  FZS_ALICE3, FZS_ALICE4, /* new devices of alice (the limit is 3) */
  FZS_ERIN2,  /* a new account's device 2 */
  FZS_NDEV
};
#define FZS_MAILBOX 5 /* alice's messages waiting in bob.1's mailbox */

typedef struct fzs_server_world {
  fz_store fs;                /* the server's store, the baseline between inputs */
  fz_dev *dev[FZS_NDEV];      /* keys (their own stores hold identities only) */
  whisper_server_config_t cfg;
  fz_rng rng;                 /* the server's RNG (challenges, link codes) */
  uint8_t link_code[16];      /* alice's codes, asked for and not approved */
  uint8_t link_code2[16];
  uint8_t group_id[16];       /* alice's group: alice (admin), bob, carol */
  uint8_t sent_ids[FZS_MAILBOX][16]; /* client ids of the messages in bob.1's mailbox */
  uint32_t prekey_first[FZS_NDEV];   /* ids of the one-time prekeys each registered with */
} fzs_server_world;

/* Builds the world (aborts on any failure); the time is FZ_NOW. */
fzs_server_world *fzs_server_world_new(void);
void fzs_server_world_free(fzs_server_world *w);
/* The limits every fuzz_server input runs with: small, so that the
 * fuzzer reaches them (frame size, prekeys, devices, group members,
 * mailbox entries, the delivery window, the rate limit). */
void fzs_server_config(whisper_server_config_t *cfg);
/* When inputs start. */
#define FZS_T0 (FZ_NOW + 1000)

/* --- the client world ---------------------------------------------------- */

typedef struct fzs_client_world {
  fz_dev *alice;  /* alice.1: the engine's device (its store is the baseline) */
  fz_dev *erin;   /* erin.1: an identity that never registered (FZS_MODE_REGISTER) */
  fz_dev *alice3; /* alice.3: a new device of alice (FZS_MODE_LINK) */
  fz_dev *alice2, *bob, *carol, *mallory; /* peers: bundles and real ciphertexts */
  whisper_client_config_t cfg;
  uint8_t group_id[16];    /* alice's group with bob */
  uint8_t sent_id[16];     /* alice's message to bob, SENT */
  uint8_t group_sent_id[16];
  uint8_t pending_id[16];  /* in the outbox, to bob */
  uint8_t carol_id[16];    /* in the outbox, to carol (whose devices alice does not know) */
  uint8_t read_id[16];     /* the client id of the pending read receipt */
  uint64_t last_seq;       /* alice's mailbox position */
  uint64_t server_seq;     /* the scripted server's sequence */
  whisper_buf *profile;    /* the last ProfileSet the scripted server took (alice's), and its version */
  uint64_t profile_version;
} fzs_client_world;

/* The link token FZS_APP_LINK_APPROVE approves: alice.3's (device 3, its
 * identity key, account "alice", the code "fz-approve-code!"), as alice.3's
 * engine would show it (trust.c: version || device || key || account
 * length || account || code). Returns its length. */
#define FZS_LINK_TOKEN_LEN (1 + 4 + WHISPER_PUBLIC_KEY_LEN + 1 + 5 + 16)
size_t fzs_link_token(fzs_client_world *w, uint8_t out[FZS_LINK_TOKEN_LEN]);

/* The picture of FZS_APP_PROFILE_SET. */
extern const uint8_t fzs_picture[16];
/* The nonce of every challenge in fuzz_client (32 bytes of 0x42). */
extern const uint8_t fzs_nonce[32];
/* When inputs start. */
#define FZS_CT0 (FZ_NOW + 10000)

fzs_client_world *fzs_client_world_new(void);
void fzs_client_world_free(fzs_client_world *w);

/* Starts an input: resets the device's RNG, begins the journal of its
 * store, makes the engine of `mode` and brings it to the mode's state
 * (see the enum). Each frame the engine sends on the way is given to
 * `sent` (if not NULL) and then freed. Returns the engine; *dev_out is the
 * device whose store the input runs on. */
whisper_client *fzs_client_start(fzs_client_world *w, int mode, fz_dev **dev_out,
                                 void (*sent)(void *arg, const whisper_buf *frame), void *arg);
/* Ends an input: frees the engine, puts the device's store back. */
void fzs_client_end(fz_dev *d, whisper_client *c);

/* The scripted server of the client world: the answer(s) to a request
 * from alice's engine, into `out` (at most 4; returns how many: Hello has
 * none). Accounts: alice (devices 1, 2), bob (1), carol (1); bundles are
 * real, with a one-time prekey; a GroupOp CREATE also pushes the group's
 * ENTRY_GROUP; a ProfileSet is kept and handed back to a ProfileGet of
 * alice (of others: ERR_NOT_FOUND). */
int fzs_respond(fzs_client_world *w, const fzs_frame *req, whisper_buf **out);

/* --- seeds ------------------------------------------------------------------ */

void fzs_gen_server_seeds(fz_seeds *s);
void fzs_gen_client_seeds(fz_seeds *s);
void fzs_gen_frame_seeds(fz_seeds *s);

#endif
