/*
 * whisper-chat: a terminal client for whisperd.
 *
 *   whisper-chat --db FILE --key-file FILE --account NAME [--device N]
 *                --server ws://127.0.0.1:PORT/v1/ws [--script]
 *
 * The first run makes the device's identity (identity key, registration
 * id, signed prekey) in an encrypted SQLite store, whose 32-byte key is in
 * --key-file (made, mode 0600, when missing). The engine registers the
 * device on its first connection (a device other than 1 joins its account
 * through a link code that a device already on it approves), logs in,
 * resumes its mailbox and reconnects with backoff when the connection
 * drops. Commands come from stdin, one per line (commands.c); events and
 * results go to stdout, as human lines or, with --script, as one JSON
 * object per line (output.c). End of input, `quit`, SIGINT and SIGTERM
 * close the connection and the store cleanly.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat.h"

#define QUIT_FLUSH_MS 1500 /* at quit, how long queued frames may take to go out */
#define QUIT_CLOSE_MS 1000 /* and the close handshake */
#define IDLE_WAKE_MS 1000  /* the loop wakes at least this often */
#define RETRY_WAKE_MS 100  /* while not connected: the engine's backoff is checked this often */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static void usage(FILE *f) {
  fprintf(f,
          "usage: whisper-chat --db FILE --key-file FILE --account NAME [--device N]\n"
          "                    --server ws://HOST:PORT/v1/ws [--script]\n"
          "                    [--ca-file PEM] [--insecure] [--backoff-max-ms MS]\n"
          "                    [--no-read-receipts] [--invisible] [--anchor-file FILE]\n"
          "                    [--media-dir DIR] [--media-piece BYTES]\n"
          "\n"
          "  --db FILE           the device's encrypted store (made on the first run)\n"
          "  --key-file FILE     its 32-byte key (made, mode 0600, when missing)\n"
          "  --account NAME      the account (1..64 of a-z 0-9 . _ -)\n"
          "  --device N          the device id (default 1; another id joins the account\n"
          "                      through a link code a device on it approves)\n"
          "  --server URL        whisperd's WebSocket endpoint (ws:// or wss://)\n"
          "  --script            one JSON object per line on stdout, for tests and tools\n"
          "  --ca-file PEM       wss: the CA to check the server with\n"
          "  --insecure          wss: accept a self-signed certificate\n"
          "  --backoff-max-ms MS cap of the reconnect backoff (default 60000)\n"
          "  --no-read-receipts  do not send read receipts\n"
          "  --invisible         others do not see this account online\n"
          "  --anchor-file FILE  keeps the store's anchor here (outside the store): a store\n"
          "                      restored from an older copy is caught at the start\n"
          "  --media-dir DIR     where attachments in flight are kept, encrypted (default:\n"
          "                      <db>-media beside the store; downloads go to <db>-downloads)\n"
          "  --media-piece BYTES bytes per upload or download request (default 1048576)\n"
          "\n"
          "Commands (stdin, one per line; `help` lists them with a line about each): send,\n"
          "gsend, group create|add|remove|admin|info|setting|link|join|leave|show, history,\n"
          "read, typing, subscribe, safety, verify, accept, trust, link-approve,\n"
          "device-remove, status, help, quit; block, unblock, blocked, report.\n");
  fprintf(f, "On a message: reply, react, unreact, edit, delete, forward; and call.\n");
  fprintf(f, "Attachments: send-file, view-once, download, open, media.\n");
}

static int valid_account(const char *s) { return whisper_account_name_check(s) == WHISPER_OK; }

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
  char *end;
  if (!s || !*s || *s == '-' || *s == '+') return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end || v > max) return -1;
  *out = v;
  return 0;
}

/* Options: "--name value" or "--name=value". Returns 0, or 2 after
 * printing the problem. */
static int parse_args(chat *c, int argc, char **argv) {
  c->device = 1;
  for (int i = 1; i < argc; i++) {
    char *arg = argv[i];
    char *val = NULL;
    char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (eq) {
      *eq = '\0';
      val = eq + 1;
    }
#define FLAG(name) (strcmp(arg, name) == 0)
#define VALUE()                                                              \
  do {                                                                       \
    if (!val) {                                                              \
      if (i + 1 >= argc) {                                                   \
        fprintf(stderr, "whisper-chat: %s needs a value\n", arg);            \
        return 2;                                                            \
      }                                                                      \
      val = argv[++i];                                                       \
    }                                                                        \
  } while (0)
    unsigned long long v;
    if (FLAG("--help") || FLAG("-h")) {
      usage(stdout);
      exit(0);
    } else if (FLAG("--script") && !val) {
      c->script = 1;
    } else if (FLAG("--insecure") && !val) {
      c->insecure = 1;
    } else if (FLAG("--no-read-receipts") && !val) {
      c->cfg.read_receipts = 0;
    } else if (FLAG("--invisible") && !val) {
      c->cfg.presence_visible = 0;
    } else if (FLAG("--db")) {
      VALUE();
      c->db_path = val;
    } else if (FLAG("--key-file")) {
      VALUE();
      c->key_path = val;
    } else if (FLAG("--anchor-file")) {
      VALUE();
      c->anchor_path = val;
    } else if (FLAG("--media-dir")) {
      VALUE();
      free(c->media_dir);
      c->media_dir = strdup(val);
      if (!c->media_dir) return 2;
    } else if (FLAG("--media-piece")) {
      VALUE();
      if (parse_uint(val, 64ULL << 20, &v) != 0 || v < 1024) {
        fprintf(stderr, "whisper-chat: --media-piece must be 1024..67108864\n");
        return 2;
      }
      c->cfg.media_piece = (uint32_t)v;
    } else if (FLAG("--account")) {
      VALUE();
      c->account = val;
    } else if (FLAG("--server")) {
      VALUE();
      c->server = val;
    } else if (FLAG("--ca-file")) {
      VALUE();
      c->ca_file = val;
    } else if (FLAG("--device")) {
      VALUE();
      if (parse_uint(val, 0x7fffffffULL, &v) != 0 || v == 0) {
        fprintf(stderr, "whisper-chat: --device must be 1..2147483647\n");
        return 2;
      }
      c->device = (uint32_t)v;
    } else if (FLAG("--backoff-max-ms")) {
      VALUE();
      if (parse_uint(val, 86400000ULL, &v) != 0 || v == 0) {
        fprintf(stderr, "whisper-chat: --backoff-max-ms must be 1..86400000\n");
        return 2;
      }
      c->cfg.backoff_max_ms = v;
      if (c->cfg.backoff_min_ms > v) c->cfg.backoff_min_ms = v;
    } else {
      fprintf(stderr, "whisper-chat: unknown option %s\n", arg);
      usage(stderr);
      return 2;
    }
#undef FLAG
#undef VALUE
  }
  if (!c->db_path || !c->key_path || !c->account || !c->server) {
    fprintf(stderr, "whisper-chat: --db, --key-file, --account and --server are required\n");
    usage(stderr);
    return 2;
  }
  if (!valid_account(c->account)) {
    fprintf(stderr, "whisper-chat: an account name is 1..64 of a-z 0-9 . _ -\n");
    return 2;
  }
  return 0;
}

/* The store (its key from --key-file), the context, the identity (made on
 * the first run, checked against --account and --device after that) and
 * the engine. Returns 0, or -1 after printing why. */
static int anchor_check(chat *c);

static int open_device(chat *c) {
  uint8_t key[CHAT_KEY_LEN];
  if (media_dirs(c) != 0) return -1;
  c->cfg.media_dir = c->media_dir;
  if (key_file_load(c->key_path, key) != 0) return -1;
  whisper_sqlite_options_t opts = WHISPER_SQLITE_OPTIONS_INIT;
  opts.key = key;
  opts.key_len = sizeof key;
  const char *why = NULL;
  int rc = whisper_store_sqlite_open(&c->store, c->db_path, &opts, &why);
  wipe(key, sizeof key);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-chat: cannot open the store %s: %s%s%s\n", c->db_path,
            whisper_strerror(rc), why ? ": " : "", why ? why : "");
    return -1;
  }
  rc = whisper_ctx_new(&c->ctx, c->store);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-chat: cannot make a context: %s\n", whisper_strerror(rc));
    return -1;
  }
  const char *name = NULL;
  uint32_t device = 0;
  rc = whisper_identity_get(c->ctx, NULL, NULL, &name, &device);
  if (rc == WHISPER_ESTATE) {
    /* The first run: a new identity key, registration id and signed
     * prekey; the engine registers them on its first connection. */
    rc = whisper_identity_generate(c->ctx, c->account, c->device, 0, now_ms());
    if (rc != WHISPER_OK) {
      fprintf(stderr, "whisper-chat: cannot create the identity: %s (%s)\n", whisper_strerror(rc),
              whisper_ctx_last_error(c->ctx));
      return -1;
    }
    if (!c->script)
      printf("* new identity for %s.%u in %s\n", c->account, (unsigned)c->device, c->db_path);
  } else if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-chat: cannot read the identity: %s (%s)\n", whisper_strerror(rc),
            whisper_ctx_last_error(c->ctx));
    return -1;
  } else if (!name || strcmp(name, c->account) != 0 || device != c->device) {
    fprintf(stderr, "whisper-chat: %s holds the device %s.%u, not %s.%u\n", c->db_path,
            name ? name : "?", (unsigned)device, c->account, (unsigned)c->device);
    return -1;
  }
  rc = whisper_client_new(&c->client, c->ctx, &c->cfg);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-chat: cannot start the client engine: %s (%s)\n",
            whisper_strerror(rc), whisper_ctx_last_error(c->ctx));
    return -1;
  }
  return anchor_check(c);
}

/* --anchor-file: the anchor kept from the last run, checked before anything
 * is sent (a store older than it was restored from a copy). */
static int anchor_check(chat *c) {
  uint8_t a[WHISPER_ANCHOR_LEN + 1];
  if (!c->anchor_path) return 0;
  FILE *f = fopen(c->anchor_path, "rb");
  if (f == NULL) return 0; /* the first run */
  size_t n = fread(a, 1, sizeof a, f);
  fclose(f);
  int restored = 0;
  int rc = whisper_client_anchor_check(c->client, a, n, &restored);
  if (rc != WHISPER_OK) {
    fprintf(stderr, "whisper-chat: %s: %s (%s)\n", c->anchor_path, whisper_strerror(rc),
            whisper_ctx_last_error(c->ctx));
    return -1;
  }
  return 0;
}

/* A new anchor: written beside, then moved over the old one. */
static void anchor_save(chat *c, const uint8_t *a, size_t n) {
  char tmp[4096];
  if (!c->anchor_path || n != WHISPER_ANCHOR_LEN) return;
  snprintf(tmp, sizeof tmp, "%s.new", c->anchor_path);
  FILE *f = fopen(tmp, "wb");
  if (f == NULL || fwrite(a, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0) {
    if (f) fclose(f);
    fprintf(stderr, "whisper-chat: cannot write %s\n", tmp);
    return;
  }
  fclose(f);
  if (rename(tmp, c->anchor_path) != 0) fprintf(stderr, "whisper-chat: cannot replace %s\n", c->anchor_path);
}

void changed_key_put(chat *c, const char *name, uint32_t device, const uint8_t *key) {
  uint8_t scratch[WHISPER_PUBLIC_KEY_LEN];
  changed_key_take(c, name, device, scratch);
  wipe(scratch, sizeof scratch);
  chat_key *k = calloc(1, sizeof *k);
  if (!k || !(k->name = strdup(name))) {
    free(k);
    return;
  }
  k->device = device;
  memcpy(k->key, key, WHISPER_PUBLIC_KEY_LEN);
  k->next = c->changed;
  c->changed = k;
}

int changed_key_take(chat *c, const char *name, uint32_t device,
                     uint8_t key[WHISPER_PUBLIC_KEY_LEN]) {
  for (chat_key **p = &c->changed; *p; p = &(*p)->next) {
    chat_key *k = *p;
    if (k->device == device && strcmp(k->name, name) == 0) {
      memcpy(key, k->key, WHISPER_PUBLIC_KEY_LEN);
      *p = k->next;
      free(k->name);
      wipe(k, sizeof *k);
      free(k);
      return 1;
    }
  }
  return 0;
}

static void close_device(chat *c) {
  uint8_t scratch[WHISPER_PUBLIC_KEY_LEN];
  while (c->changed) changed_key_take(c, c->changed->name, c->changed->device, scratch);
  msgref_free_all(c);
  whisper_client_free(c->client);
  c->client = NULL;
  whisper_ctx_free(c->ctx);
  c->ctx = NULL;
  whisper_store_free(c->store);
  c->store = NULL;
  free(c->media_dir);
  c->media_dir = NULL;
  free(c->downloads_dir);
  c->downloads_dir = NULL;
}

void chat_events(chat *c) {
  whisper_client_event_t ev;
  while (whisper_client_take_event(c->client, &ev) == 1) {
    if (ev.type == WHISPER_EV_ONLINE) c->online = 1;
    if (ev.type == WHISPER_EV_CAUGHT_UP) c->caught_up = 1;
    if (ev.type == WHISPER_EV_IDENTITY && ev.from && ev.body && ev.body_len == WHISPER_PUBLIC_KEY_LEN)
      changed_key_put(c, ev.from, ev.from_device, ev.body);
    if (ev.type == WHISPER_EV_ANCHOR) anchor_save(c, ev.body, ev.body_len);
    if (ev.type == WHISPER_EV_CALL && ev.from && ev.conversation && ev.id &&
        ev.id_len == WHISPER_CALL_ID_LEN) {
      /* the call `call <account> answer|ice|hangup|busy` goes on without its id */
      snprintf(c->call_peer, sizeof c->call_peer, "%s",
               strcmp(ev.from, c->account) == 0 ? ev.conversation : ev.from);
      memcpy(c->call_id, ev.id, WHISPER_CALL_ID_LEN);
    }
    out_event(c, &ev);
  }
}

void chat_pump(chat *c) {
  uint64_t now = now_ms();
  if (whisper_client_next_deadline(c->client) <= now) whisper_client_tick(c->client, now);
  if (!c->quit && net_state(c) == NET_IDLE && now >= c->connect_not_before &&
      whisper_client_want_connect(c->client, now))
    net_connect(c);
  chat_events(c);
  if (net_state(c) == NET_OPEN) {
    whisper_buf *frame;
    while (net_state(c) == NET_OPEN && whisper_client_take_frame(c->client, &frame) == 1)
      net_send(c, frame);
    if (whisper_client_want_disconnect(c->client)) net_close(c);
  }
  if (!c->quit) http_pump(c); /* the blob store's requests (http.c) */
  /* The next round returns by the engine's deadline; while there is no
   * connection also soon enough to see the backoff pass. */
  now = now_ms();
  uint64_t wake = now + IDLE_WAKE_MS;
  uint64_t deadline = whisper_client_next_deadline(c->client);
  if (deadline < wake) wake = deadline;
  if (net_state(c) == NET_IDLE && !c->quit && now + RETRY_WAKE_MS < wake) wake = now + RETRY_WAKE_MS;
  /* A deadline already past after the tick is the engine asking for a
   * connection that is on its way (or, open, a timer it just ran): no
   * need to spin on it. */
  if (wake <= now) wake = now + (net_state(c) == NET_OPEN ? 5 : 50);
  net_wake_at(c, wake);
}

/* Quitting: the frames already handed out go out (briefly), the
 * connection closes with a close handshake, then everything is freed. */
static void shut_down(chat *c) {
  net_stdin_stop(c);
  uint64_t until = now_ms() + QUIT_FLUSH_MS;
  while (net_state(c) == NET_OPEN && net_pending(c) > 0 && now_ms() < until) {
    chat_pump(c);
    net_wake_at(c, until);
    net_service(c);
  }
  if (net_state(c) != NET_IDLE) net_close(c);
  until = now_ms() + QUIT_CLOSE_MS;
  while (net_state(c) != NET_IDLE && now_ms() < until) {
    chat_pump(c);
    net_wake_at(c, until);
    net_service(c);
  }
  net_free(c);
  /* Events raised by the last frames (and the disconnect). */
  chat_events(c);
}

int main(int argc, char **argv) {
  chat c;
  memset(&c, 0, sizeof c);
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  c.cfg = cfg;
  int rc = parse_args(&c, argc, argv);
  if (rc) return rc;
  c.color = !c.script && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
  umask(077); /* the store, its WAL and the key file: this user's only */

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  int status = 1;
  if (open_device(&c) != 0 || net_init(&c) != 0) goto out;
  if (!c.script)
    printf("* %s.%u, server %s. Type help for the commands.\n", c.account, (unsigned)c.device,
           c.server);
  fflush(stdout);

  while (!c.quit) {
    chat_pump(&c);
    if (c.quit) break;
    net_service(&c);
    if (got_signal) c.quit = 1;
  }
  shut_down(&c);
  status = c.out_broken ? 1 : 0;
  if (c.script) {
    jbuf b;
    jb_init(&b);
    jb_begin(&b, "bye");
    jb_print(&c, &b);
    jb_free(&b);
  } else {
    printf("* bye\n");
  }
out:
  net_free(&c);
  close_device(&c);
  return status;
}
