// The JNI declarations, one object per header area (jni/<area>.c), so that
// a rename in the C API is a local edit. Everything here is internal: apps
// use the classes of this package.
@file:Suppress("FunctionName")

package org.libwhisper

internal object NativeLoader {
    @Volatile private var loaded = false

    /** Loads libwhisper_jni: from the system property whisper.jni.path when
     *  set (a file), else System.loadLibrary (java.library.path; on Android
     *  the APK's lib/<abi>/). */
    @Synchronized fun load() {
        if (loaded) return
        val path = System.getProperty("whisper.jni.path")
        if (path != null) System.load(java.io.File(path).absolutePath) else System.loadLibrary("whisper_jni")
        loaded = true
    }
}

internal object NativeCore {
    init { NativeLoader.load() }
    @JvmStatic external fun version(): Int
    @JvmStatic external fun strerror(code: Int): String
    @JvmStatic external fun liveHandles(): Long
    @JvmStatic external fun mallocInUse(): Long
}

/** jni/sizes.c: the size functions, one table, in one call each. */
internal object NativeSizes {
    init { NativeLoader.load() }
    @JvmStatic external fun names(): Array<ByteArray?>
    @JvmStatic external fun values(): LongArray
}

internal object NativeStore {
    init { NativeLoader.load() }
    @JvmStatic external fun memoryNew(): Long
    @JvmStatic external fun sqliteOpen(path: ByteArray, key: ByteArray?, passphrase: ByteArray?,
                                       synchronous: Int, busyTimeoutMs: Int): Long
    @JvmStatic external fun rekey(store: Long, key: ByteArray?, passphrase: ByteArray?)
    @JvmStatic external fun sqliteDelete(path: ByteArray)
    @JvmStatic external fun begin(store: Long)
    @JvmStatic external fun commit(store: Long)
    @JvmStatic external fun rollback(store: Long)
    @JvmStatic external fun close(store: Long)
    @JvmStatic external fun ctxNew(store: Long): Long
    @JvmStatic external fun ctxFree(ctx: Long)
    @JvmStatic external fun ctxLastError(ctx: Long): String
}

internal object NativeKeys {
    init { NativeLoader.load() }
    @JvmStatic external fun generate(ctx: Long, pub: ByteArray, priv: ByteArray)
    @JvmStatic external fun publicOf(priv: ByteArray): ByteArray
    @JvmStatic external fun publicKeyCheck(key: ByteArray)
    @JvmStatic external fun sign(ctx: Long, priv: ByteArray, msg: ByteArray?): ByteArray
    @JvmStatic external fun verify(pub: ByteArray, msg: ByteArray?, sig: ByteArray)
}

internal object NativeSession {
    init { NativeLoader.load() }
    @JvmStatic external fun identityGenerate(ctx: Long, name: ByteArray, deviceId: Int, registrationId: Int, nowMs: Long)
    @JvmStatic external fun identityImport(ctx: Long, name: ByteArray, deviceId: Int, registrationId: Int, priv: ByteArray)
    @JvmStatic external fun identityGet(ctx: Long, pub: ByteArray, ids: LongArray): ByteArray
    @JvmStatic external fun identityTrust(ctx: Long, name: ByteArray, deviceId: Int, key: ByteArray, nowMs: Long)
    @JvmStatic external fun identityInfo(ctx: Long, name: ByteArray, deviceId: Int, out: LongArray): ByteArray
    @JvmStatic external fun signedPrekeyGenerate(ctx: Long, id: Int, nowMs: Long)
    @JvmStatic external fun signedPrekeyRotate(ctx: Long, nowMs: Long, maxAgeMs: Long, graceMs: Long): Boolean
    @JvmStatic external fun prekeysCount(ctx: Long): Long
    @JvmStatic external fun prekeysGenerate(ctx: Long, count: Int): Long
    @JvmStatic external fun bundleGenerate(ctx: Long, withPrekey: Boolean): ByteArray
    @JvmStatic external fun bundleDecode(data: ByteArray, nums: LongArray): Array<ByteArray?>
    @JvmStatic external fun sessionStart(ctx: Long, name: ByteArray, deviceId: Int, bundle: ByteArray, nowMs: Long)
    @JvmStatic external fun sessionsDistrust(ctx: Long)
    @JvmStatic external fun sessionExists(ctx: Long, name: ByteArray, deviceId: Int, nowMs: Long): Boolean
    @JvmStatic external fun encrypt(ctx: Long, name: ByteArray, deviceId: Int, plaintext: ByteArray?, nowMs: Long, typeOut: IntArray): ByteArray
    @JvmStatic external fun decrypt(ctx: Long, name: ByteArray, deviceId: Int, type: Int, body: ByteArray): ByteArray
}

internal object NativeFingerprint {
    init { NativeLoader.load() }
    @JvmStatic external fun compute(iterations: Int, localId: ByteArray?, localKey: ByteArray,
                                    remoteId: ByteArray?, remoteKey: ByteArray): Array<ByteArray?>
    @JvmStatic external fun compare(ours: ByteArray, scanned: ByteArray): Boolean
}

internal object NativeSenderKey {
    init { NativeLoader.load() }
    @JvmStatic external fun create(ctx: Long, dist: ByteArray): ByteArray
    @JvmStatic external fun rotate(ctx: Long, dist: ByteArray): ByteArray
    @JvmStatic external fun process(ctx: Long, sender: ByteArray, deviceId: Int, skdm: ByteArray)
    @JvmStatic external fun encrypt(ctx: Long, dist: ByteArray, plaintext: ByteArray?): ByteArray
    @JvmStatic external fun decrypt(ctx: Long, sender: ByteArray, deviceId: Int, body: ByteArray): ByteArray
    @JvmStatic external fun distribute(ctx: Long, dist: ByteArray, names: Array<ByteArray>, ids: IntArray,
                                       nowMs: Long, statuses: IntArray, types: IntArray): Array<ByteArray?>
    @JvmStatic external fun receiveDistribution(ctx: Long, sender: ByteArray, deviceId: Int, type: Int, body: ByteArray)
}

internal object NativeHistory {
    init { NativeLoader.load() }
    @JvmStatic external fun pageCount(page: Long): Long
    @JvmStatic external fun pageGet(page: Long, i: Int, nums: LongArray): Array<ByteArray?>
    @JvmStatic external fun pageFree(page: Long)
    @JvmStatic external fun page(ctx: Long, conversation: ByteArray, beforeSortKey: Long, beforeId: ByteArray?, limit: Int): Long
    @JvmStatic external fun outboxPage(ctx: Long, limit: Int): Long
    @JvmStatic external fun addOutgoing(ctx: Long, conversation: ByteArray, id: ByteArray, sortKey: Long,
                                        timestampMs: Long, body: ByteArray?, names: Array<ByteArray>, ids: IntArray)
    @JvmStatic external fun decryptStore(ctx: Long, name: ByteArray, deviceId: Int, type: Int, body: ByteArray,
                                         conversation: ByteArray, id: ByteArray, sortKey: Long, timestampMs: Long): ByteArray
    @JvmStatic external fun sent(ctx: Long, conversation: ByteArray, id: ByteArray, serverSortKey: Long)
    @JvmStatic external fun status(ctx: Long, conversation: ByteArray, id: ByteArray, recipient: ByteArray,
                                   deviceId: Int, status: Int): Int
}

internal object NativeSearch {
    init { NativeLoader.load() }
    @JvmStatic external fun search(ctx: Long, query: ByteArray, conversation: ByteArray?, afterConversation: ByteArray?,
                                   afterId: ByteArray?, afterTs: Long, limit: Int): Long
    @JvmStatic external fun prepare(ctx: Long)
    @JvmStatic external fun rebuild(ctx: Long)
}

internal object NativeAttachment {
    init { NativeLoader.load() }
    @JvmStatic external fun paddedSize(size: Long): Long
    @JvmStatic external fun blobSize(size: Long): Long
    @JvmStatic external fun encryptNew(key: ByteArray, iv: ByteArray, size: Long): Long
    @JvmStatic external fun encryptUpdate(h: Long, data: ByteArray): ByteArray
    @JvmStatic external fun encryptFinish(h: Long, nums: LongArray): Array<ByteArray?>
    @JvmStatic external fun encryptFree(h: Long)
    @JvmStatic external fun decryptNew(key: ByteArray, size: Long, digest: ByteArray, plaintextHash: ByteArray?,
                                       incrementalMac: ByteArray?, chunkSize: Int, maxSize: Long): Long
    @JvmStatic external fun decryptUpdate(h: Long, data: ByteArray): ByteArray
    @JvmStatic external fun decryptFinish(h: Long, again: IntArray): ByteArray
    @JvmStatic external fun decryptFree(h: Long)
}

internal object NativeClient {
    init { NativeLoader.load() }
    @JvmStatic external fun create(ctx: Long, cfg: LongArray?, mediaDir: ByteArray?): Long
    @JvmStatic external fun free(h: Long)
    @JvmStatic external fun wantConnect(h: Long, now: Long): Boolean
    @JvmStatic external fun connected(h: Long, now: Long)
    @JvmStatic external fun disconnected(h: Long, now: Long)
    @JvmStatic external fun receive(h: Long, frame: ByteArray, now: Long)
    @JvmStatic external fun takeFrame(h: Long): ByteArray?
    @JvmStatic external fun wantDisconnect(h: Long): Boolean
    @JvmStatic external fun nextDeadline(h: Long): Long
    @JvmStatic external fun tick(h: Long, now: Long)
    @JvmStatic external fun send(h: Long, to: ByteArray?, groupId: ByteArray?, body: ByteArray?, now: Long): ByteArray
    @JvmStatic external fun reply(h: Long, conv: ByteArray, quotedId: ByteArray, quotedSender: ByteArray?, body: ByteArray?, now: Long): ByteArray
    @JvmStatic external fun forward(h: Long, toConv: ByteArray, fromConv: ByteArray, id: ByteArray, sender: ByteArray?, now: Long): ByteArray
    @JvmStatic external fun react(h: Long, conv: ByteArray, id: ByteArray, sender: ByteArray?, emoji: ByteArray, now: Long)
    @JvmStatic external fun editOrDelete(h: Long, conv: ByteArray, id: ByteArray, body: ByteArray?, now: Long)
    @JvmStatic external fun sendFile(h: Long, conv: ByteArray, path: ByteArray, contentType: ByteArray?, fileName: ByteArray?,
                                     caption: ByteArray?, thumbnail: ByteArray?, nums: IntArray?, now: Long): ByteArray
    @JvmStatic external fun mediaGet(h: Long, conv: ByteArray, id: ByteArray, sender: ByteArray?, nums: LongArray): Array<ByteArray?>
    @JvmStatic external fun download(h: Long, conv: ByteArray, id: ByteArray, sender: ByteArray?, path: ByteArray?, viewOnce: Boolean, now: Long)
    @JvmStatic external fun takeHttp(h: Long, handle: LongArray): Array<ByteArray?>?
    @JvmStatic external fun httpDone(h: Long, handle: Long, status: Int, headers: ByteArray?, body: ByteArray?, now: Long)
    @JvmStatic external fun conversationFlags(h: Long, conv: ByteArray, flags: LongArray, set: Boolean, now: Long)
    @JvmStatic external fun profileSet(h: Long, name: ByteArray, about: ByteArray, picture: ByteArray?, now: Long)
    @JvmStatic external fun profileGet(h: Long, account: ByteArray?, nums: LongArray): Array<ByteArray?>
    @JvmStatic external fun profileRefreshOrRotate(h: Long, account: ByteArray?, rotate: Boolean, now: Long)
    @JvmStatic external fun call(h: Long, to: ByteArray, type: Int, callId: ByteArray, data: ByteArray?, now: Long)
    @JvmStatic external fun markRead(h: Long, conv: ByteArray, sender: ByteArray, ids: ByteArray, now: Long)
    @JvmStatic external fun typing(h: Long, conv: ByteArray, started: Boolean, now: Long)
    @JvmStatic external fun subscribe(h: Long, accounts: Array<ByteArray>)
    @JvmStatic external fun groupCreate(h: Long, members: Array<ByteArray>, now: Long): ByteArray
    @JvmStatic external fun groupMembers(h: Long, gid: ByteArray, members: Array<ByteArray>, remove: Boolean, now: Long)
    @JvmStatic external fun groupConversation(gid: ByteArray): ByteArray
    @JvmStatic external fun groupChange(h: Long, gid: ByteArray, op: Int, arg: Int, value: ByteArray?, now: Long)
    @JvmStatic external fun groupLinkGenerate(h: Long, gid: ByteArray, now: Long): ByteArray
    @JvmStatic external fun groupJoin(h: Long, link: ByteArray, now: Long): ByteArray
    @JvmStatic external fun groupState(h: Long, gid: ByteArray, nums: LongArray): Array<Any?>
    @JvmStatic external fun linkApprove(h: Long, token: ByteArray)
    @JvmStatic external fun linkDigits(token: ByteArray): ByteArray
    @JvmStatic external fun deviceRemove(h: Long, deviceId: Int)
    @JvmStatic external fun accountInfo(h: Long, account: ByteArray, trust: IntArray): ByteArray?
    @JvmStatic external fun accountTrust(h: Long, account: ByteArray, key: ByteArray, verified: Boolean)
    @JvmStatic external fun anchor(h: Long): ByteArray
    @JvmStatic external fun checkAnchor(h: Long, anchor: ByteArray): Boolean
    @JvmStatic external fun retry(h: Long, now: Long)
    @JvmStatic external fun block(h: Long, account: ByteArray, op: Int, now: Long): Boolean
    @JvmStatic external fun blockedList(h: Long): Array<ByteArray?>
    @JvmStatic external fun report(h: Long, conv: ByteArray, n: Int, block: Boolean, now: Long)
    @JvmStatic external fun takeEvent(h: Long, nums: LongArray): Array<ByteArray?>?
}
