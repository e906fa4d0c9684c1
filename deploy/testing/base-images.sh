#!/usr/bin/env bash
# Makes the base images deploy/docker/Dockerfile and docker-compose.yml name available to rootful
# podman on a machine that cannot reach an image registry (test scaffolding for tests/images):
#   debian:bookworm          debootstrap --variant=minbase from the machine's Debian mirror
#   debian:bookworm-slim     standins/debian-slim.Containerfile
#   node:20-bookworm-slim    standins/node20.Containerfile (the host's Node 20)
#   postgres:15              standins/postgres15.Containerfile (Debian's postgresql-15)
#   prom/prometheus:vX       standins/prometheus.Containerfile (Debian's prometheus)
# An image that is already present is kept; a missing one is pulled first (bounded by
# FRAUD_PULL_TIMEOUT seconds, default 20) and built as a stand-in only if the pull fails.
# The names of the postgres, prometheus and node images are read from docker-compose.yml and the
# Dockerfile, so the stand-ins follow them. Usage: base-images.sh [ROOT]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${1:-$(cd "$HERE/../.." && pwd)}
PULL_TIMEOUT=${FRAUD_PULL_TIMEOUT:-20}

log() { printf '\033[1m[base-images]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[base-images] error:\033[0m %s\n' "$*" >&2; exit 1; }

have() { podman image exists "$1" 2>/dev/null; }

try_pull() {  # NAME: 0 if the real image could be pulled (docker.io, as Docker would)
  local ref=docker.io/$1
  case "$1" in */*) ;; *) ref=docker.io/library/$1 ;; esac
  log "pulling $ref (at most ${PULL_TIMEOUT}s)"
  if timeout "$PULL_TIMEOUT" podman pull -q "$ref" >/dev/null 2>&1; then
    podman tag "$ref" "$1" >/dev/null
    log "pulled $ref"
    return 0
  fi
  log "cannot pull $ref: building a stand-in"
  return 1
}

mirror() {  # the machine's Debian mirror, from its apt sources (deb822 or one-line format)
  local m
  m=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
      | grep -v -- '-security' | grep -E 'debian/?$|debian ' | head -1 \
      | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')
  echo "${m:-http://deb.debian.org/debian}"
}

debian_bookworm() {
  local dir mirror_url t0
  mirror_url=$(mirror)
  dir=$(mktemp -d /var/tmp/fraud-debootstrap.XXXXXX)
  t0=$(date +%s)
  log "debootstrap --variant=minbase bookworm from $mirror_url"
  if ! timeout 900 debootstrap --variant=minbase bookworm "$dir" "$mirror_url" >"$dir.log" 2>&1; then
    tail -20 "$dir.log" >&2
    rm -rf "$dir"
    die "debootstrap failed (log above)"
  fi
  # The official image's apt sources: bookworm, bookworm-updates and bookworm-security, so
  # packages installed in the images match the host's (and ccache hashes the same headers).
  local security=${mirror_url%/debian}/debian-security
  [ "$security" = "$mirror_url/debian-security" ] && security=http://deb.debian.org/debian-security
  rm -f "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror_url
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # As in the official image: no apt caches, no recommends, no docs pulled in by accident.
  printf 'APT::Install-Recommends "false";\n' >"$dir/etc/apt/apt.conf.d/docker-no-recommends"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
  tar -C "$dir" -c . | podman import --change 'CMD ["bash"]' - debian:bookworm >/dev/null
  rm -rf "$dir" "$dir.log"
  log "debian:bookworm imported in $(( $(date +%s) - t0 )) s"
}

build_standin() {  # NAME CONTAINERFILE [CONTEXT]
  local name=$1 file=$2 ctx=${3:-$HERE/standins} t0
  t0=$(date +%s)
  log "building stand-in $name from ${file#"$ROOT"/}"
  timeout 1200 buildah bud --isolation chroot --layers -q -f "$file" -t "$name" "$ctx" >/dev/null \
    || die "building $name failed"
  log "$name built in $(( $(date +%s) - t0 )) s"
}

node_standin() {  # NAME
  local node ver npm_dir ctx
  node=$(command -v node) || die "Node 20 must be installed on the host (./fraud build installs it)"
  ver=$("$node" -p 'process.versions.node.split(".")[0]')
  [ "$ver" -ge 20 ] || die "the host's Node is $("$node" --version); the node:20 stand-in needs 20+"
  for npm_dir in /usr/lib/node_modules/npm /usr/local/lib/node_modules/npm /usr/share/nodejs/npm; do
    [ -f "$npm_dir/bin/npm-cli.js" ] && break
  done
  [ -f "$npm_dir/bin/npm-cli.js" ] || die "npm not found next to the host's Node"
  ctx=$(mktemp -d /var/tmp/fraud-node-ctx.XXXXXX)
  cp -L "$node" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  cp "$HERE/standins/node20.Containerfile" "$ctx/"
  # CAs the host added to its trust store (e.g. a TLS-inspecting egress proxy's) go into the
  # stand-in too, so `npm ci` in the image reaches the registry whenever the host does.
  mkdir -p "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  build_standin "$1" "$ctx/node20.Containerfile" "$ctx"
  rm -rf "$ctx"
}

ensure() {  # NAME KIND
  local name=$1 kind=$2
  if have "$name"; then log "$name present"; return 0; fi
  try_pull "$name" && return 0
  case "$kind" in
    debian) debian_bookworm ;;
    slim) build_standin "$name" "$HERE/standins/debian-slim.Containerfile" ;;
    node) node_standin "$name" ;;
    postgres) build_standin "$name" "$HERE/standins/postgres15.Containerfile" ;;
    prometheus) build_standin "$name" "$HERE/standins/prometheus.Containerfile" ;;
  esac
}

compose=$ROOT/docker-compose.yml
dockerfile=$ROOT/deploy/docker/Dockerfile
pg_image=$(sed -nE 's/^[[:space:]]*image:[[:space:]]*(postgres:[^[:space:]]+).*/\1/p' "$compose" | head -1)
prom_image=$(sed -nE 's/^[[:space:]]*image:[[:space:]]*(prom\/prometheus:[^[:space:]]+).*/\1/p' "$compose" | head -1)
node_image=$(sed -nE 's/^FROM[[:space:]]+(node:[^[:space:]]+).*/\1/p' "$dockerfile" | head -1)
[ -n "$pg_image" ] && [ -n "$prom_image" ] && [ -n "$node_image" ] \
  || die "cannot read the postgres/prometheus image from docker-compose.yml or node from the Dockerfile"

ensure debian:bookworm debian
ensure debian:bookworm-slim slim
ensure "$node_image" node
ensure "$pg_image" postgres
ensure "$prom_image" prometheus
