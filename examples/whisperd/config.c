/*
 * whisperd: configuration. One table of options serves the command line
 * (--name VALUE, --name=VALUE), the config file (name = value) and --help,
 * so every option is documented and accepted in both places.
 *
 * Order: the defaults, then the file named by --config, then the flags
 * (the command line wins over the file).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "whisperd.h"

enum kind {
  K_SECTION, /* not an option: a heading in --help */
  K_STR,     /* char * */
  K_PORT,    /* unsigned, 0..65535 */
  K_LISTEN,  /* HOST:PORT into host and port */
  K_METRICS, /* HOST:PORT into metrics_host and metrics_port, or "off" */
  K_UINT,    /* unsigned */
  K_U32,     /* uint32_t */
  K_U64,     /* uint64_t */
  K_SIZE,    /* size_t, with an optional K/M/G suffix (powers of 1024) */
  K_BYTES,   /* uint64_t, with an optional K/M/G suffix */
  K_DAYS,    /* whole days, kept as uint64_t milliseconds */
  K_LEVEL,   /* log level name */
  K_SYNC,    /* "normal" | "full" into sync_full */
  K_LOOP,    /* "auto" | "libuv" | "poll" into event_loop */
  K_SHARD,   /* a further PostgreSQL database, appended to pg_shards */
  K_FLAG     /* a switch without a value on the command line; sets an int to 1
                (in the file: true/false) */
};

typedef struct option {
  const char *name; /* the flag without "--" and the file key */
  const char *arg;  /* metavar in --help */
  enum kind kind;
  size_t off; /* offsetof(wd_config, ...) */
  uint64_t min, max;
  const char *help;
} option;

#define OFF(field) offsetof(wd_config, field)
#define SRV(field) offsetof(wd_config, server.field)

static const option options[] = {
    {NULL, NULL, K_SECTION, 0, 0, 0, "Network"},
    {"host", "ADDR", K_STR, OFF(host), 0, 0,
     "address to listen on: an IPv4 or IPv6 address, a host name, or * for every interface"},
    {"port", "N", K_PORT, OFF(port), 0, 65535,
     "TCP port; 0 picks a free one (the listening line says which)"},
    {"listen", "HOST:PORT", K_LISTEN, 0, 0, 0, "host and port at once ([ADDR]:PORT for IPv6)"},
    {"tls-cert", "FILE", K_STR, OFF(tls_cert), 0, 0,
     "PEM certificate (chain): with --tls-key, serve wss:// and https:// only"},
    {"tls-key", "FILE", K_STR, OFF(tls_key), 0, 0, "PEM private key of --tls-cert"},
    {"max-connections", "N", K_U32, OFF(max_connections), 0, UINT32_MAX,
     "WebSocket connections at once, further upgrades are refused (0: no limit but the "
     "file descriptor limit)"},
    {"max-prelogin-per-address", "N", K_U32, OFF(max_prelogin_per_addr), 0, UINT32_MAX,
     "WebSocket connections not logged in (yet) at once from one source address (an IPv4 "
     "address, an IPv6 /64); a further upgrade from it is answered 429 (0: no cap; behind a "
     "reverse proxy every connection has the proxy's address: cap there instead)"},
    {"metrics-listen", "HOST:PORT", K_METRICS, 0, 0, 0,
     "where GET /metrics (and /healthz) are served: plain HTTP on a listener of its own, "
     "never on the client port; port 0 picks a free one (the metrics line says which); off: "
     "nowhere. Keep it on loopback or a private network"},
    {"max-queue", "BYTES", K_SIZE, OFF(max_queue), 4096, SIZE_MAX,
     "output queued to one connection beyond which it is dropped as too slow"},
    {"sndbuf", "BYTES", K_SIZE, OFF(sndbuf), 0, 64u * 1024 * 1024,
     "the kernel's send buffer of each connection (SO_SNDBUF; 0: the system's, which grows "
     "as needed); what a slow reader leaves unread past it waits in whisperd (--max-queue)"},
    {"close-timeout-ms", "MS", K_U64, OFF(close_flush_ms), 0, 3600000,
     "how long a connection the server closes may take to receive its last frames"},
    {"shutdown-timeout-ms", "MS", K_U64, OFF(shutdown_ms), 0, 3600000,
     "on SIGTERM/SIGINT, how long queued output may take to flush before connections are cut"},
    {"event-loop", "LOOP", K_LOOP, 0, 0, 0,
     "libuv: epoll through libwebsockets' libuv plugin, the cost of an event independent of "
     "the connections open; poll: libwebsockets' own poll() loop, which goes through every "
     "connection on every event (slow past a few thousand); auto: libuv if it loads, else "
     "poll with a warning"},

    {NULL, NULL, K_SECTION, 0, 0, 0, "Store"},
    {"db", "PATH", K_STR, OFF(db_path), 0, 0,
     "the SQLite store (created if missing); :memory: for a volatile store (tests only)"},
    {"key-file", "PATH", K_STR, OFF(key_file), 0, 0,
     "the store key: 32 raw bytes; created with random bytes and mode 0600 if missing "
     "(default: the --db path with .key appended)"},
    {"synchronous", "MODE", K_SYNC, 0, 0, 0,
     "normal: WAL with synchronous=NORMAL, nothing committed is lost when the process "
     "crashes, the last commits may be lost on power loss or an OS crash; full: fsync on "
     "every commit, nothing is lost either way (slower)"},
    {"sync-full", NULL, K_FLAG, OFF(sync_full), 0, 0, "the same as --synchronous full"},
    {"busy-timeout-ms", "MS", K_UINT, OFF(busy_timeout_ms), 0, 600000,
     "how long a transaction waits for another process holding the store"},
    {"pg", "CONNINFO", K_STR, OFF(pg), 0, 0,
     "keep the store in PostgreSQL instead of --db (libpq keywords or a postgresql:// URI); "
     "durability is the server's (synchronous_commit)"},
    {"pg-shard", "CONNINFO", K_SHARD, 0, 0, 0,
     "a further database: the store is sharded by account over --pg (shard 0, the coordinator) "
     "and each --pg-shard, in order (the same on every node; two-phase commit across them, "
     "max_prepared_transactions > 0)"},
    {"pg-table", "NAME", K_STR, OFF(pg_table), 0, 0,
     "the table of --pg (default whisper_records): one per cluster"},
    {"pg-batch-lock-timeout", "MS", K_U32, OFF(pg_batch_lock_ms), 0, 3600000,
     "how long a group-commit batch waits for a lock another node holds before it gives up "
     "(its earlier frames commit, the frame runs again alone, under the 5 s lock timeout; "
     "default 50; 0: 5 s, as a frame alone)"},
    {"node", "N", K_U32, OFF(node), 0, 255,
     "cluster mode: this node's number (1-255, unique), several whisperd over the same --pg, "
     "relays through LISTEN/NOTIFY; 0: a single node"},
    {"no-group-commit", NULL, K_FLAG, OFF(no_group_commit), 0, 0,
     "one store transaction (one commit) per frame, instead of one for all the frames of a "
     "pass of the event loop (for comparisons)"},
    {"group-commit", NULL, K_FLAG, OFF(group_commit), 0, 0,
     "group commit, also in cluster mode (--node): the default everywhere now (a frame that "
     "meets a lock conflict with another node runs again alone, docs/deploy.md); kept for "
     "older command lines"},
    {"record-cache", "N", K_SIZE, OFF(record_cache), 0, SIZE_MAX,
     "records (accounts, devices, groups, block lists) kept in memory between passes, read "
     "from the store once; 0: read again by every pass (needed when another process writes "
     "the store)"},

    {NULL, NULL, K_SECTION, 0, 0, 0, "Protocol limits (whisper_server_config_t)"},
    {"max-frame", "BYTES", K_SIZE, SRV(max_frame), 1024, 64u * 1024 * 1024,
     "largest frame; a bigger WebSocket message closes the connection (1009)"},
    {"rate", "N", K_U32, SRV(rate_per_sec), 1, UINT32_MAX, "frames per second per device"},
    {"rate-burst", "N", K_U32, SRV(rate_burst), 1, UINT32_MAX, "token bucket size of --rate"},
    {"heartbeat-ms", "MS", K_U64, SRV(heartbeat_ms), 1000, UINT32_MAX,
     "a connection silent this long is closed"},
    {"auth-timeout-ms", "MS", K_U64, SRV(auth_timeout_ms), 1000, UINT32_MAX,
     "a connection not logged in by then is closed"},
    {"max-group-members", "N", K_U32, SRV(max_group_members), 2, UINT32_MAX, "members per group"},
    {"max-devices", "N", K_U32, SRV(max_devices), 1, UINT32_MAX, "devices per account"},
    {"max-prekeys", "N", K_U32, SRV(max_prekeys), 1, UINT32_MAX,
     "one-time prekeys kept per device"},
    {"max-mailbox", "N", K_U32, SRV(max_mailbox), 1, UINT32_MAX,
     "entries per mailbox; a send beyond it gets ERR_LIMIT"},
    {"deliver-window", "N", K_U32, SRV(deliver_window), 1, UINT32_MAX,
     "unacknowledged entries pushed to a connection at once"},
    {"typing-ttl-ms", "MS", K_U64, SRV(typing_ttl_ms), 1, UINT32_MAX,
     "a typing notice lapses after this"},
    {"typing-min-ms", "MS", K_U64, SRV(typing_min_ms), 0, UINT32_MAX,
     "at most one typing notice per device and conversation per this"},
    {"presence-grace-ms", "MS", K_U64, SRV(presence_grace_ms), 0, UINT32_MAX,
     "offline is announced this long after a device's last connection closed"},
    {"max-reports", "N", K_U32, SRV(max_reports), 1, UINT32_MAX,
     "users' reports kept for moderators; the oldest go beyond it"},

    {NULL, NULL, K_SECTION, 0, 0, 0, "Abuse limits (docs/security.md, \"whisperd\")"},
    {"max-mailbox-bytes", "BYTES", K_BYTES, SRV(max_mailbox_bytes), 1, UINT64_MAX,
     "bytes of entries waiting in one mailbox; a send beyond it gets ERR_LIMIT"},
    {"sender-max-entries", "N", K_U32, SRV(sender_max_entries), 1, UINT32_MAX,
     "entries one other account may have waiting in one mailbox (ERR_LIMIT beyond)"},
    {"sender-max-bytes", "BYTES", K_BYTES, SRV(sender_max_bytes), 1, UINT64_MAX,
     "bytes one other account may have waiting in one mailbox (ERR_LIMIT beyond)"},
    {"prekeys-per-requester", "N", K_U32, SRV(prekeys_per_requester), 1, UINT32_MAX,
     "one-time prekeys a device may take per hour; past it bundles carry the signed prekey alone"},
    {"prekeys-per-target", "N", K_U32, SRV(prekeys_per_target), 1, UINT32_MAX,
     "one-time prekeys of a device handed out per hour; past it the signed prekey alone"},
    {"register-per-source", "N", K_U32, SRV(register_per_source), 1, UINT32_MAX,
     "accounts one source address may create per hour (ERR_RATE beyond)"},
    {"link-per-source", "N", K_U32, SRV(link_per_source), 1, UINT32_MAX,
     "link codes one source address may ask for per hour (ERR_RATE beyond)"},
    {"prelogin-per-source", "N", K_U32, SRV(prelogin_per_source), 1, UINT32_MAX,
     "connections of one source address not logged in at once; more are closed"},
    {"sent-ttl-ms", "MS", K_U64, SRV(sent_ttl_ms), 1000, UINT64_MAX,
     "a Send's idempotency record answers a resend at least this long (at most twice), then "
     "is pruned"},

    {NULL, NULL, K_SECTION, 0, 0, 0, "Blobs (encrypted attachments, tus at /v1/blobs)"},
    {"blob-dir", "DIR", K_STR, OFF(blob_dir), 0, 0,
     "where the blobs are kept, made on the first upload (default: a blobs folder beside "
     "--db; with --db :memory: no blob store unless this is given; with --pg the directory "
     "every node of the cluster shares, the blobs' metadata then being in PostgreSQL)"},
    {"blob-max-size", "BYTES", K_BYTES, SRV(blob_max_size), 1, UINT64_MAX,
     "the largest blob (Upload-Length beyond it: 413)"},
    {"blob-quota", "BYTES", K_BYTES, SRV(blob_quota), 1, UINT64_MAX,
     "bytes of blobs per account, counted by Upload-Length (a creation beyond it: 403)"},
    {"blob-ttl-days", "N", K_DAYS, SRV(blob_ttl_ms), 1, 36500,
     "a blob is deleted this many days after its creation, complete or not"},
    {"upload-token-ttl-ms", "MS", K_U64, SRV(upload_token_ttl_ms), 1000, UINT32_MAX,
     "how long an upload token (UploadAuth) is good for"},
    {"clock-offset-ms", "MS", K_U64, OFF(clock_offset_ms), 0, UINT64_MAX / 2,
     "for tests only: added to the clock the blob store reads (creation times, expiry)"},

    {NULL, NULL, K_SECTION, 0, 0, 0, "Moderation"},
    {"reports", NULL, K_FLAG, OFF(reports), 0, 0,
     "print the reports users made (their plaintext included) from the store as JSON lines, "
     "oldest first, and exit without serving; the store must exist"},
    {"reports-after", "N", K_U64, OFF(reports_after), 0, UINT64_MAX,
     "with --reports: only the reports numbered above N"},

    {NULL, NULL, K_SECTION, 0, 0, 0, "Logging"},
    {"log-level", "LEVEL", K_LEVEL, OFF(log_level), 0, 0,
     "error, warn, info or debug (debug: one line per frame, sizes only)"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])
#define DAY_MS (24ULL * 60 * 60 * 1000)

void wd_config_init(wd_config *cfg) {
  static const whisper_server_config_t server_defaults = WHISPER_SERVER_CONFIG_INIT;
  memset(cfg, 0, sizeof *cfg);
  cfg->host = strdup("127.0.0.1");
  cfg->port = 8480;
  cfg->db_path = strdup("whisperd.db");
  cfg->key_file = NULL;
  cfg->sync_full = 0;
  cfg->busy_timeout_ms = 5000;
  cfg->log_level = WD_LOG_INFO;
  cfg->shutdown_ms = 2000;
  cfg->close_flush_ms = 5000;
  cfg->max_queue = 64u * 1024 * 1024;
  cfg->max_connections = 0;
  cfg->record_cache = 100000;
  cfg->pg_batch_lock_ms = 50;
  cfg->server = server_defaults;
  cfg->server.deliver_window = 1024; /* a backlog in batches of 256 (tests/bench/README.md, figure 5) */
  cfg->metrics_host = strdup("127.0.0.1");
  cfg->metrics_port = 9480;
  cfg->max_prelogin_per_addr = 32;
}

void wd_config_free(wd_config *cfg) {
  free(cfg->host);
  free(cfg->db_path);
  free(cfg->key_file);
  free(cfg->tls_cert);
  free(cfg->tls_key);
  free(cfg->blob_dir);
  free(cfg->pg);
  free(cfg->pg_table);
  for (size_t i = 0; i < cfg->n_pg_shards; i++) free(cfg->pg_shards[i]);
  free(cfg->pg_shards);
  free(cfg->metrics_host);
  memset(cfg, 0, sizeof *cfg);
}

static const option *find_option(const char *name, size_t len) {
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option *o = &options[i];
    if (o->kind != K_SECTION && strlen(o->name) == len && strncmp(o->name, name, len) == 0)
      return o;
  }
  return NULL;
}

/* Unsigned decimal with an optional size suffix; 0 or -1. */
static int parse_u64(const char *s, int allow_suffix, uint64_t *out) {
  if (*s < '0' || *s > '9') return -1; /* no sign, no blank, not empty */
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno) return -1;
  uint64_t mul = 1;
  if (allow_suffix && *end) {
    switch (*end) {
      case 'k':
      case 'K':
        mul = 1024;
        break;
      case 'm':
      case 'M':
        mul = 1024 * 1024;
        break;
      case 'g':
      case 'G':
        mul = 1024 * 1024 * 1024;
        break;
      default:
        return -1;
    }
    end++;
    if (*end == 'i' && end[1] == 'B')
      end += 2; /* KiB, MiB, GiB */
    else if (*end == 'B')
      end++;
  }
  if (*end) return -1;
  if (v > UINT64_MAX / mul) return -1;
  *out = (uint64_t)v * mul;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(s, yes[i]) == 0) return *out = 1, 0;
    if (strcmp(s, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

static int set_str(char **field, const char *value) {
  char *copy = strdup(value);
  if (!copy) return -1;
  free(*field);
  *field = copy;
  return 0;
}

/* "HOST:PORT", "[V6]:PORT" into *host (replaced) and *port. */
static int set_hostport(char **host_out, unsigned *port_out, const char *value, const char *name,
                        const char *where) {
  const char *colon;
  char *host;
  if (value[0] == '[') {
    const char *close = strchr(value, ']');
    if (!close || close[1] != ':') goto bad;
    host = strndup(value + 1, (size_t)(close - value - 1));
    colon = close + 1;
  } else {
    colon = strrchr(value, ':');
    if (!colon) goto bad;
    host = strndup(value, (size_t)(colon - value));
  }
  if (!host) return -1;
  uint64_t port;
  if (parse_u64(colon + 1, 0, &port) || port > 65535) {
    free(host);
    goto bad;
  }
  free(*host_out);
  *host_out = host;
  *port_out = (unsigned)port;
  return 0;
bad:
  fprintf(stderr, "whisperd: %s: %s: expected HOST:PORT or [ADDR]:PORT, got '%s'\n", where, name,
          value);
  return -1;
}

static int set_listen(wd_config *cfg, const char *value, const char *where) {
  return set_hostport(&cfg->host, &cfg->port, value, "listen", where);
}

/* Applies one option; `where` names the source for messages. */
static int set_option(wd_config *cfg, const option *o, const char *value, const char *where) {
  char *base = (char *)cfg;
  uint64_t v = 0;
  switch (o->kind) {
    case K_SECTION:
      return -1;
    case K_STR:
      if (!*value) {
        fprintf(stderr, "whisperd: %s: %s: empty value\n", where, o->name);
        return -1;
      }
      if (set_str((char **)(void *)(base + o->off), value)) {
        fprintf(stderr, "whisperd: out of memory\n");
        return -1;
      }
      return 0;
    case K_LISTEN:
      return set_listen(cfg, value, where);
    case K_SHARD: {
      char **more = realloc(cfg->pg_shards, (cfg->n_pg_shards + 1) * sizeof *more);
      if (more == NULL) return -1;
      cfg->pg_shards = more;
      if ((more[cfg->n_pg_shards] = strdup(value)) == NULL) return -1;
      cfg->n_pg_shards++;
      return 0;
    }
    case K_METRICS:
      if (strcmp(value, "off") == 0) {
        free(cfg->metrics_host);
        cfg->metrics_host = NULL;
        return 0;
      }
      return set_hostport(&cfg->metrics_host, &cfg->metrics_port, value,
                          "metrics-listen (or off)", where);
    case K_LEVEL: {
      int level = wd_log_level_parse(value);
      if (level < 0) {
        fprintf(stderr, "whisperd: %s: log-level: expected error, warn, info or debug, got '%s'\n",
                where, value);
        return -1;
      }
      cfg->log_level = level;
      return 0;
    }
    case K_SYNC:
      if (strcmp(value, "normal") == 0 || strcmp(value, "NORMAL") == 0)
        cfg->sync_full = 0;
      else if (strcmp(value, "full") == 0 || strcmp(value, "FULL") == 0)
        cfg->sync_full = 1;
      else {
        fprintf(stderr, "whisperd: %s: synchronous: expected normal or full, got '%s'\n", where,
                value);
        return -1;
      }
      return 0;
    case K_LOOP:
      if (strcmp(value, "auto") == 0)
        cfg->event_loop = WD_LOOP_AUTO;
      else if (strcmp(value, "libuv") == 0)
        cfg->event_loop = WD_LOOP_LIBUV;
      else if (strcmp(value, "poll") == 0)
        cfg->event_loop = WD_LOOP_POLL;
      else {
        fprintf(stderr, "whisperd: %s: event-loop: expected auto, libuv or poll, got '%s'\n",
                where, value);
        return -1;
      }
      return 0;
    case K_FLAG: {
      int b;
      if (parse_bool(value, &b)) {
        fprintf(stderr, "whisperd: %s: %s: expected true or false, got '%s'\n", where, o->name,
                value);
        return -1;
      }
      *(int *)(void *)(base + o->off) = b;
      return 0;
    }
    case K_PORT:
    case K_UINT:
    case K_U32:
    case K_U64:
    case K_SIZE:
    case K_BYTES:
    case K_DAYS: {
      int sized = o->kind == K_SIZE || o->kind == K_BYTES;
      if (parse_u64(value, sized, &v) || v < o->min || v > o->max) {
        fprintf(stderr, "whisperd: %s: %s: expected a whole number from %llu to %llu%s, got '%s'\n",
                where, o->name, (unsigned long long)o->min, (unsigned long long)o->max,
                sized ? " (K, M, G suffixes allowed)" : "", value);
        return -1;
      }
      switch (o->kind) {
        case K_PORT:
        case K_UINT:
          *(unsigned *)(void *)(base + o->off) = (unsigned)v;
          break;
        case K_U32:
          *(uint32_t *)(void *)(base + o->off) = (uint32_t)v;
          break;
        case K_U64:
        case K_BYTES:
          *(uint64_t *)(void *)(base + o->off) = v;
          break;
        case K_DAYS:
          *(uint64_t *)(void *)(base + o->off) = v * DAY_MS;
          break;
        default:
          *(size_t *)(void *)(base + o->off) = (size_t)v;
          break;
      }
      return 0;
    }
  }
  return -1;
}

/* The default of an option as text, for --help ("" if it has none to show). */
static void format_default(const wd_config *cfg, const option *o, char *buf, size_t cap) {
  const char *base = (const char *)cfg;
  buf[0] = 0;
  switch (o->kind) {
    case K_STR: {
      const char *s = *(char *const *)(const void *)(base + o->off);
      if (s) snprintf(buf, cap, "%s", s);
      break;
    }
    case K_PORT:
    case K_UINT:
      snprintf(buf, cap, "%u", *(const unsigned *)(const void *)(base + o->off));
      break;
    case K_U32:
      snprintf(buf, cap, "%lu", (unsigned long)*(const uint32_t *)(const void *)(base + o->off));
      break;
    case K_U64:
      snprintf(buf, cap, "%llu",
               (unsigned long long)*(const uint64_t *)(const void *)(base + o->off));
      break;
    case K_SIZE: {
      size_t v = *(const size_t *)(const void *)(base + o->off);
      if (v && v % (1024 * 1024) == 0)
        snprintf(buf, cap, "%zuM", v / (1024 * 1024));
      else if (v && v % 1024 == 0)
        snprintf(buf, cap, "%zuK", v / 1024);
      else
        snprintf(buf, cap, "%zu", v);
      break;
    }
    case K_BYTES: {
      uint64_t v = *(const uint64_t *)(const void *)(base + o->off);
      static const char units[] = "GMK";
      for (int i = 0; i < 3; i++) {
        uint64_t u = 1ULL << (10 * (3 - i));
        if (v && v % u == 0) {
          snprintf(buf, cap, "%llu%c", (unsigned long long)(v / u), units[i]);
          return;
        }
      }
      snprintf(buf, cap, "%llu", (unsigned long long)v);
      break;
    }
    case K_DAYS:
      snprintf(buf, cap, "%llu",
               (unsigned long long)(*(const uint64_t *)(const void *)(base + o->off) / DAY_MS));
      break;
    case K_LEVEL:
      snprintf(buf, cap, "%s", wd_log_level_name(cfg->log_level));
      break;
    case K_SYNC:
      snprintf(buf, cap, "%s", cfg->sync_full ? "full" : "normal");
      break;
    case K_LOOP:
      snprintf(buf, cap, "%s", cfg->event_loop == WD_LOOP_LIBUV  ? "libuv"
                               : cfg->event_loop == WD_LOOP_POLL ? "poll"
                                                                 : "auto");
      break;
    case K_LISTEN:
      snprintf(buf, cap, "%s:%u", cfg->host, cfg->port);
      break;
    case K_METRICS:
      if (!cfg->metrics_host)
        snprintf(buf, cap, "off");
      else if (strchr(cfg->metrics_host, ':'))
        snprintf(buf, cap, "[%s]:%u", cfg->metrics_host, cfg->metrics_port);
      else
        snprintf(buf, cap, "%s:%u", cfg->metrics_host, cfg->metrics_port);
      break;
    case K_FLAG:
    case K_SECTION:
    case K_SHARD:
      break;
  }
}

/* Writes `text` wrapped at `width`; it starts at column `col`, and every
 * further line is indented by `indent`. */
static void wrap(FILE *out, const char *text, int col, int indent, int width) {
  const char *p = text;
  int first = 1;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    const char *word = p;
    while (*p && *p != ' ') p++;
    int wl = (int)(p - word);
    if (!first && col + 1 + wl > width) {
      fprintf(out, "\n%*s", indent, "");
      col = indent;
    } else if (!first) {
      fputc(' ', out);
      col++;
    }
    fwrite(word, 1, (size_t)wl, out);
    col += wl;
    first = 0;
  }
  fputc('\n', out);
}

void wd_config_usage(FILE *out) {
  wd_config defaults;
  wd_config_init(&defaults);
  fprintf(out,
          "Usage: whisperd [--config FILE] [OPTIONS]\n"
          "\n"
          "The reference server of libwhisper's sync protocol (docs/sync-protocol.md).\n"
          "On the client port (--listen):\n"
          "  ws[s]://HOST:PORT" WHISPERD_WS_PATH "  the WebSocket endpoint (subprotocol\n"
          "                           " WHISPERD_WS_PROTOCOL ", or none offered)\n"
          "  GET /healthz             200 \"ok\" (503 while shutting down)\n"
          "  /v1/blobs                the blob store: tus 1.0.0 uploads with an upload\n"
          "                           token, GET /v1/blobs/ID downloads (with Range)\n"
          "On the metrics port (--metrics-listen, loopback by default), plain HTTP:\n"
          "  GET /metrics             Prometheus text format 0.0.4\n"
          "  GET /healthz             as above\n"
          "\n"
          "Every option is a flag (--name VALUE or --name=VALUE) and a config file key\n"
          "(name = VALUE, one per line, # starts a comment). Flags win over the file.\n"
          "\n"
          "  --config FILE            read options from FILE first\n"
          "  --help, -h               this text\n"
          "  --version                the versions of whisperd and libwhisper\n");
  for (size_t i = 0; i < N_OPTIONS; i++) {
    const option *o = &options[i];
    if (o->kind == K_SECTION) {
      fprintf(out, "\n%s:\n", o->help);
      continue;
    }
    char head[64], def[64];
    snprintf(head, sizeof head, "  --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    int col = 27;
    if (strlen(head) >= 26)
      fprintf(out, "%s\n%27s", head, "");
    else
      fprintf(out, "%-27s", head);
    format_default(&defaults, o, def, sizeof def);
    char text[640];
    if (def[0] && o->kind != K_LISTEN)
      snprintf(text, sizeof text, "%s (default: %s)", o->help, def);
    else
      snprintf(text, sizeof text, "%s", o->help);
    wrap(out, text, col, 27, 79);
  }
  fprintf(out,
          "\n"
          "Signals: SIGTERM or SIGINT stops accepting, lets queued output flush (at most\n"
          "--shutdown-timeout-ms), closes the connections and the store, and exits 0.\n"
          "A second signal cuts the flush short.\n");
  wd_config_free(&defaults);
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = 0;
  return s;
}

/* key = value lines. '#' starts a comment at the start of a line or after
 * a blank; a value may be in double quotes (kept as is inside). */
static int load_file(wd_config *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "whisperd: cannot read config file %s: %s\n", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  unsigned lineno = 0;
  int rc = 0;
  while (rc == 0 && getline(&line, &cap, f) >= 0) {
    lineno++;
    char where[512];
    snprintf(where, sizeof where, "%s:%u", path, lineno);
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      fprintf(stderr, "whisperd: %s: expected 'key = value'\n", where);
      rc = -1;
      break;
    }
    *eq = 0;
    char *key = trim(s);
    char *value = trim(eq + 1);
    if (*value == '"') {
      char *endq = strchr(value + 1, '"');
      const char *rest = endq ? trim(endq + 1) : NULL;
      if (!endq || (*rest && *rest != '#')) {
        fprintf(stderr, "whisperd: %s: unterminated or trailing text after a quoted value\n",
                where);
        rc = -1;
        break;
      }
      *endq = 0;
      value++;
    } else {
      for (char *p = value; *p; p++)
        if (*p == '#' && (p == value || p[-1] == ' ' || p[-1] == '\t')) {
          *p = 0;
          break;
        }
      value = trim(value);
    }
    const option *o = find_option(key, strlen(key));
    if (!o) {
      if (strcmp(key, "config") == 0)
        fprintf(stderr, "whisperd: %s: a config file cannot include another\n", where);
      else
        fprintf(stderr, "whisperd: %s: unknown key '%s' (see whisperd --help)\n", where, key);
      rc = -1;
      break;
    }
    if (!*value) {
      fprintf(stderr, "whisperd: %s: %s: no value\n", where, key);
      rc = -1;
      break;
    }
    rc = set_option(cfg, o, value, where);
  }
  if (rc == 0 && ferror(f)) {
    fprintf(stderr, "whisperd: error reading %s\n", path);
    rc = -1;
  }
  free(line);
  fclose(f);
  return rc;
}

/* One pass over argv. With apply = 0 it checks the syntax and finds
 * --config / --help / --version; with apply = 1 it sets the options. */
static int scan_args(wd_config *cfg, int argc, char **argv, int apply, const char **config_path,
                     int *help, int *version) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      *help = 1;
      continue;
    }
    if (strcmp(a, "--version") == 0) {
      *version = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
      fprintf(stderr, "whisperd: unexpected argument '%s' (see whisperd --help)\n", a);
      return -1;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const char *value = eq ? eq + 1 : NULL;

    if (nlen == 6 && strncmp(name, "config", 6) == 0) {
      if (!value) {
        if (i + 1 >= argc) {
          fprintf(stderr, "whisperd: --config needs a value\n");
          return -1;
        }
        value = argv[++i];
      }
      *config_path = value;
      continue;
    }
    const option *o = find_option(name, nlen);
    if (!o) {
      fprintf(stderr, "whisperd: unknown option '--%.*s' (see whisperd --help)\n", (int)nlen, name);
      return -1;
    }
    if (o->kind == K_FLAG) {
      if (value) {
        fprintf(stderr, "whisperd: --%s takes no value\n", o->name);
        return -1;
      }
      if (apply) *(int *)(void *)((char *)cfg + o->off) = 1;
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) {
        fprintf(stderr, "whisperd: --%s needs a value (%s)\n", o->name, o->arg);
        return -1;
      }
      value = argv[++i];
    }
    if (apply && set_option(cfg, o, value, "command line")) return -1;
  }
  return 0;
}

/* The default blob directory: "blobs" beside the database. */
static int set_blob_dir(wd_config *cfg) {
  const char *slash = strrchr(cfg->db_path, '/');
  size_t dn = slash ? (size_t)(slash - cfg->db_path) + 1 : 0;
  cfg->blob_dir = malloc(dn + sizeof "blobs");
  if (!cfg->blob_dir) {
    fprintf(stderr, "whisperd: out of memory\n");
    return -1;
  }
  memcpy(cfg->blob_dir, cfg->db_path, dn);
  memcpy(cfg->blob_dir + dn, "blobs", sizeof "blobs");
  return 0;
}

int wd_config_from_args(wd_config *cfg, int argc, char **argv) {
  const char *config_path = NULL;
  int help = 0, version = 0;
  if (scan_args(cfg, argc, argv, 0, &config_path, &help, &version)) return -1;
  if (help) {
    wd_config_usage(stdout);
    return 1;
  }
  if (version) {
    printf("whisperd %s (libwhisper %u, sync protocol %d)\n", WHISPERD_VERSION, whisper_version(),
           WHISPER_SYNC_PROTOCOL);
    return 1;
  }
  if (config_path && load_file(cfg, config_path)) return -1;
  if (scan_args(cfg, argc, argv, 1, &config_path, &help, &version)) return -1;

  if (!cfg->tls_cert != !cfg->tls_key) {
    fprintf(stderr, "whisperd: --tls-cert and --tls-key go together\n");
    return -1;
  }
  if (!cfg->blob_dir && strcmp(cfg->db_path, ":memory:") != 0 && set_blob_dir(cfg)) return -1;
  if (!cfg->key_file && strcmp(cfg->db_path, ":memory:") != 0) {
    size_t n = strlen(cfg->db_path);
    cfg->key_file = malloc(n + 5);
    if (!cfg->key_file) {
      fprintf(stderr, "whisperd: out of memory\n");
      return -1;
    }
    memcpy(cfg->key_file, cfg->db_path, n);
    memcpy(cfg->key_file + n, ".key", 5);
  }
  return 0;
}
