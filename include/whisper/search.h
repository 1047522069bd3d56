/*
 * libwhisper: full-text search over message history, on the device.
 *
 * Every message history keeps with a body (sent with
 * whisper_history_add_outgoing(), received with the decrypt-and-store
 * calls or the client engine) is queued for the index in the same
 * transaction that stores it: one small row, so that storing a burst of
 * messages stays cheap, and nothing is lost on a crash. The index catches
 * up later: every whisper_search() first indexes what waits; an app calls
 * whisper_search_prepare() when it is idle (after a burst of messages came
 * in) so that the next search does not have to; the client engine does it
 * itself on its ticks, a few messages at a time, once its mailbox's
 * backlog has arrived. A message edited or deleted before the index caught
 * up on it is indexed as it is then (not at all if deleted).
 *
 * The index is kept in the store like history, encrypted at
 * rest in the same way: its rows are found by keyed tags (HMAC-SHA256
 * under a key derived from the store's secret history salt), never by a
 * word or an unkeyed hash of one. docs/search.md says what the store file
 * still shows (how many messages hold each unknown tag, and when).
 *
 * Words: the body is read as UTF-8 text (invalid bytes separate words;
 * the valid parts are indexed). Words are split at spaces, punctuation and
 * symbols, and folded before they are compared: case (full case folding:
 * "STRASSE", "Straße" and "strasse" are the same word; Greek final sigma
 * is sigma), accents and other diacritics ("Élan", "ELAN" and "elan"; in
 * every script, so Cyrillic "ё" is "е" and "й" is "и"), compatibility
 * forms (full-width letters, ligatures, circled digits) and a few Latin
 * letters with a stroke ("ø" is "o", "ł" is "l"). Scripts written without
 * spaces (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) are not split into
 * words: each character is indexed, and a run of them in a query matches
 * a message that holds that run as it is (so "東京" finds "東京タワー" and
 * not "京東"). An emoji is a character of its own (skin tones ignored).
 *
 * A query is one or more words (at most WHISPER_SEARCH_QUERY_MAX bytes
 * of UTF-8, at most WHISPER_SEARCH_WORDS_MAX words and characters); a
 * message matches when it holds every one of them (AND), as whole words:
 * there is no prefix matching ("conf" does not find "conference": that
 * would need an index several times larger). Words are compared on their
 * first 128 bytes once folded; the first 4096 words of a message are
 * indexed.
 *
 * Results are history messages, read like a page of whisper_history_page()
 * (whisper_page_count(), whisper_page_get(), whisper_page_free()), newest
 * first by their time (timestamp_ms, the time the sender wrote them), then
 * in a fixed order among messages of the same millisecond.
 *
 * These functions need a store with scan() (store interface version 2),
 * like history.
 */
#ifndef WHISPER_SEARCH_H
#define WHISPER_SEARCH_H

#include "core.h"
#include "history.h"

#ifdef __cplusplus
extern "C" {
#endif

WHISPER_NONNULL_BEGIN

/** The longest query, in bytes. */
#define WHISPER_SEARCH_QUERY_MAX 1024
/** The most words (and characters of scripts without spaces) in a query. */
#define WHISPER_SEARCH_WORDS_MAX 64
/** The most messages a page of results may ask for. */
#define WHISPER_SEARCH_LIMIT_MAX 1000

/**
 * Finds up to `limit` (1..WHISPER_SEARCH_LIMIT_MAX) messages that hold
 * every word of `query`, newest first, in every conversation or, if
 * `conversation` is not NULL, in that one only. To page on, pass as
 * `after` the last message of the previous page (whisper_page_get() of
 * it; only its conversation, id and timestamp_ms are read); NULL starts
 * from the newest. A page shorter than `limit` is the last.
 *
 * A search first indexes, in its own transaction, the messages that wait
 * to be indexed (see whisper_search_prepare(): after a burst, that takes
 * a while), and, once, on a store whose history was kept before the index
 * existed, that history.
 *
 * Returns WHISPER_OK (*out set, possibly empty: free it with
 * whisper_page_free()); WHISPER_EINVAL (NULL query or out, a query that
 * is empty, not UTF-8, longer than WHISPER_SEARCH_QUERY_MAX, with no word
 * or more than WHISPER_SEARCH_WORDS_MAX of them, a limit of 0 or over
 * WHISPER_SEARCH_LIMIT_MAX, a bad conversation name or `after` (also: its
 * `size` below WHISPER_MESSAGE_SIZE_1_0; a message of a page has the
 * library's), a store
 * without scan()); WHISPER_ECORRUPT (a stored history entry or index row
 * cannot be read: whisper_search_rebuild() remakes the index); or a store
 * error (WHISPER_ESTORE, WHISPER_EBUSY, WHISPER_ENOMEM). On failure *out
 * is NULL and nothing changed. A search changes nothing but the index:
 * what waited is indexed, and, once, older history.
 */
WHISPER_API int whisper_search(whisper_ctx *ctx, const char *query,
                               const char *WHISPER_NULLABLE conversation,
                               const whisper_message_t *WHISPER_NULLABLE after, size_t limit,
                               whisper_page *WHISPER_NULLABLE *WHISPER_NONNULL out);

/**
 * Lets the index catch up: indexes the messages stored and not indexed
 * yet (as history keeps them now: the text of their last edit; a message
 * deleted or gone is not indexed), 8192 to a transaction, and, once, the
 * history kept before the index existed (a store written by an older
 * libwhisper), in one transaction. With nothing waiting it only checks.
 * whisper_search() does the same before it searches; an app calls this
 * when it is idle (after a burst of messages came in, at start-up after an
 * upgrade), so that the next search does not wait for it: about 55-90 us
 * a message on a 2-vCPU server (100,000 messages in 5-9 s), a large older
 * history a few seconds. An app with the client engine need not: its
 * ticks index what it stores, a few messages at a time (client.h), once
 * older history is indexed.
 * Returns WHISPER_OK, WHISPER_EINVAL (a store without scan()),
 * WHISPER_ECORRUPT (a row of the index cannot be read:
 * whisper_search_rebuild()) or a store error; on failure what the
 * transactions before the failing one indexed stays indexed, nothing else
 * changed.
 */
WHISPER_API int whisper_search_prepare(whisper_ctx *ctx);

/**
 * Drops the whole index (what waited to be indexed too) and indexes
 * every message of history again, in one transaction: after
 * WHISPER_ECORRUPT from whisper_search(). Returns
 * WHISPER_OK, WHISPER_EINVAL (a store without scan()) or a store error;
 * on failure nothing changed.
 */
WHISPER_API int whisper_search_rebuild(whisper_ctx *ctx);

WHISPER_NONNULL_END

#ifdef __cplusplus
}
#endif
#endif
