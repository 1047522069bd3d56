// history.h: message history, delivery status and the outbox, as methods
// of Context; search.h's full-text search (results are messages too).
package org.libwhisper

/** Delivery status (history.h). */
object Status {
    const val PENDING = 0
    const val SENT = 1
    const val DELIVERED = 2
    const val READ = 3
    const val FAILED = 4
    const val OPENED = 5
}

/** What a message is (history.h). */
object Kind {
    const val TEXT = 0
    const val UNSUPPORTED = 1
    const val ATTACHMENT = 2
}

class Reaction(val reactor: String, val emoji: String, val atMs: Long)

/** A message read back from history (or search). `body` is plaintext:
 *  a ByteArray, never a String. `sender` null: this account's own. */
class Message(
    val conversation: String,
    val id: ByteArray,
    val sender: String?,
    val senderDevice: Int,
    val sortKey: Long,
    val timestampMs: Long,
    val body: ByteArray?,
    val status: Int,
    val kind: Int,
    val editedMs: Long,
    val deleted: Boolean,
    val forwarded: Int,
    val quoteId: ByteArray?,
    val quoteSender: String?,
    val quoteExcerpt: ByteArray?,
    val reactions: List<Reaction>,
)

/** Reads every message of a native page, then frees it (its bodies wiped). */
internal fun readPage(page: Long): List<Message> {
    try {
        val n = NativeHistory.pageCount(page).toInt()
        val nums = LongArray(8)
        return (0 until n).map { i ->
            val f = NativeHistory.pageGet(page, i, nums)
            val reactions = (7 until f.size step 3).map { r ->
                val at = f[r + 2]!!.fold(0L) { acc, b -> (acc shl 8) or (b.toLong() and 0xff) }
                Reaction(f[r]!!.decodeToString(), f[r + 1]!!.decodeToString(), at)
            }
            Message(f[0]!!.decodeToString(), f[1]!!, f[2].str(), nums[0].toInt(), nums[1], nums[2], f[3],
                    nums[3].toInt(), nums[4].toInt(), nums[5], nums[6] != 0L, nums[7].toInt(),
                    f[4], f[5].str(), f[6], reactions)
        }
    } finally {
        NativeHistory.pageFree(page)
    }
}

/** Up to `limit` messages of a conversation, newest first, older than
 *  `before` (the last message of the previous page; null: the newest). */
fun Context.historyPage(conversation: String, limit: Int, before: Message? = null): List<Message> =
    readPage(NativeHistory.page(handle, conversation.utf8(), before?.sortKey ?: 0, before?.id, limit))

/** Every message of a conversation, page by page, newest first. */
fun Context.history(conversation: String, pageSize: Int = 50): Sequence<Message> = sequence {
    var before: Message? = null
    while (true) {
        val page = historyPage(conversation, pageSize, before)
        yieldAll(page)
        if (page.size < pageSize) break
        before = page.last()
    }
}

/** Outgoing messages the server has not taken yet, oldest first. */
fun Context.outbox(limit: Int): List<Message> = readPage(NativeHistory.outboxPage(handle, limit))

/** Records an outgoing message for these recipient devices (PENDING). */
fun Context.addOutgoing(conversation: String, id: ByteArray, sortKey: Long, timestampMs: Long,
                        body: ByteArray?, recipients: List<Device>) =
    NativeHistory.addOutgoing(handle, conversation.utf8(), id, sortKey, timestampMs, body,
                              recipients.map { it.name }.utf8Array(),
                              IntArray(recipients.size) { recipients[it].deviceId })

/** Decrypts a 1:1 message (or, with MessageType.SENDERKEY, a group message)
 *  from (name, deviceId) and stores it in history in one transaction. */
fun Context.decryptAndStore(name: String, deviceId: Int, message: Ciphertext, conversation: String,
                            id: ByteArray, sortKey: Long, timestampMs: Long): ByteArray =
    NativeHistory.decryptStore(handle, name.utf8(), deviceId, message.type, message.body,
                               conversation.utf8(), id, sortKey, timestampMs)

/** The server took message `id`: SENT, out of the outbox, sorted by serverSortKey. */
fun Context.markSent(conversation: String, id: ByteArray, serverSortKey: Long) =
    NativeHistory.sent(handle, conversation.utf8(), id, serverSortKey)

fun Context.setStatus(conversation: String, id: ByteArray, recipient: Device, status: Int) {
    require(status >= 0) { "a status is 0 or more" }
    NativeHistory.status(handle, conversation.utf8(), id, recipient.name.utf8(), recipient.deviceId, status)
}

fun Context.status(conversation: String, id: ByteArray, recipient: Device): Int =
    NativeHistory.status(handle, conversation.utf8(), id, recipient.name.utf8(), recipient.deviceId, -1)

// --- search.h --------------------------------------------------------------

/** Up to `limit` messages holding every word of `query` (a String: the
 *  user's query), newest first; in one conversation or all; after the
 *  last message of the previous page. */
fun Context.search(query: String, limit: Int = 50, conversation: String? = null,
                   after: Message? = null): List<Message> =
    readPage(NativeSearch.search(handle, query.utf8(), conversation.utf8OrNull(),
                                 after?.conversation?.utf8(), after?.id, after?.timestampMs ?: 0, limit))

/** Lets the search index catch up (call when idle). */
fun Context.prepareSearch() = NativeSearch.prepare(handle)

/** Drops and rebuilds the search index (after ECORRUPT). */
fun Context.rebuildSearch() = NativeSearch.rebuild(handle)
