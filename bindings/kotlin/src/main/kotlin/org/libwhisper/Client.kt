// client.h: the sans-I/O client engine. The app owns the connection (a
// WebSocket to whisperd's /v1/ws, subprotocol "whisper-sync-v1") and the
// clock: it calls connected()/disconnected(), feeds receive() every binary
// frame, sends what takeFrame() gives, reads events(), runs tick() by
// nextDeadline(), and makes the HTTP requests takeHttp() gives for media.
package org.libwhisper

/** The engine's configuration (whisper_client_config_t, version 7). */
data class ClientConfig(
    val prekeyBatch: Int = 100,
    val prekeyLow: Int = 20,
    val backoffMinMs: Long = 500,
    val backoffMaxMs: Long = 60000,
    val pingMs: Long = 25000,
    val requestTimeoutMs: Long = 10000,
    val typingMinMs: Long = 2000,
    val readReceipts: Boolean = true,
    val presenceVisible: Boolean = true,
    val holdOnChange: Boolean = false,
    val deliveryReceipts: Boolean = true,
    val deleteWindowMs: Long = 48L * 3600 * 1000,
    val maxGroupMembers: Int = 1024,
    /** A directory of the app's for encrypted blobs in flight (null: no media). */
    val mediaDir: String? = null,
    val mediaMaxSize: Long = 100L shl 20,
    val mediaPiece: Int = 1 shl 20,
    val signedPrekeyRotateMs: Long = 7L * 24 * 3600 * 1000,
    val signedPrekeyGraceMs: Long = 30L * 24 * 3600 * 1000,
    val sendWindow: Int = 32,
) {
    internal fun toLongs(): LongArray = longArrayOf(
        prekeyBatch.toLong(), prekeyLow.toLong(), backoffMinMs, backoffMaxMs, pingMs, requestTimeoutMs,
        typingMinMs, if (readReceipts) 1 else 0, if (presenceVisible) 1 else 0, if (holdOnChange) 1 else 0,
        if (deliveryReceipts) 1 else 0, deleteWindowMs, maxGroupMembers.toLong(), mediaMaxSize,
        mediaPiece.toLong(), signedPrekeyRotateMs, signedPrekeyGraceMs, sendWindow.toLong())
}

/** What the app says of a file it sends. caption is the message's text
 *  (plaintext, bytes); thumbnail the app's small image. */
class MediaMeta(val contentType: String? = null, val fileName: String? = null, val caption: ByteArray? = null,
                val thumbnail: ByteArray? = null, val width: Int = 0, val height: Int = 0,
                val durationMs: Int = 0, val flags: Int = 0) {
    companion object {
        const val VOICE_NOTE = 1
        const val VIEW_ONCE = 2
    }
}

/** An attachment as this device holds it. */
class Media(val contentType: String, val fileName: String, val caption: ByteArray, val thumbnail: ByteArray?,
            val size: Long, val width: Int, val height: Int, val durationMs: Int, val flags: Int,
            val state: Int, val done: Long, val total: Long, val path: String, val error: Int) {
    companion object {
        const val ENCRYPTING = 1; const val UPLOADING = 2; const val SENT = 3; const val REMOTE = 4
        const val DOWNLOADING = 5; const val DOWNLOADED = 6; const val OPENED = 7; const val FAILED = 8
    }
}

/** An HTTP request for the blob store; answer it with Client.httpDone(handle, ...). */
class HttpRequest(val handle: Long, val method: String, val path: String, val headers: String, val body: ByteArray)

class ConversationFlags(val mutedUntilMs: Long = 0, val archived: Boolean = false, val pinned: Boolean = false)

/** A profile: name and about are the user's text, as bytes (UTF-8). */
class Profile(val known: Boolean, val name: ByteArray, val about: ByteArray, val picture: ByteArray?, val version: Long)

class GroupState(val members: List<String>, val admins: List<String>, val requests: List<String>,
                 val name: ByteArray, val description: ByteArray, val picture: ByteArray?,
                 val adminsEditInfo: Boolean, val adminsSend: Boolean, val approvalRequired: Boolean,
                 val hasLink: Boolean, val member: Boolean, val admin: Boolean, val changeVersion: Long)

/** Account trust (client.h WHISPER_TRUST_*), with the account key when known. */
class AccountInfo(val trust: Int, val key: ByteArray?) {
    companion object {
        const val UNKNOWN = 0; const val UNVERIFIED = 1; const val VERIFIED = 2; const val CHANGED = 3
    }
}

/** Group constants (client.h). */
object Group {
    const val NAME = 1; const val DESCRIPTION = 2; const val PICTURE = 3
    const val ADMINS_EDIT_INFO = 1; const val ADMINS_SEND = 2; const val APPROVAL = 3
    const val CHANGED_MEMBERS = 1; const val CHANGED_ADMINS = 2; const val CHANGED_INFO = 4
    const val CHANGED_SETTINGS = 8; const val CHANGED_LINK = 16
    const val JOIN_REQUEST = 32; const val JOIN_REQUESTED = 64

    /** A group's conversation name: "#" and 2 * Sizes.GROUP_ID_LEN lowercase hex
     *  digits (Sizes.GROUP_CONVERSATION_LEN characters). */
    fun conversation(groupId: ByteArray): String = NativeClient.groupConversation(groupId).decodeToString()
}

/** The engine over a context with an identity (generateIdentity first). */
class Client(val context: Context, config: ClientConfig = ClientConfig()) :
    NativeObject(NativeClient.create(context.handle, config.toLongs(), config.mediaDir.utf8OrNull())) {

    init { context.users++ }

    override fun free(handle: Long) {
        NativeClient.free(handle)
        context.users--
    }

    private fun now() = System.currentTimeMillis()

    // --- the connection
    fun wantConnect(nowMs: Long = now()): Boolean = NativeClient.wantConnect(handle, nowMs)
    fun connected(nowMs: Long = now()) = NativeClient.connected(handle, nowMs)
    fun disconnected(nowMs: Long = now()) = NativeClient.disconnected(handle, nowMs)
    /** A binary frame arrived; throws WhisperException(EINVALIDMSG) for bytes
     *  that are not a frame (then close the connection). */
    fun receive(frame: ByteArray, nowMs: Long = now()) = NativeClient.receive(handle, frame, nowMs)
    fun takeFrame(): ByteArray? = NativeClient.takeFrame(handle)
    /** Every frame waiting to be sent. */
    fun takeFrames(): List<ByteArray> = generateSequence { takeFrame() }.toList()
    val wantDisconnect: Boolean get() = NativeClient.wantDisconnect(handle)
    /** When tick() should next run; null: nothing is due. */
    val nextDeadline: Long? get() = NativeClient.nextDeadline(handle).let { if (it == -1L) null else it }
    fun tick(nowMs: Long = now()) = NativeClient.tick(handle, nowMs)

    // --- events
    fun takeEvent(): ClientEvent? {
        val n = LongArray(14)
        val f = NativeClient.takeEvent(handle, n) ?: return null
        return ClientEvent.of(n, f)
    }
    fun events(): List<ClientEvent> = generateSequence { takeEvent() }.toList()

    // --- messages
    /** Sends `body` to an account; returns the message's client id
     *  (Sizes.CLIENT_ID_LEN bytes). */
    fun send(to: String, body: ByteArray, nowMs: Long = now()): ByteArray =
        NativeClient.send(handle, to.utf8(), null, body, nowMs)
    fun sendGroup(groupId: ByteArray, body: ByteArray, nowMs: Long = now()): ByteArray =
        NativeClient.send(handle, null, groupId, body, nowMs)
    fun reply(conversation: String, quotedId: ByteArray, quotedSender: String?, body: ByteArray,
              nowMs: Long = now()): ByteArray =
        NativeClient.reply(handle, conversation.utf8(), quotedId, quotedSender.utf8OrNull(), body, nowMs)
    fun forward(toConversation: String, fromConversation: String, id: ByteArray, sender: String?,
                nowMs: Long = now()): ByteArray =
        NativeClient.forward(handle, toConversation.utf8(), fromConversation.utf8(), id, sender.utf8OrNull(), nowMs)
    /** emoji "": removes this account's reaction. */
    fun react(conversation: String, id: ByteArray, sender: String?, emoji: String, nowMs: Long = now()) =
        NativeClient.react(handle, conversation.utf8(), id, sender.utf8OrNull(), emoji.utf8(), nowMs)
    fun edit(conversation: String, id: ByteArray, body: ByteArray, nowMs: Long = now()) =
        NativeClient.editOrDelete(handle, conversation.utf8(), id, body, nowMs)
    fun delete(conversation: String, id: ByteArray, nowMs: Long = now()) =
        NativeClient.editOrDelete(handle, conversation.utf8(), id, null, nowMs)

    // --- media
    fun sendFile(conversation: String, path: String, meta: MediaMeta? = null, nowMs: Long = now()): ByteArray =
        NativeClient.sendFile(handle, conversation.utf8(), path.utf8(), meta?.contentType.utf8OrNull(),
                              meta?.fileName.utf8OrNull(), meta?.caption, meta?.thumbnail,
                              meta?.let { intArrayOf(it.width, it.height, it.durationMs, it.flags) }, nowMs)
    fun media(conversation: String, id: ByteArray, sender: String?): Media {
        val n = LongArray(9)
        val f = NativeClient.mediaGet(handle, conversation.utf8(), id, sender.utf8OrNull(), n)
        return Media(f[0].str() ?: "", f[1].str() ?: "", f[2] ?: ByteArray(0), f[3], n[0], n[1].toInt(),
                     n[2].toInt(), n[3].toInt(), n[4].toInt(), n[5].toInt(), n[6], n[7], f[4].str() ?: "", n[8].toInt())
    }
    /** path null: the plaintext comes in ClientEvent.MediaData events. */
    fun download(conversation: String, id: ByteArray, sender: String?, path: String?, nowMs: Long = now()) =
        NativeClient.download(handle, conversation.utf8(), id, sender.utf8OrNull(), path.utf8OrNull(), false, nowMs)
    fun openViewOnce(conversation: String, id: ByteArray, sender: String?, path: String?, nowMs: Long = now()) =
        NativeClient.download(handle, conversation.utf8(), id, sender.utf8OrNull(), path.utf8OrNull(), true, nowMs)
    fun takeHttp(): HttpRequest? {
        val h = LongArray(1)
        val f = NativeClient.takeHttp(handle, h) ?: return null
        return HttpRequest(h[0], f[0].str() ?: "", f[1].str() ?: "", f[2].str() ?: "", f[3] ?: ByteArray(0))
    }
    /** status 0: the request failed. headers as "Name: value\r\n" lines. */
    fun httpDone(handle: Long, status: Int, headers: String?, body: ByteArray?, nowMs: Long = now()) =
        NativeClient.httpDone(this.handle, handle, status, headers.utf8OrNull(), body, nowMs)

    // --- conversation flags, profiles
    fun conversationFlags(conversation: String): ConversationFlags {
        val v = LongArray(3)
        NativeClient.conversationFlags(handle, conversation.utf8(), v, false, 0)
        return ConversationFlags(v[0], v[1] != 0L, v[2] != 0L)
    }
    fun setConversationFlags(conversation: String, flags: ConversationFlags, nowMs: Long = now()) =
        NativeClient.conversationFlags(handle, conversation.utf8(),
            longArrayOf(flags.mutedUntilMs, if (flags.archived) 1 else 0, if (flags.pinned) 1 else 0), true, nowMs)
    fun setProfile(name: ByteArray, about: ByteArray, picture: ByteArray? = null, nowMs: Long = now()) =
        NativeClient.profileSet(handle, name, about, picture, nowMs)
    /** account null: this account's. */
    fun profile(account: String? = null): Profile {
        val n = LongArray(2)
        val f = NativeClient.profileGet(handle, account.utf8OrNull(), n)
        return Profile(n[0] != 0L, f[0] ?: ByteArray(0), f[1] ?: ByteArray(0), f[2], n[1])
    }
    fun refreshProfile(account: String? = null) = NativeClient.profileRefreshOrRotate(handle, account.utf8OrNull(), false, 0)
    fun rotateProfileKey(withhold: String? = null, nowMs: Long = now()) =
        NativeClient.profileRefreshOrRotate(handle, withhold.utf8OrNull(), true, nowMs)

    // --- calls, receipts, typing, presence
    fun call(to: String, type: Int, callId: ByteArray, data: ByteArray?, nowMs: Long = now()) =
        NativeClient.call(handle, to.utf8(), type, callId, data, nowMs)
    fun markRead(conversation: String, sender: String, ids: List<ByteArray>, nowMs: Long = now()) =
        NativeClient.markRead(handle, conversation.utf8(), sender.utf8(),
                              ids.fold(ByteArray(0)) { a, b -> a + b }, nowMs)
    fun typing(conversation: String, started: Boolean, nowMs: Long = now()) =
        NativeClient.typing(handle, conversation.utf8(), started, nowMs)
    fun subscribe(accounts: List<String>) = NativeClient.subscribe(handle, accounts.utf8Array())

    // --- groups
    fun createGroup(members: List<String>, nowMs: Long = now()): ByteArray =
        NativeClient.groupCreate(handle, members.utf8Array(), nowMs)
    fun addMembers(groupId: ByteArray, members: List<String>, nowMs: Long = now()) =
        NativeClient.groupMembers(handle, groupId, members.utf8Array(), false, nowMs)
    fun removeMembers(groupId: ByteArray, members: List<String>, nowMs: Long = now()) =
        NativeClient.groupMembers(handle, groupId, members.utf8Array(), true, nowMs)
    fun setAdmin(groupId: ByteArray, member: String, admin: Boolean, nowMs: Long = now()) =
        NativeClient.groupChange(handle, groupId, 1, if (admin) 1 else 0, member.utf8(), nowMs)
    /** field: Group.NAME, DESCRIPTION, PICTURE; empty value clears it. */
    fun setGroupInfo(groupId: ByteArray, field: Int, value: ByteArray, nowMs: Long = now()) =
        NativeClient.groupChange(handle, groupId, 2, field, value, nowMs)
    /** setting: Group.ADMINS_EDIT_INFO, ADMINS_SEND, APPROVAL. */
    fun setGroupSetting(groupId: ByteArray, setting: Int, on: Boolean, nowMs: Long = now()) =
        NativeClient.groupChange(handle, groupId, 3, setting, byteArrayOf(if (on) 1 else 0), nowMs)
    fun revokeGroupLink(groupId: ByteArray, nowMs: Long = now()) =
        NativeClient.groupChange(handle, groupId, 4, 0, null, nowMs)
    fun leaveGroup(groupId: ByteArray, nowMs: Long = now()) = NativeClient.groupChange(handle, groupId, 5, 0, null, nowMs)
    /** A new invite link (a secret: bytes; wipe it when shown). */
    fun generateGroupLink(groupId: ByteArray, nowMs: Long = now()): ByteArray = NativeClient.groupLinkGenerate(handle, groupId, nowMs)
    fun joinGroup(link: ByteArray, nowMs: Long = now()): ByteArray = NativeClient.groupJoin(handle, link, nowMs)
    fun groupState(groupId: ByteArray): GroupState {
        val n = LongArray(7)
        val o = NativeClient.groupState(handle, groupId, n)
        fun names(x: Any?) = (x as Array<*>).map { (it as ByteArray).decodeToString() }
        @Suppress("UNCHECKED_CAST") val info = o[3] as Array<ByteArray?>
        return GroupState(names(o[0]), names(o[1]), names(o[2]), info[0] ?: ByteArray(0), info[1] ?: ByteArray(0),
                          info[2], n[0] != 0L, n[1] != 0L, n[2] != 0L, n[3] != 0L, n[4] != 0L, n[5] != 0L, n[6])
    }

    // --- devices, trust, anchor
    fun approveLink(token: ByteArray) = NativeClient.linkApprove(handle, token)
    fun removeDevice(deviceId: Int) = NativeClient.deviceRemove(handle, deviceId)
    fun accountInfo(account: String): AccountInfo {
        val t = IntArray(1)
        val key = NativeClient.accountInfo(handle, account.utf8(), t)
        return AccountInfo(t[0], key)
    }
    fun trustAccount(account: String, key: ByteArray, verified: Boolean) =
        NativeClient.accountTrust(handle, account.utf8(), key, verified)
    val anchor: ByteArray get() = NativeClient.anchor(handle)
    /** True when the store was restored from a copy older than `anchor`. */
    fun checkAnchor(anchor: ByteArray): Boolean = NativeClient.checkAnchor(handle, anchor)
    fun retry(nowMs: Long = now()) = NativeClient.retry(handle, nowMs)

    // --- blocking, reporting
    fun block(account: String, nowMs: Long = now()) { NativeClient.block(handle, account.utf8(), 1, nowMs) }
    fun unblock(account: String, nowMs: Long = now()) { NativeClient.block(handle, account.utf8(), 0, nowMs) }
    fun isBlocked(account: String): Boolean = NativeClient.block(handle, account.utf8(), 2, 0)
    fun blocked(): List<String> = NativeClient.blockedList(handle).map { it!!.decodeToString() }
    fun report(conversation: String, messages: Int = 0, block: Boolean = false, nowMs: Long = now()) =
        NativeClient.report(handle, conversation.utf8(), messages, block, nowMs)

    companion object {
        /** The Sizes.LINK_DIGITS digits both devices show for a link token. */
        fun linkDigits(token: ByteArray): String = NativeClient.linkDigits(token).decodeToString()
    }
}
