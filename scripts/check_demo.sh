#!/usr/bin/env bash
# The newcomer path, as CI runs it before anything else: `make demo` from this checkout
# (a fresh venv and asset cache the first time) must serve both dashboards over HTTP.
# Usage: scripts/check_demo.sh [SERVE_S]. Picks two free ports itself; exits non-zero,
# with the demo's output, unless both dashboards answer and the demo then stops cleanly.
set -euo pipefail
serve_s="${1:-45}"
port="$(python3 - <<'PY'
import socket
for _ in range(100):
    with socket.socket() as a:
        a.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        with socket.socket() as b:
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
    print(port)
    break
PY
)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
make demo DEMO_ARGS="--serve-s $serve_s --port $port" >"$log" 2>&1 &
demo=$!
fail() { echo "check_demo: $*" >&2; cat "$log" >&2; kill "$demo" 2>/dev/null || true; exit 1; }
until grep -q '^Ctrl-C stops the demo' "$log"; do
  kill -0 "$demo" 2>/dev/null || { wait "$demo" || true; fail "make demo ended before serving"; }
  sleep 1
done
urls="$(grep -oE '^(vtest|simulated)[^:]*: http://[^ ]+$' "$log" | awk '{print $NF}')"
[ "$(wc -l <<<"$urls")" -eq 2 ] || fail "expected two dashboard URLs, got: $urls"
for url in $urls; do
  curl -fsS --max-time 10 "$url/setup" | grep -q "Set up this box" || fail "$url/setup did not answer"
  curl -fsSL --max-time 10 -o /dev/null "$url/" || fail "$url/ did not answer"
  echo "check_demo: $url answers"
done
wait "$demo" || fail "make demo exited with $?"
echo "check_demo: make demo served both dashboards on ports $port and $((port + 1)), then stopped"
