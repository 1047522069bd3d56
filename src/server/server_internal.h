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
 *   server_limits.c   abuse limits: buckets, sources (pre-login connections,
 *                     registrations, link codes), pruning idempotency records
 *   server_batch.c    group commit: batches, their held output, a failed batch
 *   server_cache.c    the batch's record cache (plain kinds read and written once)
 *
 * Handlers return 0 when they queued their answer, a positive sync.proto
 * ERR_* code (the dispatcher answers it with an Error frame, message in
 * srv->refusal), or a negative WHISPER_E* code when the store failed (the
 * dispatcher answers ERR_INTERNAL). Store work happens in one transaction
 * and output is queued only after the commit, so a refused or failed frame
 * leaves neither stored state nor output behind. Inside a batch (group
 * commit) wsrv_begin/wsrv_end open and close a savepoint of the batch's
 * transaction instead, and output is held until the batch commits.
 */
#ifndef WSRV_INTERNAL_H
#define WSRV_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdio.h>

#include "e2e.pb-c.h"
#include "common/names.h"
#include "common/outq.h"
#include "common/protocol.h"
#include "internal.h"
#include "protocol/pb.h"
#include "server.pb-c.h"
#include "sync.pb-c.h"
#include "whisper/server.h"

#define WSRV_NAME_MAX WH_ACCOUNT_MAX     /* account names: 1..64 of [a-z0-9._-] */
#define WSRV_ADDR_MAX (WSRV_NAME_MAX + 5) /* name || 0 || device id (4, BE) */
#define WSRV_TAG_LEN 16                 /* keyed tag of an address (ordered keys) */
#define WSRV_ID_LEN WH_SYNC_ID_LEN       /* client ids, group ids, link codes */
#define WSRV_NONCE_LEN 32
#define WSRV_SECRET_LEN 32              /* the upload token secret (META "upload_secret") */
#define WSRV_LINK_TTL_MS (10 * 60 * 1000)
#define WSRV_LINK_CODES_MAX 8           /* pending codes kept per account */
#define WSRV_MALFORMED_MAX 3            /* malformed frames in a row: closed */
#define WSRV_LIST_MAX 1024              /* client ids per Receipt, accounts per subscribe */
#define WSRV_SUBS_MAX 4096              /* presence subscriptions per connection */
#define WSRV_RECEIPT_IDS_MAX 256        /* client ids per generated receipt entry */
#define WSRV_CONV_MAX (1 + 2 * WSRV_ID_LEN) /* a group conversation name (WH_GROUP_CONV_LEN) */
#define WSRV_SEND_WINDOW 256            /* Sends a device may pipeline (Ok.send_window) */
/* Bytes of mailbox entries pushed to a connection and not acknowledged
 * (as stored; each frame carries up to 16 more): pushes pause past it
 * (but one entry always goes) and go on with the Acks, so a device with
 * a backlog of large entries stays within what its server queues for one
 * connection (whisperd: --max-queue, 64 MiB). */
#define WSRV_INFLIGHT_BYTES (8u * 1024 * 1024)
#define WSRV_PUMP_CHUNK 256             /* entries a pump reads from the mailbox at a time */

/* The sync.proto codes (ERR_*, ENTRY_*, CONTENT_*, STATUS_*) are
 * common/protocol.h's, shared with the engine. */
_Static_assert(WH_SYNC_PROTOCOL == WHISPER_SYNC_PROTOCOL, "server.h's protocol version");
_Static_assert(WSRV_CONV_MAX == WH_GROUP_CONV_LEN, "group conversation names");

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
/* As wsrv_map_put, and gives the item (stable until it is taken or the
 * map cleared), or NULL when out of memory. */
wsrv_map_item *wsrv_map_put_item(wsrv_map *m, const void *key, size_t n, void *value);
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

/* --- timers: a binary min-heap of deadlines (server_map.c) -------------- */

/* Lives inside what it times (a connection, an account); the heap holds
 * pointers to it. */
typedef struct wsrv_timer {
  uint64_t at; /* the deadline, while in the heap */
  size_t pos;  /* 1 + its index in the heap; 0: not in it */
} wsrv_timer;

typedef struct wsrv_heap {
  wsrv_timer **v;
  size_t n, cap;
} wsrv_heap;

/* Makes room for `n` timers, so that setting them cannot fail. WHISPER_OK
 * or WHISPER_ENOMEM. */
int wsrv_heap_reserve(wsrv_heap *h, size_t n);
/* Puts `t` in the heap at `at`, or moves it there (either way); the room
 * must have been reserved. O(log n). */
void wsrv_heap_set(wsrv_heap *h, wsrv_timer *t, uint64_t at);
/* Takes `t` out (nothing if it is not in). O(log n). */
void wsrv_heap_del(wsrv_heap *h, wsrv_timer *t);
/* The earliest timer, or NULL. */
static inline wsrv_timer *wsrv_heap_top(const wsrv_heap *h) { return h->n ? h->v[0] : NULL; }
void wsrv_heap_free(wsrv_heap *h);

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

/* An entry pushed to a connection and not acknowledged yet. */
typedef struct wsrv_inflight {
  uint64_t seq;
  uint64_t server_ts; /* a message's, for the latency figure */
  uint32_t len;       /* its stored size (the mailbox's byte count) */
  uint8_t message;    /* an ENTRY_MESSAGE */
  uint8_t slow;       /* its Ack must read it (a receipt to make, or it did not read) */
  uint8_t other;      /* from another account, whose share its Ack lowers: */
  uint8_t sender[WSRV_TAG_LEN]; /* the tag of (sender, 0), as in its SHARE key */
} wsrv_inflight;

typedef struct wsrv_conn {
  uint64_t id;
  wsrv_timer timer; /* in srv->conn_timers at conn_deadline() (server.c) */
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
  uint32_t spk_id;      /* the signed prekey id the server hands out for it (Oks once logged in) */
  /* where it comes from (whisper_server_connected_from; src_len 0: unknown), and
   * whether it counts among its source's connections not logged in */
  uint8_t src[WHISPER_SERVER_SOURCE_MAX];
  size_t src_len;
  int prelogin;
  /* delivery: entries past sent_upto are not pushed yet; `inflight` holds
   * the entries pushed and not acknowledged, oldest first (a ring) */
  uint64_t resume_after, sent_upto;
  wsrv_inflight *inflight; /* made at the first push, grown up to cfg.deliver_window */
  uint32_t in_head, in_len, in_cap;
  uint64_t in_bytes;       /* their stored bytes (at most WSRV_INFLIGHT_BYTES but for one) */
  int backlog_done;
  int idle;          /* the last read of the mailbox found nothing past sent_upto, and
                        every entry since came through wsrv_fx_apply */
  int acked_known;   /* an Ack went through: nothing at or below acked_upto is left */
  uint64_t acked_upto;
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
  uint64_t batch_no; /* the last batch that touched it (closed if that batch fails) */
  /* the client id of the last Send taken (or answered as known) on it:
   * the Send that comes `after` it needs no lookup (server_send.c) */
  uint8_t last_sent[WSRV_ID_LEN];
  int has_last_sent;
} wsrv_conn;

/* A device seen since the server started. */
typedef struct wsrv_dev {
  uint64_t conn; /* its logged-in connection, 0: offline */
  int pushed;    /* a push went out in this offline period */
  wsrv_bucket bucket;
  wsrv_bucket pk_taken; /* one-time prekeys it took from bundles (cfg.prekeys_per_requester) */
  wsrv_bucket pk_given; /* one-time prekeys of it handed out (cfg.prekeys_per_target) */
} wsrv_dev;

/* A source of connections (whisper_server_connected_from), while it has any or
 * its buckets are not full again. */
typedef struct wsrv_src {
  uint32_t prelogin;    /* its connections not logged in */
  wsrv_bucket reg;      /* accounts created (cfg.register_per_source per hour) */
  wsrv_bucket link;     /* link codes asked for (cfg.link_per_source per hour) */
  uint64_t last_ms;     /* its last use */
} wsrv_src;

/* An account someone subscribed to or that has devices online. */
typedef struct wsrv_acct {
  char name[WSRV_NAME_MAX + 1];
  uint64_t *online; /* logged-in connections */
  size_t n_online, cap_online;
  uint64_t *subs;   /* subscribed connections */
  size_t n_subs, cap_subs;
  uint64_t last_seen_ms;
  size_t n_remote;     /* cluster mode: its devices logged in on other nodes */
  uint64_t offline_at; /* offline is announced then (0: nothing pending) */
  wsrv_timer timer;    /* in srv->acct_timers at offline_at while it is pending */
  int announced_online;
  int hidden;
  uint64_t batch_no; /* the last batch that set `hidden` (read again if that batch fails) */
} wsrv_acct;

/* The last typing notice forwarded per device and conversation. */
typedef struct wsrv_typing {
  uint64_t at_ms;
  int started;
} wsrv_typing;

typedef struct wsrv_out {
  wh_out link; /* in srv->out or srv->held (common/outq.h) */
  int action;
  uint64_t conn;
  uint8_t *frame;
  size_t len;
  char account[WSRV_NAME_MAX + 1];
  uint32_t device_id;
  uint64_t depth;
} wsrv_out;

/* Cluster mode (server_cluster.c): this node, the devices other nodes
 * have online, and when each node was last heard from. */
typedef struct wsrv_cluster {
  uint32_t node; /* 0: not in cluster mode */
  uint64_t hlc;  /* the last server_seq handed out */
  uint64_t now_ms;
  uint64_t heartbeat_at; /* the next heartbeat is due then */
  wsrv_map remote;       /* address -> wsrv_remote */
  uint64_t heard[256];   /* node -> last relay received (ms); 0: never */
} wsrv_cluster;

typedef struct wsrv_remote {
  uint32_t node;
} wsrv_remote;

struct whisper_server {
  whisper_store *store;
  whisper_server_config_t cfg;
  wh_rng rng;
  uint8_t salt[WSRV_TAG_LEN];
  uint8_t upload_secret[WSRV_SECRET_LEN]; /* the MAC key of upload tokens */
  char last_error[WH_ERROR_LEN];
  char refusal[128]; /* the message of the Error frame being answered */
  uint64_t refusal_retry_ms; /* and its retry_ms (ERR_RATE) */
  wsrv_map conns;    /* conn id (8 bytes) -> wsrv_conn */
  wsrv_map devs;     /* address -> wsrv_dev */
  wsrv_map accts;    /* name -> wsrv_acct */
  wsrv_map typing;   /* address || conversation -> wsrv_typing */
  uint64_t typing_pruned_ms;
  wsrv_heap conn_timers; /* every connection, at its deadline */
  wsrv_heap acct_timers; /* accounts whose offline is to be announced */
  uint64_t accts_pruned_ms;
  wsrv_cluster cluster;
  wsrv_map srcs;     /* source key -> wsrv_src */
  uint64_t srcs_pruned_ms;
  uint64_t sent_prune_at; /* when idempotency records are pruned next (0: at the first tick) */
  uint8_t decoy_key[WHISPER_PUBLIC_KEY_LEN]; /* Auth of an unknown device verifies against it */
  wh_outq out;       /* wsrv_out: what whisper_server_take_output() hands out next */
  wsrv_out *polled;
  whisper_server_stats_t stats;
  /* group commit (server_batch.c) */
  int batch;                /* between whisper_server_batch_begin and _end */
  int batch_txn;            /* the batch's store transaction is open */
  int batch_broken;         /* a savepoint failed: the transaction may be lost */
  uint64_t batch_no;        /* the current (or last) batch: 1, 2, ... */
  int64_t batch_depth;      /* mailbox depth change of its frames, written at the commit */
  wsrv_addr *rebuild;       /* mailboxes whose share records are to be counted (made exact)
                               before the transaction commits (server_mailbox.c) */
  size_t n_rebuild, cap_rebuild;
  wh_outq held;             /* its output (wsrv_out), released after the commit */
  whisper_server_stats_t batch_stats; /* the counters when it began */
  wsrv_map cache;           /* kind || key -> the batch's view of a record (server_cache.c) */
  struct wsrv_cundo *cundo; /* the current frame's undo log of the cache */
  size_t n_cundo, cap_cundo;
  uint64_t cache_frame;     /* numbers the frames (savepoints) of the cache's log */
  int cache_in_frame;       /* inside a frame's savepoint: reads are logged too */
  size_t cache_keep;        /* records kept between batches (0: none) */
  uint8_t **cgone;          /* the keys (length BE2 || key) of entries not kept past the batch */
  size_t n_cgone, cap_cgone;
  struct wsrv_map_item **cdirty; /* the entries made dirty since the last flush (a commit writes
                                    these, not the whole cache) */
  size_t n_cdirty, cap_cdirty;
};

/* --- group commit (server_batch.c) ---------------------------------------- */

/* Marks what a batch touched: a failed batch closes the connection, and
 * reads the account's `hidden` from the store again. */
static inline void wsrv_batch_conn(whisper_server *srv, wsrv_conn *c) {
  if (srv->batch) c->batch_no = srv->batch_no;
}
static inline void wsrv_batch_acct(whisper_server *srv, wsrv_acct *a) {
  if (srv->batch) a->batch_no = srv->batch_no;
}
/* After a frame: a batch whose transaction broke fails now (its output
 * dropped, its connections closed) and a new one goes on. */
void wsrv_batch_settle(whisper_server *srv, uint64_t now_ms);
/* A frame met a lock conflict (WHISPER_EBUSY) inside a batch: the batch is
 * committed without it (its held output released) and the core is left
 * outside a batch, for the frame to run alone; 1. 0 when there is no batch
 * to split (none open, or broken), or its commit failed (the batch failed,
 * its connections closed, a new batch is open). */
int wsrv_batch_split(whisper_server *srv, uint64_t now_ms);
/* After the frame ran alone: the frames after it go on in a new batch. */
void wsrv_batch_resume(whisper_server *srv);
/* A lock-conflicted frame runs alone at most this many times. */
#define WSRV_BUSY_TRIES 4
/* The wait before attempt `attempt` (1: none). */
void wsrv_busy_backoff(whisper_server *srv, int attempt);
/* The store side (server_store.c): a savepoint in the batch's transaction
 * (begun at the first), the commit with the depth counter, the rollback. */
int wsrv_batch_savepoint(whisper_server *srv);
int wsrv_batch_commit(whisper_server *srv);
void wsrv_batch_rollback(whisper_server *srv);

/* The batch's record cache (server_cache.c): wsrv_get/put/del go through
 * it for the plain kinds and the shares inside a batch (wsrv_cache_usable). */
int wsrv_cache_usable(const whisper_server *srv, int kind, size_t n);
int wsrv_cache_get(whisper_server *srv, int kind, const uint8_t *key, size_t n, whisper_buf **out);
/* The cached value in place, valid until that record changes (no copy). */
int wsrv_cache_peek(whisper_server *srv, int kind, const uint8_t *key, size_t n,
                    const uint8_t **v, size_t *vn);
/* As wsrv_cache_put, taking over the malloc'd `v` (freed on failure too). */
int wsrv_cache_put_owned(whisper_server *srv, int kind, const uint8_t *key, size_t n, uint8_t *v,
                         size_t vn);
int wsrv_cache_put(whisper_server *srv, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                   size_t vn);
int wsrv_cache_del(whisper_server *srv, int kind, const uint8_t *key, size_t n);
/* A frame's savepoint opened / closed (keep: released, else rolled back). */
void wsrv_cache_frame_begin(whisper_server *srv);
void wsrv_cache_frame_end(whisper_server *srv, int keep);
/* Writes the dirty records to the store; drop forgets the cache; after a
 * commit, settle keeps what may stay for the next batch (or drops). */
int wsrv_cache_flush(whisper_server *srv);
/* Writes the dirty cached records of `kind` to the store (before a scan of it). */
int wsrv_cache_flush_kind(whisper_server *srv, int kind);
void wsrv_cache_drop(whisper_server *srv);
void wsrv_cache_settle(whisper_server *srv);
void wsrv_cache_free(whisper_server *srv);

/* --- effects of a transaction, applied after its commit ------------------ */

/* One record of a scan, copied. */
typedef struct wsrv_rec {
  uint8_t *key, *val;
  size_t key_len, val_len;
} wsrv_rec;

typedef struct wsrv_touched {
  wsrv_addr addr;
  uint64_t count; /* entries in its mailbox after the transaction */
  int loud;       /* one of them may wake it (not all from muted conversations) */
  wsrv_rec *pre;  /* the entries appended, kept when the device is online: pushed */
  size_t n_pre, cap_pre; /* without reading them back */
  wsrv_inflight *pre_e;  /* what their push notes (as push_entry would read it), beside */
  int pre_lost;   /* one could not be kept: the mailbox is read */
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

/* Records the last failure (srv->last_error); returns `code`. */
#define wsrv_fail(srv, code, ...) wh_error_set((srv)->last_error, (code), __VA_ARGS__)
/* Sets the refusal message; returns the ERR_* `code`. */
int wsrv_refuse(whisper_server *srv, int code, const char *msg);
/* ERR_RATE with its retry_ms. */
int wsrv_refuse_rate(whisper_server *srv, uint64_t retry_ms, const char *msg);

/* Queues `f` (version set here) for `conn`. WHISPER_OK or WHISPER_ENOMEM. */
int wsrv_send(whisper_server *srv, uint64_t conn, Whisper__Sync__Frame *f);
/* A Frame pushing the packed Deliver `d` (its seq set), built around its
 * bytes (what wsrv_send of the Frame would give), without unpacking it. */
int wsrv_send_deliver(whisper_server *srv, uint64_t conn, const uint8_t *d, size_t len);
int wsrv_send_error(whisper_server *srv, uint64_t conn, uint64_t id, int code, const char *msg,
                    uint64_t retry_ms);
int wsrv_send_ok(whisper_server *srv, wsrv_conn *c, uint64_t id);
void wsrv_queue_close(whisper_server *srv, uint64_t conn);
void wsrv_queue_push(whisper_server *srv, const char *account, uint32_t device_id, uint64_t depth);
/* Drops queued output of `conn` (held output too). */
void wsrv_drop_output(whisper_server *srv, uint64_t conn);
/* Appends `o` to the output, or to the held output inside a batch. */
void wsrv_enqueue(whisper_server *srv, wsrv_out *o);
void wsrv_out_free(wsrv_out *o);
void wsrv_out_item_free(wh_out *o); /* the same, for wh_outq_clear and wh_outq_drop_if */

/* --- checks (server_check.c) --------------------------------------------- */

/* Account names: wh_account_ok (common/names.h). A device id present and
 * valid (wh_device_id_ok). */
int wsrv_device_ok(protobuf_c_boolean has, uint32_t id);
int wsrv_bytes_ok(protobuf_c_boolean has, ProtobufCBinaryData b, size_t len);
int wsrv_key_ok(protobuf_c_boolean has, ProtobufCBinaryData b);

/* --- the store (server_store.c) ------------------------------------------ */

int wsrv_begin(whisper_server *srv);
/* Ends the transaction: commits when rc is 0 (after writing fx's depth
 * change), else rolls back. Returns the final code. */
int wsrv_end(whisper_server *srv, wsrv_fx *fx, int rc);
int wsrv_get(whisper_server *srv, int kind, const uint8_t *key, size_t n, whisper_buf **out);
/* The store itself, past the batch's cache. */
int wsrv_store_get(whisper_server *srv, int kind, const uint8_t *key, size_t n, whisper_buf **out);
int wsrv_store_put(whisper_server *srv, int kind, const uint8_t *key, size_t n, const uint8_t *v,
                   size_t vn);
int wsrv_store_del(whisper_server *srv, int kind, const uint8_t *key, size_t n);
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

/* Up to `limit` records of an ordered kind past `bound` (NULL: from the
 * start) under `prefix`, ascending, copied into *out. */
int wsrv_scan(whisper_server *srv, int kind, const uint8_t *prefix, size_t prefix_len,
              const uint8_t *bound, size_t bound_len, size_t limit, wsrv_rec **out, size_t *n);
void wsrv_recs_free(wsrv_rec *r, size_t n);
/* Deletes every record of an ordered kind under a device's tag, in
 * batches; *n counts them (server_devices.c). */
int wsrv_delete_under(whisper_server *srv, int kind, const uint8_t tag[WSRV_TAG_LEN], uint64_t *n);

void wsrv_addr_make(wsrv_addr *a, const char *name, uint32_t device_id);
void wsrv_tag(const whisper_server *srv, const wsrv_addr *a, uint8_t tag[WSRV_TAG_LEN]);

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
 * ERR_LIMIT when the mailbox is full (cfg.max_mailbox entries,
 * cfg.max_mailbox_bytes), or holds as much from d's sender as it takes
 * (cfg.sender_max_entries, cfg.sender_max_bytes; the account's own
 * devices are not counted). */
/* Counts the share records of the mailboxes listed for it (srv->rebuild),
 * inside the transaction about to commit; the list is emptied either way. */
int wsrv_shares_rebuild(whisper_server *srv);
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
                      const Whisper__Sync__FetchBundles *m, uint64_t now_ms);
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
/* Sets the connection's timer to its deadline again: after anything that
 * may bring the deadline nearer (a held Register, a link code). Moves
 * away from now need not call it: the tick finds them. */
void wsrv_conn_rearm(whisper_server *srv, wsrv_conn *c);
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

/* --- abuse limits (server_limits.c) ------------------------------------- */

#define WSRV_SRC_TAG_LEN 8 /* a keyed tag of a source, kept with the link codes it asked for */

/* Takes a token of a bucket of `cap` tokens, as many coming back per
 * `period_ms`: 1, or 0 with *retry_ms (may be NULL) when one is back. */
int wsrv_bucket_take(wsrv_bucket *b, uint64_t cap, uint64_t period_ms, uint64_t now_ms,
                     uint64_t *retry_ms);
/* The connection logged in or went: it no longer counts among its
 * source's connections not logged in. */
void wsrv_src_release(whisper_server *srv, wsrv_conn *c, uint64_t now_ms);
/* An account made, a link code asked for, by c's source: 0, or ERR_RATE
 * (refusal set) when the source is over cfg.register_per_source /
 * cfg.link_per_source. Connections without a source are not limited. */
int wsrv_src_register_take(whisper_server *srv, wsrv_conn *c, uint64_t now_ms);
int wsrv_src_link_take(whisper_server *srv, wsrv_conn *c, uint64_t now_ms);
/* c's source tag: 1, or 0 for a connection without a source. */
int wsrv_src_tag(const whisper_server *srv, const wsrv_conn *c, uint8_t tag[WSRV_SRC_TAG_LEN]);
/* The idempotency period of now_ms (now / cfg.sent_ttl_ms). */
uint32_t wsrv_sent_period(const whisper_server *srv, uint64_t now_ms);
/* A record of `period` was written: pruning is due when it lapses. */
void wsrv_sent_written(whisper_server *srv, uint32_t period);
/* At whisper_server_new(): the decoy key, the first pruning deadline. */
int wsrv_limits_init(whisper_server *srv);
uint64_t wsrv_limits_deadline(const whisper_server *srv);
/* Forgets idle sources, prunes lapsed idempotency records (a batch). */
void wsrv_limits_tick(whisper_server *srv, uint64_t now_ms);

/* --- upload tokens (server_blob.c) -------------------------------------- */

/* Reads the upload token secret into srv, or makes it (in the caller's
 * transaction: wsrv_store_init's). */
int wsrv_upload_secret_init(whisper_server *srv);
int wsrv_handle_upload_auth(whisper_server *srv, wsrv_conn *c, uint64_t id,
                            const Whisper__Sync__UploadAuth *m, uint64_t now_ms);

/* --- cluster mode (server_cluster.c) ------------------------------------- */

/* The relays of this node's own events; each does nothing outside cluster
 * mode. */
void wsrv_cluster_online(whisper_server *srv, const wsrv_conn *c, int hidden);
void wsrv_cluster_offline(whisper_server *srv, const wsrv_conn *c, uint64_t now_ms);
/* New entries for a device with no connection here: tells the node that
 * has it; returns 1 if some node has it online (no push then). */
int wsrv_cluster_wake(whisper_server *srv, const wsrv_addr *a);
/* A frame to the devices of `account` online on other nodes. */
void wsrv_cluster_frame(whisper_server *srv, const char *account, Whisper__Sync__Frame *f);
void wsrv_cluster_hidden(whisper_server *srv, const char *account, int hidden);
/* A link code approved here: a Register held on it may wait on another node. */
void wsrv_cluster_linked(whisper_server *srv, const char *account, const uint8_t code[WSRV_ID_LEN]);
/* Another node approved it (server_account.c): the Registers held here run. */
void wsrv_link_approved_elsewhere(whisper_server *srv, const char *account,
                                  const uint8_t code[WSRV_ID_LEN], uint64_t now_ms);
/* server_seq in cluster mode (see server.h). */
uint64_t wsrv_cluster_seq(whisper_server *srv);
void wsrv_cluster_tick(whisper_server *srv, uint64_t now_ms);
uint64_t wsrv_cluster_deadline(const whisper_server *srv);
void wsrv_cluster_free(whisper_server *srv);
/* Presence (server_presence.c) for devices on other nodes. */
int wsrv_presence_remote(whisper_server *srv, const char *name, int online, int hidden,
                         uint64_t at_ms);
/* Sends `f` to the local connections of `name` that are logged in. */
void wsrv_presence_frame_local(whisper_server *srv, const char *name, Whisper__Sync__Frame *f);

#endif
