#!/usr/bin/env bash
# Two "hosts" on one machine: network namespaces joined by a veth pair, addresses inside them only.
# Runs `loom train` data-parallel over both (mpirun starts the remote rank through an rsh agent that
# enters the other namespace instead of ssh), then the same run in one process, and compares the
# loss logs (every column within 1e-5 relative). Needs root (ip netns) and Open MPI.
# Usage: bash scripts/two-host-netns.sh [LOOM_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
loom=$(realpath "${1:-.build/debug/loom}")
tag=$$
a=loomA$tag b=loomB$tag
work=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ip netns add "$a"
ip netns add "$b"
ip link add "va$tag" type veth peer name "vb$tag"
ip link set "va$tag" netns "$a"
ip link set "vb$tag" netns "$b"
ip netns exec "$a" ip addr add 10.77.0.1/24 dev "va$tag"
ip netns exec "$b" ip addr add 10.77.0.2/24 dev "vb$tag"
for ns in "$a" "$b"; do ip netns exec "$ns" ip link set lo up; done
ip netns exec "$a" ip link set "va$tag" up
ip netns exec "$b" ip link set "vb$tag" up

# mpirun's "rsh agent": <host> <command…> runs the command inside that host's namespace.
cat > "$work/agent.sh" <<AGENT
#!/bin/sh
host="\$1"; shift
case "\$host" in 10.77.0.1) ns=$a ;; 10.77.0.2) ns=$b ;; *) echo "unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec "\$ns" sh -c "\$*"
AGENT
chmod +x "$work/agent.sh"
printf "10.77.0.1 slots=1\n10.77.0.2 slots=1\n" > "$work/hosts"

# Both "hosts" read Fashion-MNIST from the one file system; the run in one process, then over both.
model=(sit --patch 4 --hidden 32 --depth 2 --heads 2 --ig-layer 1 --batch 8 --lr 1e-3 --log-every 1 --steps 5
       --limit 64 --checkpoint-every 0)
"$loom" train "${model[@]}" --out "$work/one" > "$work/one.log"
ip netns exec "$a" mpirun --allow-run-as-root --hostfile "$work/hosts" -np 2 \
  --mca plm_rsh_agent "$work/agent.sh" --mca btl tcp,self \
  --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
  "$loom" train "${model[@]}" --out "$work/two" > "$work/two.log" 2>&1 || { cat "$work/two.log"; exit 1; }
python3 - "$work/one/loss.csv" "$work/two/loss.csv" <<'PY'
import sys
one, two = (open(p).read().split("\n")[1:] for p in sys.argv[1:3])
rows = [(a, b) for a, b in zip(one, two) if a or b]
assert len(rows) == 5, rows
for a, b in rows:
    for x, y in zip(a.split(","), b.split(",")):
        try:
            x, y = float(x), float(y)
        except ValueError:
            assert x == y, (a, b); continue
        assert abs(x - y) <= 1e-5 * max(abs(x), 1e-12), (a, b)
print("two hosts (network namespaces 10.77.0.1, 10.77.0.2) reproduce one process: 5 steps, every loss column within 1e-5")
PY
