#!/usr/bin/env bash
# The container part of CI (called by .ci/run before the main suite): build the image with no
# registry (compose/build-images.sh), then a short container chaos run through the compose
# cluster (tests/test_chaos_containers.py: valid history, chunks moved, nothing left behind).
# The longer docker tests (the compose stack with every container SIGKILLed in turn, the swarm)
# run by hand: python -m pytest -m docker tests/test_compose_stack.py tests/test_compose_swarm.py
# Bounded: the whole part is killed after HELOGALE_CONTAINERS_BUDGET_S (480 s) and every
# container, network and volume the tests made is removed on the way out, whatever happens.
# Without a Docker engine it prints `containers: skipped: <reason>` and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
budget="${HELOGALE_CONTAINERS_BUDGET_S:-480}"

reason="$(python3 -c 'from chaos.docker_cli import engine_problem; print(engine_problem() or "")')"
if [ -n "$reason" ]; then
  echo "containers: skipped: $reason"
  exit 0
fi

cleanup() {
  local p
  for p in $(docker ps -a --format '{{.Label "com.docker.compose.project"}}' \
               | grep -E '^helogale-(stack|chaos)-test-' | sort -u); do
    docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f >/dev/null 2>&1
    docker network ls -q --filter "label=com.docker.compose.project=$p" | xargs -r docker network rm >/dev/null 2>&1
  done
  docker volume ls -q --filter label=com.docker.compose.project \
    | grep -E '^helogale-(stack|chaos)-test-' | xargs -r docker volume rm >/dev/null 2>&1
  true
}
trap cleanup EXIT

started=$SECONDS
timeout --kill-after=15 "$budget" bash -c '
  set -euo pipefail
  bash compose/build-images.sh
  echo "containers: image built in $((SECONDS))s"
  HELOGALE_CHAOS_S="${HELOGALE_CHAOS_S:-30}" python3 -m pytest -q -m docker -p no:cacheprovider \
    tests/test_chaos_containers.py
'
code=$?
echo "containers: done in $((SECONDS - started)) s (exit $code)"
[ "$code" = 124 ] && echo "containers: over the ${budget} s budget" >&2
exit "$code"
