/*
 * whisperd: startup and shutdown.
 *
 *   1. the options (config.c): defaults, then --config FILE, then flags
 *   2. the store key from --key-file (made with 32 random bytes, mode 0600,
 *      if missing) and the SQLite store (whisper_store_sqlite_open)
 *   3. the server core (whisper_server_new) with the limits
 *   4. SIGTERM / SIGINT go through a self-pipe into the event loop
 *   5. the blob store (blobs.c) is opened: repaired after a crash, expired
 *      blobs deleted (with --pg: the directory shared by the nodes, the
 *      metadata in PostgreSQL, blobmeta_pg.c)
 *   6. net.c listens, prints "whisperd: listening on HOST:PORT" and serves
 *      until a signal's graceful shutdown has finished (with --reports:
 *      prints the stored reports instead, reports.c, and exits)
 *   7. teardown: connections, the blob store, the core, the store;
 *      "whisperd: stopped"
 *
 * Durability: the core commits every state change before it answers (a
 * Send is in every mailbox before its sender hears Sent), so whatever a
 * client was told is in the store when the process dies, however it dies.
 * With --synchronous normal (the default: WAL, synchronous=NORMAL) a crash
 * of the process loses nothing; a power loss or OS crash may lose the last
 * commits (never corrupting the store). --synchronous full makes every
 * commit reach the disk before the answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <whisper/pgstore.h>

#include "blobs.h"
#include "whisperd.h"

#define KEY_LEN 32

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;
  ssize_t r = write(signal_pipe[1], &b, 1);
  (void)r; /* the pipe full means a shutdown is already on its way */
  errno = saved;
}

static int setup_signals(void) {
  if (pipe(signal_pipe) != 0) {
    fprintf(stderr, "whisperd: pipe: %s\n", strerror(errno));
    return -1;
  }
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(signal_pipe[i], F_GETFL);
    if (fl < 0 || fcntl(signal_pipe[i], F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC) < 0) {
      fprintf(stderr, "whisperd: fcntl: %s\n", strerror(errno));
      return -1;
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
    fprintf(stderr, "whisperd: sigaction: %s\n", strerror(errno));
    return -1;
  }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static void restore_signals(void) {
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  for (int i = 0; i < 2; i++)
    if (signal_pipe[i] >= 0) {
      close(signal_pipe[i]);
      signal_pipe[i] = -1;
    }
}

static int read_full(int fd, uint8_t *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t r = read(fd, buf + off, len - off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    off += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    off += (size_t)w;
  }
  return 0;
}

/* Reads the 32-byte store key, or makes the file: 32 random bytes, mode
 * 0600, flushed to disk before the store is made with it. */
static int load_key(const char *path, uint8_t key[KEY_LEN]) {
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st;
      if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "whisperd: key file %s is not a regular file\n", path);
        close(fd);
        return -1;
      }
      if (st.st_size != KEY_LEN) {
        fprintf(stderr, "whisperd: key file %s must hold exactly %d bytes (it has %lld)\n", path,
                KEY_LEN, (long long)st.st_size);
        close(fd);
        return -1;
      }
      if (st.st_mode & (S_IRWXG | S_IRWXO))
        wd_warn("key file %s is accessible to group or others (mode %03o); chmod 600 it", path,
                (unsigned)(st.st_mode & 0777));
      int rc = read_full(fd, key, KEY_LEN);
      close(fd);
      if (rc) {
        fprintf(stderr, "whisperd: cannot read key file %s\n", path);
        return -1;
      }
      return 0;
    }
    if (errno != ENOENT) {
      fprintf(stderr, "whisperd: cannot open key file %s: %s\n", path, strerror(errno));
      return -1;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue; /* made meanwhile: read it */
      fprintf(stderr, "whisperd: cannot create key file %s: %s\n", path, strerror(errno));
      return -1;
    }
    randombytes_buf(key, KEY_LEN);
    if (fchmod(fd, 0600) != 0 || write_full(fd, key, KEY_LEN) != 0 || fsync(fd) != 0) {
      fprintf(stderr, "whisperd: cannot write key file %s: %s\n", path, strerror(errno));
      close(fd);
      unlink(path);
      sodium_memzero(key, KEY_LEN);
      return -1;
    }
    close(fd);
    wd_info(
        "created key file %s (32 random bytes, mode 0600): keep it with the database, "
        "the store cannot be read without it",
        path);
    return 0;
  }
  fprintf(stderr, "whisperd: cannot read or create key file %s\n", path);
  return -1;
}

static int open_store(const wd_config *cfg, whisper_store **store) {
  if (cfg->pg) {
    whisper_pg_options_t o = WHISPER_PG_OPTIONS_INIT;
    o.table = cfg->pg_table;
    /* a batch gives up a lock wait soon: see --pg-batch-lock-timeout */
    o.savepoint_lock_timeout_ms = cfg->pg_batch_lock_ms;
    const char *why = NULL, *infos[64];
    if (cfg->n_pg_shards > 63) {
      fprintf(stderr, "whisperd: at most 64 shards\n");
      return -1;
    }
    infos[0] = cfg->pg;
    for (size_t i = 0; i < cfg->n_pg_shards; i++) infos[i + 1] = cfg->pg_shards[i];
    int rc = whisper_store_pg_open_sharded(store, infos, cfg->n_pg_shards + 1, &o, &why);
    if (rc != WHISPER_OK) {
      fprintf(stderr, "whisperd: cannot open the PostgreSQL store: %s%s%s\n",
              whisper_strerror(rc), why && *why ? ": " : "", why ? why : "");
      return -1;
    }
    wd_info("store in PostgreSQL, table %s, %zu shard%s",
            cfg->pg_table ? cfg->pg_table : "whisper_records", cfg->n_pg_shards + 1,
            cfg->n_pg_shards ? "s" : "");
    return 0;
  }
  if (cfg->node) {
    fprintf(stderr, "whisperd: --node needs --pg: the nodes of a cluster share one store\n");
    return -1;
  }
  if (strcmp(cfg->db_path, ":memory:") == 0) {
    int rc = whisper_store_memory_new(store);
    if (rc != WHISPER_OK) {
      fprintf(stderr, "whisperd: cannot make a memory store: %s\n", whisper_strerror(rc));
      return -1;
    }
    wd_warn("the store is in memory: everything is lost when whisperd stops");
    return 0;
  }
  uint8_t key[KEY_LEN];
  if (load_key(cfg->key_file, key)) return -1;
  whisper_sqlite_options_t opts = WHISPER_SQLITE_OPTIONS_INIT;
  opts.key = key;
  opts.key_len = KEY_LEN;
  opts.synchronous = cfg->sync_full ? WHISPER_SYNC_FULL : WHISPER_SYNC_NORMAL;
  opts.busy_timeout_ms = cfg->busy_timeout_ms;
  const char *why = NULL;
  int rc = whisper_store_sqlite_open(store, cfg->db_path, &opts, &why);
  sodium_memzero(key, sizeof key);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisperd: cannot open the store %s: %s%s%s\n", cfg->db_path,
            whisper_strerror(rc), why ? ": " : "", why ? why : "");
    if (rc == WHISPER_EKEY)
      fprintf(stderr, "whisperd: %s is not the key this store was made with\n", cfg->key_file);
    return -1;
  }
  wd_info("store %s open (synchronous=%s)", cfg->db_path, cfg->sync_full ? "FULL" : "NORMAL");
  return 0;
}

int main(int argc, char **argv) {
  wd_config cfg;
  wd_config_init(&cfg);
  if (!cfg.host || !cfg.db_path) {
    fprintf(stderr, "whisperd: out of memory\n");
    return 1;
  }
  int rc = wd_config_from_args(&cfg, argc, argv);
  if (rc != 0) {
    wd_config_free(&cfg);
    return rc > 0 ? 0 : 2;
  }
  wd_log_level = cfg.log_level;

  int status = 1;
  whisper_store *store = NULL;
  whisper_server *srv = NULL;
  wd_net *net = NULL;
  wd_blobs *blobs = NULL;
  wd_push_hook push;
  wd_push_log_hook(&push);

  if (sodium_init() < 0) {
    fprintf(stderr, "whisperd: libsodium cannot be initialised\n");
    goto out;
  }
  if (cfg.reports) { /* print the reports and exit: never makes a store or a key */
    if (strcmp(cfg.db_path, ":memory:") != 0 &&
        (access(cfg.db_path, F_OK) != 0 || !cfg.key_file || access(cfg.key_file, F_OK) != 0)) {
      fprintf(stderr, "whisperd: --reports: no store at %s, or no key file %s\n", cfg.db_path,
              cfg.key_file ? cfg.key_file : "");
      goto out;
    }
    if (open_store(&cfg, &store)) goto out;
    rc = whisper_server_new(&srv, store, &cfg.server);
    if (rc != WHISPER_OK) {
      fprintf(stderr, "whisperd: cannot read the store: %s\n", whisper_strerror(rc));
      goto out;
    }
    int printed = wd_reports_print(srv, cfg.reports_after, stdout);
    whisper_server_free(srv);
    whisper_store_free(store);
    wd_push_hook_destroy(&push);
    wd_config_free(&cfg);
    return printed == 0 ? 0 : 1;
  }
  if (setup_signals()) goto out;
  if (open_store(&cfg, &store)) goto out;

  rc = whisper_server_new(&srv, store, &cfg.server);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisperd: cannot start the server core: %s%s\n", whisper_strerror(rc),
            rc == WHISPER_EINVAL ? " (check the limits)" : "");
    goto out;
  }
  if (cfg.node) {
    rc = whisper_server_cluster(srv, cfg.node, wd_now_ms());
    if (rc != WHISPER_OK) {
      fprintf(stderr, "whisperd: cannot join the cluster as node %u\n", cfg.node);
      goto out;
    }
    wd_info("cluster mode: node %u", cfg.node);
    /* Group commit in cluster mode too: a frame of a batch that meets a
     * lock conflict with another node (a deadlock, a lock timeout) ends
     * its batch (the frames before it commit, releasing their locks) and
     * runs again alone (the server core, server_batch.c; docs/deploy.md).
     * --no-group-commit: a transaction per frame. */
    wd_info("cluster mode: %s", cfg.no_group_commit ? "a transaction per frame"
                                                   : "group commit (--no-group-commit: a "
                                                     "transaction per frame)");
  }
  /* whisperd is its store's only writer, but for the nodes of a cluster, which
   * share theirs: no records kept between batches there */
  whisper_server_record_cache_set(srv, cfg.node ? 0 : cfg.record_cache);
  if (!cfg.blob_dir)
    wd_info("no blob store: the store is in memory and no --blob-dir was given");
  else if (cfg.pg ? wd_blobs_open_cluster(&blobs, cfg.blob_dir, cfg.pg, cfg.pg_table,
                                          cfg.server.blob_ttl_ms, wd_blob_now(&cfg))
                  : wd_blobs_open(&blobs, cfg.blob_dir, cfg.server.blob_ttl_ms, wd_blob_now(&cfg)))
    goto out;
  if (wd_net_start(&net, &cfg, srv, &push, blobs, signal_pipe[0])) goto out;
  if (wd_net_run(net) == 0) status = 0;

out:
  wd_net_free(net); /* before the core: closing connections tells it */
  wd_blobs_free(blobs); /* after: a PATCH cut off by the shutdown was kept */
  whisper_server_free(srv);
  whisper_store_free(store); /* every answered change was committed already */
  wd_push_hook_destroy(&push);
  restore_signals();
  wd_config_free(&cfg);
  if (status == 0) fprintf(stderr, "whisperd: stopped\n");
  return status;
}
