/*
 * Internal (src/common): the sync protocol's constants (src/proto/sync.proto)
 * for the engine (src/sync) and the server core (src/server): its version,
 * the Error codes, entry kinds, Send contents and receipt statuses. The
 * codes are protoc-c's, from the generated enums, never numbered by hand.
 */
#ifndef WH_COMMON_PROTOCOL_H
#define WH_COMMON_PROTOCOL_H

#include "sync.pb-c.h"

/* Frame.version and Hello.protocol (whisper/server.h's WHISPER_SYNC_PROTOCOL). */
#define WH_SYNC_PROTOCOL 1
/* Client ids, group ids and link codes: bytes (client.h's
 * WHISPER_CLIENT_ID_LEN and WHISPER_GROUP_ID_LEN). */
#define WH_SYNC_ID_LEN 16

/* ErrorCode: Error.code. */
#define ERR_MALFORMED WHISPER__SYNC__ERROR_CODE__ERR_MALFORMED
#define ERR_VERSION WHISPER__SYNC__ERROR_CODE__ERR_VERSION
#define ERR_TOO_BIG WHISPER__SYNC__ERROR_CODE__ERR_TOO_BIG
#define ERR_AUTH WHISPER__SYNC__ERROR_CODE__ERR_AUTH
#define ERR_EXISTS WHISPER__SYNC__ERROR_CODE__ERR_EXISTS
#define ERR_NOT_FOUND WHISPER__SYNC__ERROR_CODE__ERR_NOT_FOUND
#define ERR_STALE_DEVICES WHISPER__SYNC__ERROR_CODE__ERR_STALE_DEVICES
#define ERR_FORBIDDEN WHISPER__SYNC__ERROR_CODE__ERR_FORBIDDEN
#define ERR_RATE WHISPER__SYNC__ERROR_CODE__ERR_RATE
#define ERR_LIMIT WHISPER__SYNC__ERROR_CODE__ERR_LIMIT
#define ERR_STATE WHISPER__SYNC__ERROR_CODE__ERR_STATE
#define ERR_INTERNAL WHISPER__SYNC__ERROR_CODE__ERR_INTERNAL

/* EntryKind: Deliver.kind. */
#define ENTRY_MESSAGE WHISPER__SYNC__ENTRY_KIND__ENTRY_MESSAGE
#define ENTRY_RECEIPT WHISPER__SYNC__ENTRY_KIND__ENTRY_RECEIPT
#define ENTRY_GROUP WHISPER__SYNC__ENTRY_KIND__ENTRY_GROUP

/* Content: Send.content, Deliver.content. */
#define CONTENT_TEXT WHISPER__SYNC__CONTENT__CONTENT_TEXT
#define CONTENT_SKDM WHISPER__SYNC__CONTENT__CONTENT_SKDM
#define CONTENT_RECEIPT WHISPER__SYNC__CONTENT__CONTENT_RECEIPT
#define CONTENT_MESSAGE WHISPER__SYNC__CONTENT__CONTENT_MESSAGE
#define CONTENT_RETRY WHISPER__SYNC__CONTENT__CONTENT_RETRY

/* Receipt.status and Deliver.status (a plain uint32 in sync.proto: "2
 * delivered, 3 read"; history.h's WHISPER_STATUS_* have the same values). */
#define STATUS_DELIVERED 2
#define STATUS_READ 3

#endif
