#!/usr/bin/env bash
# The replicated path side by side with beanstalkd: alternating rounds, on loopback, of
#   - Debian's beanstalkd -b DIR (its default: fsync every 50 ms),
#   - a 3-node cluster with a proxy inside each node (--beanstalkd-listen), the bench on
#     the leader's,
#   - the same cluster behind a separate `coolbeans beanstalkd` proxy,
# each round on fresh ports and data dirs. Each prints put/s, reserve+delete pairs/s, put
# latency, wake-up latency, and the CPU (utime+stime of every server process of the setting)
# per command over the put and reserve-delete phases, and the whole machine's (every process,
# the bench's and the kernel's threads included: user, and system with interrupts) per command
# with its idle share, which tells a CPU-bound run from a latency-bound one; then the disk's own
# fdatasync p50/p99, and at the end a table of ranges and ratios to beanstalkd.
#
#   [CONNECTIONS=50] benches/cluster.sh [ROUNDS]
#
# A benchmark, not a test: this machine's CPU is shared, so compare settings within a run.
set -euo pipefail
rounds=${1:-3}
# The servers' binary (COOLBEANS=... to measure another build); the bench is always this tree's.
bin=${COOLBEANS:-target/release/coolbeans}
bench=target/release/coolbeans
seconds=3
# The bench's connections (unpipelined): at 50 a replicated write's round trip bounds the
# rate as much as the CPU does; more show what the machine can carry.
connections=${CONNECTIONS:-50}
hz=$(getconf CLK_TCK)
command -v beanstalkd >/dev/null || { echo "beanstalkd is not installed" >&2; exit 1; }
work=$(mktemp -d -p "${TMPDIR:-target}" bench-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The whole machine's "<user> <system+irq+softirq> <idle+iowait>" in clock ticks (all CPUs).
machine() { awk '/^cpu /{ print $2 + $3, $4 + $7 + $8, $5 + $6 }' /proc/stat; }
# "<utime+stime in clock ticks>" summed over processes.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
# The value of field $2 (e.g. rate, p50) in the bench line that starts with $1.
field() { sed -n "s/^$1:.*[ ]$2=\([0-9.]*\).*/\1/p"; }
fail() {
  echo "bench-cluster: $1" >&2
  for log in "$dir"/*.log; do [ -f "$log" ] && { echo "== $log" >&2; tail -5 "$log" >&2; }; done
  exit 1
}

port=21400
# Starts the servers of setting $1 in $dir; sets pids and addr (where the bench connects).
start() {
  pids=()
  case $1 in
    beanstalkd)
      port=$((port + 1)); addr=127.0.0.1:$port
      beanstalkd -l 127.0.0.1 -p $port -b "$dir" 2>"$dir/beanstalkd.log" & pids+=($!)
      sleep 0.3 ;;
    inside|behind)
      local base=$((port + 1)) peers="" upstreams=""
      port=$((port + 10))
      for i in 1 2 3; do peers+="$i=127.0.0.1:$((base + i)),"; upstreams+="127.0.0.1:$((base + i)),"; done
      for i in 1 2 3; do
        local extra=()
        [ "$1" = inside ] && extra=(--beanstalkd-listen "127.0.0.1:$((base + 4 + i))")
        "$bin" cluster-node --node-id $i --listen "127.0.0.1:$((base + i))" --data-dir "$dir/n$i" \
          --peers "${peers%,}" "${extra[@]}" 2>"$dir/node$i.log" & pids+=($!)
      done
      local leader=""
      for _ in $(seq 1 150); do
        for i in 1 2 3; do
          [ "$("$bin" cluster-client is-leader --node-addr "127.0.0.1:$((base + i))" 2>/dev/null)" = true ] && leader=$i
        done
        [ -n "$leader" ] && break
        sleep 0.1
      done
      [ -n "$leader" ] || fail "no leader elected in 15 s"
      if [ "$1" = inside ]; then
        addr=127.0.0.1:$((base + 4 + leader))
      else
        addr=127.0.0.1:$((base + 8))
        "$bin" beanstalkd --listen "$addr" --upstreams "${upstreams%,}" 2>"$dir/proxy.log" & pids+=($!)
      fi
      sleep 0.5 ;;
  esac
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a server of setting $1 did not start"; done
}

results="$work/results"
: >"$results"
for round in $(seq 1 "$rounds"); do
  for setting in beanstalkd inside behind; do
    dir="$work/$round-$setting"
    mkdir -p "$dir"
    start $setting
    before=$(ticks "${pids[@]}") machine_before=$(machine)
    out=$("$bench" bench --addr "$addr" --connections "$connections" --seconds $seconds --phases put,reserve-delete) || fail "bench failed against $setting: $out"
    after=$(ticks "${pids[@]}") machine_after=$(machine)
    wake=$("$bench" bench --addr "$addr" --phases wakeup --wakeup-samples 300) || fail "wakeup bench failed against $setting: $wake"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
    put=$(echo "$out" | field put rate) pairs=$(echo "$out" | field reserve-delete rate)
    commands=$(( (put + 2 * pairs) * seconds ))
    cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v c=$commands 'BEGIN { printf "%.1f", t / hz * 1e6 / c }')
    line="round=$round setting=$setting put/s=$put pairs/s=$pairs put-p50=$(echo "$out" | field put p50)ms put-p99=$(echo "$out" | field put p99)ms"
    line+=" wakeup-p50=$(echo "$wake" | field wakeup p50)ms wakeup-p99=$(echo "$wake" | field wakeup p99)ms cpu-us-per-command=$cpu_us"
    line+=$(awk -v a="$machine_before" -v b="$machine_after" -v hz="$hz" -v c=$commands 'BEGIN {
      split(a, x, " "); split(b, y, " "); us = 1e6 / hz / c
      printf " machine-user-us=%.1f machine-kernel-us=%.1f machine-idle-pct=%.0f", (y[1] - x[1]) * us, (y[2] - x[2]) * us,
        100 * (y[3] - x[3]) / (y[1] - x[1] + y[2] - x[2] + y[3] - x[3]) }')
    echo "$line" | tee -a "$results"
    rm -rf "$dir"
  done
  fsync=$("$bench" bench --phases fsync --fsync-dir "$work" --fsync-samples 500)
  echo "round=$round setting=disk fsync-p50=$(echo "$fsync" | field fsync p50)ms fsync-p99=$(echo "$fsync" | field fsync p99)ms" | tee -a "$results"
done

# The table: per setting, min-max and mean of each figure, and the ratios to beanstalkd.
awk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    s = v["setting"]; settings[s] = 1
    for (k in v) if (k != "round" && k != "setting") { x = v[k] + 0; key = s SUBSEP k
      if (!(key in n)) { lo[key] = x; hi[key] = x }
      n[key]++; sum[key] += x; if (x < lo[key]) lo[key] = x; if (x > hi[key]) hi[key] = x }
    delete v }
  function num(x) { return x >= 1000 ? sprintf("%.1fk", x / 1000) : sprintf("%.3g", x) }
  function cell(s, k) { key = s SUBSEP k; return (key in n) ? sprintf("%s–%s (%s)", num(lo[key]), num(hi[key]), num(sum[key] / n[key])) : "" }
  function mean(s, k) { key = s SUBSEP k; return (key in n) ? sum[key] / n[key] : 0 }
  END {
    printf "\n%s connections, unpipelined:\n", connections
    printf "\n| setting | put/s | pairs/s | put p50 / p99 ms | wake-up p50 / p99 ms | CPU µs per command | put ratio | pairs ratio |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    split("beanstalkd inside behind", order, " ")
    names["beanstalkd"] = "beanstalkd -b DIR"; names["inside"] = "3 nodes, proxies inside"; names["behind"] = "3 nodes behind coolbeans beanstalkd"
    for (i = 1; i <= 3; i++) { s = order[i]
      printf "| %s | %s | %s | %s / %s | %s / %s | %s | %.2fx | %.2fx |\n", names[s], cell(s, "put/s"), cell(s, "pairs/s"),
        cell(s, "put-p50"), cell(s, "put-p99"), cell(s, "wakeup-p50"), cell(s, "wakeup-p99"), cell(s, "cpu-us-per-command"),
        mean(s, "put/s") / mean("beanstalkd", "put/s"), mean(s, "pairs/s") / mean("beanstalkd", "pairs/s") }
    printf "\nthe whole machine per command (the bench and the kernel included; min-max (mean) over rounds):\n\n"
    printf "| setting | user µs | kernel µs (system, interrupts) | idle %% |\n|---|---|---|---|\n"
    for (i = 1; i <= 3; i++) { s = order[i]
      printf "| %s | %s | %s | %s |\n", names[s], cell(s, "machine-user-us"), cell(s, "machine-kernel-us"), cell(s, "machine-idle-pct") }
    printf "\nthe disk: fdatasync p50 %s ms, p99 %s ms (min-max (mean) over rounds)\n", cell("disk", "fsync-p50"), cell("disk", "fsync-p99")
  }' connections="$connections" "$results"
