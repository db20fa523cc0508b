#!/usr/bin/env bash
# Side by side with beanstalkd: alternating rounds of `coolbeans bench` against Debian's
# beanstalkd and `coolbeans serve` (both in memory), each on a fresh port, printing each
# round's rates and the server's CPU time per command (utime+stime from /proc).
#
#   benches/vs-beanstalkd.sh [ROUNDS] [pin]
#
# With `pin`, the server runs on core 0 and the bench on core 1 (taskset), so neither takes
# CPU from the other. A benchmark, not a test: single rounds vary by about 15% here.
set -euo pipefail
rounds=${1:-6}
pin=${2:-}
bin=${COOLBEANS:-target/release/coolbeans}
seconds=3
command -v beanstalkd >/dev/null || { echo "beanstalkd is not installed" >&2; exit 1; }
server_cpu=() bench_cpu=()
if [ "$pin" = pin ]; then server_cpu=(taskset -c 0) bench_cpu=(taskset -c 1); fi

# Prints "<utime+stime in clock ticks>" of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Prints the rate of a bench output line starting with $1.
rate() { sed -n "s/^$1.* rate=\([0-9]*\)\/s.*/\1/p"; }

port=21300
for round in $(seq 1 "$rounds"); do
  for server in beanstalkd coolbeans; do
    port=$((port + 1))
    if [ $server = beanstalkd ]; then
      "${server_cpu[@]}" beanstalkd -l 127.0.0.1 -p $port &
    else
      "${server_cpu[@]}" "$bin" serve -l 127.0.0.1 -p $port &
    fi
    pid=$!
    sleep 0.3
    before=$(ticks $pid)
    out=$("${bench_cpu[@]}" "$bin" bench --addr 127.0.0.1:$port --connections 50 --seconds $seconds --phases put,reserve-delete)
    after=$(ticks $pid)
    kill $pid; wait $pid 2>/dev/null || true
    put=$(echo "$out" | rate put)
    pairs=$(echo "$out" | rate reserve-delete)
    # Commands in the two phases: one per put, two per reserve+delete pair.
    commands=$(( (put + 2 * pairs) * seconds ))
    ns=$(( (after - before) * 1000000000 / $(getconf CLK_TCK) / commands ))
    echo "round=$round server=$server put/s=$put pairs/s=$pairs server-ns-per-command=$ns"
  done
done
