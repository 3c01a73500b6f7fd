#!/usr/bin/env python3
"""Where an Envoy worker spends its CPU per request, from a `perf record -g` of that Envoy.

Used by `scripts/bench-edge.sh` with BENCH_EDGE_PROFILE=1. Envoy's binary is stripped, so
functions cannot be named; what can be told apart is the code V8 generated for the Wasm
module (perf sees it as anonymous executable memory, "[JIT]" or a perf map), and so:

  module      samples in the module's own code (and V8's generated wrappers around calls)
  host calls  samples in Envoy or libc with module code on the stack: the host functions the
              module called (header maps, buffers, shared data, the clock, local replies) and
              what they did, including calling back into the module to allocate
  envoy       everything else in Envoy and libc: the codec, routing, the filter chain, the
              access log, and entering V8 for a callback
  kernel      system calls and the network stack

Only the worker threads count (Envoy names them `wrk:worker_N`); each sample stands for the
CPU time perf says it covers, and the sum is divided by the requests answered while perf was
recording. The four parts of one recording share the machine's speed of the moment, so their
proportions hold better than two throughputs measured a few seconds apart.

usage: edge-profile.py PERF_DATA REQUESTS
prints one line: samples, then microseconds of worker CPU per request in the module, host
calls, envoy, kernel, and in all
"""

import subprocess
import sys


def kind(dso: str) -> str:
    if "kallsyms" in dso or "vmlinux" in dso:
        return "kernel"
    if "[JIT]" in dso or "perf-" in dso or "[unknown]" in dso or "anon" in dso:
        return "jit"
    return "user"


def samples(path: str):
    """Each worker sample: the nanoseconds it stands for and its frames' kinds, leaf first."""
    out = subprocess.run(
        ["perf", "script", "-i", path, "-F", "comm,period,ip,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for block in out.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        # "wrk:worker_0     250000": the thread name has no spaces, the period follows.
        head = lines[0].split()
        if len(head) != 2 or not head[0].startswith("wrk:worker") or not head[1].isdigit():
            continue
        frames = []
        for line in lines[1:]:
            parts = line.split(None, 1)
            if len(parts) == 2:
                frames.append(kind(parts[1]))
        if frames:
            yield int(head[1]), frames


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: edge-profile.py PERF_DATA REQUESTS", file=sys.stderr)
        return 2
    path, requests = sys.argv[1], float(sys.argv[2])
    ns = {"module": 0, "host": 0, "envoy": 0, "kernel": 0}
    count = 0
    for period, frames in samples(path):
        count += 1
        if frames[0] == "jit":
            ns["module"] += period
        elif "jit" in frames:
            ns["host"] += period
        elif frames[0] == "kernel":
            ns["kernel"] += period
        else:
            ns["envoy"] += period
    if count == 0 or requests <= 0:
        print("edge-profile: no worker samples or no requests", file=sys.stderr)
        return 1
    parts = [ns[k] / 1e3 / requests for k in ("module", "host", "envoy", "kernel")]
    print(count, " ".join(f"{p:.2f}" for p in parts), f"{sum(parts):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
