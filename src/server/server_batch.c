/*
 * Group commit: the frames of a batch share one store transaction
 * (server_store.c opens it at the first write, each frame's writes inside
 * a savepoint), their output is held (server_output.c) and released when
 * the transaction commits.
 *
 * A failed batch (its commit failed, or a savepoint could not be closed
 * and the transaction may be lost) is rolled back as a whole. The core's
 * memory must then agree with the store again. What the frames of a batch
 * can change in memory, and how it is put back:
 *
 *   - a connection's delivery window (sent_upto, inflight: entries pushed
 *     that no longer exist), its login, its prekey count, a held Register
 *     answered or taken: every connection a frame came on, that output was
 *     queued for, whose window moved or whose prekey count changed carries
 *     the batch's number (wsrv_batch_conn), and is closed; its device
 *     logs in again and resumes from the store;
 *   - a device's push flag (set when a PUSH is queued): cleared again for
 *     each PUSH dropped;
 *   - an account's `hidden` (PresenceSet, a login, an account loaded for a
 *     subscription): read from the store again (wsrv_batch_acct);
 *   - the counters (mailbox depth, sends, deliveries, latency, refusals,
 *     pushes): put back to what they were when the batch began;
 *   - CLOSE actions queued in the batch (connections already forgotten)
 *     are kept: the caller must still close them.
 *
 * Rate buckets, typing throttles and the malformed-frame counts are not
 * put back: they only ever make the server stricter for a moment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"

static void batch_open(whisper_server *srv) {
  srv->batch = 1;
  srv->batch_no++;
  srv->batch_depth = 0;
  srv->batch_broken = 0;
  srv->batch_stats = srv->stats;
}

int whisper_server_batch_begin(whisper_server *srv) {
  if (srv == NULL) return WHISPER_EINVAL;
  whisper_store *s = srv->store;
  if (srv->batch) return wsrv_fail(srv, WHISPER_ESTATE, "a batch is open already");
  if (!wh_txn_has_savepoints(s))
    return wsrv_fail(srv, WHISPER_EINVAL, "batches need a store with savepoints (ops version 4)");
  if (s->depth) return wsrv_fail(srv, WHISPER_ESTATE, "a store transaction is already open");
  batch_open(srv);
  return WHISPER_OK;
}

/* The counters that follow the store, as they were when the batch began. */
static void stats_restore(whisper_server *srv) {
  const whisper_server_stats_t *b = &srv->batch_stats;
  whisper_server_stats_t *s = &srv->stats;
  s->frames_refused = b->frames_refused;
  s->messages_sent = b->messages_sent;
  s->entries_delivered = b->entries_delivered;
  s->mailbox_depth = b->mailbox_depth;
  s->pushes = b->pushes;
  memcpy(s->latency_le_ms, b->latency_le_ms, sizeof s->latency_le_ms);
  s->latency_count = b->latency_count;
  s->latency_sum_ms = b->latency_sum_ms;
}

/* The held output goes, but for its closes (those connections are gone
 * from the core already); a dropped push wakes its device next time. */
static void held_drop(whisper_server *srv) {
  wsrv_out *o = (wsrv_out *)wh_outq_cut(&srv->held, NULL), *next;
  for (; o; o = next) {
    next = (wsrv_out *)o->link.next;
    o->link.next = NULL;
    if (o->action == WHISPER_SERVER_DISCONNECT) {
      wsrv_enqueue(srv, o); /* not in a batch now: straight out */
      continue;
    }
    if (o->action == WHISPER_SERVER_PUSH) {
      wsrv_addr a;
      wsrv_addr_make(&a, o->account, o->device_id);
      wsrv_dev *d = wsrv_map_get(&srv->devs, a.key, a.len);
      if (d) d->pushed = 0;
    }
    wsrv_out_free(o);
  }
}

/* An account whose `hidden` the batch set: as the store has it now (read
 * failing: hidden, the side that shows nothing). */
static void acct_reload(whisper_server *srv, wsrv_acct *a) {
  Whisper__Server__Account *rec;
  int rc = wsrv_account_get(srv, a->name, &rec);
  a->hidden = rc == WHISPER_OK ? rec->hidden != 0 : rc != WHISPER_ENOTFOUND;
  if (rc == WHISPER_OK) wsrv_msg_free(rec);
}

static void batch_fail(whisper_server *srv, uint64_t now_ms) {
  uint64_t no = srv->batch_no;
  wsrv_batch_rollback(srv);
  srv->batch = 0; /* what follows is not held */
  stats_restore(srv);
  held_drop(srv);
  size_t n;
  void **accts = wsrv_map_values(&srv->accts, &n);
  for (size_t i = 0; i < n; i++)
    if (((wsrv_acct *)accts[i])->batch_no == no) acct_reload(srv, accts[i]);
  free(accts);
  /* dropping one connection never drops another: the array stays valid */
  void **conns = wsrv_map_values(&srv->conns, &n);
  for (size_t i = 0; i < n; i++)
    if (((wsrv_conn *)conns[i])->batch_no == no) wsrv_conn_drop(srv, conns[i], 1, now_ms);
  free(conns);
}

void wsrv_batch_settle(whisper_server *srv, uint64_t now_ms) {
  if (!srv->batch || !srv->batch_broken) return;
  batch_fail(srv, now_ms);
  batch_open(srv); /* the frames after it go on in a new batch */
}

/* Commits the open batch and releases its held output; a failed commit
 * fails the batch (batch_fail). Either way the batch is over. */
static int batch_close(whisper_server *srv, uint64_t now_ms) {
  int rc = srv->batch_broken ? wsrv_fail(srv, WHISPER_ESTORE, "the batch's transaction is lost")
                             : wsrv_batch_commit(srv);
  if (rc != WHISPER_OK) {
    char why[sizeof srv->last_error];
    memcpy(why, srv->last_error, sizeof why);
    batch_fail(srv, now_ms);
    memcpy(srv->last_error, why, sizeof why);
    return rc;
  }
  srv->batch = 0;
  wh_outq_append(&srv->out, &srv->held); /* released, in order, after what was out already */
  return WHISPER_OK;
}

int whisper_server_batch_end(whisper_server *srv, uint64_t now_ms) {
  if (srv == NULL) return WHISPER_EINVAL;
  if (!srv->batch) return wsrv_fail(srv, WHISPER_ESTATE, "no batch is open");
  return batch_close(srv, now_ms);
}

/* --- lock conflicts inside a batch ------------------------------------------
 *
 * A frame whose store call meets a lock conflict (WHISPER_EBUSY: a lock
 * timeout, a deadlock or a serialisation failure, as the PostgreSQL store
 * reports them) has had its savepoint rolled back, but the frames before
 * it in the batch still hold their locks, which is what another node's
 * batch may be waiting for (and this one for its). So the batch ends at
 * the frame before: it commits (releasing those locks and handing out the
 * earlier frames' held output), the frame runs again alone, in a
 * transaction of its own, and the frames after it go on in a new batch.
 * whisper_server_receive() drives it; the frame is answered once, after
 * its last attempt. */

int wsrv_batch_split(whisper_server *srv, uint64_t now_ms) {
  if (!srv->batch || srv->batch_broken) return 0;
  if (batch_close(srv, now_ms) != WHISPER_OK) {
    batch_open(srv); /* the failed batch closed the frame's connection */
    return 0;
  }
  return 1;
}

void wsrv_batch_resume(whisper_server *srv) {
  if (!srv->batch) batch_open(srv);
}

/* Before attempt `attempt` (2, 3, ...) of a frame alone: a short wait,
 * longer each time, with jitter, so that two nodes that conflicted do not
 * meet again in step. The first runs at once: the locks this node's batch
 * held are released by then. */
void wsrv_busy_backoff(whisper_server *srv, int attempt) {
  if (attempt < 2) return;
  uint8_t r = 0;
  if (wh_random(&srv->rng, &r, 1) != 0) r = 0;
  long us = (1000L << (attempt - 2)) + (long)r * 8; /* 1, 2, 4 ms, + up to 2 ms */
  struct timespec ts = {0, us * 1000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}
