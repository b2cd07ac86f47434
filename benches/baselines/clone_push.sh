#!/usr/bin/env bash
# Baseline 1, the classic mirror script: for every repository, `git clone --mirror` from GitHub into
# a fresh temporary directory and `git push --mirror` to the target. Settings: see common.sh.
source "$(dirname "$0")/common.sh"

failed=0
while read -r name url <&3; do
  echo "== $name"
  clone_and_push "$name" "$(source_url "$url")" "$(target_url "$name")" || { echo "FAILED: $name" >&2; failed=1; }
done 3< <(list_repos)
exit $failed
