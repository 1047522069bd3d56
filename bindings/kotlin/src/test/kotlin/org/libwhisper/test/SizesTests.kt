// Sizes: the values the library gives against the C headers' numbers, and
// every size function bound (run_tests.sh checks the sources; this checks
// the built shim and the loaded library).
package org.libwhisper.test

import org.libwhisper.*
import java.io.File
import kotlin.test.*

/** The size and limit macros of the headers in include/whisper (but server.h's, which
 *  the binding does not cover) with a plain number as their value, by the
 *  Sizes name ("GROUP_ID_LEN"); the computed ones (an expression) apart. */
private fun headerSizes(dir: File): Pair<Map<String, Long>, Set<String>> {
    val def = Regex("""^#define WHISPER_([A-Z0-9_]+(_LEN|_MAX|_MAX_SIZE|_DIGITS))\s+(.*)$""")
    val plain = Regex("""^(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*\s*(/\*.*)?$""")
    val numbers = HashMap<String, Long>()
    val computed = HashSet<String>()
    val files = dir.listFiles { f -> f.name.endsWith(".h") && f.name != "server.h" }!!
    assertTrue(files.size >= 5, "no headers in $dir")
    for (f in files) for (line in f.readLines()) {
        val m = def.find(line.trimEnd()) ?: continue
        val name = m.groupValues[1]
        val p = plain.find(m.groupValues[3].trim())
        if (p == null) {
            computed += name
        } else {
            val lit = p.groupValues[1]
            numbers[name] = if (lit.startsWith("0x") || lit.startsWith("0X")) lit.substring(2).toLong(16) else lit.toLong()
        }
    }
    return numbers to computed
}

fun sizesMatchTheHeaders() {
    val dir = File(System.getProperty("whisper.include.dir") ?: throw Skip("no -Dwhisper.include.dir"))
    val (numbers, computed) = headerSizes(dir)
    val all = Sizes.all
    // every macro of the headers has its value in the table, and no other
    val byMacro = all.mapKeys { it.key.uppercase() }
    assertEquals((numbers.keys + computed).sorted(), byMacro.keys.sorted(), "sizes.h/core.h vs jni/sizes.c")
    for ((name, v) in numbers) assertEquals(v, byMacro[name], "WHISPER_$name")
    assertTrue(numbers.size >= 30, "only ${numbers.size} plain sizes read from the headers")
    // values known here, and the computed ones
    assertEquals(33, Sizes.PUBLIC_KEY_LEN)
    assertEquals(32, Sizes.PRIVATE_KEY_LEN)
    assertEquals(64, Sizes.SIGNATURE_LEN)
    assertEquals(16, Sizes.GROUP_ID_LEN)
    assertEquals(1 + 2 * Sizes.GROUP_ID_LEN, Sizes.GROUP_CONVERSATION_LEN)
    assertEquals(2 * 1024 * 1024, Sizes.ATTACHMENT_CHUNK_MAX)
    assertEquals(1L shl 40, Sizes.ATTACHMENT_SIZE_MAX)
    assertEquals(Int.MAX_VALUE, Sizes.DEVICE_ID_MAX)

    // each table entry has its val in Sizes, holding the same value
    val vals = Sizes::class.java.declaredFields
        .filter { it.type == Int::class.javaPrimitiveType || it.type == Long::class.javaPrimitiveType }
        .associate { f -> f.isAccessible = true; f.name to (f.get(null) as Number).toLong() }
    assertEquals(byMacro.keys.sorted(), vals.keys.sorted(), "Sizes' vals vs jni/sizes.c")
    for ((name, v) in vals) assertEquals(byMacro[name], v, "Sizes.$name")

    // what the library makes has these sizes
    Device("alice").use { a ->
        KeyPair.generate(a.ctx).use { kp ->
            assertEquals(Sizes.PUBLIC_KEY_LEN, kp.publicKey.size)
            assertEquals(Sizes.PRIVATE_KEY_LEN, kp.privateKey.size)
            assertEquals(Sizes.SIGNATURE_LEN, Keys.sign(a.ctx, kp.privateKey, bytes("m")).size)
        }
        assertEquals(Sizes.PUBLIC_KEY_LEN, a.ctx.identity().publicKey.size)
        KeyPair.generate(a.ctx).use { other ->
            val fp = Fingerprint.compute(bytes("alice"), a.ctx.identity().publicKey, bytes("bob"), other.publicKey)
            assertEquals(Sizes.FINGERPRINT_DISPLAY_LEN - 1, fp.displayable.length) // the C buffer's NUL
        }
    }
    assertEquals(Sizes.GROUP_CONVERSATION_LEN, Group.conversation(ByteArray(Sizes.GROUP_ID_LEN)).length)
    assertEquals(ErrorCode.EINVAL,
        assertFailsWith<WhisperException> { Group.conversation(ByteArray(Sizes.GROUP_ID_LEN - 1)) }.code)
}
