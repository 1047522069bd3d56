/*
 * whisper-chat: the engine's HTTP requests (the blob store, client.h's
 * "the app's HTTP"), on libwebsockets' HTTP client in net.c's context.
 *
 * Each request the engine hands out (whisper_client_take_http()) becomes
 * one HTTP/1.1 connection to the host and port of --server, over TLS when
 * --server is wss:// (with --ca-file and --insecure as the WebSocket has
 * them), with the method, path and headers the engine gave, and a
 * Content-Length for its body. Several may be in flight. Its answer goes
 * back exactly once through whisper_client_http_done(): the status, the
 * response headers as "Name: value\r\n" lines, and the body; status 0 when
 * there was no answer (the connection failed or broke, the answer was
 * larger than HTTP_RX_MAX, or nothing came for HTTP_IDLE_S seconds).
 *
 * lws 4.1 cannot list the headers of a response, so the lines handed on
 * are those of the names in resp_headers[]: every header the blob store
 * (tus 1.0: Location, Upload-Offset, Upload-Length, ...; Content-Range for
 * a ranged download) may send that the engine could read. A request still
 * in flight when whisper-chat quits is dropped unanswered: the engine keeps
 * its job in the store and asks again after the next start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libwebsockets.h>

#include "chat.h"

#define HTTP_PROTOCOL "whisper-chat-http"
#define HTTP_RX_MAX (64u << 20) /* the largest answer taken (a download piece is 1 MiB) */
#define HTTP_TX_PIECE 65536     /* body bytes per write */
#define HTTP_IDLE_S 60          /* no progress for this long: given up (status 0) */
#define HTTP_HEADER_MAX 1024    /* bytes of one response header's value */

typedef struct http_req {
  struct http_req *next;
  uint64_t handle;
  char *method;
  char *path;
  char *headers;         /* the engine's "Name: value\r\n" lines */
  uint8_t *body;
  size_t body_len, body_sent;
  struct lws *wsi;       /* NULL once lws destroyed it (or never made it) */
  int answered;          /* whisper_client_http_done() was called (or will not be) */
  int starting;          /* inside lws_client_connect_via_info(): not freed yet */
  int gone;              /* lws destroyed its wsi while it was starting */
  int status;
  jbuf resp_headers;     /* the answer's header lines */
  uint8_t *rx;
  size_t rx_len, rx_cap;
  int rx_overflow;
} http_req;

struct chat_http {
  http_req *reqs;
  size_t in_flight;      /* not answered yet */
  int stopping;          /* quitting: nothing more is answered */
  uint8_t tx[LWS_PRE + HTTP_TX_PIECE];
};

/* The response headers handed on: a token lws knows, or a custom name. */
static const struct {
  const char *name;
  int token; /* -1: a custom header (lws_hdr_custom_copy) */
} resp_headers[] = {
    {"Location", WSI_TOKEN_HTTP_LOCATION},
    {"Content-Range", WSI_TOKEN_HTTP_CONTENT_RANGE},
    {"Content-Type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"Content-Length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
    {"Cache-Control", WSI_TOKEN_HTTP_CACHE_CONTROL},
    {"Retry-After", WSI_TOKEN_HTTP_RETRY_AFTER},
    {"WWW-Authenticate", WSI_TOKEN_HTTP_WWW_AUTHENTICATE},
    {"Allow", WSI_TOKEN_HTTP_ALLOW},
    {"Upload-Offset", -1},
    {"Upload-Length", -1},
    {"Upload-Expires", -1},
    {"Upload-Defer-Length", -1},
    {"Upload-Metadata", -1},
    {"Tus-Resumable", -1},
    {"Tus-Version", -1},
    {"Tus-Extension", -1},
    {"Tus-Max-Size", -1},
};

static chat *chat_of(struct lws *wsi) { return lws_context_user(lws_get_context(wsi)); }

static void req_free(chat_http *h, http_req *r) {
  for (http_req **p = &h->reqs; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  free(r->method);
  free(r->path);
  free(r->headers);
  free(r->body);
  free(r->rx);
  jb_free(&r->resp_headers);
  free(r);
}

/* The answer goes to the engine, once (status 0: none came). */
static void answer(chat *c, http_req *r, int status) {
  chat_http *h = c->http;
  if (r->answered) return;
  r->answered = 1;
  h->in_flight--;
  if (h->stopping) return;
  if (r->rx_overflow || r->resp_headers.failed) status = 0;
  int rc = whisper_client_http_done(c->client, r->handle, status,
                                    status && r->resp_headers.p ? r->resp_headers.p : NULL,
                                    status ? r->rx : NULL, status ? r->rx_len : 0, now_ms());
  if (rc != WHISPER_OK && rc != WHISPER_EINVAL) /* EINVAL: the engine gave the job up */
    fprintf(stderr, "whisper-chat: the answer to %s %s: %s (%s)\n", r->method, r->path,
            whisper_strerror(rc), whisper_ctx_last_error(c->ctx));
  free(r->body);
  r->body = NULL;
  chat_events(c);
}

/* The wsi is gone: the request is answered (0 if it was not) and freed. */
static void wsi_gone(chat *c, http_req *r) {
  r->wsi = NULL;
  answer(c, r, 0);
  if (r->starting)
    r->gone = 1;
  else
    req_free(c->http, r);
}

/* The engine's header lines, each added as "name: value". */
static int add_headers(struct lws *wsi, const char *lines, unsigned char **p, unsigned char *end) {
  char name[128];
  const char *s = lines ? lines : "";
  while (*s) {
    const char *eol = strstr(s, "\r\n");
    size_t len = eol ? (size_t)(eol - s) : strlen(s);
    const char *colon = memchr(s, ':', len);
    if (colon && (size_t)(colon - s) + 2 <= sizeof name && colon > s) {
      size_t nlen = (size_t)(colon - s);
      memcpy(name, s, nlen);
      name[nlen] = ':';
      name[nlen + 1] = '\0';
      const char *v = colon + 1;
      while (v < s + len && (*v == ' ' || *v == '\t')) v++;
      if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
                                      (int)(s + len - v), p, end))
        return -1;
    }
    s += len;
    if (*s) s += 2;
  }
  return 0;
}

/* The answer's headers we hand on, as "Name: value\r\n" lines. */
static void collect_headers(struct lws *wsi, http_req *r) {
  char v[HTTP_HEADER_MAX];
  char lower[40];
  for (size_t i = 0; i < sizeof resp_headers / sizeof resp_headers[0]; i++) {
    int n;
    if (resp_headers[i].token >= 0) {
      n = lws_hdr_copy(wsi, v, sizeof v, (enum lws_token_indexes)resp_headers[i].token);
    } else {
      /* lws keeps a custom header's name as it came, with its colon */
      size_t k = 0;
      for (const char *s = resp_headers[i].name; *s && k + 2 < sizeof lower; s++)
        lower[k++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
      lower[k++] = ':';
      lower[k] = '\0';
      n = lws_hdr_custom_copy(wsi, v, sizeof v, lower, (int)k);
      if (n < 0) { /* as sent, in its own case */
        snprintf(lower, sizeof lower, "%s:", resp_headers[i].name);
        n = lws_hdr_custom_copy(wsi, v, sizeof v, lower, (int)strlen(lower));
      }
    }
    if (n < 0) continue;
    hb_printf(&r->resp_headers, "%s: %.*s\r\n", resp_headers[i].name, n, v);
  }
}

static int rx_append(http_req *r, const void *in, size_t len) {
  if (r->rx_overflow) return 0;
  if (r->rx_len + len > HTTP_RX_MAX) {
    r->rx_overflow = 1;
    return -1;
  }
  if (r->rx_len + len > r->rx_cap) {
    size_t cap = r->rx_cap ? r->rx_cap : 16384;
    while (cap < r->rx_len + len) cap *= 2;
    uint8_t *p = realloc(r->rx, cap);
    if (!p) {
      r->rx_overflow = 1;
      return -1;
    }
    r->rx = p;
    r->rx_cap = cap;
  }
  memcpy(r->rx + r->rx_len, in, len);
  r->rx_len += len;
  return 0;
}

static int has_body(const http_req *r) {
  return r->body_len > 0 || strcmp(r->method, "POST") == 0 || strcmp(r->method, "PATCH") == 0 ||
         strcmp(r->method, "PUT") == 0;
}

/* The callback of protocol "whisper-chat-http" (net.c's table). */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len) {
  chat *c = chat_of(wsi);
  http_req *r = lws_get_opaque_user_data(wsi);
  if (!c || !c->http || !r) return lws_callback_http_dummy(wsi, reason, user, in, len);
  chat_http *h = c->http;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    answer(c, r, 0);
    break;
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
    unsigned char **p = (unsigned char **)in, *end = *p + len;
    if (add_headers(wsi, r->headers, p, end) != 0) return -1;
    if (has_body(r)) {
      char cl[24];
      int n = snprintf(cl, sizeof cl, "%zu", r->body_len);
      if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (const unsigned char *)cl,
                                       n, p, end))
        return -1;
    }
    if (r->body_len) {
      lws_client_http_body_pending(wsi, 1);
      lws_callback_on_writable(wsi);
    }
    break;
  }
  case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE: {
    if (!r->body || r->body_sent >= r->body_len) break;
    size_t n = r->body_len - r->body_sent;
    if (n > HTTP_TX_PIECE) n = HTTP_TX_PIECE;
    int last = r->body_sent + n == r->body_len;
    memcpy(h->tx + LWS_PRE, r->body + r->body_sent, n);
    if (lws_write(wsi, h->tx + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n)
      return -1;
    r->body_sent += n;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, HTTP_IDLE_S);
    if (last)
      lws_client_http_body_pending(wsi, 0);
    else
      lws_callback_on_writable(wsi);
    break;
  }
  case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
    r->status = (int)lws_http_client_http_response(wsi);
    collect_headers(wsi, r);
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, HTTP_IDLE_S);
    break;
  case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
    char buf[LWS_PRE + 16384];
    char *px = buf + LWS_PRE;
    int lenx = (int)sizeof buf - LWS_PRE;
    if (lws_http_client_read(wsi, &px, &lenx) < 0) return -1;
    return 0;
  }
  case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
    if (rx_append(r, in, len) != 0) return -1; /* too large: answered 0 when it closes */
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, HTTP_IDLE_S);
    return 0;
  case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
    answer(c, r, r->status);
    break;
  case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
    answer(c, r, 0); /* closed before the answer was complete */
    break;
  case LWS_CALLBACK_WSI_DESTROY:
    lws_set_opaque_user_data(wsi, NULL);
    wsi_gone(c, r);
    return 0;
  default:
    break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* Starts one request; the engine's strings are copied (they last until its
 * next call). */
static void start(chat *c, const whisper_http_request_t *q) {
  chat_http *h = c->http;
  http_req *r = calloc(1, sizeof *r);
  if (r) {
    r->handle = q->handle;
    r->method = strdup(q->method ? q->method : "GET");
    r->path = strdup(q->path ? q->path : "/");
    r->headers = strdup(q->headers ? q->headers : "");
    r->body_len = q->body ? q->body_len : 0;
    if (r->body_len && (r->body = malloc(r->body_len)) != NULL) memcpy(r->body, q->body, r->body_len);
  }
  if (!r || !r->method || !r->path || !r->headers || (r->body_len && !r->body)) {
    if (r) req_free(h, r);
    whisper_client_http_done(c->client, q->handle, 0, NULL, NULL, 0, now_ms());
    return;
  }
  r->next = h->reqs;
  h->reqs = r;
  h->in_flight++;

  const char *host, *host_header;
  int port, tls;
  net_endpoint(c, &host, &port, &host_header, &tls);
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = net_context(c);
  ci.address = host;
  ci.port = port;
  ci.path = r->path;
  ci.host = host_header;
  ci.origin = host_header;
  ci.method = r->method;
  ci.alpn = "http/1.1";
  ci.local_protocol_name = HTTP_PROTOCOL;
  ci.opaque_user_data = r;
  if (tls) {
    ci.ssl_connection = LCCSCF_USE_SSL;
    if (c->insecure)
      ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
  }
  ci.pwsi = &r->wsi;
  r->starting = 1;
  struct lws *wsi = lws_client_connect_via_info(&ci);
  r->starting = 0;
  /* NULL: it failed, and lws may or may not have called back already. */
  if (!wsi || r->gone) {
    answer(c, r, 0);
    req_free(h, r);
  }
}

int http_init(chat *c) {
  c->http = calloc(1, sizeof *c->http);
  return c->http ? 0 : -1;
}

void http_pump(chat *c) {
  whisper_http_request_t q = WHISPER_HTTP_REQUEST_INIT;
  if (!c->http || c->http->stopping || net_context(c) == NULL) return;
  while (whisper_client_take_http(c->client, &q) == 1) start(c, &q);
}

size_t http_in_flight(const chat *c) { return c->http ? c->http->in_flight : 0; }

void http_stop(chat *c) {
  if (c->http) c->http->stopping = 1;
}

void http_free(chat *c) {
  chat_http *h = c->http;
  if (!h) return;
  h->stopping = 1;
  while (h->reqs) req_free(h, h->reqs);
  free(h);
  c->http = NULL;
}
