/*
 * Text for search: folding (case, accents, compatibility forms) and
 * splitting into tokens, on the table scripts/gen_fold.py made
 * (fold_table.h). No ICU: the rules are the table's, per code point.
 *
 * A token is either a word (letters, digits and the marks after them, of
 * a script written with spaces) or a cluster: one letter of a script
 * written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, Yi...) or
 * one emoji or other symbol, with the marks after it. Clusters that follow
 * one another with nothing between them form a run (what a CJK "word" is
 * made of). Invalid UTF-8 bytes, spaces, punctuation and the other
 * symbols separate tokens; diacritics, variation selectors, skin-tone
 * modifiers and format characters (zero width joiners, soft hyphens) fold
 * to nothing and never split one.
 */
#ifndef WH_FOLD_H
#define WH_FOLD_H

#include <stddef.h>
#include <stdint.h>

#define WH_TOK_WORD 0    /* a word */
#define WH_TOK_CLUSTER 1 /* a cluster that starts a run */
#define WH_TOK_NEXT 2    /* a cluster that goes on the run of the one before */

/* The most bytes of a folded token: a longer one is cut after its last
 * code point that fits (a query's is cut the same way, so it still
 * matches). */
#define WH_TOK_MAX 128

/* Called for each token: `tok` (len bytes, 1..WH_TOK_MAX, valid UTF-8,
 * folded) is valid during the call only. Return 0 to go on. */
typedef int (*wh_token_fn)(void *arg, const uint8_t *tok, size_t len, int kind);

/* Splits `text` (any bytes) into folded tokens, in order. Stops when fn
 * returns nonzero and returns that value; 0 when it reached the end. Its
 * buffer is wiped before it returns. */
int wh_fold_tokens(const uint8_t *text, size_t len, wh_token_fn fn, void *arg);

/* 1 if the n bytes at p are valid UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF). */
int wh_utf8_valid(const uint8_t *p, size_t n);

#endif
