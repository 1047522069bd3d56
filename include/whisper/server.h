/*
 * libwhisper: the server core, sans-I/O.
 *
 * The server side of libwhisper's client/server protocol (sync.proto,
 * docs/sync-protocol.md): accounts and devices with challenge-response
 * login, the prekey directory, one mailbox per device with a monotonic
 * sequence, idempotent sends, delivery and read receipts, typing and
 * presence between online devices, groups with server-side fan-out, device
 * linking, rate limits and frame size limits, and limits against abuse by
 * other users (mailbox quotas per sender, rationed one-time prekeys,
 * limits per source address: docs/security.md, "whisperd").
 *
 * It does no I/O and never reads the clock. The caller (whisperd, a test,
 * a fuzzer) tells it that a connection opened or closed, feeds it each
 * received frame with the current time, and takes what it has to say:
 * frames to send on a connection, connections to close, devices to wake by
 * push notification. whisper_server_next_deadline() says when to call
 * whisper_server_tick() (heartbeats, typing expiry, presence grace).
 *
 * State lives in a whisper_store (store.h) the caller opens: the server
 * uses it as an ordered, transactional key-value store (the SQLite store
 * is the default; a distributed ordered KV with transactions serves as
 * well), with record kinds of its own (WHISPER_REC_SERVER_*). Every frame
 * that changes state is handled in one transaction: a send is in every
 * recipient's mailbox, with its idempotency record, before the sender
 * hears SENT, or in none. Connections and presence are in memory only.
 * With group commit (whisper_server_batch_begin()) the frames of one pass
 * of the caller's event loop share one transaction, and nothing they
 * cause leaves before it commits.
 *
 * A server is used from one thread at a time.
 *
 * Accounts and devices: an account name is 1..64 bytes of [a-z0-9._-] and
 * a device id is 1..2^31 - 1 (WHISPER_ACCOUNT_NAME_MAX and
 * WHISPER_DEVICE_ID_MAX in client.h, the engine's limits too); a frame
 * naming another is refused (ERR_MALFORMED).
 *
 * Every call that reads or writes the store may wait for the store's lock
 * up to its busy timeout (core.h).
 *
 * The server core is its own library, libwhisper-server, beside the client
 * library libwhisper that apps link: `pkg-config whisper-server`, or in
 * CMake `find_package(whisper)` and `whisper::whisper-server`
 * (`whisper::whisper-server_static`). It brings libwhisper along (stores,
 * signatures, errors come from there) and must be used with the libwhisper
 * of its own version: whisper_server_new() checks. whisper.h does not
 * include this header.
 */
#ifndef WHISPER_SERVER_H
#define WHISPER_SERVER_H

#include "core.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** The version of sync.proto this library speaks. */
#define WHISPER_SYNC_PROTOCOL 1

/** Record kinds the server keeps in its store. Ordered kinds (>= 64) are
 *  scanned; their keys start with a keyed tag of the account, never the
 *  name. */
#define WHISPER_REC_SERVER_ACCOUNT 32  /* key: account: its devices, link codes */
#define WHISPER_REC_SERVER_DEVICE 33   /* key: address: keys, mailbox counters */
#define WHISPER_REC_SERVER_GROUP 34    /* key: 16-byte group id: members, admins */
#define WHISPER_REC_SERVER_SENT 35     /* key: address || client id: the Sent answer (before
                                        * version 4 of the config; no longer written) */
#define WHISPER_REC_SERVER_META 36     /* key: a short ASCII name */
#define WHISPER_REC_SERVER_PROFILE 40  /* key: account: its profile, ciphertext only */
#define WHISPER_REC_SERVER_MAILBOX 96  /* key: device tag (16) || seq (8, BE) */
#define WHISPER_REC_SERVER_PREKEY 97   /* key: device tag (16) || prekey id (4, BE) */
#define WHISPER_REC_SERVER_BLOCKS 37   /* key: account: the accounts it blocked */
#define WHISPER_REC_SERVER_REPORT 98   /* key: report number (8, BE): a user's report */
#define WHISPER_REC_SERVER_SHARE 99    /* key: device tag (16) || sender tag (16): what one
                                        * account has waiting in a busy mailbox */
#define WHISPER_REC_SERVER_SENT_AT 100 /* key: period (4, BE) || device tag (16) || client id:
                                        * the Sent answer, pruned by period (sent_ttl_ms) */

#define WHISPER_SERVER_CONFIG_VERSION 4
/** The default of max_reports. */
#define WHISPER_SERVER_REPORTS_MAX 10000
/** The defaults of the blob fields (version 3). */
#define WHISPER_SERVER_UPLOAD_TOKEN_TTL_MS (60ULL * 60 * 1000)         /* 1 hour */
#define WHISPER_SERVER_BLOB_MAX_SIZE (100ULL * 1024 * 1024)           /* 100 MiB */
#define WHISPER_SERVER_BLOB_QUOTA (1024ULL * 1024 * 1024)             /* 1 GiB */
#define WHISPER_SERVER_BLOB_TTL_MS (30ULL * 24 * 60 * 60 * 1000)      /* 30 days */
/** The defaults of the abuse limits (version 4; docs/security.md, "whisperd"). */
#define WHISPER_SERVER_MAILBOX_BYTES (256ULL * 1024 * 1024)            /* 256 MiB */
#define WHISPER_SERVER_SENDER_ENTRIES 5000
#define WHISPER_SERVER_SENDER_BYTES (32ULL * 1024 * 1024)              /* 32 MiB */
#define WHISPER_SERVER_PREKEYS_PER_REQUESTER 1000                     /* per hour */
#define WHISPER_SERVER_PREKEYS_PER_TARGET 100                         /* per hour */
#define WHISPER_SERVER_REGISTER_PER_SOURCE 10                         /* per hour */
#define WHISPER_SERVER_LINK_PER_SOURCE 30                             /* per hour */
#define WHISPER_SERVER_PRELOGIN_PER_SOURCE 32
#define WHISPER_SERVER_SENT_TTL_MS (7ULL * 24 * 60 * 60 * 1000)        /* 7 days */

/** Limits and timers. Start from WHISPER_SERVER_CONFIG_INIT; fields are
 *  only ever appended. */
typedef struct whisper_server_config_t {
  unsigned version;
  size_t max_frame;            /* bytes; larger frames are refused (ERR_TOO_BIG) */
  uint32_t max_group_members;  /* 1024 */
  uint32_t max_devices;        /* per account */
  uint32_t max_prekeys;        /* one-time prekeys kept per device */
  uint32_t rate_per_sec;       /* frames per device per second (token bucket) */
  uint32_t rate_burst;         /* bucket size */
  uint64_t heartbeat_ms;       /* a connection silent this long is closed */
  uint64_t auth_timeout_ms;    /* a connection not logged in by then is closed */
  uint64_t typing_ttl_ms;      /* a typing notice lapses after this */
  uint64_t typing_min_ms;      /* at most one typing notice per device per conversation per this */
  uint64_t presence_grace_ms;  /* offline is announced this long after the last connection closes */
  uint32_t deliver_window;     /* unacknowledged entries pushed to a connection at once (and
                                  at most 8 MiB of them, but for one larger entry: pushes
                                  pause there and go on with the Acks) */
  uint32_t max_mailbox;        /* entries per mailbox; a send beyond it is refused (ERR_LIMIT) */
  /* --- version 2 --- */
  uint32_t max_reports;        /* reports kept (whisper_server_reports()); the oldest go */
  /* --- version 3: attachment blobs --- */
  uint64_t upload_token_ttl_ms; /* an upload token is refused this long after it was made */
  uint64_t blob_max_size;      /* bytes: the largest blob (UploadToken.max_size; UploadAuth over it:
                                  ERR_LIMIT) */
  uint64_t blob_quota;         /* bytes of unexpired blobs per account; the blob store's to enforce */
  uint64_t blob_ttl_ms;        /* a blob is deleted this long after it was created; the blob
                                  store's to enforce */
  /* --- version 4: abuse limits (docs/security.md, "whisperd") --- */
  uint64_t max_mailbox_bytes;  /* bytes of entries waiting in one mailbox; a send beyond it is
                                  refused (ERR_LIMIT) */
  uint32_t sender_max_entries; /* entries one other account may have waiting in one mailbox
                                  (ERR_LIMIT beyond); an account's own devices are not counted */
  uint64_t sender_max_bytes;   /* bytes of them */
  uint32_t prekeys_per_requester; /* one-time prekeys a device may take per hour (a bucket of
                                  as many); past it, bundles carry the signed prekey alone */
  uint32_t prekeys_per_target; /* one-time prekeys a device hands out per hour, the same way */
  uint32_t register_per_source; /* accounts a source may create per hour (a bucket of as many;
                                  ERR_RATE beyond); sources: whisper_server_connected_from() */
  uint32_t link_per_source;    /* link codes a source may ask for per hour (ERR_RATE beyond) */
  uint32_t prelogin_per_source; /* connections of one source not logged in at once */
  uint64_t sent_ttl_ms;        /* a Send's idempotency record is kept at least this long, at most
                                  twice as long */
} whisper_server_config_t;

#define WHISPER_SERVER_CONFIG_INIT                                                             \
  { WHISPER_SERVER_CONFIG_VERSION, 256 * 1024, 1024, 16, 1000, 200, 400, 60000, 15000, 6000, \
    2000, 5000, 256, 100000, WHISPER_SERVER_REPORTS_MAX, WHISPER_SERVER_UPLOAD_TOKEN_TTL_MS,   \
    WHISPER_SERVER_BLOB_MAX_SIZE, WHISPER_SERVER_BLOB_QUOTA, WHISPER_SERVER_BLOB_TTL_MS,        \
    WHISPER_SERVER_MAILBOX_BYTES, WHISPER_SERVER_SENDER_ENTRIES, WHISPER_SERVER_SENDER_BYTES,  \
    WHISPER_SERVER_PREKEYS_PER_REQUESTER, WHISPER_SERVER_PREKEYS_PER_TARGET,                  \
    WHISPER_SERVER_REGISTER_PER_SOURCE, WHISPER_SERVER_LINK_PER_SOURCE,                       \
    WHISPER_SERVER_PRELOGIN_PER_SOURCE, WHISPER_SERVER_SENT_TTL_MS }

/** A server. */
typedef struct whisper_server whisper_server;

/**
 * Makes a server over `store` (borrowed: it must outlive the server), with
 * `cfg` (NULL: the defaults). The RNG is libsodium's unless set with
 * whisper_server_rng_set(). `cfg->version` must be one this library knows
 * (1..WHISPER_SERVER_CONFIG_VERSION). Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_ENOMEM, a store error, or WHISPER_EVERSION when the libwhisper
 * loaded is not the version this libwhisper-server was built with (they
 * share the store's internals; install them together).
 */
WHISPER_SERVER_API int whisper_server_new(whisper_server *WHISPER_NULLABLE *WHISPER_NONNULL out,
                                          whisper_store *store,
                                          const whisper_server_config_t *WHISPER_NULLABLE cfg);

/** Frees a server (connections are forgotten, not closed). Accepts NULL. */
WHISPER_SERVER_API void whisper_server_free(whisper_server *WHISPER_NULLABLE srv);

/** Replaces the random source (challenges, link codes); for tests and
 *  fuzzers. Returns WHISPER_OK or WHISPER_EINVAL (`srv` NULL). */
WHISPER_SERVER_API int whisper_server_rng_set(whisper_server *srv, whisper_rng_fn WHISPER_NULLABLE fn,
                                              void *WHISPER_NULLABLE user);

/** The sentence describing the server's last failure ("" if none): the
 *  last one, kept until another failure replaces it (a call that succeeds
 *  does not clear it, unlike a context's: a failure inside a batch is
 *  reported when the batch ends, after other calls). A store failure's
 *  sentence ends with the store's own text, as a context's does. */
WHISPER_SERVER_API const char *whisper_server_last_error(const whisper_server *srv);

/**
 * A connection opened (whisper_server_disconnected() when it closes).
 * `conn` is the caller's id for it (nonzero, unique among open
 * connections). The server queues a Challenge for it. Returns WHISPER_OK,
 * WHISPER_EINVAL (0 or already open) or WHISPER_ENOMEM.
 */
WHISPER_SERVER_API int whisper_server_connected(whisper_server *srv, uint64_t conn,
                                                uint64_t now_ms);

/** The longest source key of whisper_server_connected_from(), in bytes. */
#define WHISPER_SERVER_SOURCE_MAX 64

/**
 * whisper_server_connected() for a connection from `source`: the caller's key
 * for where it comes from, 1..WHISPER_SERVER_SOURCE_MAX bytes compared as
 * bytes (whisperd: the peer's IPv4 address, or the /64 prefix of its IPv6
 * address, in binary). The limits per source then hold for it: at most
 * cfg.prelogin_per_source connections of a source not logged in at once,
 * cfg.register_per_source accounts made and cfg.link_per_source link codes
 * asked for per hour (ERR_RATE with retry_ms beyond; a source's link codes
 * pending for one account are one: a new one replaces it). Connections
 * opened with whisper_server_connected() have no source and none of these
 * limits. What is counted per source lives in memory (a restart starts it
 * anew; it is forgotten an hour after the source's last connection).
 * Returns WHISPER_OK, WHISPER_EINVAL (a bad argument, conn 0 or already
 * open), WHISPER_ENOMEM, or WHISPER_EBUSY: the source already has
 * cfg.prelogin_per_source connections not logged in, so this one is not
 * opened and nothing is queued for it (the caller closes it).
 */
WHISPER_SERVER_API int whisper_server_connected_from(whisper_server *srv, uint64_t conn,
                                                     const uint8_t *source, size_t source_len,
                                                     uint64_t now_ms);

/**
 * A frame arrived on `conn`. Whatever the bytes, the server answers by
 * queuing output (a result, an Error frame with its code, or a close for
 * a connection that broke the protocol); a bad frame changes no stored
 * state. Returns WHISPER_OK when the frame was handled (also when it was
 * refused with an Error frame), WHISPER_ENOTFOUND for an unknown
 * connection, or a store error when the store failed (the frame then
 * changed nothing and its sender got ERR_INTERNAL).
 */
WHISPER_SERVER_API int whisper_server_receive(whisper_server *srv, uint64_t conn, const uint8_t *frame,
                                              size_t len, uint64_t now_ms);

/** A connection closed (by the peer, the network or the server). Its
 *  queued output is dropped; unacknowledged entries stay in the mailbox.
 *  Unknown connections are ignored. */
WHISPER_SERVER_API void whisper_server_disconnected(whisper_server *srv, uint64_t conn,
                                                    uint64_t now_ms);

/** 1 if `conn` is open and logged in (its Auth was accepted), 0 otherwise
 *  (not logged in yet, closed, unknown). A connection logs in only by a
 *  frame of its own, so a caller that counts the connections not logged in
 *  (a cap per source address) asks after each whisper_server_receive() on
 *  it. */
WHISPER_SERVER_API int whisper_server_conn_authenticated(const whisper_server *srv, uint64_t conn);
/* --- group commit ----------------------------------------------------------
 *
 * One transaction per frame costs one commit (with synchronous=FULL, one
 * fsync) per frame. In a batch, every frame received shares one store
 * transaction, opened at the batch's first write and committed by
 * whisper_server_batch_end(): a server calls whisper_server_batch_begin()
 * before it hands the core the frames of one pass of its event loop, and
 * whisper_server_batch_end() after the last (frames that arrive while the
 * commit is on its way wait for the next pass, and share its commit).
 *
 * What a client hears stays as durable as without batches. Every output
 * queued inside a batch (answers, deliveries, receipts, presence and
 * typing notices, closes, pushes) is held: whisper_server_take_output() hands it
 * out only once the commit succeeded. Each frame's writes run inside a
 * savepoint of the batch's transaction, so a frame that is refused (or
 * that meets a store error) undoes its own writes and no other frame's.
 * If the commit fails (or the store loses the transaction), the whole
 * batch is rolled back: its held frames and pushes are dropped, and every
 * connection the batch touched (a frame received on it, output queued for
 * it, its delivery window moved) is closed, as is every connection the
 * batch's frames asked to close; the core's in-memory state (delivery
 * windows, presence, counters) is put back in line with the store. The
 * clients reconnect and send again (sends are idempotent by client id).
 *
 * Without a batch the core behaves as before: one transaction per frame,
 * its output at once. Batches need a store with savepoints (store ops
 * version 4: the SQLite and memory stores have them). */

/**
 * Opens a batch. Returns WHISPER_OK, WHISPER_EINVAL (NULL, or a store
 * without savepoints) or WHISPER_ESTATE (a batch is open already).
 */
WHISPER_SERVER_API int whisper_server_batch_begin(whisper_server *srv);

/**
 * Commits the open batch's transaction (if one of its frames wrote) and
 * releases its held output to whisper_server_take_output(). Returns WHISPER_OK,
 * WHISPER_EINVAL (NULL), WHISPER_ESTATE (no batch is open) or the store's
 * error when the commit failed: then nothing was kept, the held output is
 * dropped and the connections the batch touched are closed (their DISCONNECT
 * actions are queued), and whisper_server_last_error() says why. The
 * batch is over in every case.
 */
WHISPER_SERVER_API int whisper_server_batch_end(whisper_server *srv, uint64_t now_ms);

/**
 * Lets the records that batches read (accounts, devices, groups, block
 * lists, counters: not Sent answers, profiles or the ordered kinds) stay
 * in memory from one batch to the next, up to `max_records` of them (past
 * that the cache is emptied after a batch); every batch still writes what
 * it changed to the store at its commit. Only for a server that is the
 * only writer of its store (one whisperd on its SQLite file): a record
 * that something else changes would be seen as it was. A failed batch, or
 * a frame handled outside a batch, empties the cache. 0 (the default):
 * the cache lasts one batch. Returns WHISPER_OK or WHISPER_EINVAL (NULL,
 * or a server in cluster mode, whose store other nodes write).
 */
WHISPER_SERVER_API int whisper_server_record_cache_set(whisper_server *srv, size_t max_records);

/** When whisper_server_tick() should next run (UINT64_MAX: nothing
 *  pending). */
WHISPER_SERVER_API uint64_t whisper_server_next_deadline(const whisper_server *srv);

/** Runs the timers due at `now_ms`: closes silent connections, lapses
 *  typing, announces presence after the grace period. */
WHISPER_SERVER_API void whisper_server_tick(whisper_server *srv, uint64_t now_ms);

/** What the server asks its caller to do. */
typedef enum whisper_server_action {
  WHISPER_SERVER_SEND = 1,  /* send `frame` on `conn` */
  WHISPER_SERVER_DISCONNECT = 2, /* close `conn` (after sending what was queued before),
                                    then call whisper_server_disconnected() */
  WHISPER_SERVER_PUSH = 3,  /* wake (account, device_id): it is offline with new mail */
  WHISPER_SERVER_RELAY = 4  /* cluster mode: broadcast `frame` (at most
                               WHISPER_SERVER_RELAY_MAX bytes) to the other nodes, which
                               pass it to whisper_server_relay() */
} whisper_server_action;

/** One piece of output; valid until the next call on the server. A
 *  versioned struct (docs/api.md): the caller sets `size`
 *  (WHISPER_SERVER_OUTPUT_INIT); fields are only appended. */
typedef struct whisper_server_output_t {
  size_t size; /* sizeof(whisper_server_output_t) as the caller was built */
  int action;
  uint64_t conn;
  const uint8_t *WHISPER_NULLABLE frame; /* SEND, RELAY (NULL otherwise) */
  size_t frame_len;
  const char *WHISPER_NULLABLE account; /* WHISPER_SERVER_PUSH (NULL otherwise) */
  uint32_t device_id;
  uint64_t mailbox_depth;
} whisper_server_output_t;

/** The first released (1.0) size of whisper_server_output_t. */
#define WHISPER_SERVER_OUTPUT_SIZE_1_0 \
  (offsetof(whisper_server_output_t, mailbox_depth) + sizeof(uint64_t))
/** Initializer: `whisper_server_output_t o = WHISPER_SERVER_OUTPUT_INIT;` */
#define WHISPER_SERVER_OUTPUT_INIT {.size = sizeof(whisper_server_output_t)}

/**
 * Takes the next piece of output, in order. Returns 1 when `out` was
 * filled, 0 when there is nothing to do (or `srv` or `out` is NULL), or
 * WHISPER_EINVAL when `out->size` is below WHISPER_SERVER_OUTPUT_SIZE_1_0
 * (initialize it with WHISPER_SERVER_OUTPUT_INIT): nothing is taken or
 * written, and whisper_server_last_error() says why. The library writes
 * only the fields both it and the caller's struct have (`size` kept,
 * newer fields left alone). Loop while it returns 1 (`> 0`), not while it
 * is nonzero.
 */
WHISPER_SERVER_API int whisper_server_take_output(whisper_server *srv,
                                                  whisper_server_output_t *out);

/* --- cluster mode ----------------------------------------------------------
 *
 * Several servers (nodes) over one shared store (the PostgreSQL store,
 * pgstore.h), each with its own connections. What one node must tell the
 * others it queues as WHISPER_SERVER_RELAY output, which the caller
 * broadcasts to every other node (whisperd: PostgreSQL NOTIFY) after the
 * commit that made it true; each node feeds what it receives to
 * whisper_server_relay():
 *   - new mailbox entries for a device logged in on another node: that
 *     node pushes them to it (no push notification is sent for a device
 *     online anywhere in the cluster);
 *   - logins and logouts: presence is cluster-wide, and a device logging in
 *     on one node closes its older connection on another;
 *   - typing notices to devices on other nodes;
 *   - heartbeats: a node not heard from for WHISPER_SERVER_NODE_TIMEOUT_MS
 *     counts as gone, and its devices as offline.
 * In cluster mode the history order (server_seq) is a hybrid clock: the
 * time in ms shifted left by 20 bits, a counter, and the node in the low
 * 8 bits, so that nodes never take the same value and never wait on a
 * shared counter; it stays above the counter an earlier single-node
 * server handed out. The total mailbox depth is not kept in the store (it
 * would be a row every node writes): each node reports the change it made.
 * Relays carry no secret (account names, device ids, typing notices) but
 * must reach only the cluster's nodes. */

#define WHISPER_SERVER_RELAY_MAX 3000
#define WHISPER_SERVER_HEARTBEAT_MS 2000
#define WHISPER_SERVER_NODE_TIMEOUT_MS 10000

/**
 * Puts the server in cluster mode as node `node` (1..255, unique in the
 * cluster), before any connection opens. Queues a hello, so that the
 * other nodes announce their online devices. Returns WHISPER_OK or
 * WHISPER_EINVAL (bad node, already in cluster mode, or connections open).
 */
WHISPER_SERVER_API int whisper_server_cluster(whisper_server *srv, uint32_t node, uint64_t now_ms);

/**
 * A relay from another node (the `frame` of its WHISPER_SERVER_RELAY
 * output). The server applies it and may queue output (frames to local
 * connections, closes, relays). A relay of this node's own is ignored.
 * Returns WHISPER_OK, WHISPER_EINVAL (not in cluster mode),
 * WHISPER_EINVALIDMSG (undecodable or out of range: nothing changes) or a
 * store error.
 */
WHISPER_SERVER_API int whisper_server_relay(whisper_server *srv, const uint8_t *relay, size_t len,
                                            uint64_t now_ms);

/**
 * After relays may have been lost (the caller's link to the other nodes
 * broke and is back): queues a hello and this node's online devices
 * again, and pushes every local connection whatever its mailbox holds,
 * so that nothing waits for a wake that never came. Does nothing outside
 * cluster mode.
 */
WHISPER_SERVER_API void whisper_server_cluster_resync(whisper_server *srv, uint64_t now_ms);

/**
 * Leaving the cluster: queues a relay telling the other nodes that this
 * node's devices are offline now (rather than after the node timeout).
 * Call before closing the connections at shutdown.
 */
WHISPER_SERVER_API void whisper_server_cluster_leave(whisper_server *srv, uint64_t now_ms);

/** Counters for metrics. A versioned struct (docs/api.md): the caller
 *  sets `size` (WHISPER_SERVER_STATS_INIT); fields are only appended. */
typedef struct whisper_server_stats_t {
  size_t size;                 /* sizeof(whisper_server_stats_t) as the caller was built */
  uint64_t connections;        /* open now */
  uint64_t authenticated;      /* open and logged in */
  uint64_t frames_in;          /* total */
  uint64_t frames_out;
  uint64_t frames_refused;     /* answered with an Error */
  uint64_t messages_sent;      /* Send frames accepted */
  uint64_t entries_delivered;  /* mailbox entries acknowledged */
  uint64_t mailbox_depth;      /* entries waiting in all mailboxes */
  uint64_t pushes;             /* push actions */
  /* delivery latency (server accept to recipient ack), a histogram:
   * counts of deliveries at or under each bound, cumulative as Prometheus
   * wants them. */
  uint64_t latency_le_ms[12];  /* bounds: whisper_server_latency_bounds() */
  uint64_t latency_count;
  uint64_t latency_sum_ms;
} whisper_server_stats_t;

/** The first released (1.0) size of whisper_server_stats_t. */
#define WHISPER_SERVER_STATS_SIZE_1_0 \
  (offsetof(whisper_server_stats_t, latency_sum_ms) + sizeof(uint64_t))
/** Initializer: `whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT;` */
#define WHISPER_SERVER_STATS_INIT {.size = sizeof(whisper_server_stats_t)}

/** Fills `out` with the server's counters: the fields both the library
 *  and the caller's struct have (`size` kept, newer fields left alone).
 *  Returns WHISPER_OK, or WHISPER_EINVAL when `out` is NULL or its `size`
 *  is below WHISPER_SERVER_STATS_SIZE_1_0 (nothing written), or when
 *  `srv` is NULL (the counters written as zero). */
WHISPER_SERVER_API int whisper_server_stats(const whisper_server *srv, whisper_server_stats_t *out);

/** The 12 upper bounds (ms) of the latency histogram buckets. */
WHISPER_SERVER_API const uint64_t *whisper_server_latency_bounds(void);

/* --- reports ------------------------------------------------------------------
 *
 * A user's report of a conversation (whisper_client_report()): the last
 * messages of it as the reporter's device has them, in plaintext, which
 * the reporter chose to reveal. The server keeps the newest
 * cfg.max_reports (the oldest go), durably, numbered from 1 in the order
 * they came, for moderators. A report is the reporter's word: nothing
 * proves that the messages were sent as it says. */

/** One message of a report; its pointers live as long as the report's.
 *  A versioned struct (docs/api.md) in library memory: `size` is the
 *  library's sizeof, the same in every element, and the array is stepped
 *  by it, not by the caller's sizeof: take message i with
 *  WHISPER_SERVER_REPORT_MESSAGE(report, i). Fields are only appended;
 *  one newer than WHISPER_SERVER_REPORT_MESSAGE_SIZE_1_0 is there only
 *  when `size` covers it. */
typedef struct whisper_server_report_message_t {
  size_t size;           /* sizeof(whisper_server_report_message_t) of the library */
  const uint8_t *id;     /* its client id */
  size_t id_len;
  const char *sender;    /* the account that sent it */
  uint64_t sent_at_ms;   /* its time as the reporter's history has it */
  const uint8_t *WHISPER_NULLABLE text; /* as the reporter has it (not always UTF-8); may
                                          * be cut; NULL when text_len is 0 */
  size_t text_len;
  int truncated;         /* 1: the text was longer */
  int deleted;           /* 1: it was deleted for everyone (no text) */
} whisper_server_report_message_t;

/** The first released (1.0) size of whisper_server_report_message_t. */
#define WHISPER_SERVER_REPORT_MESSAGE_SIZE_1_0 \
  (offsetof(whisper_server_report_message_t, deleted) + sizeof(int))
/** Message `i` (< n_messages) of a whisper_server_report_t *, stepped by
 *  the library's element size. */
#define WHISPER_SERVER_REPORT_MESSAGE(report, i)                                     \
  ((const whisper_server_report_message_t *)((const unsigned char *)(report)->messages + \
                                             (i) * (report)->messages[0].size))

#define WHISPER_SERVER_REPORT_VERSION 1

/** A report, as whisper_server_reports() hands it out. Fields may be
 *  appended (`version` says which are there). */
typedef struct whisper_server_report_t {
  unsigned version;      /* WHISPER_SERVER_REPORT_VERSION */
  uint64_t number;       /* 1, 2, ... in the order reports came */
  uint64_t at_ms;        /* the server's clock when it came */
  const char *reporter;  /* the reporting account and device */
  uint32_t reporter_device;
  const char *conversation; /* an account, or "#" and a group id in hex */
  int blocked;           /* 1: the reporter blocked the account as well */
  const whisper_server_report_message_t *WHISPER_NULLABLE messages; /* oldest first (NULL
                                                                     * when none); step
                                                                     * by messages[0].size
                                                                     * (WHISPER_SERVER_
                                                                     * REPORT_MESSAGE()) */
  size_t n_messages;
} whisper_server_report_t;

/** Message `i` of `report` (NULL when `i` >= n_messages): the same as
 *  WHISPER_SERVER_REPORT_MESSAGE(), as a function for bindings that cannot
 *  use a macro (Swift, JNI). Valid as long as the report is. */
WHISPER_SERVER_API const whisper_server_report_message_t *WHISPER_NULLABLE whisper_server_report_message(
    const whisper_server_report_t *report, size_t i);

/** Called for each report; the report is valid during the call only.
 *  Returns 0 to go on, nonzero to stop. */
typedef int (*whisper_server_report_fn)(void *WHISPER_NULLABLE user,
                                        const whisper_server_report_t *report);

/**
 * Hands the stored reports numbered above `after` to `fn`, oldest first,
 * at most `limit` of them (0: all). Reads only; the server may be serving
 * meanwhile (from the same thread). Returns WHISPER_OK, WHISPER_EINVAL,
 * WHISPER_ECORRUPT (a stored report that cannot be read; those before it
 * were handed out) or a store error.
 */
WHISPER_SERVER_API int whisper_server_reports(whisper_server *srv, uint64_t after, size_t limit,
                                              whisper_server_report_fn fn,
                                              void *WHISPER_NULLABLE user);

/* --- upload tokens -------------------------------------------------------------
 *
 * Attachments travel as blobs, encrypted end to end by the sender, through
 * a blob store beside the server (whisperd's is tus over HTTP). The store
 * takes an upload only with a token that the server gave a logged-in
 * device (UploadAuth -> UploadToken, docs/sync-protocol.md "Blobs"): it is
 * bound to the account and device, lapses after cfg.upload_token_ttl_ms,
 * and is authenticated with HMAC-SHA256 under a random secret the server
 * made once and keeps in its store, so any server on the same store can
 * check it, also after a restart. The store never learns a key: the blobs
 * are ciphertexts whose keys travel inside the messages. */

/** The longest upload token, in characters. */
#define WHISPER_SERVER_UPLOAD_TOKEN_MAX 124

/**
 * Checks an upload token (the `token` of an UploadToken, `len` characters,
 * not NUL-terminated) at `now_ms`. On WHISPER_OK the account it was made
 * for is in `account_out` (NUL-terminated; `account_cap` must hold 65
 * bytes for any account) and its device id in *device_out. Reads the
 * store (the device must still be on its account). Returns WHISPER_OK,
 * WHISPER_EINVALIDMSG (not a token: it does not decode or has a bad
 * layout), WHISPER_EINVALIDSIG (not made by this server's secret, or
 * changed; compared in constant time), WHISPER_ESTATE (expired),
 * WHISPER_ENOTFOUND (the account or the device no longer exists),
 * WHISPER_EINVAL (a NULL argument, or `account_cap` too small for the
 * account) or a store error. whisper_server_last_error() says why.
 */
WHISPER_SERVER_API int whisper_server_upload_token_check(whisper_server *srv, const char *token,
                                                         size_t len, uint64_t now_ms,
                                                         char *account_out, size_t account_cap,
                                                         uint32_t *device_out);

/* --- sizes, for bindings (sizes.h) ------------------------------------------ */

/* Each size or limit macro of server.h as a function of the same name in
 * lower case (sizes.h explains why). */
WHISPER_SERVER_API size_t whisper_server_reports_max(void);
WHISPER_SERVER_API uint64_t whisper_server_blob_max_size(void);
WHISPER_SERVER_API size_t whisper_server_source_max(void);
WHISPER_SERVER_API size_t whisper_server_relay_max(void);
WHISPER_SERVER_API size_t whisper_server_upload_token_max(void);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif
