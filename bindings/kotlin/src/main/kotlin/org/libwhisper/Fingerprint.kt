// fingerprint.h: safety numbers.
package org.libwhisper

/** A safety number: 60 digits to compare, and the bytes of its QR code. */
class Fingerprint(val displayable: String, val scannable: ByteArray) {
    /** Compares with a code scanned from the other device (constant time). */
    fun matches(scanned: ByteArray): Boolean = NativeFingerprint.compare(scannable, scanned)

    companion object {
        const val ITERATIONS = 5200

        fun compute(localId: ByteArray, localKey: ByteArray, remoteId: ByteArray, remoteKey: ByteArray,
                    iterations: Int = ITERATIONS): Fingerprint {
            val r = NativeFingerprint.compute(iterations, localId, localKey, remoteId, remoteKey)
            return Fingerprint(r[0]!!.decodeToString(), r[1]!!)
        }
    }
}
