# Sourced by every script CI runs (bash). Strict mode, and a failing command says what it was and
# where, instead of the silent exit `set -e` gives (a fresh machine once failed the images step
# without a word). Also the one place that says where the caches live: everything a run keeps
# across clones is under HATCHERY_CACHE, so `HATCHERY_CACHE=$(mktemp -d) bash .ci/run` is a cold
# run of every install and build step.
set -Eeuo pipefail
trap 'say_why_rc=$?; printf "error: %s:%s: \`%s\` exited %s\n" "${BASH_SOURCE[0]:-?}" "$LINENO" "$BASH_COMMAND" "$say_why_rc" >&2' ERR
export HATCHERY_CACHE=${HATCHERY_CACHE:-/var/cache/hatchery}
