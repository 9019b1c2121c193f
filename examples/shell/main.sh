#!/bin/bash
# AVA shell example: input JSON on stdin, env as variables, result into "$AVA_RESULT".
set -euo pipefail
name=$(jq -r '.name // "world"')
echo "greeting $name"  # a log line, never the result
jq -n --arg message "${GREETING:-Hello}, $name!" --arg job "${AVA_JOB_ID:-}" \
  '{message: $message, job: $job}' >"$AVA_RESULT"
