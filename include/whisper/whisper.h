/*
 * libwhisper: end-to-end encrypted messaging on the Signal protocol.
 *
 * The umbrella header: include this one. See core.h for the conventions
 * that hold for the whole API (errors, ownership, threads, time).
 *
 * The server core (server.h) is not included: it is a library of its own,
 * libwhisper-server, that apps do not link (see server.h).
 */
#ifndef WHISPER_WHISPER_H
#define WHISPER_WHISPER_H

#include "core.h"
#include "keys.h"
#include "store.h"
#include "session.h"
#include "fingerprint.h"
#include "sender_key.h"
#include "history.h"
#include "attachment.h"
#include "search.h"
#include "client.h"
#include "sizes.h"

#endif
