#!/usr/bin/env bash
# Peer benchmark: kvchaos against wrk and oha on the same local server, in one run.
# Usage: benches/peers.sh [--duration 10] [--connections 64] [--server auto|nginx|builtin]
#        benches/peers.sh --modes tui   # the dashboard's cost: kvchaos on a pseudo-terminal, with and without it
# Peers install from the registries: apt-get install wrk nginx-light time; cargo install oha.
# Needs python3 and GNU time (per-process CPU and peak RSS).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/peers.py" "$@"
