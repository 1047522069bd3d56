/*
 * Store transactions that nest: one implementation for the client library
 * (core.c's wh_begin/wh_commit/wh_rollback, whisper_store_begin/...) and
 * the server core (server_store.c, server_batch.c). Both libraries compile
 * txn.c (WHISPER_COMMON_SOURCES); it knows the store handle only.
 *
 * The handle counts open levels (depth). Level 1 is the store's own
 * transaction (ops.begin ... ops.commit or ops.rollback). A begin inside it
 * joins it: with a savepoint of its own when the store has them (ops
 * version >= 4) and the enclosing level does not say "plain" (WH_TXN_PLAIN),
 * so that its rollback undoes its own writes alone (rollback_to) and its
 * commit keeps them in the enclosing level (release). A level without a
 * savepoint cannot be undone alone: its rollback marks the transaction
 * failed; then every begin and every record call fails at once
 * (WHISPER_ESTORE, as a store whose transaction is lost) until the failure
 * reaches a level with a savepoint (its rollback, or its commit, which then
 * rolls back: undone, the transaction goes on) or level 1 (its commit rolls
 * the whole back and fails). A commit of level 1 of a failed transaction
 * never commits.
 */
#ifndef WH_COMMON_TXN_H
#define WH_COMMON_TXN_H

#include "whisper/store.h"

#define WH_TXN_MAX_DEPTH 64 /* levels open at once (one bit each) */

/* begin's flags */
#define WH_TXN_PLAIN 1u        /* levels begun inside this one join it without savepoints
                                * (cheaper; a failure inside fails this level) */
#define WH_TXN_NO_SAVEPOINT 2u /* this level (when nested) takes no savepoint */
#define WH_TXN_SAVEPOINT 4u    /* this level (when nested) takes a savepoint even inside a
                                * plain one: WHISPER_ESTATE if the store has none */

/* A failure: its sentence (static), and whether a store call failed (then
 * the store's own text says more: wh_store_error()). */
typedef struct wh_txn_err {
  const char *why;
  int from_store;
} wh_txn_err;

/* Each returns WHISPER_OK or a code with *err filled in (err may be NULL). */
int wh_txn_begin(whisper_store *s, unsigned flags, wh_txn_err *err);
/* Ends the newest level keeping its writes (level 1: commits). Fails, and
 * the level is ended without its writes, when the transaction had failed
 * inside it or the store failed. WHISPER_ESTATE if none is open. */
int wh_txn_commit(whisper_store *s, wh_txn_err *err);
/* Ends the newest level without its writes (see above). Nothing when none
 * is open. */
void wh_txn_rollback(whisper_store *s);
/* Sets whether levels begun from now inside the newest one take no
 * savepoints (1) or take them when the store has them (0). */
void wh_txn_plain(whisper_store *s, int plain);

/* 1 if the store has savepoints (a nested level can be undone alone). */
int wh_txn_has_savepoints(const whisper_store *s);

#endif
