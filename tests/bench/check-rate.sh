#!/bin/bash
# The whisperd-load-rate test: whisperd-load --rate (the open loop) run
# briefly, and its report read back: every message delivered once, the mode
# printed, the calls going out at about the asked rate (not all at once, not
# paced by the answers), the lateness and keep-up lines present, the
# latency from the schedule never below the latency from the call.
#   check-rate.sh WHISPERD-LOAD WHISPERD
set -u
load=$1 whisperd=$2
rate=200 clients=20 messages=20 # 400 messages, 2 s on the schedule
out=$("$load" --clients $clients --messages $messages --rate $rate --idle 0 --timeout 60 \
  --whisperd "$whisperd" 2>&1)
rc=$?
printf '%s\n' "$out"
fail() {
  echo "check-rate.sh: FAILED: $*" >&2
  exit 1
}
[ $rc -eq 0 ] || fail "whisperd-load exited $rc"
total=$((clients * messages))
grep -q "open loop, $rate msg/s asked" <<<"$out" || fail "no mode line (open loop, $rate msg/s asked)"
grep -q "mode  *open loop" <<<"$out" || fail "the results show no mode row"
grep -q "$total of $total messages delivered exactly once" <<<"$out" || fail "not all $total delivered once"
grep -q "SENT $total, DELIVERED $total" <<<"$out" || fail "statuses missing"
grep -q "scheduled send time -> WHISPER_EV_MESSAGE" <<<"$out" || fail "latency not from the schedule"
grep -Eq "the tool (kept up|could not keep up)" <<<"$out" || fail "no keep-up line"
# the rate the calls went out at: within [rate/2, rate*1.5] (all at once
# would be thousands; a closed loop at 20 clients ~1000)
sr=$(sed -n 's/.*the calls went out at \([0-9]*\) msg\/s of \([0-9]*\) asked.*/\1/p' <<<"$out")
[ -n "$sr" ] || fail "no send-rate figure"
[ "$sr" -ge $((rate / 2)) ] && [ "$sr" -le $((rate * 3 / 2)) ] || fail "sends at $sr msg/s, $rate asked"
# figure 1 (end to end) near the asked rate too
e2e=$(sed -n 's/.*1\. messages per second, end to end *\([0-9]*\) msg\/s.*/\1/p' <<<"$out")
[ -n "$e2e" ] && [ "$e2e" -ge $((rate / 2)) ] && [ "$e2e" -le $((rate * 3 / 2)) ] ||
  fail "end to end ${e2e:-?} msg/s, $rate asked"
# latency from the schedule >= from the call (each message: schedule <= call)
p_sched=$(sed -n 's/.*2\. delivery latency p50 *\([0-9.]*\) ms.*/\1/p' <<<"$out")
p_call=$(sed -n 's/.*latency from the send call p50 *\([0-9.]*\) ms.*/\1/p' <<<"$out")
[ -n "$p_sched" ] && [ -n "$p_call" ] || fail "latency figures missing"
awk -v a="$p_sched" -v b="$p_call" 'BEGIN { exit !(a >= b && a > 0) }' ||
  fail "p50 from the schedule $p_sched ms < from the call $p_call ms"
echo "check-rate.sh: ok (sends at $sr msg/s, end to end $e2e msg/s, p50 $p_sched ms)"
