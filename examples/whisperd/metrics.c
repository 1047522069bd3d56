/*
 * whisperd: GET /metrics, the Prometheus text exposition format 0.0.4.
 *
 * The counters come from the core (whisper_server_stats()); the delivery
 * latency histogram's buckets from whisper_server_latency_bounds(),
 * already cumulative. A few whisperd_net_* series are whisperd's own, and
 * so are the blob store's whisperd_blob_* (blobs.h).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "blobs.h"
#include "whisperd.h"

typedef struct sbuf {
  char *data;
  size_t len, cap;
  int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) WD_PRINTF(2, 3);

static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if ((size_t)n < b->cap - b->len) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap * 2 + (size_t)n;
    char *p = realloc(b->data, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->data = p;
    b->cap = cap;
  }
}

/* Milliseconds as decimal seconds, exactly: 5 -> "0.005", 2500 -> "2.5". */
static const char *ms_as_seconds(uint64_t ms, char *buf, size_t cap) {
  snprintf(buf, cap, "%llu.%03llu", (unsigned long long)(ms / 1000),
           (unsigned long long)(ms % 1000));
  size_t n = strlen(buf);
  while (buf[n - 1] == '0') buf[--n] = 0;
  if (buf[n - 1] == '.') buf[--n] = 0;
  return buf;
}

static void metric(sbuf *b, const char *name, const char *type, const char *help, uint64_t v) {
  sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
            (unsigned long long)v);
}

static void blob_metrics(sbuf *b, const wd_tus_ctx *t) {
  uint64_t blobs = 0, bytes = 0;
  wd_blobs_count(t->store, &blobs, &bytes);
  metric(b, "whisperd_blob_bytes_in_total", "counter",
         "Blob bytes uploaded and acknowledged (PATCH).", t->stats.bytes_in);
  metric(b, "whisperd_blob_bytes_out_total", "counter", "Blob bytes sent (GET).",
         t->stats.bytes_out);
  metric(b, "whisperd_blobs_stored", "gauge", "Blobs in the store, complete or not.", blobs);
  metric(b, "whisperd_blob_bytes_stored", "gauge", "Bytes acknowledged in the stored blobs.",
         bytes);
  const char *r = "whisperd_blob_requests_total";
  sb_printf(b, "# HELP %s Blob store HTTP requests answered, by status.\n# TYPE %s counter\n", r,
            r);
  for (int i = 0; i < WD_BLOB_N_STATUSES; i++)
    sb_printf(b, "%s{status=\"%u\"} %llu\n", r, wd_blob_status_code(i),
              (unsigned long long)t->stats.requests[i]);
}

char *wd_metrics_render(const whisper_server *srv, const wd_net_stats *ns,
                        const struct wd_tus_ctx *blobs, size_t *len) {
  whisper_server_stats_t st = WHISPER_SERVER_STATS_INIT;
  whisper_server_stats(srv, &st);

  sbuf b = {malloc(4096), 0, 4096, 0};
  if (!b.data) return NULL;
  b.data[0] = 0;

  metric(&b, "whisperd_connections", "gauge", "WebSocket connections open.", st.connections);
  metric(&b, "whisperd_authenticated_connections", "gauge",
         "WebSocket connections open and logged in.", st.authenticated);
  metric(&b, "whisperd_frames_received_total", "counter", "Frames received.", st.frames_in);
  metric(&b, "whisperd_frames_sent_total", "counter", "Frames sent.", st.frames_out);
  metric(&b, "whisperd_frames_refused_total", "counter", "Frames answered with an Error.",
         st.frames_refused);
  metric(&b, "whisperd_messages_sent_total", "counter", "Send frames accepted.", st.messages_sent);
  metric(&b, "whisperd_entries_delivered_total", "counter",
         "Mailbox entries acknowledged by their device.", st.entries_delivered);
  metric(&b, "whisperd_mailbox_depth", "gauge", "Entries waiting in all mailboxes.",
         st.mailbox_depth);
  metric(&b, "whisperd_pushes_total", "counter", "Push notifications asked for.", st.pushes);

  const uint64_t *bounds = whisper_server_latency_bounds();
  const char *h = "whisperd_delivery_latency_seconds";
  char num[48];
  sb_printf(&b,
            "# HELP %s Time from a message's acceptance by the server to its acknowledgement "
            "by a recipient device.\n# TYPE %s histogram\n",
            h, h);
  for (size_t i = 0; i < 12; i++)
    sb_printf(&b, "%s_bucket{le=\"%s\"} %llu\n", h, ms_as_seconds(bounds[i], num, sizeof num),
              (unsigned long long)st.latency_le_ms[i]);
  sb_printf(&b, "%s_bucket{le=\"+Inf\"} %llu\n", h, (unsigned long long)st.latency_count);
  sb_printf(&b, "%s_sum %s\n", h, ms_as_seconds(st.latency_sum_ms, num, sizeof num));
  sb_printf(&b, "%s_count %llu\n", h, (unsigned long long)st.latency_count);

  metric(&b, "whisperd_net_connections_accepted_total", "counter",
         "WebSocket connections accepted by whisperd.", ns->ws_accepted);
  metric(&b, "whisperd_net_connections_dropped_total", "counter",
         "WebSocket connections whisperd dropped itself (message too big, text message, output "
         "queue full).",
         ns->ws_dropped);
  metric(&b, "whisperd_net_queued_bytes", "gauge", "Bytes queued for sending on all connections.",
         ns->out_queued_bytes);
  metric(&b, "whisperd_net_http_requests_total", "counter",
         "HTTP requests answered on the client port.", ns->http_requests);
  metric(&b, "whisperd_net_prelogin_refused_total", "counter",
         "WebSocket upgrades refused (429): their source address had max-prelogin-per-address "
         "connections not logged in.",
         ns->prelogin_refused);
  metric(&b, "whisperd_shutting_down", "gauge", "1 while whisperd shuts down.",
         (uint64_t)(ns->shutting_down != 0));
  if (ns->node) {
    metric(&b, "whisperd_cluster_node", "gauge", "This node's number in its cluster.", ns->node);
    metric(&b, "whisperd_cluster_relays_sent_total", "counter",
           "Relays sent to the other nodes (NOTIFY).", ns->relays_sent);
    metric(&b, "whisperd_cluster_relays_heard_total", "counter",
           "Relays heard from the nodes (LISTEN), this node's own included.", ns->relays_heard);
    metric(&b, "whisperd_cluster_relays_dropped_total", "counter",
           "Relays dropped because a queue was full.", ns->relays_dropped);
    metric(&b, "whisperd_cluster_reconnects_total", "counter",
           "Times the relay link to PostgreSQL was made (the first included).",
           ns->relay_reconnects);
  }
  if (blobs) blob_metrics(&b, blobs);

  if (b.failed) {
    free(b.data);
    return NULL;
  }
  *len = b.len;
  return b.data;
}
