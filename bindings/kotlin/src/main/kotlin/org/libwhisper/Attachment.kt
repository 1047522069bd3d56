// attachment.h: attachments encrypted as Signal encrypts them, streaming:
// update() returns the output the bytes fed made.
package org.libwhisper

/** What an encryption made, for the pointer. */
class AttachmentResult(val digest: ByteArray, val plaintextHash: ByteArray, val blobSize: Long,
                       val chunkSize: Int, val incrementalMac: ByteArray?)

/** Encrypts a plaintext of exactly `size` bytes under a key of
 *  Sizes.ATTACHMENT_KEY_LEN bytes and an IV of Sizes.ATTACHMENT_IV_LEN; feed
 *  it with update(), each call returning blob bytes. */
class AttachmentEncryptor(key: ByteArray, iv: ByteArray, val size: Long) :
    NativeObject(NativeAttachment.encryptNew(key, iv, size)) {
    override fun free(handle: Long) = NativeAttachment.encryptFree(handle)

    fun update(plaintext: ByteArray): ByteArray = NativeAttachment.encryptUpdate(handle, plaintext)

    /** The last blob bytes, and the result. */
    fun finish(): Pair<ByteArray, AttachmentResult> {
        val n = LongArray(2)
        val r = NativeAttachment.encryptFinish(handle, n)
        return r[0]!! to AttachmentResult(r[1]!!, r[2]!!, n[0], n[1].toInt(), r[3])
    }

    companion object {
        fun paddedSize(size: Long): Long = NativeAttachment.paddedSize(size)
        fun blobSize(size: Long): Long = NativeAttachment.blobSize(size)

        /** The whole blob of `plaintext` at once. */
        fun encrypt(key: ByteArray, iv: ByteArray, plaintext: ByteArray): Pair<ByteArray, AttachmentResult> =
            AttachmentEncryptor(key, iv, plaintext.size.toLong()).use { e ->
                val a = e.update(plaintext)
                val (b, r) = e.finish()
                (a + b) to r
            }
    }
}

/** Decrypts a blob: update() returns verified plaintext only. finish()
 *  returns the rest, or null when the blob must be fed again from its first
 *  byte (no incremental MAC: a first pass checked it). On any exception the
 *  app discards what it got. */
class AttachmentDecryptor(key: ByteArray, size: Long, digest: ByteArray, plaintextHash: ByteArray? = null,
                          incrementalMac: ByteArray? = null, chunkSize: Int = 0, maxSize: Long = 0) :
    NativeObject(NativeAttachment.decryptNew(key, size, digest, plaintextHash, incrementalMac, chunkSize, maxSize)) {
    override fun free(handle: Long) = NativeAttachment.decryptFree(handle)

    fun update(blob: ByteArray): ByteArray = NativeAttachment.decryptUpdate(handle, blob)

    fun finish(): ByteArray? {
        val again = IntArray(1)
        val rest = NativeAttachment.decryptFinish(handle, again)
        return if (again[0] != 0) null else rest
    }

    companion object {
        /** The whole plaintext of a blob at once (two passes without an
         *  incremental MAC). */
        fun decrypt(key: ByteArray, blob: ByteArray, size: Long, r: AttachmentResult): ByteArray =
            AttachmentDecryptor(key, size, r.digest, r.plaintextHash, r.incrementalMac,
                                if (r.incrementalMac != null) r.chunkSize else 0).use { d ->
                var out = d.update(blob)
                var rest = d.finish()
                if (rest == null) {
                    out = d.update(blob)
                    rest = d.finish()!!
                }
                out + rest
            }
    }
}
