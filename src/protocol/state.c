/* Session state <-> storage.proto, and record bookkeeping. */
#include <stdlib.h>
#include <string.h>

#include "protocol/pb.h"
#include "protocol/state.h"
#include "storage.pb-c.h"

void wh_chain_free(wh_chain *c) {
  if (c->keys) {
    wh_wipe(c->keys, c->cap * sizeof *c->keys);
    free(c->keys);
  }
  wh_wipe(c, sizeof *c);
}

void wh_state_free(wh_state *s) {
  wh_chain_free(&s->sender);
  for (uint32_t i = 0; i < WH_MAX_RECV_CHAINS; i++) wh_chain_free(&s->recv[i]);
  wh_wipe(s, sizeof *s);
}

void wh_record_free(wh_record *r) {
  if (r->has_current) wh_state_free(&r->cur);
  for (uint32_t i = 0; i < r->narchived; i++) whisper_buf_free(r->archived[i]);
  memset(r, 0, sizeof *r);
}

int wh_chain_push_key(wh_chain *c, const wh_msgkey *k) {
  if (c->nkeys == WH_MAX_MSG_KEYS) {
    memmove(c->keys, c->keys + 1, (c->nkeys - 1) * sizeof *c->keys);
    c->nkeys--;
  }
  if (c->nkeys == c->cap) {
    uint32_t cap = c->cap ? c->cap * 2 : 8;
    if (cap > WH_MAX_MSG_KEYS) cap = WH_MAX_MSG_KEYS;
    wh_msgkey *n = malloc(cap * sizeof *n);
    if (n == NULL) return -1;
    if (c->nkeys) memcpy(n, c->keys, c->nkeys * sizeof *n);
    if (c->keys) {
      wh_wipe(c->keys, c->cap * sizeof *c->keys);
      free(c->keys);
    }
    c->keys = n;
    c->cap = cap;
  }
  c->keys[c->nkeys++] = *k;
  return 0;
}

/* --- encode ---------------------------------------------------------------- */

typedef struct pb_chain {
  Whisper__Store__Chain c;
  Whisper__Store__ChainKey ck;
  Whisper__Store__MessageKey *keys;
  Whisper__Store__MessageKey **ptrs;
} pb_chain;

static int chain_to_pb(pb_chain *p, const wh_chain *c, const uint8_t *priv) {
  whisper__store__chain__init(&p->c);
  whisper__store__chain_key__init(&p->ck);
  p->c.has_sender_ratchet_key = 1;
  p->c.sender_ratchet_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)c->ratchet};
  if (priv) {
    p->c.has_sender_ratchet_key_private = 1;
    p->c.sender_ratchet_key_private = (ProtobufCBinaryData){WH_KEY_LEN, (uint8_t *)priv};
  }
  p->ck.has_index = p->ck.has_key = 1;
  p->ck.index = c->index;
  p->ck.key = (ProtobufCBinaryData){32, (uint8_t *)c->ck};
  p->c.chain_key = &p->ck;
  p->keys = NULL;
  p->ptrs = NULL;
  if (c->nkeys) {
    p->keys = calloc(c->nkeys, sizeof *p->keys);
    p->ptrs = calloc(c->nkeys, sizeof *p->ptrs);
    if (p->keys == NULL || p->ptrs == NULL) return -1;
    for (uint32_t i = 0; i < c->nkeys; i++) {
      const wh_msgkey *k = &c->keys[c->nkeys - 1 - i]; /* newest first */
      Whisper__Store__MessageKey *m = &p->keys[i];
      whisper__store__message_key__init(m);
      m->has_index = m->has_cipher_key = m->has_mac_key = m->has_iv = 1;
      m->index = k->index;
      m->cipher_key = (ProtobufCBinaryData){32, (uint8_t *)k->cipher};
      m->mac_key = (ProtobufCBinaryData){32, (uint8_t *)k->mac};
      m->iv = (ProtobufCBinaryData){16, (uint8_t *)k->iv};
      p->ptrs[i] = m;
    }
    p->c.n_message_keys = c->nkeys;
    p->c.message_keys = p->ptrs;
  }
  return 0;
}

static void pb_chain_free(pb_chain *p) {
  free(p->keys);
  free(p->ptrs);
}

static int pack_to_buf(const ProtobufCMessage *m, whisper_buf **out) {
  size_t n = protobuf_c_message_get_packed_size(m);
  *out = whisper_buf_new(NULL, n);
  if (*out == NULL) return WHISPER_ENOMEM;
  protobuf_c_message_pack(m, (*out)->data);
  return WHISPER_OK;
}

/* Fills `ss` (whose chains live in `sender` and `recv`) from `s`. */
static int state_to_pb(Whisper__Store__SessionStructure *ss, Whisper__Store__PendingPreKey *pp,
                       pb_chain *sender, pb_chain recv[WH_MAX_RECV_CHAINS],
                       Whisper__Store__Chain *recv_ptrs[WH_MAX_RECV_CHAINS], const wh_state *s) {
  int rc = 0;
  whisper__store__session_structure__init(ss);
  memset(recv, 0, WH_MAX_RECV_CHAINS * sizeof *recv);
  memset(sender, 0, sizeof *sender);
  ss->has_session_version = ss->has_local_identity_public = ss->has_remote_identity_public = 1;
  ss->has_root_key = ss->has_previous_counter = 1;
  ss->has_remote_registration_id = ss->has_local_registration_id = ss->has_alice_base_key = 1;
  ss->session_version = s->version;
  ss->local_identity_public = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->local_ik};
  ss->remote_identity_public = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->remote_ik};
  ss->root_key = (ProtobufCBinaryData){32, (uint8_t *)s->root};
  ss->previous_counter = s->previous_counter;
  ss->remote_registration_id = s->remote_reg;
  ss->local_registration_id = s->local_reg;
  ss->alice_base_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->alice_base};
  if (s->sender_gen) ss->has_sender_generation = 1, ss->sender_generation = s->sender_gen;
  if (s->has_sender) {
    rc |= chain_to_pb(sender, &s->sender, s->sender_priv);
    ss->sender_chain = &sender->c;
  }
  for (uint32_t i = 0; i < s->nrecv; i++) {
    rc |= chain_to_pb(&recv[i], &s->recv[i], NULL);
    recv_ptrs[i] = &recv[i].c;
  }
  ss->n_receiver_chains = s->nrecv;
  ss->receiver_chains = recv_ptrs;
  if (s->has_pending) {
    whisper__store__pending_pre_key__init(pp);
    pp->has_pre_key_id = s->pending_has_prekey;
    pp->pre_key_id = s->pending_prekey_id;
    pp->has_base_key = pp->has_signed_pre_key_id = pp->has_timestamp = 1;
    pp->base_key = (ProtobufCBinaryData){WH_PUB_LEN, (uint8_t *)s->pending_base};
    pp->signed_pre_key_id = s->pending_spk_id;
    pp->timestamp = s->pending_ts;
    ss->pending_pre_key = pp;
  }
  return rc ? WHISPER_ENOMEM : WHISPER_OK;
}

static void state_pb_free(pb_chain *sender, pb_chain recv[WH_MAX_RECV_CHAINS]) {
  pb_chain_free(sender);
  for (int i = 0; i < WH_MAX_RECV_CHAINS; i++) pb_chain_free(&recv[i]);
}

int wh_state_encode_pb(const wh_state *s, whisper_buf **out) {
  Whisper__Store__SessionStructure ss;
  Whisper__Store__PendingPreKey pp;
  pb_chain sender, recv[WH_MAX_RECV_CHAINS];
  Whisper__Store__Chain *recv_ptrs[WH_MAX_RECV_CHAINS];
  int rc = state_to_pb(&ss, &pp, &sender, recv, recv_ptrs, s);
  if (rc == WHISPER_OK) rc = pack_to_buf(&ss.base, out);
  state_pb_free(&sender, recv);
  return rc;
}

int wh_record_encode_pb(const wh_record *r, whisper_buf **out) {
  Whisper__Store__RecordStructure rs = WHISPER__STORE__RECORD_STRUCTURE__INIT;
  Whisper__Store__SessionStructure ss;
  Whisper__Store__PendingPreKey pp;
  pb_chain sender, recv[WH_MAX_RECV_CHAINS];
  Whisper__Store__Chain *recv_ptrs[WH_MAX_RECV_CHAINS];
  ProtobufCBinaryData prev[WH_MAX_ARCHIVED];
  int rc = WHISPER_OK;
  memset(&sender, 0, sizeof sender);
  memset(recv, 0, sizeof recv);
  rs.has_format = 1;
  rs.format = WH_RECORD_FORMAT;
  if (r->has_current) {
    rc = state_to_pb(&ss, &pp, &sender, recv, recv_ptrs, &r->cur);
    rs.current_session = &ss;
  }
  for (uint32_t i = 0; i < r->narchived; i++)
    prev[i] = (ProtobufCBinaryData){r->archived[i]->len, r->archived[i]->data};
  rs.n_previous_sessions = r->narchived;
  rs.previous_sessions = prev;
  if (rc == WHISPER_OK) rc = pack_to_buf(&rs.base, out);
  state_pb_free(&sender, recv);
  return rc;
}

/* --- encode, directly ---------------------------------------------------------
 *
 * The same bytes as protobuf-c packs from state_to_pb() (fields in number
 * order, each optional field present exactly when state_to_pb sets its
 * has_ flag, an int32 below 0 as a 10-byte varint), written in one pass
 * into a buffer of the exact size, with no allocation: a record is
 * written at every message. The fuzz target fuzz_session_record and
 * test_session check it against protobuf-c (wh_record_encode_pb). Every
 * tag here is one byte (field numbers below 16). */

static size_t vlen(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, n++;
  return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) *p++ = (uint8_t)(v | 0x80), v >>= 7;
  *p++ = (uint8_t)v;
  return p;
}

/* tag + length + bytes */
static size_t blen(size_t n) { return 1 + vlen(n) + n; }

static uint8_t *put_bytes(uint8_t *p, uint8_t tag, const uint8_t *d, size_t n) {
  *p++ = tag;
  p = put_varint(p, n);
  memcpy(p, d, n);
  return p + n;
}

static uint8_t *put_uint(uint8_t *p, uint8_t tag, uint64_t v) {
  *p++ = tag;
  return put_varint(p, v);
}

#define T_VARINT(f) ((uint8_t)((f) << 3))
#define T_BYTES(f) ((uint8_t)((f) << 3 | 2))

static size_t msgkey_len(const wh_msgkey *k) {
  return 1 + vlen(k->index) + 2 * blen(32) + blen(16);
}

static size_t chain_key_len(const wh_chain *c) { return 1 + vlen(c->index) + blen(32); }

static size_t chain_len(const wh_chain *c, int priv) {
  size_t n = blen(WH_PUB_LEN) + (priv ? blen(WH_KEY_LEN) : 0) + blen(chain_key_len(c));
  for (uint32_t i = 0; i < c->nkeys; i++) n += blen(msgkey_len(&c->keys[i]));
  return n;
}

static uint8_t *put_chain(uint8_t *p, const wh_chain *c, const uint8_t *priv) {
  p = put_bytes(p, T_BYTES(1), c->ratchet, WH_PUB_LEN);
  if (priv) p = put_bytes(p, T_BYTES(2), priv, WH_KEY_LEN);
  *p++ = T_BYTES(3);
  p = put_varint(p, chain_key_len(c));
  p = put_uint(p, T_VARINT(1), c->index);
  p = put_bytes(p, T_BYTES(2), c->ck, 32);
  for (uint32_t i = c->nkeys; i-- > 0;) { /* newest first */
    const wh_msgkey *k = &c->keys[i];
    *p++ = T_BYTES(4);
    p = put_varint(p, msgkey_len(k));
    p = put_uint(p, T_VARINT(1), k->index);
    p = put_bytes(p, T_BYTES(2), k->cipher, 32);
    p = put_bytes(p, T_BYTES(3), k->mac, 32);
    p = put_bytes(p, T_BYTES(4), k->iv, 16);
  }
  return p;
}

/* int32 as protobuf encodes it: a negative value sign-extended to 64 bits */
static uint64_t int32_wire(int32_t v) { return (uint64_t)(int64_t)v; }

static size_t pending_len(const wh_state *s) {
  return (s->pending_has_prekey ? 1 + vlen(s->pending_prekey_id) : 0) + blen(WH_PUB_LEN) + 1 +
         vlen(int32_wire(s->pending_spk_id)) + 1 + vlen(s->pending_ts);
}

/* The sizes of a state's nested messages, worked out once per encoding. */
static size_t state_sizes(const wh_state *s, wh_state_plan *z) {
  size_t n = 1 + vlen(s->version) + 2 * blen(WH_PUB_LEN) + blen(32) + 1 + vlen(s->previous_counter);
  if (s->has_sender) n += blen(z->sender = chain_len(&s->sender, 1));
  for (uint32_t i = 0; i < s->nrecv; i++) n += blen(z->recv[i] = chain_len(&s->recv[i], 0));
  if (s->has_pending) n += blen(z->pending = pending_len(s));
  n += 1 + vlen(s->remote_reg) + 1 + vlen(s->local_reg) + blen(WH_PUB_LEN);
  if (s->sender_gen) n += 1 + vlen(s->sender_gen);
  return z->len = n;
}

static uint8_t *state_put(const wh_state *s, const wh_state_plan *z, uint8_t *p) {
  p = put_uint(p, T_VARINT(1), s->version);
  p = put_bytes(p, T_BYTES(2), s->local_ik, WH_PUB_LEN);
  p = put_bytes(p, T_BYTES(3), s->remote_ik, WH_PUB_LEN);
  p = put_bytes(p, T_BYTES(4), s->root, 32);
  p = put_uint(p, T_VARINT(5), s->previous_counter);
  if (s->has_sender) {
    *p++ = T_BYTES(6);
    p = put_varint(p, z->sender);
    p = put_chain(p, &s->sender, s->sender_priv);
  }
  for (uint32_t i = 0; i < s->nrecv; i++) {
    *p++ = T_BYTES(7);
    p = put_varint(p, z->recv[i]);
    p = put_chain(p, &s->recv[i], NULL);
  }
  if (s->has_pending) {
    *p++ = T_BYTES(9);
    p = put_varint(p, z->pending);
    if (s->pending_has_prekey) p = put_uint(p, T_VARINT(1), s->pending_prekey_id);
    p = put_bytes(p, T_BYTES(2), s->pending_base, WH_PUB_LEN);
    p = put_uint(p, T_VARINT(3), int32_wire(s->pending_spk_id));
    p = put_uint(p, T_VARINT(4), s->pending_ts);
  }
  p = put_uint(p, T_VARINT(10), s->remote_reg);
  p = put_uint(p, T_VARINT(11), s->local_reg);
  p = put_bytes(p, T_BYTES(13), s->alice_base, WH_PUB_LEN);
  if (s->sender_gen) p = put_uint(p, T_VARINT(14), s->sender_gen);
  return p;
}

size_t wh_state_encoded_len(const wh_state *s) {
  wh_state_plan z;
  return state_sizes(s, &z);
}

uint8_t *wh_state_encode_to(const wh_state *s, uint8_t *p) {
  wh_state_plan z;
  state_sizes(s, &z);
  return state_put(s, &z, p);
}

size_t wh_record_encoded_len(const wh_record *r, wh_state_plan *plan) {
  wh_state_plan own;
  if (plan == NULL) plan = &own;
  size_t n = 1 + vlen(WH_RECORD_FORMAT);
  if (r->has_current) n += blen(state_sizes(&r->cur, plan));
  for (uint32_t i = 0; i < r->narchived; i++) n += blen(r->archived[i]->len);
  return n;
}

uint8_t *wh_record_encode_to(const wh_record *r, const wh_state_plan *plan, uint8_t *p) {
  wh_state_plan own;
  if (r->has_current) {
    if (plan == NULL) state_sizes(&r->cur, &own), plan = &own;
    *p++ = T_BYTES(1);
    p = put_varint(p, plan->len);
    p = state_put(&r->cur, plan, p);
  }
  for (uint32_t i = 0; i < r->narchived; i++)
    p = put_bytes(p, T_BYTES(2), r->archived[i]->data, r->archived[i]->len);
  return put_uint(p, T_VARINT(15), WH_RECORD_FORMAT);
}

int wh_state_encode(const wh_state *s, whisper_buf **out) {
  size_t n = wh_state_encoded_len(s);
  if ((*out = wh_buf_alloc(n)) == NULL) return WHISPER_ENOMEM;
  wh_state_encode_to(s, (*out)->data);
  return WHISPER_OK;
}

int wh_record_encode(const wh_record *r, whisper_buf **out) {
  wh_state_plan plan;
  size_t n = wh_record_encoded_len(r, &plan);
  if ((*out = wh_buf_alloc(n)) == NULL) return WHISPER_ENOMEM;
  wh_record_encode_to(r, &plan, (*out)->data);
  return WHISPER_OK;
}

/* --- decode ---------------------------------------------------------------- */

static int bin_is(const ProtobufCBinaryData *b, int has, size_t len) {
  return has && b->len == len;
}

static int chain_from_pb(wh_chain *c, const Whisper__Store__Chain *p) {
  if (!bin_is(&p->sender_ratchet_key, p->has_sender_ratchet_key, WH_PUB_LEN) ||
      p->chain_key == NULL || !bin_is(&p->chain_key->key, p->chain_key->has_key, 32) ||
      p->n_message_keys > WH_MAX_MSG_KEYS)
    return -1;
  memcpy(c->ratchet, p->sender_ratchet_key.data, WH_PUB_LEN);
  memcpy(c->ck, p->chain_key->key.data, 32);
  c->index = p->chain_key->index;
  if (p->n_message_keys) {
    c->keys = malloc(p->n_message_keys * sizeof *c->keys);
    if (c->keys == NULL) return -1;
    c->cap = (uint32_t)p->n_message_keys;
  }
  for (size_t i = 0; i < p->n_message_keys; i++) {
    const Whisper__Store__MessageKey *m = p->message_keys[p->n_message_keys - 1 - i];
    if (!bin_is(&m->cipher_key, m->has_cipher_key, 32) || !bin_is(&m->mac_key, m->has_mac_key, 32) ||
        !bin_is(&m->iv, m->has_iv, 16))
      return -1;
    wh_msgkey *k = &c->keys[c->nkeys++];
    k->index = m->index;
    memcpy(k->cipher, m->cipher_key.data, 32);
    memcpy(k->mac, m->mac_key.data, 32);
    memcpy(k->iv, m->iv.data, 16);
  }
  return 0;
}

static int state_from_pb(wh_state *s, const Whisper__Store__SessionStructure *p) {
  memset(s, 0, sizeof *s);
  if (!bin_is(&p->local_identity_public, p->has_local_identity_public, WH_PUB_LEN) ||
      !bin_is(&p->remote_identity_public, p->has_remote_identity_public, WH_PUB_LEN) ||
      !bin_is(&p->root_key, p->has_root_key, 32) || p->n_receiver_chains > WH_MAX_RECV_CHAINS)
    return -1;
  s->version = p->session_version;
  memcpy(s->local_ik, p->local_identity_public.data, WH_PUB_LEN);
  memcpy(s->remote_ik, p->remote_identity_public.data, WH_PUB_LEN);
  memcpy(s->root, p->root_key.data, 32);
  s->previous_counter = p->previous_counter;
  s->remote_reg = p->remote_registration_id;
  s->local_reg = p->local_registration_id;
  s->sender_gen = p->sender_generation;
  if (p->has_alice_base_key) {
    if (p->alice_base_key.len != WH_PUB_LEN) return -1;
    memcpy(s->alice_base, p->alice_base_key.data, WH_PUB_LEN);
  }
  if (p->sender_chain) {
    const Whisper__Store__Chain *sc = p->sender_chain;
    if (chain_from_pb(&s->sender, sc) != 0 ||
        !bin_is(&sc->sender_ratchet_key_private, sc->has_sender_ratchet_key_private, WH_KEY_LEN))
      return -1;
    memcpy(s->sender_priv, sc->sender_ratchet_key_private.data, WH_KEY_LEN);
    s->has_sender = 1;
  }
  for (size_t i = 0; i < p->n_receiver_chains; i++) {
    if (chain_from_pb(&s->recv[i], p->receiver_chains[i]) != 0) return -1;
    s->nrecv++;
  }
  if (p->pending_pre_key) {
    const Whisper__Store__PendingPreKey *pp = p->pending_pre_key;
    if (!bin_is(&pp->base_key, pp->has_base_key, WH_PUB_LEN)) return -1;
    s->has_pending = 1;
    s->pending_has_prekey = pp->has_pre_key_id;
    s->pending_prekey_id = pp->pre_key_id;
    s->pending_spk_id = pp->signed_pre_key_id;
    memcpy(s->pending_base, pp->base_key.data, WH_PUB_LEN);
    s->pending_ts = pp->timestamp;
  }
  return 0;
}

int wh_state_decode(wh_state *s, const uint8_t *data, size_t len) {
  Whisper__Store__SessionStructure *p = whisper__store__session_structure__unpack(&wh_pb_alloc, len, data);
  if (p == NULL) return WHISPER_ECORRUPT;
  int rc = state_from_pb(s, p);
  protobuf_c_message_free_unpacked(&p->base, &wh_pb_alloc);
  if (rc != 0) {
    wh_state_free(s);
    return WHISPER_ECORRUPT;
  }
  return WHISPER_OK;
}

int wh_record_decode(wh_record *r, const uint8_t *data, size_t len) {
  memset(r, 0, sizeof *r);
  Whisper__Store__RecordStructure *p = whisper__store__record_structure__unpack(&wh_pb_alloc, len, data);
  if (p == NULL) return WHISPER_ECORRUPT;
  int rc = WHISPER_OK;
  if (p->format > WH_RECORD_FORMAT || p->n_previous_sessions > WH_MAX_ARCHIVED) rc = WHISPER_ECORRUPT;
  if (rc == WHISPER_OK && p->current_session) {
    if (state_from_pb(&r->cur, p->current_session) != 0) {
      wh_state_free(&r->cur);
      rc = WHISPER_ECORRUPT;
    } else {
      r->has_current = 1;
    }
  }
  for (size_t i = 0; rc == WHISPER_OK && i < p->n_previous_sessions; i++) {
    r->archived[i] = whisper_buf_new(p->previous_sessions[i].data, p->previous_sessions[i].len);
    if (r->archived[i] == NULL) rc = WHISPER_ENOMEM;
    else r->narchived++;
  }
  protobuf_c_message_free_unpacked(&p->base, &wh_pb_alloc);
  if (rc != WHISPER_OK) wh_record_free(r);
  return rc;
}

int wh_record_promote(wh_record *r, wh_state *s) {
  if (r->has_current) {
    whisper_buf *b;
    r->cur.has_pending = 0;
    int rc = wh_state_encode(&r->cur, &b);
    if (rc != WHISPER_OK) return rc;
    if (r->narchived == WH_MAX_ARCHIVED) whisper_buf_free(r->archived[--r->narchived]);
    memmove(r->archived + 1, r->archived, r->narchived * sizeof *r->archived);
    r->archived[0] = b;
    r->narchived++;
    wh_state_free(&r->cur);
  }
  r->cur = *s;
  r->has_current = 1;
  memset(s, 0, sizeof *s);
  return WHISPER_OK;
}
