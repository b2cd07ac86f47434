#!/usr/bin/env bash
# Baseline 2, GOV.UK's refinement of the mirror script: compare `git ls-remote --heads --tags` of
# both sides and clone + push only the repositories where they differ. Settings: see common.sh.
source "$(dirname "$0")/common.sh"

failed=0
while read -r name url <&3; do
  src=$(source_url "$url")
  dst=$(target_url "$name")
  if ! source_refs=$(git ls-remote --heads --tags "$src" | sort); then
    echo "FAILED: $name (ls-remote source)" >&2; failed=1; continue
  fi
  target_refs=$(git ls-remote --heads --tags "$dst" | sort) || target_refs="unreachable"
  if [ "$source_refs" == "$target_refs" ]; then
    echo "== $name: up to date"
    continue
  fi
  echo "== $name: updating"
  clone_and_push "$name" "$src" "$dst" || { echo "FAILED: $name" >&2; failed=1; }
done 3< <(list_repos)
exit $failed
