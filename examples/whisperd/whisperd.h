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
 *   blobs.c    the blob store for encrypted attachments, on disk (blobs.h)
 *   tus.c      the blob store over HTTP: tus 1.0.0 and downloads (blobs.h)
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
  uint32_t max_connections; /* WebSocket connections at once; 0: no limit */
  whisper_server_config_t server;
  int reports;              /* --reports: print the stored reports and exit */
  uint64_t reports_after;   /* only those numbered above it */
  char *blob_dir;           /* the blob store; NULL: none (a :memory: store without --blob-dir) */
  uint64_t clock_offset_ms; /* tests: added to the clock the blob store's expiry reads */
  int event_loop;           /* WD_LOOP_*: what libwebsockets runs on */
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

/** The logging implementation: one line per push on stderr (level info). */
void wd_push_log_hook(wd_push_hook *hook);
void wd_push_hook_destroy(wd_push_hook *hook);

/* --- metrics.c ----------------------------------------------------------- */

/** What whisperd itself counts, besides the core's whisper_server_stats(). */
typedef struct wd_net_stats {
  uint64_t ws_accepted;      /* WebSocket connections accepted, total */
  uint64_t ws_open;          /* WebSocket connections open now (whisperd's view) */
  uint64_t out_queued_bytes; /* bytes waiting to be written, all connections */
  uint64_t ws_dropped;       /* connections dropped by whisperd: too big, slow, text */
  uint64_t http_requests;    /* HTTP requests answered, total */
  int shutting_down;
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
 * Binds and listens (printing "whisperd: listening on HOST:PORT" once
 * ready). `srv`, `push` and `blobs` (the blob store; NULL: none) are
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
