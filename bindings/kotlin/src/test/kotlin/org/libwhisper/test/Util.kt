package org.libwhisper.test

import org.libwhisper.*
import java.io.File
import java.nio.file.Files

fun tempDir(prefix: String): File = Files.createTempDirectory(prefix).toFile().also { it.deleteOnExit() }

/** A device: a store, a context and an identity. */
class Device(val name: String, val deviceId: Int = 1, store: Store = Store.memory()) : AutoCloseable {
    val store = store
    val ctx = Context(store)

    init { ctx.generateIdentity(name, deviceId, nowMs = 1_000) }

    override fun close() {
        ctx.close()
        store.close()
    }
}

fun bytes(s: String) = s.encodeToByteArray()
