#!/usr/bin/env bash
# Static checks of the deployment files. They need no Docker engine and no Kubernetes cluster.
#
#   bash deploy/validate.sh [all|compose|k8s|images]     (default: all)
#
# compose  `docker-compose config` on docker-compose.yml alone and with each override file.
# k8s      `kubectl kustomize deploy/k8s`, then every object against the Kubernetes API schemas of
#          the kubernetes-models npm package (deploy/validate-k8s.mjs).
# images   `dockerfile-utils lint` on both Dockerfiles, and `sh -n` on the container scripts.
#
# Missing tools are installed: docker-compose, and kubernetes-client when there is no kubectl, from
# Debian's packages (this needs root), and the npm validators, pinned, into CBN_DEPLOY_TOOLS_DIR
# (default ~/.cache/cbn-train/deploy-tools). Later runs reuse them. Exits non-zero on any failure.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools_dir="${CBN_DEPLOY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cbn-train/deploy-tools}"
npm_tools=(kubernetes-models@5.1.0 yaml@2.9.1 dockerfile-utils@0.16.3)
compose_overrides=(docker-compose.gpu.yml docker-compose.gpus-2.yml)

fail() {
  echo "validate.sh: $*" >&2
  exit 1
}

# Installs Debian packages, running `apt-get update` only when the first attempt fails.
apt_install() {
  command -v apt-get >/dev/null || fail "apt-get not found; install $* by hand"
  [ "$(id -u)" = 0 ] || fail "installing $* needs root; run as root or install them by hand"
  echo "validate.sh: installing $* from Debian's packages"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

# Installs the pinned npm validators once. A stamp file records which versions are present.
ensure_npm_tools() {
  local stamp="$tools_dir/.installed"
  mkdir -p "$tools_dir"
  if [ "$(cat "$stamp" 2>/dev/null)" != "${npm_tools[*]}" ]; then
    echo "validate.sh: installing ${npm_tools[*]} into $tools_dir"
    # The lock keeps concurrent runs (CI and a test, say) from installing into one folder at once.
    flock "$tools_dir/.lock" npm install --prefix "$tools_dir" --no-audit --no-fund --loglevel=error "${npm_tools[@]}"
    echo "${npm_tools[*]}" >"$stamp"
  fi
}

check_compose() {
  command -v docker-compose >/dev/null || apt_install docker-compose

  local files
  for override in "" "${compose_overrides[@]}"; do
    files=(-f "$deploy_dir/docker-compose.yml")
    [ -z "$override" ] || files+=(-f "$deploy_dir/$override")

    # Every variable has a default, so a warning on stderr (an unset variable, say) is a failure too.
    local errors
    if ! errors="$(docker-compose "${files[@]}" config -q 2>&1)" || [ -n "$errors" ]; then
      fail "docker-compose config failed for docker-compose.yml${override:+ + $override}:"$'\n'"$errors"
    fi
    echo "compose: docker-compose.yml${override:+ + $override} valid"
  done
}

check_k8s() {
  command -v kubectl >/dev/null || apt_install kubernetes-client
  ensure_npm_tools

  local rendered
  rendered="$(kubectl kustomize "$deploy_dir/k8s")" || fail "kubectl kustomize deploy/k8s failed"

  cp "$deploy_dir/validate-k8s.mjs" "$tools_dir/validate-k8s.mjs"
  node "$tools_dir/validate-k8s.mjs" <<<"$rendered" || fail "deploy/k8s does not match the Kubernetes API schemas"
}

check_images() {
  ensure_npm_tools

  for dockerfile in Dockerfile Dockerfile.gpu; do
    "$tools_dir/node_modules/.bin/dockerfile-utils" lint "$deploy_dir/$dockerfile" || fail "deploy/$dockerfile has errors"
    echo "images: deploy/$dockerfile valid"
  done
  for script in docker-entrypoint.sh install-tfjs-node-gpu.sh; do
    sh -n "$deploy_dir/$script" || fail "deploy/$script has shell syntax errors"
    [ -x "$deploy_dir/$script" ] || fail "deploy/$script is not executable; run chmod +x on it"
  done
  echo "images: container scripts valid"
}

case "${1:-all}" in
  all)
    check_compose
    check_k8s
    check_images
    ;;
  compose) check_compose ;;
  k8s) check_k8s ;;
  images) check_images ;;
  *) fail "unknown check ${1}; use all, compose, k8s or images" ;;
esac
