#!/usr/bin/env bash
# Schemathesis against the admin REST API, driven by the OpenAPI document the server serves
# (/admin/api/v1/openapi.json): every operation the document lists is tested, with every
# check, without being named here. Runs the debug binary that `cargo test` built (builds
# nothing) on a throwaway SQLite database in a temporary directory, on a free loopback port,
# as an admin client holding every admin scope. Exits non-zero on any schemathesis failure,
# error or warning listed in .ci/admin_api_fuzz.toml, and when schemathesis did not test
# every operation of the document.
#
# Environment (all optional):
#   FUZZ_LATCHKEY_BIN       the server (default ${CARGO_TARGET_DIR:-target}/debug/latchkey)
#   SCHEMATHESIS       default .venv/bin/schemathesis
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 50)
#   FUZZ_SEED          replay a run: schemathesis prints the seed it used
#   FUZZ_SCHEMA        a saved document (file) to test instead of the served one, to try a
#                      change to the document before making it in the code
#   FUZZ_REPORT_DIR    keep the reports and the server log there
#   FUZZ_EXTRA_REPORTS more report formats, e.g. ndjson (every request and response)
#   FUZZ_EXTRA_ARGS    more `schemathesis run` options (split on spaces), e.g.
#                      `--output-sanitize false` to see the token and header values
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${FUZZ_LATCHKEY_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/latchkey}
schemathesis=${SCHEMATHESIS:-$root/.venv/bin/schemathesis}
max_examples=${FUZZ_MAX_EXAMPLES:-50}

fail() { echo "admin_api_fuzz: $*" >&2; exit 1; }
[ -x "$bin" ] || fail "$bin is missing: build it first (\`cargo test\` or \`cargo build -p latchkey\` does)"
[ -x "$schemathesis" ] || fail "$schemathesis is missing: install schemathesis into .venv (see .ci/run)"
command -v curl >/dev/null || fail "curl is missing"

work=$(mktemp -d)
server_pid=""
fuzz_pid=""
cleanup() {
  local status=$?
  local pid
  for pid in $fuzz_pid $server_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "${FUZZ_REPORT_DIR:-}" ]; then
    mkdir -p "$FUZZ_REPORT_DIR"
    cp -r "$work/report/." "$FUZZ_REPORT_DIR/" 2>/dev/null || true
    cp "$work/server.log" "$FUZZ_REPORT_DIR/" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Only the settings below: nothing inherited may point the server elsewhere.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^LATCHKEY_' || true)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LATCHKEY_SERVER__PORT=$port
export LATCHKEY_PASSWORDS__MEMORY_KIB=64
export LATCHKEY_PASSWORDS__ITERATIONS=1
origin="http://127.0.0.1:$port"
api="$origin/admin/api/v1"

cd "$work"
"$bin" serve >server.log 2>&1 &
server_pid=$!
ready=0
for _ in $(seq 1 120); do
  kill -0 "$server_pid" 2>/dev/null || { tail -n 50 server.log >&2; fail "latchkey serve exited before it was ready"; }
  if curl -sf "$origin/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
[ "$ready" = 1 ] || { tail -n 50 server.log >&2; fail "latchkey serve is not ready on $origin after 60 s"; }

# A client of the admin API with every admin scope (as `scope list` names them, so a new
# one is included without a change here); its tokens outlive the run's timeout.
"$bin" --json scope list >scopes.json
mapfile -t admin_scopes < <(python3 -c 'import json, sys
for s in json.load(open(sys.argv[1])):
    if s["name"].startswith("admin:"): print("--scope"); print(s["name"])' scopes.json)
[ "${#admin_scopes[@]}" -ge 18 ] || fail "scope list names fewer admin scopes than expected: ${admin_scopes[*]}"
"$bin" --json client create --id fuzz-admin --name "Admin API fuzz" --grant-type client_credentials \
  --admin-client "${admin_scopes[@]}" --access-token-lifetime 20m >client.json
secret=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["client_secret"])' client.json)
curl -sf -u "fuzz-admin:$secret" -d grant_type=client_credentials "$origin/token" >token.json \
  || fail "the token endpoint refused the admin client"
token=$(python3 - token.json <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
if t.get("expires_in", 0) < 700:
    sys.exit(f"admin_api_fuzz: the access token lives {t.get('expires_in')} s, less than the run may take")
print(t["access_token"])
PY
)
curl -sf -H "Authorization: Bearer $token" "$api/server" >/dev/null || fail "the admin API refuses the token"
if [ -n "${FUZZ_SCHEMA:-}" ]; then
  cp "$FUZZ_SCHEMA" openapi.json
  location=$work/openapi.json
else
  curl -sf "$api/openapi.json" >openapi.json || fail "no OpenAPI document at $api/openapi.json"
  location=$api/openapi.json
fi

seed_args=()
[ -n "${FUZZ_SEED:-}" ] && seed_args=(--seed "$FUZZ_SEED")
# shellcheck disable=SC2206 # FUZZ_EXTRA_ARGS is split on purpose
extra_args=(${FUZZ_EXTRA_ARGS:-})
echo "schemathesis $("$schemathesis" --version | awk '{print $NF}') against $location"
status=0
# The hooks (see the file) give valid requests the state-dependent values a schema cannot
# describe: a current If-Match, a fresh Idempotency-Key, a cursor the API gave out.
# One worker: hypothesis parses lambdas with `ast` while it generates, and CPython 3.11's
# AST constructor is not thread-safe ("AST constructor recursion depth mismatch",
# python/cpython#106905): two worker threads made runs fail at random.
SCHEMATHESIS_HOOKS="$root/.ci/admin_api_fuzz_hooks.py" ADMIN_API_FUZZ_BASE="$api" \
  ADMIN_API_FUZZ_AUTHORIZATION="Bearer $token" \
  timeout --kill-after=15 600 "$schemathesis" --config-file "$root/.ci/admin_api_fuzz.toml" \
  run "$location" \
  --url "$api" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --max-examples "$max_examples" \
  --continue-on-failure \
  --workers 1 \
  --request-timeout 30 \
  --generation-database none \
  --no-color \
  --report "junit${FUZZ_EXTRA_REPORTS:+,$FUZZ_EXTRA_REPORTS}" --report-dir "$work/report" \
  "${seed_args[@]}" "${extra_args[@]}" &
# In the background, so that a TERM or INT reaches the trap (and the cleanup) at once.
fuzz_pid=$!
wait "$fuzz_pid" || status=$?
fuzz_pid=""

if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  fail "schemathesis did not finish within 600 s"
fi
kill -0 "$server_pid" 2>/dev/null || { tail -n 50 server.log >&2; fail "latchkey serve died during the run"; }
# A run whose token stopped working (401 to everything after) tested nothing from then on.
curl -sf -H "Authorization: Bearer $token" "$api/server" >/dev/null \
  || fail "the run's admin token stopped working during the run: the operations after that were not tested"
# Schemathesis must have tested every operation of the document: its JUnit report has one
# test case per operation (and one for the stateful tests), none of them skipped.
coverage=0
python3 - openapi.json "$work/report" <<'PY' || coverage=$?
import glob, json, sys, xml.etree.ElementTree as ET
doc = json.load(open(sys.argv[1]))
methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
listed = {f"{m.upper()} {path}" for path, item in doc.get("paths", {}).items() for m in item if m in methods}
reports = glob.glob(sys.argv[2] + "/junit-*.xml")
cases = [case for path in reports for case in ET.parse(path).getroot().iter("testcase")]
tested = {c.get("name") for c in cases if c.find("skipped") is None}
problems = []
if not listed:
    problems.append("the document lists no operation")
if not cases:
    problems.append("schemathesis wrote no test case")
for op in sorted(listed - tested):
    problems.append(f"{op} was not tested")
for problem in problems:
    print(f"admin_api_fuzz: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"admin_api_fuzz: all {len(listed)} operations of the document were tested")
PY
if [ "$status" != 0 ]; then
  fail "schemathesis reported failures, errors or failing warnings (exit $status): see above"
fi
[ "$coverage" = 0 ] || fail "schemathesis did not test the whole document"
echo "admin API: schemathesis passed"
