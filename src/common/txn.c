/* Store transactions that nest (common/txn.h). */
#include "common/txn.h"

#include "internal.h"

static int fail(wh_txn_err *err, int rc, const char *why, int from_store) {
  if (err) {
    err->why = why;
    err->from_store = from_store;
  }
  return rc;
}

/* (internal.h) Here, not in core.c: the server library reports it too. */
const char *wh_store_error(const whisper_store *s) {
  if (s->ops.version >= 5 && s->ops.last_error) {
    const char *t = s->ops.last_error(s->user);
    return t ? t : "";
  }
  return s->last_error;
}

static uint64_t bit(unsigned level) { return (uint64_t)1 << (level - 1); }

int wh_txn_has_savepoints(const whisper_store *s) {
  return s->ops.version >= 4 && s->ops.savepoint != NULL;
}

int wh_txn_begin(whisper_store *s, unsigned flags, wh_txn_err *err) {
  unsigned d = s->depth;
  s->txn_error = NULL;
  if (d == 0) {
    s->last_error[0] = '\0';
    int rc = s->ops.begin(s->user);
    if (rc != WHISPER_OK) return fail(err, rc, "store: cannot begin a transaction", 1);
    s->depth = 1;
    s->failed = 0;
    s->sp = 0;
    s->plain = (flags & WH_TXN_PLAIN) ? 1 : 0;
    return WHISPER_OK;
  }
  if (s->failed)
    return fail(err, WHISPER_ESTORE,
                "the store's transaction has failed (a call inside it failed and could not be "
                "undone alone): roll it back",
                0);
  if (d >= WH_TXN_MAX_DEPTH)
    return fail(err, WHISPER_ESTATE, "store transactions nest at most 64 deep", 0);
  uint64_t b = bit(d + 1);
  if ((flags & WH_TXN_SAVEPOINT) && !wh_txn_has_savepoints(s))
    return fail(err, WHISPER_ESTATE, "the store has no savepoints (store interface < 4)", 0);
  int take = (flags & WH_TXN_SAVEPOINT) ||
             (!(flags & WH_TXN_NO_SAVEPOINT) && !(s->plain & bit(d)) && wh_txn_has_savepoints(s));
  if (take) {
    s->last_error[0] = '\0';
    int rc = s->ops.savepoint(s->user);
    if (rc != WHISPER_OK) {
      /* (the store may have lost the transaction: only rollback is left) */
      s->failed = 1;
      return fail(err, rc, "store: cannot take a savepoint", 1);
    }
    s->sp |= b;
  } else {
    s->sp &= ~b;
  }
  /* the new level's calls inside: plain if it says so, else as the enclosing level's */
  if ((flags & WH_TXN_PLAIN) || (s->plain & bit(d))) s->plain |= b;
  else s->plain &= ~b;
  s->depth = d + 1;
  return WHISPER_OK;
}

/* Ends nested level d without its writes. */
static void undo_level(whisper_store *s, unsigned d) {
  if (s->sp & bit(d)) {
    s->sp &= ~bit(d);
    s->last_error[0] = '\0';
    /* undone back to its savepoint: whatever failed inside is gone with it */
    s->failed = s->ops.rollback_to(s->user) != WHISPER_OK;
  } else {
    s->failed = 1; /* its writes stay in the enclosing level: that one must go too */
  }
  s->depth = d - 1;
}

static void end_all(whisper_store *s) {
  s->depth = 0;
  s->failed = 0;
  s->sp = s->plain = 0;
}

int wh_txn_commit(whisper_store *s, wh_txn_err *err) {
  unsigned d = s->depth;
  s->txn_error = NULL;
  if (d == 0) return fail(err, WHISPER_ESTATE, "no store transaction is open", 0);
  if (d == 1) {
    if (s->failed) {
      s->ops.rollback(s->user);
      end_all(s);
      return fail(err, WHISPER_ESTATE,
                  "the store's transaction was rolled back, not committed: a call inside it "
                  "failed",
                  0);
    }
    s->last_error[0] = '\0';
    int rc = s->ops.commit(s->user);
    if (rc != WHISPER_OK) {
      s->ops.rollback(s->user);
      end_all(s);
      return fail(err, rc, "store: commit failed", 1);
    }
    end_all(s);
    return WHISPER_OK;
  }
  if (s->failed) {
    undo_level(s, d);
    return fail(err, WHISPER_ESTATE, "a call inside failed: its writes were undone", 0);
  }
  if (s->sp & bit(d)) {
    s->sp &= ~bit(d);
    s->last_error[0] = '\0';
    int rc = s->ops.release(s->user);
    s->depth = d - 1;
    if (rc != WHISPER_OK) {
      s->failed = 1; /* the transaction is lost: only rollback is left */
      return fail(err, rc, "store: cannot release a savepoint", 1);
    }
    return WHISPER_OK;
  }
  s->depth = d - 1; /* joined: its writes are the enclosing level's */
  return WHISPER_OK;
}

void wh_txn_rollback(whisper_store *s) {
  unsigned d = s->depth;
  if (d == 0) return;
  if (d > 1) {
    undo_level(s, d);
    return;
  }
  s->ops.rollback(s->user);
  end_all(s);
}

void wh_txn_plain(whisper_store *s, int plain) {
  if (s->depth == 0) return;
  if (plain) s->plain |= bit(s->depth);
  else s->plain &= ~bit(s->depth);
}
