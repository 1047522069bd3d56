/*
 * whisper-blob-devices: real devices on a real whisperd, for blobs.js.
 *
 * The blob store takes uploads only with an upload token, which whisperd
 * gives a logged-in device (UploadAuth -> UploadToken). This program
 * hosts such devices: each a client engine (whisper_client) on a memory
 * store, with its own identity, registered and logged in over its own
 * WebSocket connection to --url. It asks for tokens on their connections
 * (a frame of its own beside the engine's; the answer is taken before the
 * engine sees it) and prints them.
 *
 *   whisper-blob-devices --url ws://127.0.0.1:PORT/v1/ws
 *
 * Commands on stdin, one per line; one JSON object per line on stdout:
 *
 *   up NAME ACCOUNT            device 1 of a new account: registers, logs in
 *                              -> {"ev":"online","name":NAME,"account":...,"device":1}
 *                              (again after every login: the engines reconnect
 *                              by themselves when whisperd restarts)
 *   link NAME PRIMARY ID       device ID of PRIMARY's account: asks for a link
 *                              code, PRIMARY approves it, it registers, logs in
 *                              -> {"ev":"online",...}
 *   token NAME [SIZE]          UploadAuth (with the size hint)
 *                              -> {"ev":"token","name":...,"token":...,"expires_ms":N,"max_size":N}
 *                              or {"ev":"error","name":...,"code":N,"message":...}
 *   remove PRIMARY ID          PRIMARY removes its account's device ID
 *                              -> {"ev":"ok","cmd":"remove"}, later
 *                                 {"ev":"closed","name":...} when the server
 *                                 closes that device's connection (the removal
 *                                 is committed then); it does not reconnect
 *   quit, or end of input      exits 0
 *
 * A command it cannot run prints {"ev":"error","cmd":...,"message":...}.
 * Engine errors go to stderr. Exit 1 on a setup failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "sync.pb-c.h"
#include "whisper/whisper.h"

#define PROG "whisper-blob-devices"
#define SUBPROTOCOL "whisper-sync-v1"
#define MAX_DEVICES 16
#define MAX_RX (1u << 20)
#define TOKEN_ID_BASE 0x7F00000000000000ULL /* far from the engine's request ids */

typedef struct qent {
  struct qent *next;
  size_t len;
  uint8_t buf[]; /* LWS_PRE, then the frame */
} qent;

typedef struct device {
  char name[32];
  char account[65];
  uint32_t id;
  whisper_store *store;
  whisper_ctx *ctx;
  whisper_client *client;
  struct lws *wsi;
  int state; /* IDLE, CONNECTING, OPEN */
  int online, removed;
  qent *head, *tail;
  uint8_t *rx;
  size_t rx_len;
  uint64_t token_req; /* the UploadAuth waiting for its answer (0: none) */
  struct device *approver; /* a new device: who approves its link code */
  uint8_t *link_token;     /* the code to approve, until the approver takes it */
  size_t link_len;
} device;

enum { IDLE, CONNECTING, OPEN };

static struct lws_context *g_ctx;
static device g_dev[MAX_DEVICES];
static int g_n;
static int g_quit;
static char *g_host, *g_path;
static int g_port;
static uint64_t g_next_token = TOKEN_ID_BASE;
static char g_line[4096];
static size_t g_line_len;
static lws_sorted_usec_list_t g_wake;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- output ---------------------------------------------------------------------- */

/* A JSON string: the names and messages here are ASCII, but escape anyway. */
static void jstr(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20 || c >= 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void say_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_error(const char *cmd, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("{\"ev\":\"error\",\"cmd\":");
  jstr(cmd);
  printf(",\"message\":");
  jstr(msg);
  printf("}\n");
  fflush(stdout);
}

static void say_dev(const char *ev, const device *d) {
  printf("{\"ev\":\"%s\",\"name\":", ev);
  jstr(d->name);
  printf(",\"account\":");
  jstr(d->account);
  printf(",\"device\":%lu}\n", (unsigned long)d->id);
  fflush(stdout);
}

/* --- the connections ----------------------------------------------------------------- */

static void queue_clear(device *d) {
  while (d->head) {
    qent *q = d->head;
    d->head = q->next;
    free(q);
  }
  d->tail = NULL;
}

static void send_frame(device *d, const uint8_t *frame, size_t len) {
  if (d->state != OPEN || !d->wsi) return;
  qent *q = malloc(sizeof *q + LWS_PRE + len);
  if (!q) return; /* the engine resends what is not answered */
  q->next = NULL;
  q->len = len;
  memcpy(q->buf + LWS_PRE, frame, len);
  if (d->tail)
    d->tail->next = q;
  else
    d->head = q;
  d->tail = q;
  lws_callback_on_writable(d->wsi);
}

static void conn_ended(device *d) {
  if (d->state == IDLE) return;
  d->state = IDLE;
  d->wsi = NULL;
  d->online = 0;
  d->rx_len = 0;
  queue_clear(d);
  whisper_client_disconnected(d->client, now_ms());
  if (d->removed) say_dev("closed", d);
}

static void connect_dev(device *d) {
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = g_ctx;
  ci.address = g_host;
  ci.port = g_port;
  ci.path = g_path;
  ci.host = g_host;
  ci.origin = g_host;
  ci.protocol = SUBPROTOCOL;
  ci.local_protocol_name = SUBPROTOCOL;
  ci.opaque_user_data = d;
  ci.pwsi = &d->wsi;
  d->state = CONNECTING;
  if (!lws_client_connect_via_info(&ci) && d->state == CONNECTING) conn_ended(d);
}

/* The answer to our UploadAuth: printed, never shown to the engine. */
static void token_answer(device *d, const Whisper__Sync__Frame *f) {
  d->token_req = 0;
  if (f->body_case == WHISPER__SYNC__FRAME__BODY_UPLOAD_TOKEN && f->upload_token->token) {
    printf("{\"ev\":\"token\",\"name\":");
    jstr(d->name);
    printf(",\"token\":");
    jstr(f->upload_token->token);
    printf(",\"expires_ms\":%llu,\"max_size\":%llu}\n",
           (unsigned long long)f->upload_token->expires_ms,
           (unsigned long long)f->upload_token->max_size);
  } else {
    unsigned code = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR ? f->error->code : 0;
    const char *msg = f->body_case == WHISPER__SYNC__FRAME__BODY_ERROR && f->error->message
                          ? f->error->message
                          : "not an UploadToken";
    printf("{\"ev\":\"error\",\"name\":");
    jstr(d->name);
    printf(",\"code\":%u,\"message\":", code);
    jstr(msg);
    printf("}\n");
  }
  fflush(stdout);
}

static void frame_in(device *d, const uint8_t *frame, size_t len) {
  if (d->token_req) {
    Whisper__Sync__Frame *f = whisper__sync__frame__unpack(NULL, len, frame);
    int ours = f && f->has_id && f->id == d->token_req;
    if (ours) token_answer(d, f);
    if (f) whisper__sync__frame__free_unpacked(f, NULL);
    if (ours) return;
  }
  int rc = whisper_client_receive(d->client, frame, len, now_ms());
  if (rc != WHISPER_OK)
    fprintf(stderr, PROG ": %s: whisper_client_receive: %s\n", d->name, whisper_strerror(rc));
}

static int on_receive(device *d, struct lws *wsi, const void *in, size_t len) {
  if (lws_is_first_fragment(wsi)) d->rx_len = 0;
  if (d->rx_len + len > MAX_RX) return -1;
  if (!d->rx && !(d->rx = malloc(MAX_RX))) return -1;
  memcpy(d->rx + d->rx_len, in, len);
  d->rx_len += len;
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
  size_t n = d->rx_len;
  d->rx_len = 0;
  frame_in(d, d->rx, n);
  return 0;
}

static int on_writeable(device *d, struct lws *wsi) {
  qent *q = d->head;
  if (!q) return 0;
  d->head = q->next;
  if (!d->head) d->tail = NULL;
  int w = lws_write(wsi, q->buf + LWS_PRE, q->len, LWS_WRITE_BINARY);
  int short_write = w < (int)q->len;
  free(q);
  if (short_write) return -1;
  if (d->head) lws_callback_on_writable(wsi);
  return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
  (void)user;
  device *d = lws_get_opaque_user_data(wsi);
  if (!d) return 0;
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      d->wsi = wsi;
      d->state = OPEN;
      whisper_client_connected(d->client, now_ms());
      break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      conn_ended(d);
      break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
      if (d->state == OPEN) return on_receive(d, wsi, in, len);
      break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
      if (d->state == OPEN) return on_writeable(d, wsi);
      break;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
      if (d->wsi == wsi || d->wsi == NULL) conn_ended(d);
      break;
    default:
      break;
  }
  return 0;
}

/* --- the engines ------------------------------------------------------------------------ */

static void on_event(device *d, const whisper_client_event_t *ev) {
  switch (ev->type) {
    case WHISPER_EV_ONLINE: /* after every login: a restarted whisperd too */
      d->online = 1;
      say_dev("online", d);
      break;
    case WHISPER_EV_LINK_CODE:
      free(d->link_token);
      d->link_token = malloc(ev->body_len ? ev->body_len : 1);
      if (d->link_token) memcpy(d->link_token, ev->body, ev->body_len);
      d->link_len = ev->body_len;
      break;
    case WHISPER_EV_ERROR:
      fprintf(stderr, PROG ": %s: engine error %d (server %d): %s\n", d->name, ev->code,
              ev->server_code, ev->message ? ev->message : "");
      break;
    default:
      break;
  }
}

/* A link code waiting for its approver: approved once the approver can
 * (its signed device list must be published first: WHISPER_ESTATE until
 * then). */
static void approve(device *d) {
  if (!d->link_token || !d->approver || !d->approver->online) return;
  int rc = whisper_client_link_approve(d->approver->client, d->link_token, d->link_len);
  if (rc == WHISPER_ESTATE) return;
  if (rc != WHISPER_OK)
    say_error("link", "%s cannot approve %s: %s", d->approver->name, d->name, whisper_strerror(rc));
  free(d->link_token);
  d->link_token = NULL;
}

static void pump(device *d) {
  uint64_t now = now_ms();
  if (whisper_client_next_deadline(d->client) <= now) whisper_client_tick(d->client, now);
  if (d->state == IDLE && !d->removed && whisper_client_want_connect(d->client, now))
    connect_dev(d);
  whisper_client_event_t ev;
  while (whisper_client_take_event(d->client, &ev) == 1) on_event(d, &ev);
  approve(d);
  if (d->state == OPEN) {
    whisper_buf *frame;
    while (whisper_client_take_frame(d->client, &frame) == 1) {
      send_frame(d, frame->data, frame->len);
      whisper_buf_free(frame);
    }
    if (whisper_client_want_disconnect(d->client) && d->wsi)
      lws_set_timeout(d->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

static void wake_cb(lws_sorted_usec_list_t *sul) {
  (void)sul;
  for (int i = 0; i < g_n; i++) pump(&g_dev[i]);
  lws_sul_schedule(g_ctx, 0, &g_wake, wake_cb, 10 * LWS_US_PER_MS);
}

static device *find(const char *name) {
  for (int i = 0; i < g_n; i++)
    if (strcmp(g_dev[i].name, name) == 0) return &g_dev[i];
  return NULL;
}

static device *dev_new(const char *cmd, const char *name, const char *account, uint32_t id) {
  if (g_n == MAX_DEVICES || find(name) || strlen(name) >= sizeof g_dev[0].name ||
      strlen(account) >= sizeof g_dev[0].account) {
    say_error(cmd, "cannot make device %s", name);
    return NULL;
  }
  device *d = &g_dev[g_n];
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  snprintf(d->account, sizeof d->account, "%s", account);
  d->id = id;
  whisper_client_config_t cfg = WHISPER_CLIENT_CONFIG_INIT;
  cfg.prekey_batch = 5;
  cfg.backoff_min_ms = 100;
  cfg.backoff_max_ms = 1000;
  int rc = whisper_store_memory_new(&d->store);
  if (rc == WHISPER_OK) rc = whisper_ctx_new(&d->ctx, d->store);
  if (rc == WHISPER_OK) rc = whisper_identity_generate(d->ctx, account, id, 0, now_ms());
  if (rc == WHISPER_OK) rc = whisper_client_new(&d->client, d->ctx, &cfg);
  if (rc != WHISPER_OK) {
    say_error(cmd, "device %s: %s", name, whisper_strerror(rc));
    whisper_client_free(d->client);
    whisper_ctx_free(d->ctx);
    whisper_store_free(d->store);
    return NULL;
  }
  g_n++;
  return d;
}

/* --- commands ------------------------------------------------------------------------------ */

static void cmd_token(device *d, const char *size) {
  if (!d->online || d->state != OPEN) {
    say_error("token", "%s is not online", d->name);
    return;
  }
  Whisper__Sync__UploadAuth u = WHISPER__SYNC__UPLOAD_AUTH__INIT;
  if (size) {
    u.has_size = 1;
    u.size = strtoull(size, NULL, 10);
  }
  Whisper__Sync__Frame f = WHISPER__SYNC__FRAME__INIT;
  f.has_version = f.has_id = 1;
  f.version = 1;
  f.id = d->token_req = g_next_token++;
  f.body_case = WHISPER__SYNC__FRAME__BODY_UPLOAD_AUTH;
  f.upload_auth = &u;
  uint8_t buf[64];
  size_t n = whisper__sync__frame__pack(&f, buf);
  send_frame(d, buf, n);
}

static void cmd_line(char *line) {
  char *save = NULL, *w[5] = {0};
  int n = 0;
  for (char *t = strtok_r(line, " \t", &save); t && n < 5; t = strtok_r(NULL, " \t", &save))
    w[n++] = t;
  if (n == 0) return;
  device *d;
  if (strcmp(w[0], "quit") == 0) {
    g_quit = 1;
  } else if (strcmp(w[0], "up") == 0 && n == 3) {
    dev_new("up", w[1], w[2], 1);
  } else if (strcmp(w[0], "link") == 0 && n == 4) {
    device *p = find(w[2]);
    if (!p) {
      say_error("link", "no device %s", w[2]);
      return;
    }
    if ((d = dev_new("link", w[1], p->account, (uint32_t)strtoul(w[3], NULL, 10)))) d->approver = p;
  } else if (strcmp(w[0], "token") == 0 && (n == 2 || n == 3)) {
    if (!(d = find(w[1]))) {
      say_error("token", "no device %s", w[1]);
      return;
    }
    cmd_token(d, n == 3 ? w[2] : NULL);
  } else if (strcmp(w[0], "remove") == 0 && n == 3) {
    if (!(d = find(w[1]))) {
      say_error("remove", "no device %s", w[1]);
      return;
    }
    uint32_t id = (uint32_t)strtoul(w[2], NULL, 10);
    for (int i = 0; i < g_n; i++)
      if (strcmp(g_dev[i].account, d->account) == 0 && g_dev[i].id == id) g_dev[i].removed = 1;
    int rc = whisper_client_device_remove(d->client, id);
    if (rc != WHISPER_OK) {
      say_error("remove", "%s", whisper_strerror(rc));
      return;
    }
    printf("{\"ev\":\"ok\",\"cmd\":\"remove\"}\n");
    fflush(stdout);
  } else {
    say_error(w[0], "unknown command or wrong arguments");
  }
}

static int stdin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len) {
  (void)wsi;
  (void)user;
  (void)in;
  (void)len;
  if (reason == LWS_CALLBACK_RAW_CLOSE_FILE) {
    g_quit = 1;
    return 0;
  }
  if (reason != LWS_CALLBACK_RAW_RX_FILE) return 0;
  char buf[1024];
  ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
  if (r < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
  if (r <= 0) {
    g_quit = 1;
    return -1;
  }
  for (ssize_t i = 0; i < r; i++) {
    if (buf[i] == '\n' || g_line_len + 1 >= sizeof g_line) {
      g_line[g_line_len] = 0;
      g_line_len = 0;
      cmd_line(g_line);
    } else {
      g_line[g_line_len++] = buf[i];
    }
  }
  return 0;
}

/* --- main ------------------------------------------------------------------------------------- */

static const struct lws_protocols protocols[] = {
    {SUBPROTOCOL, ws_callback, 0, 0, 0, NULL, 0},
    {"stdin", stdin_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* ws://HOST:PORT/PATH */
static int parse_url(const char *url) {
  const char *p = url, *colon, *slash;
  if (strncmp(p, "ws://", 5) != 0) return -1;
  p += 5;
  if (!(colon = strchr(p, ':')) || !(slash = strchr(colon, '/'))) return -1;
  g_host = strndup(p, (size_t)(colon - p));
  g_port = atoi(colon + 1);
  g_path = strdup(slash);
  return g_host && g_path && g_port > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc != 3 || strcmp(argv[1], "--url") != 0 || parse_url(argv[2]) != 0) {
    fprintf(stderr, "usage: " PROG " --url ws://HOST:PORT/v1/ws\n");
    return 2;
  }
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.gid = (gid_t)-1;
  info.uid = (uid_t)-1;
  g_ctx = lws_create_context(&info);
  struct lws_vhost *vh = g_ctx ? lws_get_vhost_by_name(g_ctx, "default") : NULL;
  lws_sock_file_fd_type fd;
  fd.filefd = STDIN_FILENO;
  if (!vh || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "stdin", NULL)) {
    fprintf(stderr, PROG ": cannot set up libwebsockets\n");
    return 1;
  }
  lws_sul_schedule(g_ctx, 0, &g_wake, wake_cb, 10 * LWS_US_PER_MS);
  while (!g_quit)
    if (lws_service(g_ctx, 0) < 0) break;
  lws_sul_cancel(&g_wake);
  lws_context_destroy(g_ctx);
  for (int i = 0; i < g_n; i++) {
    device *d = &g_dev[i];
    queue_clear(d);
    free(d->rx);
    free(d->link_token);
    whisper_client_free(d->client);
    whisper_ctx_free(d->ctx);
    whisper_store_free(d->store);
  }
  free(g_host);
  free(g_path);
  return 0;
}
