/*
 * Internal (src/common): the output queue of the engine (frames for the
 * app to send) and of the server core (frames, closes and pushes for
 * whisper_server_take_output()): a FIFO, appended at the tail and taken from the
 * head in order. The engine cuts back what a failed transaction queued
 * (wh_outq_cut); the server drops a closed connection's output
 * (wh_outq_drop_if) and holds a batch's apart until it commits
 * (wh_outq_append). An item is the owner's struct with a wh_out as its
 * first member. And the one way both make a Frame ready to pack.
 */
#ifndef WH_COMMON_OUTQ_H
#define WH_COMMON_OUTQ_H

#include <stddef.h>

#include "sync.pb-c.h"

typedef struct wh_out {
  struct wh_out *next;
} wh_out;

typedef struct wh_outq {
  wh_out *head, *tail;
} wh_outq;

static inline void wh_outq_push(wh_outq *q, wh_out *o) {
  o->next = NULL;
  if (q->tail)
    q->tail->next = o;
  else
    q->head = o;
  q->tail = o;
}

/* The first item, taken off (NULL: empty). */
static inline wh_out *wh_outq_pop(wh_outq *q) {
  wh_out *o = q->head;
  if (o == NULL) return NULL;
  q->head = o->next;
  if (q->head == NULL) q->tail = NULL;
  o->next = NULL;
  return o;
}

/* Takes the items after `mark` (an item of q: its tail some time before;
 * NULL: all) off q and returns the first of them, still linked. */
wh_out *wh_outq_cut(wh_outq *q, wh_out *mark);
/* Moves every item of src, in order, to the end of dst. */
void wh_outq_append(wh_outq *dst, wh_outq *src);
/* Takes off and frees (free_item) every item drop(item, arg) says to. */
void wh_outq_drop_if(wh_outq *q, int (*drop)(const wh_out *o, void *arg), void *arg,
                     void (*free_item)(wh_out *o));
/* Frees every item. */
void wh_outq_clear(wh_outq *q, void (*free_item)(wh_out *o));

/* Sets f's version (WH_SYNC_PROTOCOL) and returns its packed size: then
 * whisper__sync__frame__pack() into that many bytes. */
size_t wh_frame_prepare(Whisper__Sync__Frame *f);

#endif
