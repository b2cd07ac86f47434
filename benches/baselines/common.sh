# Shared by the git-CLI baselines: settings, the repository listing and the URLs with credentials.
#
# Settings (environment): GITHUB_API_URL, MIRROR_GITHUB_ORG, GITHUB_TOKEN (source: GitHub's API and
# `x-access-token` Basic auth for git), TARGET_URL_TEMPLATE (e.g. https://git.example.com/{name}.git),
# TARGET_USERNAME, TARGET_PASSWORD. Needs git, curl and jq.
set -euo pipefail

: "${GITHUB_API_URL:=https://api.github.com}"
: "${MIRROR_GITHUB_ORG:?set MIRROR_GITHUB_ORG}"
: "${GITHUB_TOKEN:?set GITHUB_TOKEN}"
: "${TARGET_URL_TEMPLATE:?set TARGET_URL_TEMPLATE (with {name})}"
: "${TARGET_USERNAME:?set TARGET_USERNAME}"
: "${TARGET_PASSWORD:?set TARGET_PASSWORD}"

urlencode() { jq -rn --arg v "$1" '$v|@uri'; }
SOURCE_AUTH="x-access-token:$(urlencode "$GITHUB_TOKEN")"
TARGET_AUTH="$(urlencode "$TARGET_USERNAME"):$(urlencode "$TARGET_PASSWORD")"

# "NAME CLONE_URL" for every non-archived, non-fork repository of the organisation, all pages.
list_repos() {
  local page=1 body count
  while :; do
    body=$(curl -fsS -H "Authorization: token $GITHUB_TOKEN" -H "Accept: application/vnd.github+json" \
      "$GITHUB_API_URL/orgs/$MIRROR_GITHUB_ORG/repos?per_page=100&page=$page")
    count=$(jq length <<<"$body")
    jq -r '.[] | select((.archived or .fork or .disabled) | not) | "\(.name) \(.clone_url)"' <<<"$body"
    [ "$count" -lt 100 ] && break
    page=$((page + 1))
  done
}

# URL with credentials: with_auth URL USER:PASSWORD
with_auth() { printf '%s\n' "${1/:\/\//://$2@}"; }

source_url() { with_auth "$1" "$SOURCE_AUTH"; }
target_url() { with_auth "${TARGET_URL_TEMPLATE//\{name\}/$1}" "$TARGET_AUTH"; }

# git clone --mirror into a fresh temporary directory, then git push --mirror: what every mirror
# script does. Returns git's status; the temporary clone is always removed.
clone_and_push() { # NAME SOURCE_URL TARGET_URL
  local scratch status=0
  scratch=$(mktemp -d)
  if git clone --quiet --mirror "$2" "$scratch/$1.git" && git -C "$scratch/$1.git" push --quiet --mirror "$3"; then
    status=0
  else
    status=1
  fi
  rm -rf "$scratch"
  return $status
}
