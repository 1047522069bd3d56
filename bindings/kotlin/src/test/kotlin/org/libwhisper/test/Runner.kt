// A small test runner (no JUnit on this machine): runs each test function,
// prints one line per test and "N passed, N failed, N skipped", exits 1 on
// any failure. Assertions are kotlin.test's (kotlin-test.jar).
//
//   java -Dwhisper.jni.path=libwhisper_jni.so -cp ... org.libwhisper.test.RunnerKt
//        [--whisperd PATH] [--only NAME]
package org.libwhisper.test

import kotlin.system.exitProcess

class Skip(why: String) : Exception(why)

object Options {
    var whisperd: String? = null
}

val tests: List<Pair<String, () -> Unit>> = listOf(
    "sizes_match_the_headers" to ::sizesMatchTheHeaders,
    "two_devices_talk" to ::twoDevicesTalk,
    "store_transaction" to ::storeTransaction,
    "sender_keys_and_fingerprints" to ::senderKeysAndFingerprints,
    "bad_input_throws" to ::badInputThrows,
    "history_paging_and_search" to ::historyPagingAndSearch,
    "attachments" to ::attachments,
    "engine_offline" to ::engineOffline,
    "engine_whisperd" to ::engineWhisperd,
    "no_leak_in_a_loop" to ::noLeakInALoop,
)

fun main(args: Array<String>) {
    var only: String? = null
    var i = 0
    while (i < args.size) {
        when (args[i]) {
            "--whisperd" -> Options.whisperd = args[++i]
            "--only" -> only = args[++i]
            else -> { System.err.println("unknown argument ${args[i]}"); exitProcess(2) }
        }
        i++
    }
    var passed = 0
    var failed = 0
    var skipped = 0
    for ((name, fn) in tests) {
        if (only != null && name != only) continue
        val t0 = System.nanoTime()
        try {
            fn()
            passed++
            println("ok   $name (${(System.nanoTime() - t0) / 1_000_000} ms)")
        } catch (s: Skip) {
            skipped++
            println("skip $name: ${s.message}")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: $e")
            e.printStackTrace(System.out)
        }
        System.out.flush()
    }
    println("$passed passed, $failed failed, $skipped skipped")
    exitProcess(if (failed == 0) 0 else 1)
}
