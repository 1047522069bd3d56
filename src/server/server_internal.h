/*
 * Internal: the server core's state and the functions its files share.
 *
 *   server.c          the public API: connections, receive/dispatch, poll, timers
 *   server_map.c      a small hash map (connections, devices, accounts online)
 *   server_output.c   the output FIFO and frame building
 *   server_check.c    field checks of decoded frames
 *   server_store.c    the store: transactions, records, tags, counters
 *   server_mailbox.c  appending entries, pushing them, Ack and delivered receipts
 *   server_account.c  Register, Hello/Auth, device linking
 *   server_devices.c  signed device lists, PublishDevices, removing devices
 *   server_keys.c     UploadPrekeys, FetchBundles, ListDevices
 *   server_send.c     Send (1:1 and group), Receipt
 *   server_group.c    GroupOp
 *   server_presence.c Typing, PresenceSet, PresenceSubscribe, presence timers
 *   server_profile.c  ProfileSet, ProfileGet
 *   server_block.c    block lists (BlockSet) and reports (Report)
 *   server_blob.c     upload tokens for the blob store (UploadAuth, the token check)
 *
 * Handlers return 0 when they queued their answer, a positive sync.proto
 * ERR_* code (the dispatcher answers it with an Error frame, message in
 * srv->refusal), or a negative WHISPER_E* code when the store failed (the
 * dispatcher answers ERR_INTERNAL). Store work happens in one transaction
 * and output is queued only after the commit, so a refused or failed frame
 * leaves neither stored state nor output behind.
 */
#ifndef WSRV_INTERNAL_H
#define WSRV_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdio.h>

#include "e2e.pb-c.h"
#include "internal.h"
#include "protocol/pb.h"
#include "server.pb-c.h"
#include "sync.pb-c.h"
#include "whisper/server.h"

#define WSRV_NAME_MAX 64                /* account names: 1..64 of [a-z0-9._-] */
#define WSRV_ADDR_MAX (WSRV_NAME_MAX + 5) /* name || 0 || device id (4, BE) */
#define WSRV_TAG_LEN 16                 /* keyed tag of an address (ordered keys) */
#define WSRV_ID_LEN 16                  /* client ids, group ids, link codes */
#define WSRV_NONCE_LEN 32
#define WSRV_SECRET_LEN 32              /* the upload token secret (META "upload_secret") */
#define WSRV_LINK_TTL_MS (10 * 60 * 1000)
#define WSRV_LINK_CODES_MAX 8           /* pending codes kept per account */
#define WSRV_MALFORMED_MAX 3            /* malformed frames in a row: closed */
#define WSRV_LIST_MAX 1024              /* client ids per Receipt, accounts per subscribe */
#define WSRV_SUBS_MAX 4096              /* presence subscriptions per connection */
#define WSRV_RECEIPT_IDS_MAX 256        /* client ids per generated receipt entry */
#define WSRV_CONV_MAX (1 + 2 * WSRV_ID_LEN)
#define WSRV_SEND_WINDOW 256            /* Sends a device may pipeline (Ok.send_window) */

/* sync.proto codes, shorter. */
#define ERR_MALFORMED WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED
#define ERR_VERSION WHISPER__SYNC__ERROR_CODE__ERR_VERSION
#define ERR_TOO_BIG WHISPER__SYNC__ERROR_CODE__ERR_TOO_BIG
#define ERR_AUTH WHISPER__SYNC__ERROR_CODE__ERR_AUTH
#define ERR_EXISTS WHISPER__SYNC__ERROR_CODE__ERR_EXISTS
#define ERR_NOT_FOUND WHISPER__SYNC__ERROR_CODE__ERR_NOT_FOUND
#define ERR_FORBIDDEN WHISPER__SYNC__ERROR_CODE__ERR_FORBIDDEN
#define ERR_RATE WHISPER__SYNC__ERROR_CODE__ERR_RATE
#define ERR_LIMIT WHISPER__SYNC__ERROR_CODE__ERR_LIMIT
#define ERR_STATE WHISPER__SYNC__ERROR_CODE__ERR_STATE
#define ERR_INTERNAL WHISPER__SYNC__ERROR_CODE__ERR_INTERNAL
#define ENTRY_MESSAGE WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE
#define ENTRY_RECEIPT WHISPER__SYNC__ENTRY_KIND__ENTRY_RECEIPT
#define ENTRY_GROUP WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP
#define CONTENT_TEXT WHISPER__SYNC__CONTENT__CONTENT_TEXT
#define CONTENT_SKDM WHISPER__SYNC__CONTENT__CONTENT_SKDM
#define CONTENT_MESSAGE WHISPER__SYNC__CONTENT__CONTENT_MESSAGE
#define CONTENT_RETRY WHISPER__SYNC__CONTENT__CONTENT_RETRY
#define STATUS_DELIVERED 2
#define STATUS_READ 3

/* a + b, capped at UINT64_MAX: deadlines from untrusted times and
 * configured periods never wrap. */
static inline uint64_t wsrv_after(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

/* --- a hash map of byte keys (server_map.c) ------------------------------ */

typedef struct wsrv_map_item {
  struct wsrv_map_item *next;
  void *value;
  size_t key_len;
  uint8_t key[];
} wsrv_map_item;

typedef struct wsrv_map {
  wsrv_map_item **buckets;
  size_t nbuckets, count;
} wsrv_map;

void *wsrv_map_get(const wsrv_map *m, const void *key, size_t n);
/* Adds (key, value); the key must not be there. WHISPER_OK or WHISPER_ENOMEM. */
int wsrv_map_put(wsrv_map *m, const void *key, size_t n, void *value);
/* Removes the key and returns its value (NULL if absent). */
void *wsrv_map_take(wsrv_map *m, const void *key, size_t n);
/* Every value, into a malloc'd array (NULL when empty or out of memory);
 * for iterations that may change the map. */
void **wsrv_map_values(const wsrv_map *m, size_t *n);
/* Removes (and frees with `free_value`) the values `drop` says to. */
void wsrv_map_prune(wsrv_map *m, int (*drop)(void *value, void *arg), void *arg,
                    void (*free_value)(void *));
/* Frees the buckets and items; `free_value` (may be NULL) frees each value. */
void wsrv_map_clear(wsrv_map *m, void (*free_value)(void *));

/* --- in-memory state ----------------------------------------------------- */

/* An address: the store key of a device and its in-memory map key. */
typedef struct wsrv_addr {
  uint8_t key[WSRV_ADDR_MAX];
  size_t len;
} wsrv_addr;

/* A token bucket, in thousandths of a frame. */
typedef struct wsrv_bucket {
  uint64_t milli;
  uint64_t at_ms;
  int init;
} wsrv_bucket;

enum { WSRV_NEW = 0, WSRV_HELLO = 1, WSRV_AUTHED = 2 };

typedef struct wsrv_conn {
  uint64_t id;
  uint64_t opened_ms, last_rx_ms;
  uint8_t nonce[WSRV_NONCE_LEN];
  int state;
  char account[WSRV_NAME_MAX + 1];
  uint32_t device_id;
  wsrv_addr addr;
  uint8_t tag[WSRV_TAG_LEN];
  int malformed;        /* malformed frames in a row */
  wsrv_bucket bucket;   /* the rate limit until login (then the device's) */
  uint32_t prekeys_left;
  /* delivery: entries past sent_upto are not pushed yet; `inflight` holds
   * the seqs pushed and not acknowledged, oldest first (a ring) */
  uint64_t resume_after, sent_upto;
  uint64_t *inflight;
  uint32_t in_head, in_len;
  int backlog_done;
  /* linking: the connection stays past the auth timeout until the latest
   * expiry of a link code it asked for or holds a Register on */
  uint64_t link_until;
  /* a Register held until its link code is approved or expires: the frame
   * as received (never re-packed: protobuf-c writes some fields it read,
   * an unknown field numbered 0, in a form it cannot read back), and the
   * account and code it waits on */
  uint8_t *held;
  size_t held_len;
  char held_account[WSRV_NAME_MAX + 1];
  uint8_t held_code[WSRV_ID_LEN];
  uint64_t held_id, held_until;
  /* presence subscriptions (account names) */
  char **subs;
  size_t n_subs;
} wsrv_conn;

/* A device seen since the server started. */
typedef struct wsrv_dev {
  uint64_t conn; /* its logged-in connection, 0: offline */
  int pushed;    /* a push went out in this offline period */
  wsrv_bucket bucket;
} wsrv_dev;

/* An account someone subscribed to or that has devices online. */
typedef struct wsrv_acct {
  char name[WSRV_NAME_MAX + 1];
  uint64_t *online; /* logged-in connections */
  size_t n_online, cap_online;
  uint64_t *subs;   /* subscribed connections */
  size_t n_subs, cap_subs;
  uint64_t last_seen_ms;
  uint64_t offline_at; /* offline is announced then (0: nothing pending) */
  int announced_online;
  int hidden;
} wsrv_acct;

/* The last typing notice forwarded per device and conversation. */
typedef struct wsrv_typing {
  uint64_t at_ms;
  int started;
} wsrv_typing;

typedef struct wsrv_out {
  struct wsrv_out *next;
  int action;
  uint64_t conn;
  uint8_t *frame;
  size_t len;
  char account[WSRV_NAME_MAX + 1];
  uint32_t device_id;
  uint64_t depth;
} wsrv_out;

struct whisper_server {
  whisper_store *store;
  whisper_server_config_t cfg;
  wh_rng rng;
  uint8_t salt[WSRV_TAG_LEN];
  uint8_t upload_secret[WSRV_SECRET_LEN]; /* the MAC key of upload tokens */
  char last_error[256];
  char refusal[128]; /* the message of the Error frame being answered */
  wsrv_map conns;    /* conn id (8 bytes) -> wsrv_conn */
  wsrv_map devs;     /* address -> wsrv_dev */
  wsrv_map accts;    /* name -> wsrv_acct */
  wsrv_map typing;   /* address || conversation -> wsrv_typing */
  uint64_t typing_pruned_ms;
  wsrv_out *out_head, *out_tail, *polled;
  whisper_server_stats_t stats;
};

/* --- effects of a transaction, applied after its commit ------------------ */

typedef struct wsrv_touched {
  wsrv_addr addr;
  uint64_t count; /* entries in its mailbox after the transaction */
  int loud;       /* one of them may wake it (not all from muted conversations) */
} wsrv_touched;

typedef struct wsrv_fx {
  wsrv_touched *touched; /* devices whose mailbox got entries */
  size_t n, cap;
  int64_t depth_delta;   /* change of the total mailbox depth */
  int silent;            /* appends made now wake nobody (a muted conversation) */
  const char *mute_conv; /* wsrv_mailbox_append_account: silent for accounts that muted it */
  uint64_t now_ms;
} wsrv_fx;

/* Whether account `a` muted conversation `conv` at now_ms. */
int wsrv_muted(const Whisper__Server__Account *a, const char *conv, uint64_t now_ms);
#define WSRV_MUTES_MAX 1000

void wsrv_fx_free(wsrv_fx *fx);
/* After the commit: pushes new entries to online devices, wakes offline
 * ones (PUSH), updates the depth counter. Frees fx. */
void wsrv_fx_apply(whisper_server *srv, wsrv_fx *fx, uint64_t now_ms);

/* --- errors and output (server_output.c) --------------------------------- */

/* Records the last failure; returns `code`. */
int wsrv_fail(whisper_server *srv, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the refusal message; returns the ERR_* `code`. */
int wsrv_refuse(whisper_server *srv, int code, const char *msg);

/* Queues `f` (version set here) for `conn`. WHISPER_OK or WHISPER_ENOMEM. */
int wsrv_send(whisper_server *srv, uint64_t conn, Whisper__Sync__Frame *f);
int wsrv_send_error(whisper_server *srv, uint64_t conn, uint64_t id, int code, const char *msg,
                    uint64_t retry_ms);
int wsrv_send_ok(whisper_server *srv, wsrv_conn *c, uint64_t id);
void wsrv_queue_close(whisper_server *srv, uint64_t conn);
void wsrv_queue_push(whisper_server *srv, const char *account, uint32_t device_id, uint64_t depth);
/* Drops queued output of `conn`. */
void wsrv_drop_output(whisper_server *srv, uint64_t conn);
void wsrv_out_free(wsrv_out *o);

/* --- checks (server_check.c) --------------------------------------------- */

int wsrv_name_ok(const char *s);
int wsrv_device_ok(protobuf_c_boolean has, uint32_t id);
int wsrv_bytes_ok(protobuf_c_boolean has, ProtobufCBinaryData b, size_t len);
int wsrv_key_ok(protobuf_c_boolean has, ProtobufCBinaryData b);
/* The group conversation name: "#" and 32 hex digits. */
void wsrv_group_conv(char out[WSRV_CONV_MAX + 1], const uint8_t id[WSRV_ID_LEN]);

/* --- the store (server_store.c) ------------------------------------------ */

int wsrv_begin(whisper_server *srv);
/* Ends the transaction: commits when rc is 0 (after writing fx's depth
 * change), else rolls back. Returns the final code. */
int wsrv_end(whisper_server *srv, wsrv_fx *fx, int rc);
int wsrv_get(whisper_server *srv, int kind, const uint8_t *key, size_t n, whisper_buf **out);
int wsrv_put(whisper_server *srv, int kind, const uint8_t *key, size_t n, const uint8_t *v,
             size_t vn);
int wsrv_del(whisper_server *srv, int kind, const uint8_t *key, size_t n);
/* Packs and stores a message. */
int wsrv_put_msg(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                 const ProtobufCMessage *m);
/* Loads and unpacks a message: WHISPER_ENOTFOUND, WHISPER_ECORRUPT. */
int wsrv_get_msg(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                 const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);
void wsrv_msg_free(void *m);

/* One record of a scan, copied. */
typedef struct wsrv_rec {
  uint8_t *key, *val;
  size_t key_len, val_len;
} wsrv_rec;
/* Up to `limit` records of an ordered kind past `bound` (NULL: from the
 * start) under `prefix`, ascending, copied into *out. */
int wsrv_scan(whisper_server *srv, int kind, const uint8_t *prefix, size_t prefix_len,
              const uint8_t *bound, size_t bound_len, size_t limit, wsrv_rec **out, size_t *n);
void wsrv_recs_free(wsrv_rec *r, size_t n);

void wsrv_addr_make(wsrv_addr *a, const char *name, uint32_t device_id);
void wsrv_tag(const whisper_server *srv, const wsrv_addr *a, uint8_t tag[WSRV_TAG_LEN]);
void wsrv_be64(uint8_t out[8], uint64_t v);
uint64_t wsrv_rd64(const uint8_t *p);
uint32_t wsrv_rd32(const uint8_t *p);

/* Makes the salt if needed and reads the counters. */
int wsrv_store_init(whisper_server *srv);
int wsrv_meta_u64(whisper_server *srv, const char *name, uint64_t *v);
int wsrv_meta_put_u64(whisper_server *srv, const char *name, uint64_t v);
/* The next global server_seq (in the caller's transaction). */
int wsrv_next_server_seq(whisper_server *srv, uint64_t *seq);

int wsrv_account_get(whisper_server *srv, const char *name, Whisper__Server__Account **out);
int wsrv_account_put(whisper_server *srv, const char *name, const Whisper__Server__Account *a);
int wsrv_device_get(whisper_server *srv, const char *name, uint32_t id,
                    Whisper__Server__Device **out);
int wsrv_device_put(whisper_server *srv, const char *name, uint32_t id,
                    const Whisper__Server__Device *d);
/* 1 if the account lists the device. */
int wsrv_account_has(const Whisper__Server__Account *a, uint32_t device_id);
int wsrv_group_get(whisper_server *srv, const uint8_t id[WSRV_ID_LEN], Whisper__Server__Group **out);
int wsrv_group_has(char *const *names, size_t n, const char *name);

/* --- signed device lists (server_devices.c) ----------------------------- */

typedef struct wsrv_dlist {
  Whisper__E2e__SignedDeviceList *signed_;
  Whisper__E2e__DeviceListBody *body;
} wsrv_dlist;

/* Devices a list removed, for after the commit. */
typedef struct wsrv_gone {
  char account[WSRV_NAME_MAX + 1];
  uint32_t *ids;
  size_t n;
} wsrv_gone;

/* Parses and checks a SignedDeviceList for `account` inside the caller's
 * transaction: it parses with a signature and a body of this account
 * with a version, at most cfg.max_devices well-formed entries, no id
 * twice (else ERR_MALFORMED, ERR_LIMIT), names device 1 with the key
 * device 1 registered (ERR_MALFORMED), carries device 1's signature over
 * "whisper-devices-v1" || body (ERR_AUTH), and its version is above
 * `stored_version` (ERR_STATE). *out is freed with wsrv_dlist_free, also
 * after a refusal. */
int wsrv_dlist_check(whisper_server *srv, const char *account, ProtobufCBinaryData raw,
                     uint64_t stored_version, wsrv_dlist *out);
void wsrv_dlist_free(wsrv_dlist *l);
/* 1 if the list names `device_id` with this 33-byte identity key. */
int wsrv_dlist_lists(const wsrv_dlist *l, uint32_t device_id, const uint8_t *identity_key);
/* Writes account `a` with `raw` (l's bytes) as its list and without the
 * registered devices l does not list, whose keys, prekeys and mailboxes
 * are deleted (fx counts the entries); gone gets them (wsrv_gone_free). */
int wsrv_dlist_install(whisper_server *srv, wsrv_fx *fx, const char *name,
                       const Whisper__Server__Account *a, const wsrv_dlist *l,
                       ProtobufCBinaryData raw, wsrv_gone *gone);
/* After the commit: the removed devices' connections are closed and
 * their in-memory state (rate bucket, push flag) forgotten. */
void wsrv_devices_gone(whisper_server *srv, const wsrv_gone *g, uint64_t now_ms);
void wsrv_gone_free(wsrv_gone *g);
int wsrv_handle_publish(whisper_server *srv, wsrv_conn *c, uint64_t id,
                        const Whisper__Sync__PublishDevices *m, uint64_t now_ms);

/* --- mailboxes (server_mailbox.c) ---------------------------------------- */

/* Appends `d` (its seq is set here) to the mailbox of (name, device).
 * ERR_LIMIT when the mailbox is full. */
int wsrv_mailbox_append(whisper_server *srv, wsrv_fx *fx, const char *name, uint32_t device_id,
                        Whisper__Sync__Deliver *d);
/* Appends `d` to every device of `name` but `skip_device` (0: none).
 * WHISPER_ENOTFOUND for an unknown account. With `lossy`, a full mailbox
 * is skipped (receipts) instead of failing the whole (ERR_LIMIT). */
int wsrv_mailbox_append_account(whisper_server *srv, wsrv_fx *fx, const char *name,
                                uint32_t skip_device, Whisper__Sync__Deliver *d, int lossy);
/* Pushes what the window allows to a logged-in connection, then
 * QueueEmpty once the backlog is out. */
void wsrv_pump(whisper_server *srv, wsrv_conn *c, uint64_t now_ms);
int wsrv_handle_ack(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Ack *m,
                    uint64_t now_ms);

/* --- handlers ------------------------------------------------------------ */

/* `frame` (len bytes) is the received Frame that carries `m`: a Register
 * held on a link code keeps it as received. */
int wsrv_handle_register(whisper_server *srv, wsrv_conn *c, uint64_t id,
                         const Whisper__Sync__Register *m, const uint8_t *frame, size_t len,
                         uint64_t now_ms);
int wsrv_handle_hello(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Hello *m);
int wsrv_handle_auth(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Auth *m,
                     uint64_t now_ms);
int wsrv_handle_link_request(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__LinkRequest *m, uint64_t now_ms);
int wsrv_handle_link_approve(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__LinkApprove *m, uint64_t now_ms);
/* Held registrations whose code lapsed get ERR_AUTH. */
void wsrv_link_expire(whisper_server *srv, wsrv_conn *c);

/* Checks one-time prekeys of a frame (ids, 33-byte keys, no id twice,
 * at most cfg.max_prekeys). */
int wsrv_prekeys_check(whisper_server *srv, Whisper__Sync__OneTimePrekey *const *pk, size_t n);
/* Stores them for a device that had `have`; *count gets its new total
 * (ERR_LIMIT past cfg.max_prekeys). */
int wsrv_prekeys_put(whisper_server *srv, const char *name, uint32_t device_id,
                     Whisper__Sync__OneTimePrekey *const *pk, size_t n, uint32_t have,
                     uint32_t *count);
int wsrv_handle_upload(whisper_server *srv, wsrv_conn *c, uint64_t id,
                       const Whisper__Sync__UploadPrekeys *m);
int wsrv_handle_fetch(whisper_server *srv, wsrv_conn *c, uint64_t id,
                      const Whisper__Sync__FetchBundles *m);
int wsrv_handle_list_devices(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__ListDevices *m);

int wsrv_handle_send(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Send *m,
                     uint64_t now_ms);
int wsrv_handle_receipt(whisper_server *srv, wsrv_conn *c, uint64_t id,
                        const Whisper__Sync__Receipt *m, uint64_t now_ms);
int wsrv_handle_group(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__GroupOp *m,
                      uint64_t now_ms);

int wsrv_handle_typing(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Typing *m,
                       uint64_t now_ms);
int wsrv_handle_presence_set(whisper_server *srv, wsrv_conn *c, uint64_t id,
                             const Whisper__Sync__PresenceSet *m);
int wsrv_handle_subscribe(whisper_server *srv, wsrv_conn *c, uint64_t id,
                          const Whisper__Sync__PresenceSubscribe *m);

/* --- profiles (server_profile.c) ---------------------------------------- */

#define WSRV_PROFILE_MAX 66560 /* bytes of a stored profile's ciphertext */
/* 1 for ProfileSet and ProfileGet (requests outside the older range). */
int wsrv_is_profile_request(int body_case);
int wsrv_handle_profile_set(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__ProfileSet *m);
int wsrv_handle_profile_get(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__ProfileGet *m);

/* --- connections and presence (server.c, server_presence.c) -------------- */

wsrv_conn *wsrv_conn_find(const whisper_server *srv, uint64_t id);
/* Forgets a connection: it goes offline, its subscriptions end. With
 * `close_it`, the caller is asked to close it (after its queued output). */
void wsrv_conn_drop(whisper_server *srv, wsrv_conn *c, int close_it, uint64_t now_ms);
/* The in-memory state of a device, made on first use (NULL: no memory). */
wsrv_dev *wsrv_dev_get(whisper_server *srv, const wsrv_addr *a);
wsrv_acct *wsrv_acct_find(const whisper_server *srv, const char *name);

/* A device logged in / went away: presence bookkeeping and notices. */
int wsrv_presence_login(whisper_server *srv, wsrv_conn *c, int hidden);
void wsrv_presence_logout(whisper_server *srv, wsrv_conn *c, uint64_t now_ms);
void wsrv_presence_unsubscribe(whisper_server *srv, wsrv_conn *c);
/* Announces offline for accounts whose grace ran out. */
void wsrv_presence_tick(whisper_server *srv, uint64_t now_ms);
uint64_t wsrv_presence_deadline(const whisper_server *srv);
void wsrv_acct_free(void *p);
/* Tells the subscribers of `name` how it looks to each of them again (its
 * block list changed). */
void wsrv_presence_refresh(whisper_server *srv, const char *name);

/* --- block lists and reports (server_block.c) ---------------------------- */

int wsrv_handle_block_set(whisper_server *srv, wsrv_conn *c, uint64_t id,
                          const Whisper__Sync__BlockSet *m, uint64_t now_ms);
int wsrv_handle_report(whisper_server *srv, wsrv_conn *c, uint64_t id, const Whisper__Sync__Report *m,
                       uint64_t now_ms);
/* 1 if `blocker` blocked `account`, 0 if not, or a negative store error. */
int wsrv_blocked(whisper_server *srv, const char *blocker, const char *account);
/* Whether a 1:1 Send of `content` from `sender` goes nowhere for `to`
 * (`to` blocked `sender`; sender key distributions and retry requests
 * still go): *drop. WHISPER_OK or a store error. */
int wsrv_block_drops(whisper_server *srv, const char *to, const char *sender, uint32_t content,
                     int *drop);
/* 1 if either account blocked the other (or the store failed), else 0. */
int wsrv_block_either(whisper_server *srv, const char *a, const char *b);

/* --- upload tokens (server_blob.c) -------------------------------------- */

/* Reads the upload token secret into srv, or makes it (in the caller's
 * transaction: wsrv_store_init's). */
int wsrv_upload_secret_init(whisper_server *srv);
int wsrv_handle_upload_auth(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__UploadAuth *m, uint64_t now_ms);

#endif
