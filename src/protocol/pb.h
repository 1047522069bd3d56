/* Internal helpers shared by the protocol files that store protobuf records. */
#ifndef WH_PB_H
#define WH_PB_H

#include <protobuf-c/protobuf-c.h>

#include "internal.h"

/* The allocator for every unpack: it wipes what it frees. */
extern ProtobufCAllocator wh_pb_alloc;

/* Packs `m` and stores it under (kind, key). */
int wh_put_msg(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
               const ProtobufCMessage *m);
/* The same with wh_add(): WHISPER_EDUPLICATE (silent) if the key is taken. */
int wh_add_msg(whisper_ctx *ctx, int kind, const uint8_t *key, size_t key_len,
               const ProtobufCMessage *m);
/* Loads prekey or signed prekey `id` (kind WHISPER_REC_PREKEY or
 * WHISPER_REC_SIGNED_PREKEY); sig (64 bytes) and ts may be NULL. */
int wh_load_prekey(whisper_ctx *ctx, int kind, uint32_t id, wh_keypair *kp, uint8_t *sig,
                   uint64_t *ts);

/* The current signed prekey's id and when it was made (its timestamp).
 * WHISPER_ESTATE when there is none. */
int wh_signed_prekey_current(whisper_ctx *ctx, uint32_t *id, uint64_t *made_ms);

#endif
