#!/usr/bin/env bash
# AVA shell shim: one job envelope on stdin -> one run of the user's script -> one result frame.
# The script gets the input JSON on its stdin and the job's env as environment variables; what
# it writes to the file named by $AVA_RESULT is the result (JSON if it parses as one value,
# else the raw text; empty or absent: null); a non-zero exit fails the job. See
# runtimes/README.md. The job's env reaches only the script's process (via `env`), so no
# env name can clobber the shim's variables, and nothing exported carries the nonce.
set -uo pipefail

readonly WORK_DIR=/tmp/ava CODE_DIR=/tmp/ava/code DEFAULT_ENTRYPOINT=main.sh
readonly EXIT_OK=0 EXIT_FAILED=1 EXIT_BAD_ENVELOPE=2

nonce=""
job_env=()
source_by_jq=0 source_text="" input_json=null

# frame BODY: the one result line, after everything the script printed.
frame() {
  [ -n "$nonce" ] || return 0
  printf 'AVA-END-%s\n' "$nonce" >&2  # stderr is complete, then stdout with the frame
  printf 'AVA-RESULT-%s %s\n' "$nonce" "$1"
}

# fail TYPE MESSAGE EXIT_CODE
fail() {
  local body
  # jq keeps the message one line (\n becomes an escape) and escapes U+2028-style breaks.
  body=$(jq -cn --arg type "$1" --arg message "$2" \
    '{ok: false, error: {type: $type, message: ($message | gsub("\\s+"; " ") | .[0:65536])}}')
  [ "$1" = bad_envelope ] && printf 'ava: bad envelope: %s\n' "$2" >&2
  frame "$(escape_breaks "$body")"
  exit "$3"
}

escape_breaks() {
  local s=$1
  s=${s//$'\u2028'/\\u2028}
  s=${s//$'\u2029'/\\u2029}
  printf '%s' "${s//$'\u0085'/\\u0085}"
}

# One jq pass checks the envelope and turns it into shell assignments (quoted by @sh).
read -r -d '' CHECK <<'JQ'
def fail($m): "bad_envelope \($m)" | halt_error(3);
if type != "object" then fail("envelope is not a JSON object") else . end
| (if (.nonce | type) == "string" and (.nonce | test("^[0-9a-f]{32}$")) then . else
     fail("nonce must be 32 lowercase hex characters") end)
| "nonce=\(.nonce | @sh)",
  (if .v != 1 then fail("unsupported envelope version \(.v)") else empty end),
  (.env // {} | if type != "object" then fail("env must be an object") else
     to_entries[] | if (.key | test("^[A-Za-z_][A-Za-z0-9_]*$")) and (.value | type) == "string"
     then "job_env+=(\(.key + "=" + .value | @sh))"
     else fail("env entry \(.key | tojson) must be a valid name with a string value") end end),
  (if (.source | type) != "string" and (.bundle_dir | type) != "string"
   then fail("envelope has neither source nor bundle_dir") else empty end),
  "entry=\(.entrypoint // "" | @sh)",
  "bundle_dir=\(.bundle_dir // "" | @sh)",
  "has_source=\(if (.source | type) == "string" then 1 else 0 end)",
  # the source and the input ride along in this same pass: jq 1.6 takes ~30 ms to start, most
  # of a warm shell job; a source holding NUL (a shell variable cannot) is written by jq itself
  (if (.source | type) != "string" then empty
   elif (.source | test("\u0000")) then "source_by_jq=1"
   else "source_text=\(.source | @sh)" end),
  "input_json=\(.input | tojson | @sh)"
JQ

load_envelope() {
  local script
  [[ $envelope =~ [^[:space:]] ]] || fail bad_envelope "no envelope on stdin" $EXIT_BAD_ENVELOPE
  # A bad nonce aborts before any assignment, so `nonce` stays empty and no frame is written.
  script=$(printf '%s' "$envelope" | jq -r "$CHECK" 2>"$WORK_DIR/jq.err")
  local status=$?
  if [ $status -ne 0 ]; then
    eval "$(printf '%s\n' "$script" | grep '^nonce=')" 2>/dev/null
    local why
    why=$(sed -e 's/^bad_envelope //' -e 's/^parse error/envelope is not JSON: parse error/' \
      "$WORK_DIR/jq.err")
    fail bad_envelope "$why" $EXIT_BAD_ENVELOPE
  fi
  eval "$script"
}

# Sets `file` and `runner` (the command that runs it) for the entrypoint.
resolve_entrypoint() {
  entry=${entry:-$DEFAULT_ENTRYPOINT}
  case "/$entry/" in
    //*|*/../*) fail bad_envelope "entrypoint must be a relative path inside the code dir: $entry" $EXIT_BAD_ENVELOPE ;;
  esac
  if [ "$has_source" = 1 ]; then
    file="$CODE_DIR/$entry"
    [[ $entry == */* ]] && mkdir -p "${file%/*}"
    if [ "$source_by_jq" = 1 ]; then
      printf '%s' "$envelope" | jq -j '.source' >"$file"
    else
      printf '%s' "$source_text" >"$file"
    fi && chmod 0755 "$file"
  else
    file="$bundle_dir/$entry"
    [ -f "$file" ] || fail handler_missing "entrypoint $file does not exist" $EXIT_FAILED
  fi
  local first
  IFS= read -r first <"$file" || true
  # A #! line picks the interpreter (sh, bash, anything); without one the script runs in bash.
  if [[ $first == '#!'* && -x $file ]]; then runner=("$file"); else runner=(bash "$file"); fi
  check_syntax "$first"
}

check_syntax() {
  local shell=bash err
  if [[ $1 == '#!'* ]]; then
    if [[ $1 =~ [/[:space:]]sh([[:space:]]|$) ]]; then shell=sh
    elif [[ ! $1 =~ [/[:space:]]bash([[:space:]]|$) ]]; then return 0  # not a shell we parse
    fi
  fi
  if ! err=$("$shell" -n "$file" 2>&1); then
    printf '%s\n' "$err" >&2
    fail syntax_error "$(printf '%s' "$err" | head -n 1)" $EXIT_FAILED
  fi
}

run_script() {
  result_file="$WORK_DIR/result"
  rm -f "$result_file"
  printf '%s' "$input_json" >"$WORK_DIR/input.json"
  (cd "${file%/*}" \
    && exec env -- "${job_env[@]}" AVA_RESULT="$result_file" "${runner[@]}") <"$WORK_DIR/input.json"
  local status=$?
  [ $status -eq 0 ] || fail nonzero_exit "entrypoint exited with code $status" $EXIT_FAILED
}

report_result() {
  local result
  if [ ! -s "$result_file" ] || [ -z "$(tr -d ' \t\r\n' <"$result_file")" ]; then
    result=null
  elif ! result=$(jq -c -s 'if length == 1 then .[0] else error("not one value") end' \
      <"$result_file" 2>/dev/null); then
    # Not JSON: the raw text is the result (one trailing newline dropped, as `echo` adds it).
    result=$(jq -Rs 'if endswith("\n") then .[:-1] else . end' <"$result_file")
  fi
  frame "$(escape_breaks "{\"ok\":true,\"result\":$result}")"
  exit $EXIT_OK
}

read_stdin_envelope() {
  # a prewarmed container waits AVA_WARM_TTL_S at most for its job's first byte, then ends
  local first=""
  if [ -n "${AVA_WARM_TTL_S:-}" ]; then
    IFS= read -r -t "$AVA_WARM_TTL_S" -n 1 first || exit $EXIT_OK
    unset AVA_WARM_TTL_S
  fi
  # head reads in blocks (bash's `read` goes byte by byte: seconds for a 1 MiB line).
  envelope="$first$(head -n 1)"
}

main() {
  mkdir -p "$WORK_DIR" "$CODE_DIR" || exit $EXIT_BAD_ENVELOPE
  if [ -n "${AVA_ENVELOPE_FILE:-}" ]; then
    # a task with no stdin (a swarm service) finds its envelope in this file, or in these
    # (paths joined by ":", contents one after the other: a swarm secret holds 500 KiB at most)
    local parts
    IFS=: read -r -a parts <<<"$AVA_ENVELOPE_FILE"
    envelope="$(cat -- "${parts[@]}" | head -n 1)" ||  # pipefail: a file cat cannot read
      echo "ava: cannot read the envelope file" >&2
    unset AVA_ENVELOPE_FILE
  else
    read_stdin_envelope
  fi
  exec </dev/null  # the envelope is all stdin carries
  load_envelope
  resolve_entrypoint
  run_script
  report_result
}

main
