/* whisper-bench figure 15, full-text search (bench_search.c). */
#ifndef WHISPER_BENCH_SEARCH_H
#define WHISPER_BENCH_SEARCH_H

#include <stddef.h>

/* Stores n messages in a new SQLite store in a directory made under base
 * (NULL: /tmp), times each query `reps` times and prints the figure; with
 * measure_disk, also the index's size on disk (VACUUMs the store). Exits
 * 1 on any failure; removes its directory. */
void bench_search(const char *base, size_t n, int reps, int measure_disk);

#endif
