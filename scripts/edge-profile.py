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

Two recordings of the same Envoy binary can also be compared call path by call path (--diff):
a stripped binary still has stable code addresses, so the same path in two recordings is the
same code. The tree shows, per request, where the two differ: a callback into the module that
only one of them makes appears as a path with time on one side only.

usage: edge-profile.py PERF_DATA REQUESTS
         one line: samples, then microseconds of worker CPU per request in the module, host
         calls, envoy, kernel, and in all
       edge-profile.py --diff DIR A B [MIN_US]
         the call tree of recording A against recording B (names as bench-edge.sh keeps them
         in DIR with BENCH_EDGE_PROFILE_DIR, e.g. hit.1 and hit_floor.1), in microseconds per
         request, showing nodes of at least MIN_US (default 0.25) on either side
"""

import collections
import signal
import subprocess
import sys


def kind(dso: str) -> str:
    if "kallsyms" in dso or "vmlinux" in dso:
        return "kernel"
    if "[JIT]" in dso or "perf-" in dso or "[unknown]" in dso or "anon" in dso:
        return "jit"
    return "user"


def samples(path: str):
    """Each worker sample: the nanoseconds it stands for and its frames, leaf first, as
    (kind, address, dso)."""
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
                frames.append((kind(parts[1]), parts[0], parts[1]))
        if frames:
            yield int(head[1]), frames


def split(path: str, requests: float) -> int:
    ns = {"module": 0, "host": 0, "envoy": 0, "kernel": 0}
    count = 0
    for period, frames in samples(path):
        count += 1
        kinds = [k for k, _, _ in frames]
        if kinds[0] == "jit":
            ns["module"] += period
        elif "jit" in kinds:
            ns["host"] += period
        elif kinds[0] == "kernel":
            ns["kernel"] += period
        else:
            ns["envoy"] += period
    if count == 0 or requests <= 0:
        print("edge-profile: no worker samples or no requests", file=sys.stderr)
        return 1
    parts = [ns[k] / 1e3 / requests for k in ("module", "host", "envoy", "kernel")]
    print(count, " ".join(f"{p:.2f}" for p in parts), f"{sum(parts):.2f}")
    return 0


def label(frame) -> str:
    """A frame as the tree shows it: runs of module code or kernel are one node each, Envoy
    code is its address as objdump shows it (perf prints the file offset; Envoy's text is
    mapped 0x1000 above it), libc its offset."""
    kind_, ip, dso = frame
    if kind_ in ("jit", "kernel"):
        return kind_
    if "envoy" in dso:
        return f"envoy:{int(ip, 16) + 0x1000:x}"
    return f"{dso.rsplit('/', 1)[-1].split(' ')[0].strip('()')}:{ip}"


def tree(path: str, requests: float):
    """Microseconds per request under each call path (root first)."""
    under = collections.Counter()
    for period, frames in samples(path):
        labels = []
        for frame in reversed(frames):
            name = label(frame)
            if not (labels and labels[-1] == name and name in ("jit", "kernel")):
                labels.append(name)
        for depth in range(1, len(labels) + 1):
            under[tuple(labels[:depth])] += period
    return {path: ns / 1e3 / requests for path, ns in under.items()}


def diff(directory: str, a: str, b: str, min_us: float) -> int:
    requests = {}
    with open(f"{directory}/requests.txt") as f:
        for line in f:
            name, count = line.split()
            requests[name] = float(count)
    ta = tree(f"{directory}/{a}.perf", requests[a])
    tb = tree(f"{directory}/{b}.perf", requests[b])
    children = collections.defaultdict(list)
    for path in set(ta) | set(tb):
        if max(ta.get(path, 0), tb.get(path, 0)) >= min_us:
            children[path[:-1]].append(path)
    print(f"microseconds per request: {a}, {b}, difference; a node's children are what it called")

    def show(path, depth):
        x, y = ta.get(path, 0), tb.get(path, 0)
        name, kids = path[-1], children[path]
        # A chain of single callees costing the same is one line: its first and last links.
        end = path
        while len(kids) == 1 and abs(ta.get(kids[0], 0) - x) < 0.1 and abs(tb.get(kids[0], 0) - y) < 0.1:
            end, kids = kids[0], children[kids[0]]
        if end != path:
            name += f" .. {end[-1]}"
        print(f"{x:7.2f} {y:7.2f} {x - y:+6.2f}  {'  ' * depth}{name}")
        for kid in sorted(kids, key=lambda k: -max(ta.get(k, 0), tb.get(k, 0))):
            show(kid, depth + 1)

    for root in sorted(children[()], key=lambda k: -ta.get(k, 0)):
        show(root, 0)
    return 0


def main() -> int:
    # Read through `head`: a closed pipe ends the output quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    args = sys.argv[1:]
    if len(args) in (4, 5) and args[0] == "--diff":
        return diff(args[1], args[2], args[3], float(args[4]) if len(args) == 5 else 0.25)
    if len(args) == 2 and args[0] != "--diff":
        return split(args[0], float(args[1]))
    print(__doc__.split("usage: ", 1)[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
