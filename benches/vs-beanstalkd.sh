#!/usr/bin/env bash
# Side by side with beanstalkd: alternating rounds of `coolbeans bench` against Debian's
# beanstalkd and `coolbeans serve`, each on a fresh port, printing each round's rates and the
# server's CPU time per command (utime+stime from /proc): first both in memory, then both
# durable on every write (`beanstalkd -b DIR -f0` against `serve -b DIR`, which fsyncs every
# commit), each on a fresh data dir, with the disk's own fdatasync p50/p99 measured after each
# durable round. A summary of means and ratios ends it.
#
#   [CONNECTIONS=50] benches/vs-beanstalkd.sh [ROUNDS] [pin]
#
# With `pin`, the server runs on core 0 and the bench on core 1 (taskset), so neither takes
# CPU from the other. SERVE_ARGS adds flags to every `serve` (e.g. "--metrics-listen
# 127.0.0.1:0", to measure what metrics cost). A benchmark, not a test: single rounds vary by
# about 15% here.
set -euo pipefail
rounds=${1:-6}
# The bench's connections, unpipelined.
connections=${CONNECTIONS:-50}
pin=${2:-}
bin=${COOLBEANS:-target/release/coolbeans}
read -r -a serve_args <<< "${SERVE_ARGS:-}"
seconds=3
command -v beanstalkd >/dev/null || { echo "beanstalkd is not installed" >&2; exit 1; }
server_cpu=() bench_cpu=()
if [ "$pin" = pin ]; then server_cpu=(taskset -c 0) bench_cpu=(taskset -c 1); fi

# Prints "<utime+stime in clock ticks>" of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Prints the rate of a bench output line starting with $1.
rate() { sed -n "s/^$1.* rate=\([0-9]*\)\/s.*/\1/p"; }
# The value of field $2 (e.g. p50, p99) in the bench output line that starts with $1.
field() { sed -n "s/^$1:.*[ ]$2=\([0-9.]*\).*/\1/p"; }

work=$(mktemp -d -p "${TMPDIR:-target}" vs-beanstalkd.XXXXXX)
trap 'rm -rf "$work"' EXIT
results="$work/results"
port=21300
for durability in memory durable; do
  for round in $(seq 1 "$rounds"); do
    for server in beanstalkd coolbeans; do
      port=$((port + 1))
      dir="$work/$durability-$round-$server"
      mkdir -p "$dir"
      if [ $durability = memory ]; then
        if [ $server = beanstalkd ]; then args=(beanstalkd -l 127.0.0.1 -p $port); else args=("$bin" serve -l 127.0.0.1 -p $port "${serve_args[@]}"); fi
      else
        if [ $server = beanstalkd ]; then args=(beanstalkd -l 127.0.0.1 -p $port -b "$dir" -f0); else args=("$bin" serve -l 127.0.0.1 -p $port -b "$dir" "${serve_args[@]}"); fi
      fi
      "${server_cpu[@]}" "${args[@]}" &
      pid=$!
      sleep 0.3
      before=$(ticks $pid)
      out=$("${bench_cpu[@]}" "$bin" bench --addr 127.0.0.1:$port --connections "$connections" --seconds $seconds --phases put,reserve-delete)
      after=$(ticks $pid)
      kill $pid; wait $pid 2>/dev/null || true
      rm -rf "$dir"
      put=$(echo "$out" | rate put)
      pairs=$(echo "$out" | rate reserve-delete)
      # Commands in the two phases: one per put, two per reserve+delete pair.
      commands=$(( (put + 2 * pairs) * seconds ))
      ns=$(( (after - before) * 1000000000 / $(getconf CLK_TCK) / commands ))
      latency="put-p50=$(echo "$out" | field put p50)ms put-p99=$(echo "$out" | field put p99)ms"
      echo "round=$round durability=$durability server=$server put/s=$put pairs/s=$pairs $latency server-ns-per-command=$ns" | tee -a "$results"
    done
    if [ $durability = durable ]; then
      fsync=$("$bin" bench --phases fsync --fsync-dir "$work" --fsync-samples 500)
      echo "round=$round durability=disk fsync-p50=$(echo "$fsync" | field fsync p50)ms fsync-p99=$(echo "$fsync" | field fsync p99)ms" | tee -a "$results"
    fi
  done
done

# Means per durability and server, and coolbeans' ratio to beanstalkd.
awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
       if (v["durability"] == "disk") { f++; p50 += v["fsync-p50"]; p99 += v["fsync-p99"]; next }
       k = v["durability"] SUBSEP v["server"]; n[k]++; put[k] += v["put/s"]; pairs[k] += v["pairs/s"]; ns[k] += v["server-ns-per-command"] }
     END {
       printf "\n%s connections, unpipelined:\n", connections
       printf "\n| durability | beanstalkd put/s | serve put/s | ratio | beanstalkd pairs/s | serve pairs/s | ratio | CPU ns per command (beanstalkd / serve) |\n|---|---|---|---|---|---|---|---|\n"
       split("memory durable", order, " ")
       for (i = 1; i <= 2; i++) { d = order[i]; b = d SUBSEP "beanstalkd"; c = d SUBSEP "coolbeans"
         if (!(b in n)) continue
         label = d == "memory" ? "in memory" : "fsync every write (-b -f0 / -b)"
         printf "| %s | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx | %.0f / %.0f |\n", label, put[b] / n[b], put[c] / n[c], put[c] / put[b],
           pairs[b] / n[b], pairs[c] / n[c], pairs[c] / pairs[b], ns[b] / n[b], ns[c] / n[c] }
       if (f) printf "\nthe disk: fdatasync p50 %.3f ms, p99 %.3f ms (means over %d rounds)\n", p50 / f, p99 / f, f }' connections="$connections" "$results"
