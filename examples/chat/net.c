/*
 * whisper-chat: the WebSocket connection to whisperd and stdin, on
 * libwebsockets' service loop (client side).
 *
 * One connection at a time, in three states: idle, connecting, open. The
 * engine hears whisper_client_connected() when the WebSocket handshake is
 * done and whisper_client_disconnected() exactly once when that attempt
 * ends, whether it failed to open or closed later. Every frame is one
 * binary WebSocket message, assembled here from lws' fragments before the
 * engine sees it. The frames the engine hands out wait in a queue and go
 * out one per writeable callback.
 *
 * stdin is adopted into the same loop as a raw file descriptor, so a
 * command runs as soon as its line is complete; end of input (read() gives
 * 0, or the descriptor hangs up) asks the app to quit.
 *
 * lws 4.x ignores lws_service()'s timeout: a scheduled callback (sul)
 * bounds the wait instead, at whatever net_wake_at() asked for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "chat.h"

#define SUBPROTOCOL "whisper-sync-v1"
#define STDIN_PROTOCOL "whisper-chat-stdin"
#define MAX_RX (4u << 20) /* far above the server's frame limit */
#define MAX_LINE (1u << 20)

typedef struct qent {
  struct qent *next;
  whisper_buf *frame;
} qent;

struct chat_net {
  struct lws_context *ctx;
  struct lws *conn;      /* the connection's wsi (lws may NULL it through pwsi) */
  struct lws *stdin_wsi;
  int state;             /* NET_* */
  int close_wanted;
  int stopping_stdin;    /* we close stdin ourselves: do not read it any more */
  int destroying;
  char why[160];         /* why the connection closed, when known */

  /* --server, cut up */
  char *host;
  char *path;
  char *host_header;
  int port;
  int tls;

  qent *head, *tail;
  size_t queued;

  uint8_t *rx;
  size_t rx_len, rx_cap;
  int rx_binary, rx_overflow;

  uint8_t *tx;
  size_t tx_cap;

  char *line;
  size_t line_len;
  int line_overflow;

  lws_sorted_usec_list_t wake;
};

static chat *chat_of(struct lws *wsi) { return lws_context_user(lws_get_context(wsi)); }

/* http.c: the callback of the engine's HTTP requests. */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

/* --- the queue ---------------------------------------------------------------- */

static void queue_clear(chat_net *n) {
  while (n->head) {
    qent *q = n->head;
    n->head = q->next;
    whisper_buf_free(q->frame);
    free(q);
  }
  n->tail = NULL;
  n->queued = 0;
}

void net_send(chat *c, whisper_buf *frame) {
  chat_net *n = c->net;
  if (n->state != NET_OPEN || !n->conn) {
    whisper_buf_free(frame);
    return;
  }
  qent *q = malloc(sizeof *q);
  if (!q) {
    /* The engine sends again what is not answered, after a reconnect. */
    whisper_buf_free(frame);
    snprintf(n->why, sizeof n->why, "out of memory");
    net_close(c);
    return;
  }
  q->next = NULL;
  q->frame = frame;
  if (n->tail)
    n->tail->next = q;
  else
    n->head = q;
  n->tail = q;
  n->queued++;
  lws_callback_on_writable(n->conn);
}

size_t net_pending(const chat *c) { return c->net->queued; }

int net_state(const chat *c) { return c->net ? c->net->state : NET_IDLE; }

/* --- the connection -------------------------------------------------------- */

/* The attempt ended (failed to open, or closed): the engine hears it once. */
static void conn_ended(chat *c, const char *why) {
  chat_net *n = c->net;
  if (n->state == NET_IDLE) return;
  /* The engine backs off after a connection that was open; one that never
   * opened (the server is down) waits at least its first backoff step
   * here, so that such attempts do not follow each other at once. */
  if (n->state == NET_CONNECTING) c->connect_not_before = now_ms() + c->cfg.backoff_min_ms;
  n->state = NET_IDLE;
  n->conn = NULL;
  n->close_wanted = 0;
  n->rx_len = 0;
  queue_clear(n);
  c->online = 0;
  c->caught_up = 0;
  whisper_client_disconnected(c->client, now_ms());
  if (!n->destroying) out_disconnected(c, why && *why ? why : n->why[0] ? n->why : "closed");
  n->why[0] = '\0';
}

/* A callback about the current attempt (not an older, dying one). */
static int ours(const chat_net *n, const struct lws *wsi) {
  return n->state != NET_IDLE && (n->conn == wsi || n->conn == NULL);
}

void net_connect(chat *c) {
  chat_net *n = c->net;
  if (n->state != NET_IDLE) return;
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = n->ctx;
  ci.address = n->host;
  ci.port = n->port;
  ci.path = n->path;
  ci.host = n->host_header;
  ci.origin = n->host_header;
  ci.protocol = SUBPROTOCOL;
  ci.local_protocol_name = SUBPROTOCOL;
  if (n->tls) {
    ci.ssl_connection = LCCSCF_USE_SSL;
    if (c->insecure)
      ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
  }
  n->state = NET_CONNECTING;
  n->conn = NULL;
  n->close_wanted = 0;
  n->why[0] = '\0';
  ci.pwsi = &n->conn;
  struct lws *wsi = lws_client_connect_via_info(&ci);
  /* A failure may or may not have been called back already. */
  if (!wsi && n->state == NET_CONNECTING) conn_ended(c, "cannot connect");
}

void net_close(chat *c) {
  chat_net *n = c->net;
  if (n->state == NET_IDLE || !n->conn) return;
  if (n->state == NET_OPEN) {
    n->close_wanted = 1;
    lws_callback_on_writable(n->conn);
    /* If the close cannot even be written (a dead peer), cut it. */
    lws_set_timeout(n->conn, PENDING_TIMEOUT_USER_OK, 5);
  } else {
    lws_set_timeout(n->conn, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

static int rx_append(chat_net *n, const void *in, size_t len) {
  if (n->rx_overflow) return 0;
  if (n->rx_len + len > MAX_RX) {
    n->rx_overflow = 1;
    return 0;
  }
  if (n->rx_len + len > n->rx_cap) {
    size_t cap = n->rx_cap ? n->rx_cap : 4096;
    while (cap < n->rx_len + len) cap *= 2;
    uint8_t *p = realloc(n->rx, cap);
    if (!p) return -1;
    n->rx = p;
    n->rx_cap = cap;
  }
  memcpy(n->rx + n->rx_len, in, len);
  n->rx_len += len;
  return 0;
}

static int on_receive(chat *c, struct lws *wsi, const void *in, size_t len) {
  chat_net *n = c->net;
  if (lws_is_first_fragment(wsi)) {
    n->rx_len = 0;
    n->rx_overflow = 0;
    n->rx_binary = lws_frame_is_binary(wsi);
  }
  if (rx_append(n, in, len) != 0) {
    snprintf(n->why, sizeof n->why, "out of memory");
    return -1;
  }
  if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
  size_t flen = n->rx_len;
  n->rx_len = 0;
  if (n->rx_overflow) {
    snprintf(n->why, sizeof n->why, "a frame from the server is over %u bytes", MAX_RX);
    return -1;
  }
  if (!n->rx_binary) return 0; /* the protocol has no text messages */
  int rc = whisper_client_receive(c->client, n->rx, flen, now_ms());
  chat_events(c);
  if (rc == WHISPER_EINVALIDMSG) {
    snprintf(n->why, sizeof n->why, "the server sent something that is not a frame");
    return -1;
  }
  if (rc != WHISPER_OK) {
    /* Not acknowledged: the server delivers it again after a reconnect. */
    snprintf(n->why, sizeof n->why, "could not handle a frame: %s (%s)", whisper_strerror(rc),
             whisper_ctx_last_error(c->ctx));
    return -1;
  }
  return 0;
}

static int on_writeable(chat *c, struct lws *wsi) {
  chat_net *n = c->net;
  if (n->close_wanted) {
    static const char bye[] = "bye";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)bye, sizeof bye - 1);
    return -1;
  }
  qent *q = n->head;
  if (!q) return 0;
  n->head = q->next;
  if (!n->head) n->tail = NULL;
  n->queued--;
  size_t len = q->frame->len;
  if (LWS_PRE + len > n->tx_cap) {
    size_t cap = n->tx_cap ? n->tx_cap : 4096;
    while (cap < LWS_PRE + len) cap *= 2;
    uint8_t *p = realloc(n->tx, cap);
    if (!p) {
      whisper_buf_free(q->frame);
      free(q);
      snprintf(n->why, sizeof n->why, "out of memory");
      return -1;
    }
    n->tx = p;
    n->tx_cap = cap;
  }
  if (len) memcpy(n->tx + LWS_PRE, q->frame->data, len);
  whisper_buf_free(q->frame);
  free(q);
  int w = lws_write(wsi, n->tx + LWS_PRE, len, LWS_WRITE_BINARY);
  wipe(n->tx + LWS_PRE, len);
  if (w < (int)len) {
    snprintf(n->why, sizeof n->why, "write failed");
    return -1;
  }
  if (n->head) lws_callback_on_writable(wsi);
  return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
  (void)user;
  /* An HTTP request of http.c's (its opaque user data) that lws calls
   * back here before it is bound to its own protocol. */
  if (lws_get_opaque_user_data(wsi)) return http_callback(wsi, reason, user, in, len);
  chat *c = chat_of(wsi);
  if (!c || !c->net) return 0;
  chat_net *n = c->net;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (!ours(n, wsi)) return -1;
    n->conn = wsi;
    n->state = NET_OPEN;
    n->rx_len = 0;
    whisper_client_connected(c->client, now_ms());
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    if (ours(n, wsi)) {
      char why[sizeof n->why];
      snprintf(why, sizeof why, "cannot connect: %.*s", in ? (int)(len < 120 ? len : 120) : 7,
               in ? (const char *)in : "unknown");
      conn_ended(c, why);
    }
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (!ours(n, wsi) || n->state != NET_OPEN) break;
    return on_receive(c, wsi, in, len);
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (!ours(n, wsi) || n->state != NET_OPEN) break;
    return on_writeable(c, wsi);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (ours(n, wsi)) {
      unsigned code = len >= 2 ? (unsigned)((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1] : 0;
      snprintf(n->why, sizeof n->why, "closed by the server (%u%s%.*s)", code, len > 2 ? ": " : "",
               len > 2 ? (int)(len - 2 < 100 ? len - 2 : 100) : 0,
               len > 2 ? (const char *)in + 2 : "");
    }
    break;
  case LWS_CALLBACK_CLIENT_CLOSED:
  case LWS_CALLBACK_WSI_DESTROY:
    if (ours(n, wsi)) conn_ended(c, NULL);
    break;
  default:
    break;
  }
  return 0;
}

/* --- stdin ------------------------------------------------------------------------ */

/* Runs the complete lines in `buf` and keeps the rest; at end of input a
 * last line without its newline runs too. */
static void stdin_bytes(chat *c, const char *buf, size_t len, int eof) {
  chat_net *n = c->net;
  for (size_t i = 0; i < len && !c->quit; i++) {
    char ch = buf[i];
    if (ch == '\n') {
      if (n->line_overflow) {
        out_cmd_error(c, "input", 0, "line too long (over %u bytes): ignored", MAX_LINE);
      } else {
        if (n->line_len && n->line[n->line_len - 1] == '\r') n->line_len--;
        n->line[n->line_len] = '\0';
        cmd_line(c, n->line);
      }
      n->line_len = 0;
      n->line_overflow = 0;
      continue;
    }
    if (n->line_len + 1 >= MAX_LINE) {
      n->line_overflow = 1;
      continue;
    }
    n->line[n->line_len++] = ch;
  }
  if (eof && !c->quit) {
    if (n->line_len && !n->line_overflow) {
      n->line[n->line_len] = '\0';
      cmd_line(c, n->line);
    }
    n->line_len = 0;
    c->quit = 1;
  }
}

/* One read(): 1 data, 0 end of input, -1 nothing now. */
static int stdin_read_once(chat *c) {
  char buf[4096];
  ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
  if (r > 0) {
    stdin_bytes(c, buf, (size_t)r, 0);
    return 1;
  }
  if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
  stdin_bytes(c, NULL, 0, 1);
  return 0;
}

static int stdin_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len) {
  (void)user;
  (void)in;
  (void)len;
  chat *c = chat_of(wsi);
  if (!c || !c->net) return 0;
  chat_net *n = c->net;
  switch (reason) {
  case LWS_CALLBACK_RAW_RX_FILE:
    if (n->stopping_stdin || c->quit) return -1; /* quitting: no more commands */
    if (stdin_read_once(c) == 0) return -1; /* end of input: lws closes it */
    break;
  case LWS_CALLBACK_RAW_CLOSE_FILE:
    /* A hangup: what is left in the pipe (or tty) still runs. We never
     * read here when we closed it ourselves (it could block). */
    if (!n->stopping_stdin && !n->destroying && !c->quit) {
      while (!c->quit && stdin_read_once(c) == 1) {
      }
      if (!c->quit) stdin_bytes(c, NULL, 0, 1);
    }
    n->stdin_wsi = NULL;
    break;
  default:
    break;
  }
  return 0;
}

void net_stdin_stop(chat *c) {
  chat_net *n = c->net;
  if (!n || !n->stdin_wsi) return;
  n->stopping_stdin = 1;
  /* Closed at the next service round; lws closes the descriptor. */
  lws_set_timeout(n->stdin_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* --- the context and the loop ------------------------------------------------- */

static const struct lws_protocols protocols[] = {
    {.name = SUBPROTOCOL, .callback = ws_callback, .rx_buffer_size = 0},
    {.name = STDIN_PROTOCOL, .callback = stdin_callback},
    {.name = "whisper-chat-http", .callback = http_callback},
    {.name = NULL, .callback = NULL},
};

/* ws://host[:port][/path] or wss://...; [v6] literals too. */
static int parse_server(chat_net *n, const char *url) {
  const char *p;
  if (strncmp(url, "ws://", 5) == 0) {
    p = url + 5;
    n->tls = 0;
    n->port = 80;
  } else if (strncmp(url, "wss://", 6) == 0) {
    p = url + 6;
    n->tls = 1;
    n->port = 443;
  } else {
    return -1;
  }
  const char *slash = strchr(p, '/');
  size_t alen = slash ? (size_t)(slash - p) : strlen(p);
  const char *hs = p, *he, *portstr = NULL;
  if (alen == 0) return -1;
  if (*p == '[') {
    const char *close = memchr(p, ']', alen);
    if (!close) return -1;
    hs = p + 1;
    he = close;
    if (close + 1 < p + alen) {
      if (close[1] != ':') return -1;
      portstr = close + 2;
    }
  } else {
    const char *colon = memchr(p, ':', alen);
    he = colon ? colon : p + alen;
    if (colon) portstr = colon + 1;
  }
  if (he == hs) return -1;
  if (portstr) {
    long port = 0;
    const char *q = portstr;
    if (q == p + alen) return -1;
    for (; q < p + alen; q++) {
      if (*q < '0' || *q > '9') return -1;
      port = port * 10 + (*q - '0');
      if (port > 65535) return -1;
    }
    if (port == 0) return -1;
    n->port = (int)port;
  }
  n->host = strndup(hs, (size_t)(he - hs));
  n->path = strdup(slash ? slash : "/");
  size_t hhlen = alen + 1;
  n->host_header = malloc(hhlen);
  if (!n->host || !n->path || !n->host_header) return -1;
  memcpy(n->host_header, p, alen);
  n->host_header[alen] = '\0';
  return 0;
}

static void lws_log(int level, const char *line) {
  (void)level;
  fprintf(stderr, "whisper-chat: lws: %s", line);
}

int net_init(chat *c) {
  chat_net *n = calloc(1, sizeof *n);
  if (!n) return -1;
  c->net = n;
  if (parse_server(n, c->server) != 0) {
    fprintf(stderr, "whisper-chat: --server must be ws://HOST[:PORT]/PATH or wss://...: %s\n",
            c->server);
    return -1;
  }
  n->line = malloc(MAX_LINE);
  if (!n->line || http_init(c) != 0) return -1;

  const char *lvl = getenv("WHISPER_CHAT_LWS_LOG");
  lws_set_log_level(lvl ? atoi(lvl) : LLL_ERR, lws_log);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.user = c;
  info.gid = (gid_t)-1;
  info.uid = (uid_t)-1;
  if (n->tls) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.client_ssl_ca_filepath = c->ca_file;
  }
  n->ctx = lws_create_context(&info);
  if (!n->ctx) {
    fprintf(stderr, "whisper-chat: cannot make the libwebsockets context\n");
    return -1;
  }

  struct lws_vhost *vh = lws_get_vhost_by_name(n->ctx, "default");
  lws_sock_file_fd_type fd;
  memset(&fd, 0, sizeof fd);
  fd.filefd = STDIN_FILENO;
  n->stdin_wsi = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, STDIN_PROTOCOL,
                                                 NULL)
                    : NULL;
  if (!n->stdin_wsi)
    fprintf(stderr, "whisper-chat: cannot watch stdin: no commands will be read\n");
  return 0;
}

static void wake_cb(lws_sorted_usec_list_t *sul) { (void)sul; }

void net_wake_at(chat *c, uint64_t at_ms) {
  chat_net *n = c->net;
  uint64_t now = now_ms();
  uint64_t delay_ms = at_ms > now ? at_ms - now : 0;
  if (delay_ms < 1) delay_ms = 1;
  lws_sul_schedule(n->ctx, 0, &n->wake, wake_cb, (lws_usec_t)delay_ms * LWS_US_PER_MS);
}

void net_service(chat *c) { lws_service(c->net->ctx, 0); }

struct lws_context *net_context(const chat *c) { return c->net ? c->net->ctx : NULL; }

void net_endpoint(const chat *c, const char **host, int *port, const char **host_header, int *tls) {
  *host = c->net->host;
  *port = c->net->port;
  *host_header = c->net->host_header;
  *tls = c->net->tls;
}

void net_free(chat *c) {
  chat_net *n = c->net;
  if (!n) return;
  if (n->ctx) {
    n->destroying = 1;
    n->stopping_stdin = 1;
    http_stop(c); /* the requests in flight are dropped: the engine asks again next run */
    lws_sul_cancel(&n->wake);
    lws_context_destroy(n->ctx);
    n->ctx = NULL;
  }
  http_free(c);
  /* The engine hears of the end of an attempt lws did not call back. */
  if (n->state != NET_IDLE) conn_ended(c, NULL);
  queue_clear(n);
  free(n->rx);
  if (n->tx) {
    wipe(n->tx, n->tx_cap);
    free(n->tx);
  }
  if (n->line) {
    wipe(n->line, MAX_LINE);
    free(n->line);
  }
  free(n->host);
  free(n->path);
  free(n->host_header);
  free(n);
  c->net = NULL;
}
