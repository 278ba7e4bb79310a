#!/usr/bin/env bash
# The newcomer path, as CI runs it before anything else: `make demo` from this checkout
# (a fresh venv and asset cache the first time) must serve the four store dashboards and
# the hub over HTTP, and the store whose uplink is down at first must catch up.
# Usage: scripts/check_demo.sh [SERVE_S] [OFFLINE_S]. Picks five free ports itself; exits
# non-zero, with the demo's output, unless all of that happens and the demo stops cleanly.
set -euo pipefail
serve_s="${1:-60}"
offline_s="${2:-10}"
port="$(python3 - <<'PY'
import contextlib
import socket
for _ in range(100):
    with contextlib.ExitStack() as held:
        first = held.enter_context(socket.socket())
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        try:
            for n in range(1, 5):
                held.enter_context(socket.socket()).bind(("127.0.0.1", port + n))
        except OSError:
            continue
    print(port)
    break
PY
)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
make demo DEMO_ARGS="--serve-s $serve_s --offline-s $offline_s --port $port" >"$log" 2>&1 &
demo=$!
fail() { echo "check_demo: $*" >&2; cat "$log" >&2; kill "$demo" 2>/dev/null || true; exit 1; }
until grep -q '^Ctrl-C stops the demo' "$log"; do
  kill -0 "$demo" 2>/dev/null || { wait "$demo" || true; fail "make demo ended before serving"; }
  sleep 1
done
urls="$(grep -oE '^(vtest|simulated)[^:]*: http://[^ ]+$' "$log" | awk '{print $NF}')"
[ "$(wc -l <<<"$urls")" -eq 4 ] || fail "expected four dashboard URLs, got: $urls"
for url in $urls; do
  curl -fsS --max-time 10 "$url/setup" | grep -q "Set up this box" || fail "$url/setup did not answer"
  curl -fsSL --max-time 10 -o /dev/null "$url/" || fail "$url/ did not answer"
  echo "check_demo: $url answers"
done
hub="$(grep -oE '^hub [^:]*: http://[^ ]+$' "$log" | awk '{print $NF}')"
[ -n "$hub" ] || fail "no hub URL"
curl -fsS --max-time 10 "$hub/healthz" >/dev/null || fail "$hub/healthz did not answer"
curl -fsS --max-time 10 "$hub/setup" | grep -qi "setup token" || fail "$hub/setup did not answer"
echo "check_demo: the hub $hub answers"
wait "$demo" || fail "make demo exited with $?"
grep -q ': caught up ' "$log" || fail "the offline store did not catch up within ${serve_s} s"
echo "check_demo: make demo served four stores and the hub (ports $port-$((port + 4))), the"\
  "offline store caught up, then it stopped"
