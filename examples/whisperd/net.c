/*
 * whisperd: the libwebsockets glue.
 *
 * One vhost on one port. whisperd binds the listening socket itself and
 * hands every accepted connection to lws (lws_adopt_socket_vhost()), so it
 * knows the port it got for port 0 and can stop accepting at shutdown
 * while the connections stay (lws 4.1's lws_context_deprecate() is not
 * usable: it touches the listening wsi after freeing it). Protocols:
 *   "http"             GET /healthz, GET /metrics, the blob store at
 *                      /v1/blobs (tus.c) (everything that is not a
 *                      WebSocket upgrade)
 *   "whisper-sync-v1"  the WebSocket endpoint at /v1/ws; also the default
 *                      protocol, for clients that offer no subprotocol
 *   "whisperd-listen"  the listening socket, adopted as a raw file
 *   "whisperd-signal"  the read end of the signal self-pipe, adopted as a
 *                      raw file: a byte on it starts the graceful shutdown
 *
 * GET /metrics is not served there: it has a listener and a vhost of its
 * own, plain HTTP, loopback by default (--metrics-listen; see "the metrics
 * listener" below).
 *
 * A WebSocket connection counts against its source address (IPv4, IPv6
 * /64; addrs.c) from its upgrade until it logs in (or closes); an upgrade
 * from an address with --max-prelogin-per-address such connections is
 * answered 429 (see "connections not logged in" below).
 *
 * With TLS: TLS 1.3, and TLS 1.2 with ECDHE and AEAD suites only.
 *
 * Each WebSocket connection gets an id from a counter. Every complete
 * binary message goes to whisper_server_receive(); after every call into
 * the core its output is drained with whisper_server_take_output(): frames are
 * framed into their connection's buffer and, once the drain is over,
 * each connection's buffer is written in one lws_write() (write_out: no
 * WRITEABLE round trip unless the socket is full), closes wait for the
 * queue to flush, pushes go to the push hook. One lws_sul
 * timer runs whisper_server_tick() at whisper_server_next_deadline().
 *
 * Everything runs on one thread. The event loop (wd_net_run) is libuv (on
 * epoll) by default: lws's libuv plugin with our own uv loop handed to lws
 * as a foreign loop, so each pass of the loop is one uv_run(UV_RUN_ONCE)
 * and costs what the ready descriptors and due timers cost, not the
 * number of connections. --event-loop poll (or a libuv plugin that does
 * not load) falls back to lws's own poll() loop, one lws_service() per
 * pass, which walks every descriptor on every pass. (Not libev: lws
 * 4.1's libev plugin does not move its timer earlier when an earlier
 * timer is added, so timers would fire late.)
 *
 * Per connection lws keeps no timer of its own once the WebSocket is up
 * (no lws "validity" ping timer: the core's heartbeat closes silent
 * connections), because lws 4.1 keeps its timers in one sorted list and
 * a timer per connection would make every insertion walk all of them.
 *
 * Group commit: the frames read in one pass of the loop (one
 * uv_run(UV_RUN_ONCE), or one lws_service() on poll) are a batch of the
 * core (whisper_server_batch_begin/_end, see pass()): they share one store
 * transaction, committed when the pass is over, before the loop polls
 * again, and the core's output is drained after that commit only.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

#if defined(WD_HAVE_LIBUV) && defined(LWS_WITH_LIBUV)
#define WD_LIBUV 1
#include <uv.h>
#else
#define WD_LIBUV 0
#endif

#include "blobs.h"
#include "whisperd.h"

/* conn.closing */
enum {
  CLOSE_NO = 0,
  CLOSE_FLUSHING = 1, /* writing out the queue */
  CLOSE_QUEUED = 2,   /* flushed: in close_ids, for close_cb */
  CLOSE_SENT = 3      /* handed to lws's close handshake */
};

/* A WebSocket connection: lws's per-session data (zeroed by lws).
 *
 * Output: the frames the core queued for it, each already framed as a
 * WebSocket binary message (the server's frames are not masked), one
 * after the other in `out` from out + LWS_PRE + out_off to out + LWS_PRE +
 * out_len; freed once written. */
typedef struct conn {
  uint64_t id;
  struct lws *wsi;
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  size_t queued;  /* bytes waiting in `out` (out_len - out_off) */
  int to_flush;   /* listed in wd_net.flush_ids */
  uint8_t *rx;   /* the message being reassembled */
  size_t rx_len, rx_cap;
  int open;    /* known to the core */
  int closing; /* CLOSE_*: close once the queue is flushed; read nothing more */
  int close_status;
  const char *close_reason;
  char peer[64];
  wd_addr addr; /* its source address (IPv4, IPv6 /64) */
  int prelogin; /* counted in wd_net.prelogin: open and not logged in */
} conn;

/* An HTTP transaction: the response body being written, or a blob
 * request (tus.c). */
typedef struct http_tx {
  char *body;
  size_t len, off;
  int close_after;
  wd_tus *tus;
} http_tx;

#define SWEEP_US (60 * LWS_US_PER_SEC) /* expired blobs are deleted this often */

enum { RUNNING = 0, DRAINING = 1, CUTTING = 2 };

struct wd_net {
  const wd_config *cfg;
  whisper_server *srv;
  wd_push_hook *push;
  struct lws_context *ctx;
  struct lws_vhost *vh;
#if WD_LIBUV
  uv_loop_t uv;    /* ours; lws runs on it as a foreign loop */
  uv_loop_t *loop; /* &uv once made, NULL: lws's poll() loop */
  void *loops[1];  /* lws's foreign_loops */
#endif
  int signal_fd;
  int tls;

  int listen_fd; /* ours until adopted by lws (listen_wsi), then lws's */
  struct lws *listen_wsi;
  lws_sorted_usec_list_t sul_accept;
  uint64_t accept_warned_ms;
  char shown[96]; /* the bound address, as printed */

  uint64_t next_id;
  conn **slots; /* id -> connection, open addressing, power-of-two size */
  size_t cap, count;

  lws_sorted_usec_list_t sul_tick;
  int tick_armed;
  uint64_t tick_at;

  lws_sorted_usec_list_t sul_shutdown;
  lws_sorted_usec_list_t sul_sweep;
  lws_sorted_usec_list_t sul_close;
  uint64_t *close_ids; /* flushed connections to close (close_cb) */
  size_t n_close, cap_close;
  uint64_t *flush_ids; /* connections given frames by this drain (write_out at its end) */
  size_t n_flush, cap_flush;
  wd_tus_ctx tus; /* the blob store's HTTP side */
  int phase;
  int done;
  int destroying;
  int batching; /* inside a pass's batch: the output waits for its commit */

  wd_net_stats stats;
  wd_cluster *cluster; /* cluster mode: the relays to and from the other nodes */
  int relay_fd;        /* an eventfd the relay thread writes when relays arrived */

  /* WebSocket connections not logged in, per source address */
  wd_addr_counts *prelogin;
  uint64_t prelogin_warned_ms;
  uint64_t prelogin_unwarned; /* refusals since the last warning line */

  /* the metrics listener (--metrics-listen): a vhost of its own */
  struct lws_vhost *mvh;
  int mlisten_fd; /* ours until adopted (mlisten_wsi), then lws's */
  struct lws *mlisten_wsi;
  lws_sorted_usec_list_t sul_maccept;
  char mshown[96];
};

/* --- the clock ------------------------------------------------------------ */

uint64_t wd_now_ms(void) {
  static uint64_t last;
  static int behind;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  if (ms < last) {
    if (!behind && last - ms > 1000)
      wd_warn("the wall clock went back %llu ms; holding the server's time until it catches up",
              (unsigned long long)(last - ms));
    behind = 1;
    return last;
  }
  behind = 0;
  last = ms;
  return ms;
}

/* --- connection ids -> connections ------------------------------------------ */

static size_t slot_of(uint64_t id, size_t cap) {
  id ^= id >> 33;
  id *= 0xff51afd7ed558ccdULL;
  id ^= id >> 33;
  return (size_t)id & (cap - 1);
}

static int map_put(wd_net *n, conn *c) {
  if ((n->count + 1) * 4 > n->cap * 3) {
    size_t cap = n->cap ? n->cap * 2 : 64;
    conn **slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < n->cap; i++) {
      if (!n->slots[i]) continue;
      size_t j = slot_of(n->slots[i]->id, cap);
      while (slots[j]) j = (j + 1) & (cap - 1);
      slots[j] = n->slots[i];
    }
    free(n->slots);
    n->slots = slots;
    n->cap = cap;
  }
  size_t i = slot_of(c->id, n->cap);
  while (n->slots[i]) i = (i + 1) & (n->cap - 1);
  n->slots[i] = c;
  n->count++;
  return 0;
}

static conn *map_get(const wd_net *n, uint64_t id) {
  if (!n->cap) return NULL;
  for (size_t i = slot_of(id, n->cap); n->slots[i]; i = (i + 1) & (n->cap - 1))
    if (n->slots[i]->id == id) return n->slots[i];
  return NULL;
}

static void map_del(wd_net *n, uint64_t id) {
  if (!n->cap) return;
  size_t mask = n->cap - 1, i = slot_of(id, n->cap);
  while (n->slots[i] && n->slots[i]->id != id) i = (i + 1) & mask;
  if (!n->slots[i]) return;
  n->slots[i] = NULL;
  n->count--;
  /* Backward shift: move later entries of the run into the hole when their
   * home slot is not between the hole and them. */
  for (size_t j = (i + 1) & mask; n->slots[j]; j = (j + 1) & mask) {
    size_t k = slot_of(n->slots[j]->id, n->cap);
    int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
    if (stays) continue;
    n->slots[i] = n->slots[j];
    n->slots[j] = NULL;
    i = j;
  }
}

/* --- output ----------------------------------------------------------------- */

static void schedule_tick(wd_net *n);

static void free_queue(wd_net *n, conn *c) {
  free(c->out);
  c->out = NULL;
  c->out_off = c->out_len = c->out_cap = 0;
  n->stats.out_queued_bytes -= c->queued;
  c->queued = 0;
}

/* close_after_flush() without a timer of its own: a shutdown has one for
 * all of them (an lws timer per connection is an insertion into lws's
 * sorted list, which walks every timer already in it). */
#define NO_TIMER UINT64_MAX

static int queue_close(wd_net *n, conn *c);

/* Close after what is queued has been written, within close-timeout-ms.
 * Nothing more is read from the connection. */
static void close_after_flush(wd_net *n, conn *c, int status, const char *reason,
                              uint64_t within_ms) {
  if (c->closing) return;
  c->closing = CLOSE_FLUSHING;
  c->close_status = status;
  c->close_reason = reason;
  /* (nothing waiting, here or in lws: its close starts now) */
  if (c->queued || lws_partial_buffered(c->wsi) || queue_close(n, c) != 0) {
    lws_rx_flow_control(c->wsi, 0);
    lws_callback_on_writable(c->wsi);
  }
  if (within_ms == NO_TIMER)
    return;
  if (within_ms == 0)
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  else
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, (int)((within_ms + 999) / 1000));
}

/* Close now, dropping the queue (a peer too slow to read it). */
static void drop_now(wd_net *n, conn *c, int status, const char *reason) {
  free_queue(n, c);
  c->closing = CLOSE_SENT;
  c->close_status = status;
  c->close_reason = reason;
  n->stats.ws_dropped++;
  lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The most handed to lws_write() at once: lws sends at most the
 * protocol's tx_packet_size (+ LWS_PRE + 4) per call and buffers the rest
 * itself (see the protocol table). */
#define WD_TX_CHUNK 65536

/* A WebSocket frame header (RFC 6455 5.2: FIN, binary, not masked) for a
 * payload of `len` bytes: its length (2, 4 or 10). */
static size_t ws_header(uint8_t h[10], size_t len) {
  h[0] = 0x82;
  if (len < 126) {
    h[1] = (uint8_t)len;
    return 2;
  }
  if (len < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  return 10;
}

/* Appends a frame to c's output, framed; it is written at the end of the
 * drain (write_out). */
static void enqueue(wd_net *n, conn *c, const uint8_t *frame, size_t len) {
  if (c->queued + len > n->cfg->max_queue) {
    wd_warn("conn %llu: more than %zu bytes waiting to be sent, dropping the connection",
            (unsigned long long)c->id, n->cfg->max_queue);
    drop_now(n, c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too slow");
    return;
  }
  uint8_t h[10];
  size_t hl = ws_header(h, len), need = c->out_len + hl + len;
  if (c->out_off && c->out_off == c->out_len) c->out_off = c->out_len = 0, need = hl + len;
  if (LWS_PRE + need > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < LWS_PRE + need) cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p) {
      wd_error("conn %llu: out of memory queuing a frame, dropping the connection",
               (unsigned long long)c->id);
      drop_now(n, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
      return;
    }
    c->out = p;
    c->out_cap = cap;
  }
  if (!c->to_flush) {
    if (n->n_flush == n->cap_flush) {
      size_t cap = n->cap_flush ? n->cap_flush * 2 : 64;
      uint64_t *v = realloc(n->flush_ids, cap * sizeof *v);
      if (!v) {
        wd_error("conn %llu: out of memory queuing a frame, dropping the connection",
                 (unsigned long long)c->id);
        drop_now(n, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return;
      }
      n->flush_ids = v;
      n->cap_flush = cap;
    }
    n->flush_ids[n->n_flush++] = c->id;
    c->to_flush = 1;
  }
  uint8_t *at = c->out + LWS_PRE + c->out_len;
  memcpy(at, h, hl);
  if (len) memcpy(at + hl, frame, len);
  c->out_len += hl + len;
  c->queued += hl + len;
  n->stats.out_queued_bytes += hl + len;
}

/* Writes c's output: straight to the socket through lws (lws_write()
 * outside a WRITEABLE callback is what lws does with whatever it cannot
 * send at once: it keeps the rest, sends it first when the socket can
 * take more, and appends any later write after it), all of it in one
 * write when it fits a chunk. So a frame costs no wait for POLLOUT and no
 * epoll change: on libuv every lws_callback_on_writable() turns POLLOUT on
 * and off again, a few epoll_ctl each. Once lws holds unsent bytes, the
 * rest waits here until lws says the socket took them (WRITEABLE), so a
 * peer that does not read still meets max-queue. -1: the connection
 * failed (it is being closed). */
static int write_out(wd_net *n, conn *c) {
  while (c->out_off < c->out_len) {
    if (lws_partial_buffered(c->wsi)) return 0; /* lws asked for WRITEABLE itself */
    size_t len = c->out_len - c->out_off;
    if (len > WD_TX_CHUNK) len = WD_TX_CHUNK;
    int w = lws_write(c->wsi, c->out + LWS_PRE + c->out_off, len, LWS_WRITE_RAW);
    if (w < 0 || (size_t)w < len) {
      wd_debug("conn %llu: write failed", (unsigned long long)c->id);
      return -1;
    }
    c->out_off += len;
    c->queued -= len;
    n->stats.out_queued_bytes -= len;
  }
  /* all of it with lws: an idle connection keeps no buffer */
  free(c->out);
  c->out = NULL;
  c->out_off = c->out_len = c->out_cap = 0;
  return 0;
}

/* Writes the output of the connections this drain gave frames. */
static void flush_out(wd_net *n) {
  for (size_t i = 0; i < n->n_flush; i++) {
    conn *c = map_get(n, n->flush_ids[i]);
    if (!c) continue;
    c->to_flush = 0;
    if (c->closing == CLOSE_SENT || !c->queued) continue;
    if (write_out(n, c) != 0) {
      free_queue(n, c);
      c->closing = CLOSE_SENT;
      lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
  }
  n->n_flush = 0;
}

/* Carries out everything the core has to say. Call after every call into
 * the core. Inside a batch, the end of the pass does it. */
static void drain(wd_net *n) {
  if (n->destroying || n->batching) return;
  whisper_server_output_t out = WHISPER_SERVER_OUTPUT_INIT;
  while (whisper_server_take_output(n->srv, &out) > 0) {
    conn *c;
    switch (out.action) {
      case WHISPER_SERVER_SEND:
        c = map_get(n, out.conn);
        if (!c || c->closing) {
          wd_debug("conn %llu: frame of %zu bytes for a closing connection dropped",
                   (unsigned long long)out.conn, out.frame_len);
          break;
        }
        if (wd_log_enabled(WD_LOG_DEBUG))
          wd_debug("conn %llu: frame out, %zu bytes", (unsigned long long)out.conn, out.frame_len);
        enqueue(n, c, out.frame, out.frame_len);
        break;
      case WHISPER_SERVER_DISCONNECT:
        c = map_get(n, out.conn);
        if (!c) break;
        wd_info("conn %llu: closed by the server", (unsigned long long)c->id);
        close_after_flush(n, c, LWS_CLOSE_STATUS_NORMAL, "closed by the server",
                          n->cfg->close_flush_ms);
        break;
      case WHISPER_SERVER_RELAY:
        if (n->cluster) wd_cluster_send(n->cluster, out.frame, out.frame_len);
        break;
      case WHISPER_SERVER_PUSH:
        if (n->push && n->push->notify)
          n->push->notify(n->push->user, out.account, out.device_id, out.mailbox_depth);
        break;
      default:
        wd_warn("unknown action %d from the server core, ignored", out.action);
        break;
    }
  }
  flush_out(n);
  schedule_tick(n);
}

/* --- timers ------------------------------------------------------------------ */

static void tick_cb(lws_sorted_usec_list_t *sul) {
  wd_net *n = lws_container_of(sul, wd_net, sul_tick);
  n->tick_armed = 0;
  whisper_server_tick(n->srv, wd_now_ms());
  drain(n);
}

/* (Re)arms the tick timer for the core's next deadline. The timer runs at
 * least once a minute, so a step of the wall clock is caught up with. */
static void schedule_tick(wd_net *n) {
  if (n->destroying) return;
  uint64_t at = whisper_server_next_deadline(n->srv);
  if (n->tick_armed && at == n->tick_at) return;
  n->tick_at = at;
  uint64_t now = wd_now_ms();
  uint64_t delay = at > now ? at - now : 0;
  if (delay > 60000) delay = 60000;
  if (delay < 1) delay = 1;
  n->tick_armed = 1;
  lws_sul_schedule(n->ctx, 0, &n->sul_tick, tick_cb, (lws_usec_t)delay * 1000);
}

static void sweep_cb(lws_sorted_usec_list_t *sul) {
  wd_net *n = lws_container_of(sul, wd_net, sul_sweep);
  size_t gone = wd_blobs_sweep(n->tus.store, wd_blob_now(n->cfg));
  if (gone) wd_info("blobs: %zu expired, deleted", gone);
  lws_sul_schedule(n->ctx, 0, &n->sul_sweep, sweep_cb, SWEEP_US);
}

/* --- shutdown ---------------------------------------------------------------- */

static void finish(wd_net *n) {
  if (n->done) return;
  n->done = 1;
  lws_sul_cancel(&n->sul_shutdown);
  lws_cancel_service(n->ctx);
}

static void shutdown_cb(lws_sorted_usec_list_t *sul) {
  wd_net *n = lws_container_of(sul, wd_net, sul_shutdown);
  if (n->phase == DRAINING) {
    n->phase = CUTTING;
    /* the loop ends; lws_context_destroy() (wd_net_free) cuts them, and
     * their CLOSED callbacks tell the core (not one lws kill timer each:
     * every insertion into lws's sorted timer list walks all of them) */
    wd_info("shutdown: %llu connections did not flush in time, cutting them",
            (unsigned long long)n->stats.ws_open);
  }
  finish(n);
}

/* --- the listening socket ---------------------------------------------------- */

static void stop_listening(wd_net *n) {
  lws_sul_cancel(&n->sul_accept);
  if (n->listen_wsi) /* closed (with its socket) on the next loop iteration */
    lws_set_timeout(n->listen_wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void accept_resume_cb(lws_sorted_usec_list_t *sul) {
  wd_net *n = lws_container_of(sul, wd_net, sul_accept);
  if (n->listen_wsi && n->phase == RUNNING) lws_rx_flow_control(n->listen_wsi, 1);
}

static int set_nonblock_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : 0;
}

static int callback_listen(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len) {
  (void)user;
  (void)in;
  (void)len;
  wd_net *n = lws_context_user(lws_get_context(wsi));
  switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
      if (n->phase != RUNNING) return 0;
      /* At most 64 at a time, so a burst of connects cannot starve the rest. */
      for (int i = 0; i < 64; i++) {
        int fd = accept(n->listen_fd, NULL, NULL);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The backlog stays readable: pause instead of spinning. */
            uint64_t now = wd_now_ms();
            if (now - n->accept_warned_ms >= 10000) { /* one line per 10 s, not per pause */
              wd_warn("accept: %s; pausing accepts (250 ms at a time)", strerror(errno));
              n->accept_warned_ms = now;
            }
            lws_rx_flow_control(wsi, 0);
            lws_sul_schedule(n->ctx, 0, &n->sul_accept, accept_resume_cb, 250000);
            break;
          }
          wd_error("accept: %s", strerror(errno));
          break;
        }
        int one = 1;
        if (set_nonblock_cloexec(fd) != 0) {
          close(fd);
          continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (n->cfg->sndbuf) {
          int sb = (int)n->cfg->sndbuf;
          setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
        }
        if (!lws_adopt_socket_vhost(n->vh, fd)) /* lws closed it */
          wd_warn("libwebsockets refused an accepted connection");
      }
      return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
      n->listen_wsi = NULL;
      n->listen_fd = -1; /* lws closes it */
      if (n->phase == RUNNING && !n->destroying)
        wd_error("the listening socket was closed; not accepting any more");
      else
        wd_debug("listening socket closed");
      return 0;
    default:
      return 0;
  }
}

/* Binds HOST:PORT and listens: the socket in *fd_out, the bound address as
 * printed in shown ("127.0.0.1:8480", "[::1]:8480"). "*" or "": every
 * interface (IPv6 dual stack if there is IPv6, else IPv4). A name binds the
 * first of its addresses that works. `what` prefixes the error lines. */
static int bind_listener(const char *host, unsigned port, const char *what, int *fd_out,
                         char *shown, size_t shown_cap) {
  int any = !host[0] || strcmp(host, "*") == 0;
  char service[8];
  snprintf(service, sizeof service, "%u", port);
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = getaddrinfo(any ? NULL : host, service, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "whisperd: %scannot resolve listen address '%s': %s\n", what, host,
            gai_strerror(rc));
    return -1;
  }
  int fd = -1, err = EADDRNOTAVAIL;
  for (int pass = 0; pass < 2 && fd < 0; pass++) {
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
      /* every interface: the IPv6 wildcard (dual stack) first */
      if (any && (pass == 0) != (ai->ai_family == AF_INET6)) continue;
      if (!any && pass == 1) break;
      fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (fd < 0) {
        err = errno;
        continue;
      }
      int one = 1, v6only = !any;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        err = errno;
        close(fd);
        fd = -1;
      }
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    fprintf(stderr, "whisperd: %scannot listen on %s port %u: %s\n", what, any ? "*" : host, port,
            strerror(err));
    return -1;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char addr[64], serv[8];
  if (set_nonblock_cloexec(fd) != 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
      getnameinfo((struct sockaddr *)&ss, sl, addr, sizeof addr, serv, sizeof serv,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    fprintf(stderr, "whisperd: %scannot set up the listening socket: %s\n", what, strerror(errno));
    close(fd);
    return -1;
  }
  if (strchr(addr, ':'))
    snprintf(shown, shown_cap, "[%s]:%s", addr, serv);
  else
    snprintf(shown, shown_cap, "%s:%s", addr, serv);
  *fd_out = fd;
  return 0;
}

static int open_listener(wd_net *n, const char *host, unsigned port) {
  return bind_listener(host, port, "", &n->listen_fd, n->shown, sizeof n->shown);
}

static void begin_shutdown(wd_net *n, int sig) {
  n->phase = DRAINING;
  n->stats.shutting_down = 1;
  wd_info("shutdown (signal %d): not accepting, flushing %llu connections (at most %llu ms)", sig,
          (unsigned long long)n->stats.ws_open, (unsigned long long)n->cfg->shutdown_ms);
  stop_listening(n);
  if (n->cluster) { /* the other nodes take this one's devices for offline now */
    whisper_server_cluster_leave(n->srv, wd_now_ms());
    drain(n);
  }
  for (size_t i = 0; i < n->cap; i++)
    if (n->slots[i])
      close_after_flush(n, n->slots[i], LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down",
                        NO_TIMER); /* sul_shutdown is the deadline of them all */
  if (n->stats.ws_open == 0) {
    finish(n);
    return;
  }
  lws_sul_schedule(n->ctx, 0, &n->sul_shutdown, shutdown_cb,
                   (lws_usec_t)n->cfg->shutdown_ms * 1000);
}

static int callback_signal(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len) {
  (void)user;
  (void)in;
  (void)len;
  wd_net *n = lws_context_user(lws_get_context(wsi));
  switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE: {
      unsigned char sigs[32];
      ssize_t r;
      while ((r = read(lws_get_socket_fd(wsi), sigs, sizeof sigs)) > 0) {
        for (ssize_t i = 0; i < r; i++) { /* one byte per signal */
          if (n->phase == RUNNING) {
            begin_shutdown(n, sigs[i]);
          } else if (n->phase == DRAINING && !n->done) {
            wd_info("shutdown: second signal, not waiting for the flush");
            lws_sul_schedule(n->ctx, 0, &n->sul_shutdown, shutdown_cb, 1);
          }
        }
      }
      return 0;
    }
    default:
      return 0;
  }
}

/* Relays from the other nodes (cluster mode): the relay thread wrote the
 * eventfd; everything it heard goes to the core. */
static int callback_relay(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len) {
  (void)user;
  (void)in;
  (void)len;
  wd_net *n = lws_context_user(lws_get_context(wsi));
  if (reason != LWS_CALLBACK_RAW_RX_FILE || n->cluster == NULL) return 0;
  uint64_t v;
  if (read(lws_get_socket_fd(wsi), &v, sizeof v) < 0) { /* EAGAIN: taken already */
  }
  wd_relay *relay;
  int resync;
  while (wd_cluster_take(n->cluster, &relay, &resync)) {
    if (resync) {
      wd_info("cluster: the link to the other nodes is up: resynchronising");
      whisper_server_cluster_resync(n->srv, wd_now_ms());
    }
    if (relay) {
      int rc = whisper_server_relay(n->srv, relay->data, relay->len, wd_now_ms());
      if (rc != WHISPER_OK)
        wd_warn("cluster: a relay was refused: %s", whisper_server_last_error(n->srv));
      free(relay);
    }
    drain(n);
  }
  return 0;
}

static void relay_wake(void *arg) {
  wd_net *n = arg;
  uint64_t one = 1;
  if (write(n->relay_fd, &one, sizeof one) < 0) { /* full: the loop is being woken anyway */
  }
}

/* --- connections not logged in, per source address ----------------------------
 * A WebSocket connection costs the core a connection and a challenge, and
 * whisperd its buffers, before anyone is known: without a cap, one host
 * could hold every file descriptor with connections that never log in
 * (each lives up to --auth-timeout-ms, longer while it waits on a link
 * code). So each source address (addrs.c: IPv4, IPv6 /64) may have
 * --max-prelogin-per-address of them at once; a further upgrade from it
 * gets 429 before it is a WebSocket. A connection counts from its upgrade
 * until it logs in (it logs in only by a frame of its own, so whisperd asks
 * the core after each one) or closes. HTTP requests (blobs, /healthz) do
 * not count. */

/* Answers an HTTP request at once, with a short text and Retry-After, for
 * an upgrade refused in the filter callback (lws closes the connection
 * once the callback returns nonzero). 0, or -1 if it could not be written. */
static int answer_now(struct lws *wsi, unsigned status, const char *text) {
  unsigned char buf[LWS_PRE + 512];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  unsigned char body[LWS_PRE + 256];
  size_t len = strlen(text);
  if (len > sizeof body - LWS_PRE) len = sizeof body - LWS_PRE;
  memcpy(body + LWS_PRE, text, len);
  if (lws_add_http_common_headers(wsi, status, "text/plain; charset=utf-8", len, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_RETRY_AFTER, (const unsigned char *)"5", 1,
                                   &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5,
                                   &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  int w = lws_write(wsi, body + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
  return w < 0 || (size_t)w < len ? -1 : 0;
}

/* 1 if the upgrade on `wsi` is refused (answered 429): its source address
 * has its fill of connections not logged in. */
static int prelogin_refused(wd_net *n, struct lws *wsi) {
  uint32_t max = n->cfg->max_prelogin_per_addr;
  if (!max) return 0;
  wd_addr a;
  wd_addr_of_fd(lws_get_socket_fd(wsi), &a);
  if (wd_addr_count(n->prelogin, &a) < max) return 0;
  n->stats.prelogin_refused++;
  n->prelogin_unwarned++;
  uint64_t now = wd_now_ms();
  if (now - n->prelogin_warned_ms >= 10000) { /* one line per 10 s, however many refusals */
    char shown[64];
    wd_warn("WebSocket upgrade refused (429): %lu connections not logged in from %s "
            "(max-prelogin-per-address); %llu such refusals in the last 10 s",
            (unsigned long)max, wd_addr_format(&a, shown, sizeof shown),
            (unsigned long long)n->prelogin_unwarned);
    n->prelogin_warned_ms = now;
    n->prelogin_unwarned = 0;
  }
  if (answer_now(wsi, 429, "too many connections not logged in from your address; retry later\n"))
    wd_debug("the 429 answer could not be written");
  return 1;
}

/* A connection is upgraded: it counts against its address. */
static void prelogin_add(wd_net *n, conn *c) {
  wd_addr_of_fd(lws_get_socket_fd(c->wsi), &c->addr);
  if (!n->cfg->max_prelogin_per_addr || !n->prelogin) return;
  if (wd_addr_inc(n->prelogin, &c->addr) == 0) c->prelogin = 1;
}

/* After a frame of c's: once it logged in, it counts no more. */
static void prelogin_check(wd_net *n, conn *c) {
  if (!c->prelogin || !whisper_server_conn_authenticated(n->srv, c->id)) return;
  c->prelogin = 0;
  wd_addr_dec(n->prelogin, &c->addr);
}

static void prelogin_remove(wd_net *n, conn *c) {
  if (!c->prelogin) return;
  c->prelogin = 0;
  wd_addr_dec(n->prelogin, &c->addr);
}

/* --- the WebSocket endpoint -------------------------------------------------- */

static void conn_release(wd_net *n, conn *c) {
  prelogin_remove(n, c);
  free_queue(n, c);
  free(c->rx);
  c->rx = NULL;
  c->rx_len = c->rx_cap = 0;
  if (!c->open) return;
  c->open = 0;
  map_del(n, c->id);
  n->stats.ws_open--;
  whisper_server_disconnected(n->srv, c->id, wd_now_ms());
  wd_info("conn %llu closed", (unsigned long long)c->id);
  drain(n);
  if (n->phase != RUNNING && n->stats.ws_open == 0 && !n->destroying) {
    wd_info("shutdown: every connection closed");
    finish(n);
  }
}

/* A complete message: into the core, then its output out (at the end of
 * the pass with group commit: the first frame of a pass opens its batch). */
static void deliver(wd_net *n, conn *c, const uint8_t *msg, size_t len) {
  static const uint8_t empty[1];
  if (!n->batching && !n->cfg->no_group_commit)
    n->batching = whisper_server_batch_begin(n->srv) == WHISPER_OK;
  if (wd_log_enabled(WD_LOG_DEBUG))
    wd_debug("conn %llu: frame in, %zu bytes", (unsigned long long)c->id, len);
  int rc = whisper_server_receive(n->srv, c->id, msg ? msg : empty, len, wd_now_ms());
  prelogin_check(n, c);
  if (rc == WHISPER_ENOTFOUND)
    wd_warn("conn %llu: unknown to the server core", (unsigned long long)c->id);
  else if (rc != WHISPER_OK)
    wd_error("conn %llu: the store failed: %s (%s); the frame was answered ERR_INTERNAL",
             (unsigned long long)c->id, whisper_strerror(rc), whisper_server_last_error(n->srv));
  drain(n);
}

static int on_receive(wd_net *n, conn *c, struct lws *wsi, const uint8_t *in, size_t len) {
  if (!c->open || c->closing) return 0; /* no longer listening to it */
  if (!lws_frame_is_binary(wsi)) {
    wd_info("conn %llu: text message refused, closing", (unsigned long long)c->id);
    n->stats.ws_dropped++;
    close_after_flush(n, c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, "binary frames only",
                      n->cfg->close_flush_ms);
    return 0;
  }
  size_t max = n->cfg->server.max_frame;
  int complete = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
  if (c->rx_len == 0 && complete) { /* the usual case: the whole message at once */
    if (len > max) goto too_big;
    deliver(n, c, in, len);
    return 0;
  }
  if (len > max - c->rx_len) goto too_big;
  if (c->rx_len + len > c->rx_cap) {
    size_t cap = c->rx_cap ? c->rx_cap : 4096;
    while (cap < c->rx_len + len) cap *= 2;
    if (cap > max) cap = max;
    uint8_t *p = realloc(c->rx, cap);
    if (!p) {
      wd_error("conn %llu: out of memory reassembling a message", (unsigned long long)c->id);
      drop_now(n, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
      return 0;
    }
    c->rx = p;
    c->rx_cap = cap;
  }
  if (len) memcpy(c->rx + c->rx_len, in, len);
  c->rx_len += len;
  if (!complete) return 0;
  size_t total = c->rx_len;
  c->rx_len = 0;
  deliver(n, c, c->rx, total);
  free(c->rx); /* an idle connection keeps no buffer */
  c->rx = NULL;
  c->rx_cap = 0;
  return 0;

too_big:
  wd_info("conn %llu: message over max-frame (%zu bytes), closing", (unsigned long long)c->id, max);
  n->stats.ws_dropped++;
  free(c->rx);
  c->rx = NULL;
  c->rx_len = c->rx_cap = 0;
  close_after_flush(n, c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big",
                    n->cfg->close_flush_ms);
  return 0;
}

/* The close of a flushed connection is started from a timer (close_cb),
 * not by returning -1 from its WRITEABLE callback after
 * lws_close_reason(): lws 4.1 on an event library (libuv) then shuts the
 * socket without sending the close frame, and the peer sees no close
 * code. Started outside a callback, lws's close handshake sends it. */
#define CLOSE_BATCH 256 /* closes started per pass (see close_cb) */

static void close_cb(lws_sorted_usec_list_t *sul) {
  wd_net *n = lws_container_of(sul, wd_net, sul_close);
  /* At most CLOSE_BATCH at a time: each puts a timer of lws's close
   * handshake into lws's sorted timer list (an insertion walks the whole
   * list), so when thousands close at once (a shutdown) the list holds
   * those of a few batches, not all of them. */
  for (int batch = 0; n->n_close && batch < CLOSE_BATCH; batch++) {
    uint64_t id = n->close_ids[--n->n_close];
    conn *c = map_get(n, id);
    if (!c || c->closing != CLOSE_QUEUED) continue;
    const char *r = c->close_reason ? c->close_reason : "";
    c->closing = CLOSE_SENT;
    lws_close_reason(c->wsi, (enum lws_close_status)c->close_status,
                     (unsigned char *)(uintptr_t)r, strlen(r));
    /* lws reads again, for the peer's answering close frame (on_receive
     * passes nothing on from a closing connection) */
    lws_rx_flow_control(c->wsi, 1);
    /* not a kill: the close reason makes lws send the close frame, then
     * wait (at most 5 s) for the peer's */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
  }
  if (n->n_close) lws_sul_schedule(n->ctx, 0, &n->sul_close, close_cb, 1);
}

static int queue_close(wd_net *n, conn *c) {
  if (n->n_close == n->cap_close) {
    size_t cap = n->cap_close ? n->cap_close * 2 : 64;
    uint64_t *v = realloc(n->close_ids, cap * sizeof *v);
    if (!v) return -1;
    n->close_ids = v;
    n->cap_close = cap;
  }
  n->close_ids[n->n_close++] = c->id;
  c->closing = CLOSE_QUEUED;
  if (n->n_close == 1) lws_sul_schedule(n->ctx, 0, &n->sul_close, close_cb, 1);
  return 0;
}

/* lws had buffered part of a write and the socket took it: the rest of
 * the output goes on (write_out); a connection closing once flushed starts
 * its close when nothing is left, here or in lws. */
static int on_writeable(wd_net *n, conn *c, struct lws *wsi) {
  (void)wsi;
  if (c->closing == CLOSE_SENT) return 0;
  if (c->queued && write_out(n, c) != 0) return -1;
  if (c->closing == CLOSE_FLUSHING && !c->queued && !lws_partial_buffered(c->wsi)) {
    if (queue_close(n, c) == 0) return 0;
    /* out of memory: closed at once, without a close frame */
    return -1;
  }
  return 0;
}

static int callback_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
  wd_net *n = lws_context_user(lws_get_context(wsi));
  conn *c = user;
  switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
      char uri[128];
      int l = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
      if (l <= 0 || strcmp(uri, WHISPERD_WS_PATH) != 0) {
        wd_debug("WebSocket upgrade refused: not " WHISPERD_WS_PATH);
        return 1;
      }
      if (n->phase != RUNNING) return 1;
      if (n->cfg->max_connections && n->stats.ws_open >= n->cfg->max_connections) {
        wd_warn("WebSocket upgrade refused: max-connections (%lu) reached",
                (unsigned long)n->cfg->max_connections);
        return 1;
      }
      if (prelogin_refused(n, wsi)) return 1;
      return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
      if (n->phase != RUNNING) return -1;
      c->wsi = wsi;
      c->id = ++n->next_id;
      c->peer[0] = 0;
      lws_get_peer_simple(wsi, c->peer, sizeof c->peer);
      if (map_put(n, c)) {
        wd_error("out of memory accepting a connection");
        return -1;
      }
      /* The core's limits per source (accounts and link codes per hour,
       * connections waiting for login) key on the same address as the cap
       * above; loopback peers (tests, a proxy on this host) have none. */
      wd_addr_of_fd(lws_get_socket_fd(wsi), &c->addr);
      int rc = c->addr.len && !wd_addr_is_loopback(&c->addr)
                   ? whisper_server_connected_from(n->srv, c->id, c->addr.b, c->addr.len, wd_now_ms())
                   : whisper_server_connected(n->srv, c->id, wd_now_ms());
      if (rc != WHISPER_OK) {
        map_del(n, c->id);
        if (rc == WHISPER_EBUSY)
          wd_warn("conn %llu: refused: too many connections not logged in from its source",
                  (unsigned long long)c->id);
        else
          wd_error("conn %llu: the server core refused it: %s", (unsigned long long)c->id,
                   whisper_strerror(rc));
        return -1;
      }
      c->open = 1;
      prelogin_add(n, c);
      n->stats.ws_open++;
      n->stats.ws_accepted++;
      wd_info("conn %llu open (peer %s)", (unsigned long long)c->id, c->peer[0] ? c->peer : "?");
      drain(n);
      return 0;
    }
    case LWS_CALLBACK_RECEIVE:
      return on_receive(n, c, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return on_writeable(n, c, wsi);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (c && c->open)
        wd_debug("conn %llu: the peer closes (%zu bytes of close payload)",
                 (unsigned long long)c->id, len);
      return 0;
    case LWS_CALLBACK_CLOSED:
      if (c) conn_release(n, c);
      return 0;
    default:
      return 0;
  }
}

/* --- HTTP: /healthz (and /metrics on the metrics listener) -------------------- */

static int respond(struct lws *wsi, http_tx *tx, unsigned status, const char *type, char *body,
                   size_t len, int close_after) {
  unsigned char buf[LWS_PRE + 512];
  unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  free(tx->body);
  tx->body = body;
  tx->len = len;
  tx->off = 0;
  tx->close_after = close_after;
  if (lws_add_http_common_headers(wsi, status, type, len, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   (const unsigned char *)"no-store", 8, &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return 1;
  lws_callback_on_writable(wsi);
  return 0;
}

static int respond_text(struct lws *wsi, http_tx *tx, unsigned status, const char *text,
                        int close_after) {
  char *body = strdup(text);
  if (!body) return 1;
  return respond(wsi, tx, status, "text/plain; charset=utf-8", body, strlen(body), close_after);
}

/* Writes the next piece of a response body (respond()); once it is all
 * out, the connection serves the next request, or closes. */
static int body_writeable(http_tx *tx, struct lws *wsi) {
  if (!tx || !tx->body) return 0;
  unsigned char buf[LWS_PRE + 4096];
  size_t chunk = tx->len - tx->off;
  if (chunk > sizeof buf - LWS_PRE) chunk = sizeof buf - LWS_PRE;
  int last = tx->off + chunk == tx->len;
  memcpy(buf + LWS_PRE, tx->body + tx->off, chunk);
  int w = lws_write(wsi, buf + LWS_PRE, chunk, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
  if (w < 0 || (size_t)w < chunk) return -1;
  tx->off += chunk;
  if (!last) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  free(tx->body);
  tx->body = NULL;
  if (tx->close_after) return -1;
  if (lws_http_transaction_completed(wsi)) return -1;
  return 0;
}

/* The answer to a blob request; once it is out the connection serves the
 * next request (or closes). */
static int blob_writeable(wd_net *n, http_tx *tx, struct lws *wsi) {
  int done = 0;
  if (wd_tus_writeable(&n->tus, tx->tus, wsi, &done) < 0) return -1;
  if (!done) return 0;
  wd_tus_free(&n->tus, tx->tus);
  tx->tus = NULL;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len) {
  wd_net *n = lws_context_user(lws_get_context(wsi));
  http_tx *tx = user;
  switch (reason) {
    case LWS_CALLBACK_HTTP: {
      const char *path = in ? (const char *)in : "";
      n->stats.http_requests++;
      if (wd_tus_path(path)) {
        wd_tus_free(&n->tus, tx->tus); /* never left over; HTTP/1.1 is one at a time */
        return wd_tus_request(&n->tus, wsi, path, &tx->tus);
      }
      if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return respond_text(wsi, tx, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed\n", 1);
      if (strcmp(path, "/healthz") == 0) {
        if (n->phase != RUNNING)
          return respond_text(wsi, tx, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down\n", 0);
        return respond_text(wsi, tx, HTTP_STATUS_OK, "ok\n", 0);
      }
      if (strcmp(path, WHISPERD_WS_PATH) == 0)
        return respond_text(wsi, tx, 426, "a WebSocket endpoint (" WHISPERD_WS_PROTOCOL ")\n", 0);
      return respond_text(wsi, tx, HTTP_STATUS_NOT_FOUND, "not found\n", 0);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
      if (tx && tx->tus) return blob_writeable(n, tx, wsi);
      return body_writeable(tx, wsi);
    case LWS_CALLBACK_HTTP_BODY: /* a blob's, else (only with a 405) ignored */
      if (tx && tx->tus) return wd_tus_body(&n->tus, tx->tus, in, len);
      return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: /* lws holds WRITEABLE until here */
      if (tx && tx->tus) return wd_tus_body_done(&n->tus, tx->tus, wsi);
      if (tx && tx->body) lws_callback_on_writable(wsi);
      return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
      if (tx) {
        free(tx->body);
        tx->body = NULL;
        wd_tus_free(&n->tus, tx->tus); /* a PATCH cut off keeps what arrived */
        tx->tus = NULL;
      }
      break;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* --- the metrics listener -------------------------------------------------------
 * GET /metrics (and /healthz) on a socket of their own (--metrics-listen,
 * 127.0.0.1:9480 by default), in a vhost of their own: plain HTTP, even
 * when the client port speaks TLS, and nothing else (no WebSocket, no
 * blobs). The counters say how busy the server is and how many accounts
 * are online: that is for the operator, not for the world. Its sockets are
 * accepted like the client port's and closed with the context; a shutdown
 * leaves it open, so a scrape still sees whisperd_shutting_down. */

static void maccept_resume_cb(lws_sorted_usec_list_t *sul) {
  wd_net *n = lws_container_of(sul, wd_net, sul_maccept);
  if (n->mlisten_wsi) lws_rx_flow_control(n->mlisten_wsi, 1);
}

static int callback_metrics_listen(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                                   void *in, size_t len) {
  (void)user;
  (void)in;
  (void)len;
  wd_net *n = lws_context_user(lws_get_context(wsi));
  switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
      for (int i = 0; i < 16; i++) {
        int fd = accept(n->mlisten_fd, NULL, NULL);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            lws_rx_flow_control(wsi, 0); /* pause instead of spinning */
            lws_sul_schedule(n->ctx, 0, &n->sul_maccept, maccept_resume_cb, 250000);
          } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            wd_error("metrics: accept: %s", strerror(errno));
          }
          break;
        }
        if (set_nonblock_cloexec(fd) != 0) {
          close(fd);
          continue;
        }
        if (!lws_adopt_socket_vhost(n->mvh, fd)) /* lws closed it */
          wd_warn("libwebsockets refused a metrics connection");
      }
      return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
      n->mlisten_wsi = NULL;
      n->mlisten_fd = -1; /* lws closes it */
      return 0;
    default:
      return 0;
  }
}

static int callback_metrics_http(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                                 void *in, size_t len) {
  wd_net *n = lws_context_user(lws_get_context(wsi));
  http_tx *tx = user;
  switch (reason) {
    case LWS_CALLBACK_HTTP: {
      const char *path = in ? (const char *)in : "";
      if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return respond_text(wsi, tx, HTTP_STATUS_METHOD_NOT_ALLOWED, "method not allowed\n", 1);
      if (strcmp(path, "/metrics") == 0) {
        size_t mlen = 0;
        if (n->cluster) {
          n->stats.node = n->cfg->node;
          wd_cluster_stats(n->cluster, &n->stats.relays_sent, &n->stats.relays_heard,
                           &n->stats.relays_dropped, &n->stats.relay_reconnects);
        }
        char *text = wd_metrics_render(n->srv, &n->stats, &n->tus, &mlen);
        if (!text)
          return respond_text(wsi, tx, HTTP_STATUS_INTERNAL_SERVER_ERROR, "out of memory\n", 1);
        return respond(wsi, tx, HTTP_STATUS_OK, WD_METRICS_CONTENT_TYPE, text, mlen, 0);
      }
      if (strcmp(path, "/healthz") == 0) {
        if (n->phase != RUNNING)
          return respond_text(wsi, tx, HTTP_STATUS_SERVICE_UNAVAILABLE, "shutting down\n", 0);
        return respond_text(wsi, tx, HTTP_STATUS_OK, "ok\n", 0);
      }
      return respond_text(wsi, tx, HTTP_STATUS_NOT_FOUND, "not found\n", 0);
    }
    case LWS_CALLBACK_HTTP_WRITEABLE:
      return body_writeable(tx, wsi);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: /* lws holds WRITEABLE until here */
      if (tx && tx->body) lws_callback_on_writable(wsi);
      return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
      if (tx) {
        free(tx->body);
        tx->body = NULL;
      }
      break;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols metrics_protocols[] = {
    {"http", callback_metrics_http, sizeof(http_tx), 0, 0, NULL, 0},
    {"whisperd-metrics-listen", callback_metrics_listen, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* Binds --metrics-listen and serves it (nothing with "off"). 0 or -1
 * (reported). */
static int start_metrics(wd_net *n) {
  const wd_config *cfg = n->cfg;
  if (!cfg->metrics_host) return 0;
  if (bind_listener(cfg->metrics_host, cfg->metrics_port, "metrics-listen: ", &n->mlisten_fd,
                    n->mshown, sizeof n->mshown))
    return -1;
  struct lws_context_creation_info vinfo;
  memset(&vinfo, 0, sizeof vinfo);
  vinfo.vhost_name = "whisperd-metrics";
  /* Not CONTEXT_PORT_NO_LISTEN_SERVER like the client vhost: lws rebinds an
   * HTTP request to the vhost that has its Host header as name (or else to
   * the first vhost) among those with the same listen port, so with equal
   * ports a request on the metrics socket would be served by the client
   * vhost, and a "Host: whisperd-metrics" on the client port by this one.
   * With a port of its own (NO_LISTEN: lws listens for neither, the sockets
   * are ours) each vhost keeps its own connections. */
  vinfo.port = CONTEXT_PORT_NO_LISTEN;
  vinfo.protocols = metrics_protocols;
  vinfo.server_string = "whisperd";
  n->mvh = lws_create_vhost(n->ctx, &vinfo);
  if (!n->mvh) {
    fprintf(stderr, "whisperd: libwebsockets: cannot create the metrics server\n");
    return -1;
  }
  lws_sock_file_fd_type fd;
  fd.filefd = n->mlisten_fd;
  n->mlisten_fd = -1; /* lws's from here, adopted or closed */
  n->mlisten_wsi = lws_adopt_descriptor_vhost(n->mvh, LWS_ADOPT_RAW_FILE_DESC, fd,
                                              "whisperd-metrics-listen", NULL);
  if (!n->mlisten_wsi) {
    fprintf(stderr, "whisperd: libwebsockets: cannot watch the metrics socket\n");
    return -1;
  }
  n->mlisten_fd = fd.filefd;
  return 0;
}

/* --- startup ----------------------------------------------------------------- */

/* lws's receive buffer of each WebSocket connection (its rx_buffer_size),
 * allocated with the connection: a message longer than this comes in
 * pieces, which on_receive() puts together in a buffer of its own, freed
 * once the message is delivered. Most frames are a few hundred bytes
 * (messages, acks, receipts); this is most of what an idle connection
 * costs whisperd (measured with whisperd-load: with 64 KiB here an idle
 * connection cost 6.1 KiB of RSS, with 4000 B 6.0, 2000 B 4.0, 1000 B
 * 3.1). */
#define WD_RX_CHUNK 1000
/* TLS: 1.3, and 1.2 with ECDHE key exchange and AEAD ciphers only (forward
 * secrecy; no CBC, no RSA key exchange, no DHE); never 1.1 or older. */
#define WD_TLS12_CIPHERS                                                  \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"            \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"            \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define WD_TLS13_CIPHERS "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define WD_TLS_OPTIONS                                                                      \
  ((long)(SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION | \
          SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE))

static const struct lws_protocols protocols[] = {
    {"http", callback_http, sizeof(http_tx), 0, 0, NULL, 0},
    /* tx_packet_size: what lws sends in one call (write_out hands it up
     * to WD_TX_CHUNK at once; lws's default would be the rx size) */
    {WHISPERD_WS_PROTOCOL, callback_ws, sizeof(conn), WD_RX_CHUNK, 0, NULL, WD_TX_CHUNK},
    {"whisperd-listen", callback_listen, 0, 0, 0, NULL, 0},
    {"whisperd-signal", callback_signal, 0, 0, 0, NULL, 0},
    {"whisperd-relay", callback_relay, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* No lws validity timer (PING after 300 s idle) on our connections: it is
 * one entry per connection in lws's sorted timer list, and the core's
 * heartbeat closes silent connections already. */
static const lws_retry_bo_t no_validity_timer = {.secs_since_valid_ping = 0,
                                                  .secs_since_valid_hangup = 0};

/* Makes the sync protocol the one a client that offers no subprotocol gets. */
static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, WHISPERD_WS_PROTOCOL, ""};

/* lws's own lines, into ours: its errors as warnings, the rest as debug. */
static void lws_emit(int level, const char *line) {
  int ours = (level & LLL_ERR) ? WD_LOG_WARN : WD_LOG_DEBUG;
  if (!wd_log_enabled(ours)) return;
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
  wd_log(ours, "lws: %.*s", (int)len, line);
}

/* Descriptors whisperd needs besides its WebSocket connections: stdio, the
 * store (database, WAL, shared memory), the listening socket, the pipes,
 * epoll, HTTP requests and blob files. */
#define FD_RESERVE 64

/* Every connection is a descriptor, so the soft limit goes up to the hard
 * one (before the lws context is made: lws sizes its descriptor tables by
 * it). With --max-connections, no further than they need: lws 4.1 goes
 * through its whole descriptor table once per connection it closes, so a
 * table far bigger than the connections costs time. */
static void raise_fd_limit(const wd_config *cfg) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = rl.rlim_max;
  if (want == RLIM_INFINITY) { /* the kernel's own ceiling then */
    want = 1u << 20;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    unsigned long long v;
    if (f && fscanf(f, "%llu", &v) == 1 && v > 0) want = (rlim_t)v;
    if (f) fclose(f);
  }
  if (cfg->max_connections && (rlim_t)cfg->max_connections + FD_RESERVE < want)
    want = (rlim_t)cfg->max_connections + FD_RESERVE;
  if (rl.rlim_cur < want) {
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      wd_warn("cannot raise the descriptor limit from %llu to %llu: %s", (unsigned long long)was,
              (unsigned long long)want, strerror(errno));
      rl.rlim_cur = was;
    }
  }
  rlim_t cur = rl.rlim_cur;
  if (cfg->max_connections && cur < (rlim_t)cfg->max_connections + FD_RESERVE)
    wd_warn("the descriptor limit (%llu, hard limit %llu) holds fewer than max-connections (%lu) "
            "+ %d: raise the hard limit (ulimit -Hn, LimitNOFILE=)",
            (unsigned long long)cur, (unsigned long long)rl.rlim_max,
            (unsigned long)cfg->max_connections, FD_RESERVE);
  wd_info("descriptor limit %llu: about %llu connections", (unsigned long long)cur,
          (unsigned long long)(cur > FD_RESERVE ? cur - FD_RESERVE : 0));
}

#if WD_LIBUV
/* Runs the loop until lws has closed its handles (libuv closes them
 * asynchronously), then closes it. */
static void loop_run_out(wd_net *n) {
  for (int i = 0; i < 1000 && uv_loop_alive(n->loop); i++) uv_run(n->loop, UV_RUN_NOWAIT);
}

static void loop_close(wd_net *n) {
  if (!n->loop) return;
  loop_run_out(n);
  if (uv_loop_close(n->loop) != 0) wd_warn("the event loop still had handles at exit");
  n->loop = NULL;
}
#endif

/* The lws context, on libuv (our loop, foreign to lws) unless told
 * otherwise or the libuv plugin does not load. */
static struct lws_context *make_context(wd_net *n, struct lws_context_creation_info *info) {
  int want = n->cfg->event_loop;
#if WD_LIBUV
  if (want != WD_LOOP_POLL && uv_loop_init(&n->uv) == 0) {
    n->loop = &n->uv;
    n->loops[0] = n->loop;
    info->options |= LWS_SERVER_OPTION_LIBUV;
    info->foreign_loops = n->loops;
    struct lws_context *ctx = lws_create_context(info);
    info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBUV;
    info->foreign_loops = NULL;
    if (ctx) {
      wd_info("event loop: libuv %s", uv_version_string());
      return ctx;
    }
    loop_close(n);
  }
  if (want == WD_LOOP_LIBUV) {
    fprintf(stderr,
            "whisperd: --event-loop libuv: libwebsockets' libuv plugin does not load "
            "(Debian: apt-get install libwebsockets-evlib-uv)\n");
    return NULL;
  }
  if (want == WD_LOOP_AUTO)
    wd_warn("libwebsockets' libuv plugin does not load (Debian: libwebsockets-evlib-uv): "
            "falling back to poll(), which goes through every connection on every event");
#else
  if (want == WD_LOOP_LIBUV) {
    fprintf(stderr, "whisperd: --event-loop libuv: built without libuv (or libwebsockets "
                    "without LWS_WITH_LIBUV)\n");
    return NULL;
  }
  if (want == WD_LOOP_AUTO)
    wd_warn("built without libuv: poll() goes through every connection on every event");
#endif
  struct lws_context *ctx = lws_create_context(info);
  if (ctx) wd_info("event loop: poll");
  return ctx;
}

int wd_net_start(wd_net **out, const wd_config *cfg, whisper_server *srv, wd_push_hook *push,
                 struct wd_blobs *blobs, int signal_fd) {
  *out = NULL;
  wd_net *n = calloc(1, sizeof *n);
  if (!n) {
    fprintf(stderr, "whisperd: out of memory\n");
    return -1;
  }
  n->cfg = cfg;
  n->srv = srv;
  n->push = push;
  n->signal_fd = signal_fd;
  n->tls = cfg->tls_cert != NULL;
  n->tus.srv = srv;
  n->tus.cfg = cfg;
  n->tus.store = blobs;

  n->listen_fd = -1;
  n->relay_fd = -1;
  n->mlisten_fd = -1;
  n->prelogin = wd_addr_counts_new();
  if (!n->prelogin) {
    fprintf(stderr, "whisperd: out of memory\n");
    goto fail;
  }
  if (open_listener(n, cfg->host, cfg->port)) goto fail;
  if (n->tls && (access(cfg->tls_cert, R_OK) != 0 || access(cfg->tls_key, R_OK) != 0)) {
    const char *bad = access(cfg->tls_cert, R_OK) != 0 ? cfg->tls_cert : cfg->tls_key;
    fprintf(stderr, "whisperd: cannot read %s: %s\n", bad, strerror(errno));
    goto fail;
  }

  lws_set_log_level(LLL_ERR | LLL_WARN | (wd_log_enabled(WD_LOG_DEBUG) ? LLL_NOTICE : 0), lws_emit);
  raise_fd_limit(cfg);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  if (n->tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.user = n;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.pcontext = &n->ctx; /* NULL once lws has freed it */
  n->ctx = make_context(n, &info);
  if (!n->ctx) {
    fprintf(stderr, "whisperd: libwebsockets: cannot create the context\n");
    goto fail;
  }

  struct lws_context_creation_info vinfo;
  memset(&vinfo, 0, sizeof vinfo);
  vinfo.vhost_name = "whisperd";
  vinfo.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* a server, on the sockets we adopt */
  vinfo.protocols = protocols;
  vinfo.pvo = &pvo;
  vinfo.server_string = "whisperd";
  vinfo.alpn = "http/1.1";
  vinfo.retry_and_idle_policy = &no_validity_timer;
  if (n->tls) {
    /* lws 4.1 checks this option on the vhost too before it sets up TLS */
    vinfo.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    vinfo.ssl_cert_filepath = cfg->tls_cert;
    vinfo.ssl_private_key_filepath = cfg->tls_key;
    vinfo.ssl_cipher_list = WD_TLS12_CIPHERS;
    vinfo.tls1_3_plus_cipher_list = WD_TLS13_CIPHERS;
    vinfo.ssl_options_set = WD_TLS_OPTIONS;
  }
  n->vh = lws_create_vhost(n->ctx, &vinfo);
  if (!n->vh) {
    fprintf(stderr, "whisperd: libwebsockets: cannot create the server%s\n",
            n->tls ? " (is the TLS certificate or key bad, or do they not match?)" : "");
    goto fail;
  }

  lws_sock_file_fd_type fd;
  fd.filefd = n->listen_fd;
  n->listen_fd = -1; /* lws's from here, adopted or closed */
  n->listen_wsi =
      lws_adopt_descriptor_vhost(n->vh, LWS_ADOPT_RAW_FILE_DESC, fd, "whisperd-listen", NULL);
  if (!n->listen_wsi) {
    fprintf(stderr, "whisperd: libwebsockets: cannot watch the listening socket\n");
    goto fail;
  }
  n->listen_fd = fd.filefd;
  fd.filefd = dup(signal_fd);
  if (fd.filefd < 0 ||
      !lws_adopt_descriptor_vhost(n->vh, LWS_ADOPT_RAW_FILE_DESC, fd, "whisperd-signal", NULL)) {
    fprintf(stderr, "whisperd: libwebsockets: cannot watch the signal pipe\n");
    goto fail;
  }

  if (cfg->node) {
    n->relay_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    fd.filefd = n->relay_fd >= 0 ? dup(n->relay_fd) : -1;
    if (fd.filefd < 0 ||
        !lws_adopt_descriptor_vhost(n->vh, LWS_ADOPT_RAW_FILE_DESC, fd, "whisperd-relay", NULL)) {
      fprintf(stderr, "whisperd: libwebsockets: cannot watch the relay queue\n");
      goto fail;
    }
    if (wd_cluster_start(&n->cluster, cfg->pg, relay_wake, n)) goto fail;
  }
  drain(n); /* the core's first output (cluster mode: the hello) */
  if (start_metrics(n)) goto fail;

  schedule_tick(n);
  if (blobs) lws_sul_schedule(n->ctx, 0, &n->sul_sweep, sweep_cb, SWEEP_US);

  wd_info("serving %s://%s" WHISPERD_WS_PATH " and %s://%s/{healthz%s}",
          n->tls ? "wss" : "ws", n->shown, n->tls ? "https" : "http", n->shown,
          blobs ? ",v1/blobs" : "");
  /* Printed before the listening line, so that whoever waits for that one
   * knows the metrics port too (always printed when there is one). */
  if (n->mvh)
    fprintf(stderr, "whisperd: metrics on %s\n", n->mshown);
  else
    wd_info("no metrics listener (metrics-listen off)");
  /* The line tests and scripts wait for: always printed. */
  fprintf(stderr, "whisperd: listening on %s\n", n->shown);
  *out = n;
  return 0;

fail:
  wd_net_free(n);
  return -1;
}

/* The first frame read in a pass opens a batch (deliver()), so the frames
 * that were ready when the poll returned share one commit (one fsync with
 * synchronous=FULL), and the frames that arrive during that commit share
 * the next pass's. The batch is committed when the pass is over, before
 * the loop polls again, so nothing is held while the loop waits. Nothing
 * the core says leaves before the commit that makes it true; a failed
 * commit keeps nothing of the pass and closes its connections (the core
 * queues their CLOSEs). A timer that runs inside the pass (libuv runs the
 * due timers after the poll as well as before) has its output held to
 * that commit. */
static void commit_pass(wd_net *n) {
  if (!n->batching) return;
  n->batching = 0;
  int brc = whisper_server_batch_end(n->srv, wd_now_ms());
  if (brc != WHISPER_OK)
    wd_error("the store failed to commit: %s (%s); nothing of the pass was kept, its "
             "connections are closed",
             whisper_strerror(brc), whisper_server_last_error(n->srv));
  drain(n);
}

/* One pass of the event loop: waits until a descriptor is ready or a timer
 * is due (or, when lws has work pending, not at all), then runs every
 * callback that makes: lws's for the ready descriptors (accept, receive,
 * writeable, close), and the ripe timers (the core's tick, shutdown,
 * blob sweep), then commits the pass's batch. Everything whisperd does
 * happens inside some pass. */
static int pass(wd_net *n) {
  int rc;
#if WD_LIBUV
  if (n->loop)
    rc = !uv_run(n->loop, UV_RUN_ONCE) && !n->done ? -1 : 0; /* -1: nothing left to watch */
  else
#endif
    rc = lws_service(n->ctx, 0) < 0 ? -1 : 0;
  commit_pass(n);
  return rc;
}

int wd_net_run(wd_net *n) {
  while (!n->done) {
    if (pass(n) < 0) {
      wd_error("the event loop failed");
      return -1;
    }
  }
  return 0;
}

void wd_net_free(wd_net *n) {
  if (!n) return;
  n->destroying = 1;
  if (n->ctx) {
    lws_sul_cancel(&n->sul_tick);
    lws_sul_cancel(&n->sul_shutdown);
    lws_sul_cancel(&n->sul_accept);
    lws_sul_cancel(&n->sul_sweep);
    lws_sul_cancel(&n->sul_close);
    lws_sul_cancel(&n->sul_maccept);
    /* Closes what is left: the CLOSED callbacks tell the core and free. */
    lws_context_destroy(n->ctx);
#if WD_LIBUV
    /* On a foreign libuv loop lws 4.1 finishes in two steps: its handles
     * close as the loop runs, then a second lws_context_destroy() frees
     * the context (n->ctx is set to NULL once it is gone). */
    if (n->loop) {
      loop_run_out(n);
      if (n->ctx) lws_context_destroy(n->ctx);
    }
#endif
  }
#if WD_LIBUV
  loop_close(n);
#endif
  if (!n->listen_wsi && n->listen_fd >= 0) close(n->listen_fd); /* never adopted */
  if (n->cluster) {
    /* the core said goodbye at the shutdown; give the thread a moment to send it */
    wd_cluster_flush(n->cluster, 500);
    wd_cluster_free(n->cluster);
  }
  if (n->relay_fd >= 0) close(n->relay_fd);
  if (!n->mlisten_wsi && n->mlisten_fd >= 0) close(n->mlisten_fd);
  wd_addr_counts_free(n->prelogin);
  free(n->slots);
  free(n->close_ids);
  free(n->flush_ids);
  free(n);
}
