#!/usr/bin/env bash
# Server peak RSS under `loadtest --clients 16`, this tree against a baseline, alternating A/B.
# usage: benchmarks/server_rss.sh STORE PYTHON BASELINE_PYTHON
# Each python must run `-m latentcast` from /tmp: this tree's venv, and one for the baseline checkout.
set -u
store=$(realpath "$1"); new=$2; old=$3
for round in 1 2; do
  for side in new old; do
    py=$new; [ $side = old ] && py=$old
    port=$((50700 + RANDOM % 200))
    (cd /tmp && exec $py -m latentcast serve --store "$store" --listen 127.0.0.1:$port) 2>/dev/null &
    pid=$!
    for i in $(seq 50); do sleep 0.2; (cd /tmp && $new -m latentcast list --server 127.0.0.1:$port >/dev/null 2>&1) && break; done
    out=$(cd /tmp && $new -m latentcast loadtest --server 127.0.0.1:$port --clients 16 --seconds 10 --server-pid $pid --json)
    echo "$side round $round: $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("peak RSS", d["server_peak_rss_mb"], "MB; frames/s", d["frames_per_s"], "; ok", d["ok"], "; server CPU s", d["server_cpu_s"])')"
    kill $pid; wait $pid 2>/dev/null
  done
done
