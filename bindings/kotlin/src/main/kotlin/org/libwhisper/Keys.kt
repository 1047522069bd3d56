// keys.h: Curve25519 key pairs and XEdDSA signatures.
package org.libwhisper

/** A key pair; close() wipes the private key. */
class KeyPair(val publicKey: ByteArray, privateKey: ByteArray) : AutoCloseable {
    private val priv = privateKey

    /** The private key (Sizes.PRIVATE_KEY_LEN bytes): the array itself, wiped by close(). */
    val privateKey: ByteArray get() = priv

    override fun close() = priv.wipe()

    companion object {
        /** A fresh key pair from the context's random source. */
        fun generate(ctx: Context): KeyPair {
            val pub = ByteArray(Sizes.PUBLIC_KEY_LEN)
            val priv = ByteArray(Sizes.PRIVATE_KEY_LEN)
            NativeKeys.generate(ctx.handle, pub, priv)
            return KeyPair(pub, priv)
        }

        /** The key pair of a private key of Sizes.PRIVATE_KEY_LEN bytes (copied). */
        fun fromPrivate(priv: ByteArray): KeyPair = KeyPair(NativeKeys.publicOf(priv), priv.copyOf())
    }
}

object Keys {
    /** Throws WhisperException(EINVALIDKEY) unless `key` is a serialized public key. */
    fun checkPublicKey(key: ByteArray) = NativeKeys.publicKeyCheck(key)

    /** Signs `message` with XEdDSA. */
    fun sign(ctx: Context, privateKey: ByteArray, message: ByteArray): ByteArray =
        NativeKeys.sign(ctx.handle, privateKey, message)

    /** True when the signature verifies; false for a bad signature; throws
     *  for a malformed key. */
    fun verify(publicKey: ByteArray, message: ByteArray, signature: ByteArray): Boolean =
        try {
            NativeKeys.verify(publicKey, message, signature); true
        } catch (e: WhisperException) {
            if (e.code == ErrorCode.EINVALIDSIG) false else throw e
        }
}
