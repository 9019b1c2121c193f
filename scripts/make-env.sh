#!/usr/bin/env bash
# Writes a git-ignored env file with fresh dev secrets and prints them once.
set -euo pipefail
out=${1:-.env}
[ -f "$out" ] && exit 0
secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
key=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
umask 077
cat >"$out" <<ENV
AVA_INTERNAL_SECRET=$secret
AVA_SECRET_KEY=$key
ENV
echo "Generated dev secrets in $out (shown once; keep them safe):"
echo "  AVA_INTERNAL_SECRET=$secret"
echo "  AVA_SECRET_KEY=$key"
