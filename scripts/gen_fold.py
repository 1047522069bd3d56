#!/usr/bin/env python3
"""Writes src/protocol/fold_table.h: the Unicode folding and word classes of
search (src/protocol/fold.c). Run at development time only; the build uses
the committed table and never runs Python:

    python3 scripts/gen_fold.py > src/protocol/fold_table.h

The table says, for every code point, what it folds to and, for a folded
code point, what it does to a token:

  fold(c)  NFKD, drop the diacritics (below), full case folding (casefold:
           German sharp s -> "ss", Greek final sigma -> sigma), NFKD again,
           drop the diacritics again, a few Latin letters with a stroke to
           their base letter (o-slash -> o, l-stroke -> l, ...), repeated
           until every code point of the result folds to itself. Hangul
           syllables are kept whole (Korean is written with spaces).
  classes  SEP      ends a token (spaces, punctuation, other symbols, controls,
                    unassigned, private use);
           WORD     a letter or digit of a script written with spaces;
           CLUSTER  a letter of a script written without spaces (Han, kana,
                    Thai, Lao, Khmer, Myanmar, Yi, ...) or an emoji / other
                    symbol (So): each one starts a token of its own;
           EXTEND   a mark kept by folding (Indic vowel signs, Thai vowels,
                    kana voicing marks): goes on the token before it.
  dropped  code points that fold to nothing: diacritics (the combining
           diacritical mark blocks, Hebrew points, Arabic harakat, Cyrillic
           titlo), variation selectors, emoji skin-tone modifiers and format
           characters (zero width joiners, soft hyphen, bidi controls); they
           never split a token. The zero width space is a separator.

The output is a two-stage table (stage1[cp >> SHIFT] -> block, stage2[block
<< SHIFT | cp & MASK] -> record) of 32-bit records: bits 0-1 the class of the
folded code point (of its first one when it folds to several), bits 2-6 the
number of code points it folds to, bits 7-31 either the signed difference
(one code point) or an offset into the pool (several).
"""
import sys
import unicodedata as ud

MAX_CP = 0x110000
SEP, WORD, CLUSTER, EXTEND = 0, 1, 2, 3

DROP_MARK_RANGES = [
    (0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F),
    (0x0483, 0x0489),  # Cyrillic titlo and friends
    (0x0591, 0x05C7),  # Hebrew points and cantillation
    (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670), (0x06D6, 0x06DC), (0x06DF, 0x06E4),
    (0x06E7, 0x06E8), (0x06EA, 0x06ED), (0x08D3, 0x08FF),  # Arabic harakat
    (0xFE00, 0xFE0F), (0xE0100, 0xE01EF),  # variation selectors
]
EMOJI_MODIFIERS = (0x1F3FB, 0x1F3FF)

# Scripts written without spaces between words: each letter is a token of
# its own (a "cluster" with the marks after it).
RUN_RANGES = [
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F), (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F),  # Myanmar
    (0x1780, 0x17FF), (0x19E0, 0x19FF),  # Khmer
    (0x1980, 0x19DF), (0x1A20, 0x1AAF),  # New Tai Lue, Tai Tham
    (0x2E80, 0x2FFF),  # CJK radicals, Kangxi, description characters
    (0x3005, 0x3007), (0x3021, 0x3029), (0x3031, 0x3035), (0x3038, 0x303C),
    (0x3040, 0x30FF), (0x3100, 0x312F), (0x3190, 0x31FF),  # kana, bopomofo, kanbun, strokes
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F),
    (0x16FE0, 0x16FFF), (0x17000, 0x18D8F), (0x1AFF0, 0x1B2FF),  # Tangut, Khitan, kana ext, Nushu
    (0x20000, 0x3FFFF),  # ideographs, extensions B-H
]

# Letters with a stroke or a ligature that neither NFKD nor casefold
# takes apart, folded as searchers expect (after casefold: lowercase only).
EXTRA = {0x00F8: "o", 0x0111: "d", 0x00F0: "d", 0x0127: "h", 0x0142: "l", 0x0167: "t",
         0x0131: "i", 0x00E6: "ae", 0x0153: "oe", 0x0180: "b", 0x0268: "i", 0x01B6: "z"}


def in_ranges(cp, ranges):
    return any(a <= cp <= b for a, b in ranges)


def dropped(cp):
    cat = ud.category(chr(cp))
    if cat in ("Mn", "Me") and in_ranges(cp, DROP_MARK_RANGES):
        return True
    if EMOJI_MODIFIERS[0] <= cp <= EMOJI_MODIFIERS[1]:
        return True
    if cat == "Cf" and cp != 0x200B:
        return True
    return False


def is_sep_category(cp):
    cat = ud.category(chr(cp))
    return cat[0] in "PZC" or cat in ("Sm", "Sc", "Sk")


def drop(s):
    return "".join(ch for ch in s if not dropped(ord(ch)))


def fold_once(cp):
    if dropped(cp):
        return ""
    if 0xAC00 <= cp <= 0xD7A3:  # Hangul syllables stay whole
        return chr(cp)
    if is_sep_category(cp):
        return chr(cp)
    s = drop(ud.normalize("NFKD", chr(cp)))
    s = s.casefold()
    s = drop(ud.normalize("NFKD", s))
    s = "".join(EXTRA.get(ord(ch), ch) for ch in s)
    return s


def classify(cp):
    """The class of a code point that folds to itself."""
    cat = ud.category(chr(cp))
    if cat in ("Mn", "Mc", "Me"):
        return EXTEND
    if cat[0] in "LN":
        return CLUSTER if in_ranges(cp, RUN_RANGES) else WORD
    if cat == "So":
        return CLUSTER
    return SEP


def main():
    raw = [fold_once(cp) if not (0xD800 <= cp <= 0xDFFF) else chr(cp) for cp in range(MAX_CP)]
    # close: fold the result until every code point of it folds to itself
    fold = list(raw)
    for _ in range(8):
        changed = False
        for cp in range(MAX_CP):
            s = fold[cp]
            if len(s) == 1 and ord(s) == cp:
                continue
            t = "".join(fold[ord(ch)] for ch in s)
            if t != s:
                fold[cp] = t
                changed = True
        if not changed:
            break
    else:
        sys.exit("folding does not settle")
    for cp in range(MAX_CP):
        for ch in fold[cp]:
            assert fold[ord(ch)] == ch, (hex(cp), fold[cp])

    pool = []
    pool_index = {}
    recs = []
    rec_index = {}
    entry = [0] * MAX_CP
    for cp in range(MAX_CP):
        s = fold[cp]
        n = len(s)
        assert n < 32, hex(cp)
        if n == 0:
            cls, data = EXTEND, 0
        elif n == 1:
            cls = classify(ord(s))
            data = (ord(s) - cp) & 0x1FFFFFF
        else:
            cls = classify(ord(s[0]))
            key = tuple(ord(ch) for ch in s)
            if key not in pool_index:
                pool_index[key] = len(pool)
                pool.extend(key)
            data = pool_index[key]
        rec = cls | n << 2 | data << 7
        if rec not in rec_index:
            rec_index[rec] = len(recs)
            recs.append(rec)
        entry[cp] = rec_index[rec]
    assert len(recs) < 65536

    best = None
    for shift in range(4, 10):
        blocks = {}
        stage1 = []
        stage2 = []
        size = 1 << shift
        for b in range(MAX_CP >> shift):
            blk = tuple(entry[b << shift:(b + 1) << shift])
            if blk not in blocks:
                blocks[blk] = len(blocks)
                stage2.extend(blk)
            stage1.append(blocks[blk])
        total = len(stage1) * 2 + len(stage2) * 2
        if best is None or total < best[0]:
            best = (total, shift, stage1, stage2)
    total, shift, stage1, stage2 = best
    assert len(stage2) >> shift < 65536

    out = sys.stdout
    out.write("/* Generated by scripts/gen_fold.py from Python %s's Unicode %s: do not edit.\n"
              " * The folding and token classes of search (src/protocol/fold.c). */\n"
              % (sys.version.split()[0], ud.unidata_version))
    out.write("#ifndef WH_FOLD_TABLE_H\n#define WH_FOLD_TABLE_H\n\n#include <stdint.h>\n\n")
    out.write("#define WH_FOLD_UNICODE \"%s\"\n" % ud.unidata_version)
    out.write("#define WH_FOLD_SHIFT %d\n" % shift)
    out.write("#define WH_FOLD_SEP %d\n#define WH_FOLD_WORD %d\n#define WH_FOLD_CLUSTER %d\n"
              "#define WH_FOLD_EXTEND %d\n\n" % (SEP, WORD, CLUSTER, EXTEND))

    def emit(name, ctype, values, per_line, fmt):
        out.write("static const %s %s[%d] = {\n" % (ctype, name, len(values)))
        for i in range(0, len(values), per_line):
            out.write("    " + ",".join(fmt % v for v in values[i:i + per_line]) + ",\n")
        out.write("};\n\n")

    emit("wh_fold_stage1", "uint16_t", stage1, 16, "%d")
    emit("wh_fold_stage2", "uint16_t", stage2, 16, "%d")
    emit("wh_fold_recs", "uint32_t", recs, 8, "0x%08x")
    emit("wh_fold_pool", "uint32_t", pool if pool else [0], 10, "0x%x")
    out.write("#endif\n")
    sys.stderr.write("gen_fold: shift %d, %d blocks, %d records, pool %d, ~%d bytes\n"
                     % (shift, len(stage2) >> shift, len(recs), len(pool),
                        total + 4 * len(recs) + 4 * len(pool)))


if __name__ == "__main__":
    main()
