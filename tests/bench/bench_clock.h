/* The clocks of the benchmarks (whisperd-load, whisper-engine-bench), in
 * seconds as doubles: one copy of each. The includer defines
 * _POSIX_C_SOURCE (or _DEFAULT_SOURCE) before its first #include. */
#ifndef WHISPER_BENCH_CLOCK_H
#define WHISPER_BENCH_CLOCK_H

#include <time.h>

static inline double bench_ts_s(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall time on CLOCK_MONOTONIC. */
static inline double mono_s(void) { return bench_ts_s(CLOCK_MONOTONIC); }

/* This process's CPU time, all threads. */
static inline double cpu_s(void) { return bench_ts_s(CLOCK_PROCESS_CPUTIME_ID); }

/* The calling thread's CPU time. */
static inline double thread_cpu_s(void) { return bench_ts_s(CLOCK_THREAD_CPUTIME_ID); }

#endif
