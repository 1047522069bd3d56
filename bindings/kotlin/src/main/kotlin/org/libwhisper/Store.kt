// core.h's context and store.h's stores.
package org.libwhisper

/** Where the protocol keeps its state (store.h): in memory or SQLite. A
 *  store outlives the contexts made on it: closing it while a context is
 *  open throws IllegalStateException. */
class Store private constructor(handle: Long) : NativeObject(handle) {
    internal var users = 0

    override fun free(handle: Long) = NativeStore.close(handle)

    override fun close() {
        check(users == 0) { "the store still has $users open context(s)" }
        super.close()
    }

    /** Re-encrypts a SQLite store under a new 32-byte key or passphrase
     *  (exactly one of the two). */
    fun rekey(key: ByteArray? = null, passphrase: ByteArray? = null) =
        NativeStore.rekey(handle, key, passphrase)

    /** Runs `block` in one store transaction that library calls on every
     *  context over this store join (whisper_store_begin()): committed
     *  when it returns, rolled back when it throws (the exception goes on).
     *  Nests: inside another, it joins it (with a savepoint on the SQLite
     *  and memory stores, so its rollback undoes its own writes alone).
     *  Nothing is durable before the outermost commit: send nothing made
     *  in it before then. It holds the store's lock (waiting up to the busy
     *  timeout to take it): keep it short. A Client never joins it. */
    fun <T> transaction(block: () -> T): T {
        NativeStore.begin(handle)
        val result = try {
            block()
        } catch (e: Throwable) {
            NativeStore.rollback(handle)
            throw e
        }
        NativeStore.commit(handle)
        return result
    }

    companion object {
        const val SYNC_FULL = 2
        const val SYNC_NORMAL = 1

        /** A volatile store (tests, ephemeral devices). */
        fun memory(): Store = Store(NativeStore.memoryNew())

        /** Opens (or creates) the SQLite store at `path` under a 32-byte
         *  `key` (e.g. from the Android Keystore) or a `passphrase` (UTF-8
         *  bytes, stretched with Argon2id): exactly one. Neither is kept.
         *  Any call on the store (or a Context or Client over it) may wait up
         *  to `busyTimeoutMs` for another process's lock, then fails with
         *  EBUSY (core.h, "Waiting"): Android calls "not responding" a main
         *  thread blocked for 5 s, so keep the calls off the main thread. */
        fun sqlite(path: String, key: ByteArray? = null, passphrase: ByteArray? = null,
                   synchronous: Int = SYNC_FULL, busyTimeoutMs: Int = 5000): Store =
            Store(NativeStore.sqliteOpen(path.utf8(), key, passphrase, synchronous, busyTimeoutMs))

        /** Deletes the SQLite store at `path` (and its WAL): the recreate path. */
        fun deleteSqlite(path: String) = NativeStore.sqliteDelete(path.utf8())
    }
}

/** The local device's handle over a store (core.h). The identity, sessions,
 *  sender keys, history and search are its methods (Session.kt, SenderKey.kt,
 *  History.kt, Search.kt). */
class Context(val store: Store) : NativeObject(NativeStore.ctxNew(store.handle)) {
    internal var users = 0

    init { store.users++ }

    override fun free(handle: Long) {
        NativeStore.ctxFree(handle)
        store.users--
    }

    override fun close() {
        check(users == 0) { "the context still has an open engine" }
        super.close()
    }

    /** The sentence describing the last failure ("" if none). */
    val lastError: String get() = NativeStore.ctxLastError(handle)
}
