/* Internal (src/common): the output queue (outq.h). */
#include "common/outq.h"

#include "common/protocol.h"

wh_out *wh_outq_cut(wh_outq *q, wh_out *mark) {
  wh_out *o = mark ? mark->next : q->head;
  if (mark)
    mark->next = NULL;
  else
    q->head = NULL;
  q->tail = mark;
  return o;
}

void wh_outq_append(wh_outq *dst, wh_outq *src) {
  if (src->head == NULL) return;
  if (dst->tail)
    dst->tail->next = src->head;
  else
    dst->head = src->head;
  dst->tail = src->tail;
  src->head = src->tail = NULL;
}

void wh_outq_drop_if(wh_outq *q, int (*drop)(const wh_out *o, void *arg), void *arg,
                     void (*free_item)(wh_out *o)) {
  wh_out **pp = &q->head, *last = NULL;
  while (*pp) {
    wh_out *o = *pp;
    if (drop(o, arg)) {
      *pp = o->next;
      free_item(o);
    } else {
      last = o;
      pp = &o->next;
    }
  }
  q->tail = last;
}

void wh_outq_clear(wh_outq *q, void (*free_item)(wh_out *o)) {
  wh_out *o = q->head;
  q->head = q->tail = NULL;
  while (o) {
    wh_out *next = o->next;
    free_item(o);
    o = next;
  }
}

size_t wh_frame_prepare(Whisper__Sync__Frame *f) {
  f->has_version = 1;
  f->version = WH_SYNC_PROTOCOL;
  return whisper__sync__frame__get_packed_size(f);
}
