// client.h's events as Kotlin types. Bodies are ByteArrays (plaintext).
package org.libwhisper

/** An engine event (whisper_client_event_t), one subclass per type. */
sealed class ClientEvent {
    object Registered : ClientEvent()
    object Online : ClientEvent()
    object CaughtUp : ClientEvent()
    class CatchingUp(val done: Long, val total: Long) : ClientEvent()
    /** A message stored in history. quotedId: a reply's quoted message. */
    class Message(val conversation: String, val from: String?, val fromDevice: Int, val id: ByteArray,
                  val body: ByteArray, val kind: Int, val serverSeq: Long, val serverTs: Long,
                  val quotedId: ByteArray?, val quotedSender: String?, val forwarded: Int) : ClientEvent()
    /** An outgoing message's status for one device (fromDevice 0: SENT once). */
    class StatusChanged(val conversation: String?, val recipient: String?, val recipientDevice: Int,
                        val id: ByteArray, val status: Int) : ClientEvent()
    class Typing(val conversation: String?, val from: String, val started: Boolean) : ClientEvent()
    class Presence(val from: String, val online: Boolean, val lastSeenMs: Long) : ClientEvent()
    class IdentityChanged(val from: String, val fromDevice: Int, val newKey: ByteArray?) : ClientEvent()
    /** status: Group.CHANGED_* bits, JOIN_REQUEST or JOIN_REQUESTED. */
    class GroupChanged(val conversation: String, val from: String?, val status: Int) : ClientEvent()
    class Error(val code: Int, val serverCode: Int, val message: String?) : ClientEvent()
    class LinkCode(val token: ByteArray) : ClientEvent()
    /** status 1: fromDevice added, 2: removed, 0: not authorised by an account key yet. */
    class Devices(val from: String, val fromDevice: Int, val status: Int) : ClientEvent()
    class Refused(val code: Int, val message: String?, val conversation: String?, val from: String?,
                  val fromDevice: Int, val id: ByteArray?) : ClientEvent()
    class Gap(val conversation: String?, val from: String?, val fromDevice: Int, val missing: Int) : ClientEvent()
    class Retry(val conversation: String?, val from: String?, val fromDevice: Int, val id: ByteArray?,
                val status: Int) : ClientEvent()
    class Rollback(val from: String?, val fromDevice: Int) : ClientEvent()
    /** Keep `anchor` outside the store (the platform keystore). */
    class Anchor(val anchor: ByteArray) : ClientEvent()
    class Edited(val conversation: String, val from: String?, val targetId: ByteArray?,
                 val targetSender: String?, val body: ByteArray) : ClientEvent()
    class Deleted(val conversation: String, val from: String?, val targetId: ByteArray?,
                  val targetSender: String?) : ClientEvent()
    class ReactionChanged(val conversation: String, val from: String?, val targetId: ByteArray?,
                          val targetSender: String?, val emoji: String) : ClientEvent()
    class Call(val from: String, val fromDevice: Int, val type: Int, val callId: ByteArray?,
               val data: ByteArray) : ClientEvent()
    class Settings(val conversation: String) : ClientEvent()
    class Profile(val from: String?) : ClientEvent()
    class Blocked(val account: String?, val blocked: Boolean) : ClientEvent()
    class Media(val conversation: String?, val from: String?, val id: ByteArray?, val state: Int,
                val done: Long, val total: Long, val code: Int) : ClientEvent()
    class MediaData(val conversation: String?, val from: String?, val id: ByteArray?, val offset: Long,
                    val total: Long, val data: ByteArray) : ClientEvent()
    class Unknown(val type: Int) : ClientEvent()

    internal companion object {
        fun of(n: LongArray, f: Array<ByteArray?>): ClientEvent {
            val conv = f[0].str()
            val from = f[1].str()
            val dev = n[1].toInt()
            val id = f[2]
            val body = f[3] ?: ByteArray(0)
            val msg = f[4].str()
            val status = n[2].toInt()
            return when (n[0].toInt()) {
                1 -> Registered
                2 -> Online
                3 -> CaughtUp
                4 -> Message(conv ?: "", from, dev, id ?: ByteArray(0), body, n[10].toInt(), n[6], n[7],
                             f[5], f[6].str(), n[11].toInt())
                5 -> StatusChanged(conv, from, dev, id ?: ByteArray(0), status)
                6 -> Typing(conv, from ?: "", n[3] != 0L)
                7 -> Presence(from ?: "", n[4] != 0L, n[5])
                8 -> IdentityChanged(from ?: "", dev, f[3])
                9 -> GroupChanged(conv ?: "", from, status)
                10 -> Error(n[8].toInt(), n[9].toInt(), msg)
                11 -> LinkCode(body)
                12 -> Devices(from ?: "", dev, status)
                13 -> Refused(n[8].toInt(), msg, conv, from, dev, id)
                14 -> Gap(conv, from, dev, status)
                15 -> Retry(conv, from, dev, id, status)
                16 -> Rollback(from, dev)
                17 -> Anchor(body)
                18 -> Edited(conv ?: "", from, f[5], f[6].str(), body)
                19 -> Deleted(conv ?: "", from, f[5], f[6].str())
                20 -> ReactionChanged(conv ?: "", from, f[5], f[6].str(), body.decodeToString())
                21 -> Call(from ?: "", dev, status, id, body)
                22 -> Settings(conv ?: "")
                23 -> Profile(from)
                24 -> Blocked(from, status != 0)
                25 -> Media(conv, from, id, status, n[12], n[13], n[8].toInt())
                26 -> MediaData(conv, from, id, n[12], n[13], body)
                27 -> CatchingUp(n[12], n[13])
                else -> Unknown(n[0].toInt())
            }
        }
    }
}
