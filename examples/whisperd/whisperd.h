/*
 * whisperd: the reference server of libwhisper's sync protocol.
 *
 * A thin libwebsockets program around the sans-I/O server core
 * (include/whisper/server.h). This header ties its pieces together:
 *
 *   main.c     flags and config, the store and its key, signals, startup
 *              and shutdown
 *   config.c   the option table, the command line and the config file
 *   log.c      one line per event on stderr, with levels
 *   net.c      libwebsockets: the WebSocket endpoint, HTTP, timers
 *   metrics.c  the Prometheus text exposition
 *   push.c     the push hook interface and its logging implementation
 *   addrs.c    source addresses (IPv4, IPv6 /64) and counts per address
 *   blobs.c    the blob store for encrypted attachments, on disk (blobs.h)
 *   tus.c      the blob store over HTTP: tus 1.0.0 and downloads (blobs.h)
 *   blobmeta_pg.c  cluster mode: the blob store's metadata in PostgreSQL
 *              (blobmeta_pg.h)
 */
#ifndef WHISPERD_H
#define WHISPERD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <whisper/server.h>

#define WHISPERD_VERSION "0.1.0"
#define WHISPERD_WS_PATH "/v1/ws"
#define WHISPERD_WS_PROTOCOL "whisper-sync-v1"

/* --- log.c ---------------------------------------------------------------
 * Lines go to stderr, one per event:
 *   whisperd: 2024-05-01T12:00:00.123Z info conn 7 open (peer 127.0.0.1)
 * Callers never pass message bodies, frames or keys. */

enum { WD_LOG_ERROR = 0, WD_LOG_WARN = 1, WD_LOG_INFO = 2, WD_LOG_DEBUG = 3 };

/** The current level: lines above it are dropped. */
extern int wd_log_level;

#if defined(__GNUC__)
#define WD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WD_PRINTF(a, b)
#endif

void wd_log(int level, const char *fmt, ...) WD_PRINTF(2, 3);
/** 1 if a line at `level` would be written. */
int wd_log_enabled(int level);
/** A level from its name ("error", "warn", "info", "debug"); -1 if none. */
int wd_log_level_parse(const char *name);
const char *wd_log_level_name(int level);

#define wd_error(...) wd_log(WD_LOG_ERROR, __VA_ARGS__)
#define wd_warn(...) wd_log(WD_LOG_WARN, __VA_ARGS__)
#define wd_info(...) wd_log(WD_LOG_INFO, __VA_ARGS__)
#define wd_debug(...) wd_log(WD_LOG_DEBUG, __VA_ARGS__)

/* --- config.c ------------------------------------------------------------ */

typedef struct wd_config {
  char *host;               /* listen address; "*" or "": every interface */
  unsigned port;            /* 0: pick a free port */
  char *db_path;            /* ":memory:": a volatile store (tests) */
  char *key_file;           /* NULL: db_path + ".key" */
  int sync_full;            /* 1: synchronous=FULL, 0: NORMAL (the default) */
  unsigned busy_timeout_ms; /* SQLite cross-process lock wait */
  char *tls_cert;           /* both set: wss:// and https:// */
  char *tls_key;
  int log_level;
  uint64_t shutdown_ms;     /* how long queued output may take to flush at shutdown */
  uint64_t close_flush_ms;  /* how long a connection the server closes may take to flush */
  size_t max_queue;         /* bytes queued to one connection before it is dropped */
  size_t sndbuf;            /* SO_SNDBUF of each accepted connection; 0: the system's */
  uint32_t max_connections; /* WebSocket connections at once; 0: no limit */
  whisper_server_config_t server;
  int reports;              /* --reports: print the stored reports and exit */
  uint64_t reports_after;   /* only those numbered above it */
  char *blob_dir;           /* the blob store; NULL: none (a :memory: store without --blob-dir) */
  uint64_t clock_offset_ms; /* tests: added to the clock the blob store's expiry reads */
  int event_loop;           /* WD_LOOP_*: what libwebsockets runs on */
  char *pg;                 /* --pg: PostgreSQL conninfo: the store is there, not in --db */
  char *pg_table;           /* --pg-table: the table (NULL: the store's default) */
  uint32_t pg_batch_lock_ms; /* --pg-batch-lock-timeout: a batch's lock timeout (0: the 5 s) */
  char **pg_shards;         /* --pg-shard: further databases (shards 1..n) */
  size_t n_pg_shards;
  uint32_t node;            /* --node: 1..255, cluster mode over --pg; 0: a single node */
  char *metrics_host;       /* GET /metrics is served here (plain HTTP); NULL: nowhere */
  unsigned metrics_port;    /* 0: pick a free port */
  uint32_t max_prelogin_per_addr; /* WebSocket connections not logged in per source address; 0:
                                     no cap */
  int no_group_commit;      /* 1: a transaction per frame, not per pass of the loop */
  int group_commit;         /* --group-commit: the default; kept for older command lines */
  size_t record_cache;      /* records the core keeps between batches (0: none) */
} wd_config;

/* --event-loop: libuv (epoll, through libwebsockets' libuv plugin), lws's
 * own poll() loop, or libuv when it loads and poll otherwise. */
enum { WD_LOOP_AUTO = 0, WD_LOOP_LIBUV = 1, WD_LOOP_POLL = 2 };

/** The defaults. */
void wd_config_init(wd_config *cfg);
void wd_config_free(wd_config *cfg);

/**
 * Fills `cfg` from the command line: the file named by --config first,
 * then the flags, which win. Returns 0 to go on, 1 when the program should
 * exit successfully (--help, --version: already printed), -1 on an error
 * (already reported on stderr).
 */
int wd_config_from_args(wd_config *cfg, int argc, char **argv);

/** Writes the --help text. */
void wd_config_usage(FILE *out);

/* --- reports.c -----------------------------------------------------------
 * whisperd --reports: the reports users made (whisper_server_reports()),
 * one JSON object per line, for moderators:
 *   {"number":1,"at_ms":...,"reporter":"bob","reporter_device":1,
 *    "conversation":"alice","blocked":true,"messages":[{"id":"<hex>",
 *    "sender":"alice","sent_at_ms":...,"text":"...","truncated":false,
 *    "deleted":false}]}
 * A text that is not UTF-8 is given as "text_hex" instead of "text". The
 * plaintext goes to stdout only, never to the log. */

/** Prints the reports numbered above `after`. Returns 0, or -1 after
 *  printing why on stderr. */
int wd_reports_print(whisper_server *srv, uint64_t after, FILE *out);

/* --- cluster.c -----------------------------------------------------------
 * Cluster mode (--node with --pg): the relays between nodes over
 * PostgreSQL LISTEN/NOTIFY, sent and heard by a thread of their own (see
 * cluster.c for why NOTIFY). */

typedef struct wd_cluster wd_cluster;

/** Starts the relay thread on its own connection to `conninfo`. `notify`
 *  is called from that thread when relays arrived or the link was made
 *  again. 0, or -1 (logged). */
int wd_cluster_start(wd_cluster **out, const char *conninfo, void (*notify)(void *arg), void *arg);
/** Queues a relay for the other nodes (never blocks). */
void wd_cluster_send(wd_cluster *cl, const uint8_t *relay, size_t len);
/** A relay heard from another node: `len` bytes at `data`; free() it. */
typedef struct wd_relay {
  struct wd_relay *next; /* the queue's */
  size_t len;
  uint8_t data[];
} wd_relay;
/** Takes a heard relay into *relay (free() it), or none (*relay NULL);
 *  *resync is 1 once after the link was made again. Returns 1 if there
 *  was something (a relay or a resync), 0 if not. */
int wd_cluster_take(wd_cluster *cl, wd_relay **relay, int *resync);
void wd_cluster_stats(wd_cluster *cl, uint64_t *sent, uint64_t *heard, uint64_t *dropped,
                      uint64_t *reconnects);
/** Waits up to `flush_ms` for the queued relays to go (shutdown). */
void wd_cluster_flush(wd_cluster *cl, uint64_t flush_ms);
void wd_cluster_free(wd_cluster *cl);

/* --- push.c --------------------------------------------------------------
 * The push hook: how whisperd wakes a device that is offline and has new
 * mail (the core's WHISPER_SERVER_PUSH action, at most once per offline
 * period). A real deployment puts APNs / FCM (or UnifiedPush, a webhook,
 * ...) behind this interface: look up the device's push token (registered
 * out of band, keyed by account and device id) and send a content-free
 * wake-up notification. The hook runs on the event loop: it must not block
 * (queue the request and send it from a thread or an lws client
 * connection). */

typedef struct wd_push_hook {
  void *user;
  /** (account, device_id) is offline with `mailbox_depth` entries waiting. */
  void (*notify)(void *user, const char *account, uint32_t device_id, uint64_t mailbox_depth);
  /** Releases `user`; may be NULL. */
  void (*destroy)(void *user);
} wd_push_hook;

/** The logging implementation: one line per push on stderr, at level debug
 *  only (a line names an account, a device and a time). */
void wd_push_log_hook(wd_push_hook *hook);
void wd_push_hook_destroy(wd_push_hook *hook);

/* --- addrs.c --------------------------------------------------------------
 * Source addresses, for limits per address: an IPv4 address, or an IPv6
 * /64 (a host usually holds a whole /64); an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, from a dual-stack socket) counts as its IPv4 address. */

typedef struct wd_addr {
  uint8_t len;  /* 4: IPv4, 8: an IPv6 /64; 0: none known (never counted) */
  uint8_t b[8]; /* the address, or the /64's first 8 bytes */
} wd_addr;

/** The key of a struct sockaddr (`sa`, `len` bytes); len 0 for other families. */
void wd_addr_of_sockaddr(const void *sa, size_t len, wd_addr *out);
/** The key of a connected socket's peer (getpeername); len 0 if none. */
void wd_addr_of_fd(int fd, wd_addr *out);
/** "192.0.2.10", "2001:db8:1:2::/64", "?"; returns `buf`. */
const char *wd_addr_format(const wd_addr *a, char *buf, size_t cap);
/** 1 for 127.0.0.0/8 and the /64 of ::1. */
int wd_addr_is_loopback(const wd_addr *a);

/** A count per address (a hash table keyed with a random SipHash key, so
 *  chosen addresses cannot collide on purpose); an address at 0 is gone. */
typedef struct wd_addr_counts wd_addr_counts;
wd_addr_counts *wd_addr_counts_new(void); /* NULL: out of memory */
void wd_addr_counts_free(wd_addr_counts *t);
uint32_t wd_addr_count(const wd_addr_counts *t, const wd_addr *a);
/** Adds one (an address of len 0 is not counted). 0, or -1 out of memory. */
int wd_addr_inc(wd_addr_counts *t, const wd_addr *a);
/** Takes one away (nothing if the address is not counted). */
void wd_addr_dec(wd_addr_counts *t, const wd_addr *a);
/** How many addresses have a count. */
size_t wd_addr_counts_size(const wd_addr_counts *t);

/* --- metrics.c ----------------------------------------------------------- */

/** What whisperd itself counts, besides the core's whisper_server_stats(). */
typedef struct wd_net_stats {
  uint64_t ws_accepted;      /* WebSocket connections accepted, total */
  uint64_t ws_open;          /* WebSocket connections open now (whisperd's view) */
  uint64_t out_queued_bytes; /* bytes waiting to be written, all connections */
  uint64_t ws_dropped;       /* connections dropped by whisperd: too big, slow, text */
  uint64_t http_requests;    /* HTTP requests answered, total */
  int shutting_down;
  /* cluster mode (node != 0): relays to and from the other nodes */
  uint32_t node;
  uint64_t relays_sent, relays_heard, relays_dropped, relay_reconnects;
  uint64_t prelogin_refused; /* upgrades refused: too many not logged in from their address */
} wd_net_stats;

struct wd_tus_ctx;

/**
 * The Prometheus text exposition (format 0.0.4) of the server's counters
 * and the blob store's (`blobs`): a NUL-terminated string from malloc (its
 * length in *len), or NULL when out of memory.
 */
char *wd_metrics_render(const whisper_server *srv, const wd_net_stats *ns,
                        const struct wd_tus_ctx *blobs, size_t *len);

/** The Content-Type of the exposition. */
#define WD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* --- net.c --------------------------------------------------------------- */

typedef struct wd_net wd_net;

struct wd_blobs;

/**
 * Binds and listens: the client port, and the metrics port unless
 * cfg->metrics_host is NULL (printing "whisperd: metrics on HOST:PORT",
 * then "whisperd: listening on HOST:PORT" once ready). `srv`, `push` and `blobs` (the blob store; NULL: none) are
 * borrowed. `signal_fd` is the read end of the self-pipe written by the
 * signal handler: a byte on it starts the graceful shutdown. Returns 0 or
 * -1 (reported).
 */
int wd_net_start(wd_net **out, const wd_config *cfg, whisper_server *srv, wd_push_hook *push,
                 struct wd_blobs *blobs, int signal_fd);

/** Serves until a shutdown has finished. Returns 0, or -1 if the event
 *  loop failed. */
int wd_net_run(wd_net *net);

/** Closes whatever is left and frees. Call before whisper_server_free().
 *  Accepts NULL. */
void wd_net_free(wd_net *net);

/** Milliseconds since the Unix epoch (CLOCK_REALTIME), never going
 *  backwards within the process. */
uint64_t wd_now_ms(void);

#endif
