#!/usr/bin/env bash
# Prepares a Debian 12 machine without a Docker engine to build and run this project's images with
# rootful podman/buildah (test scaffolding for tests/images; a machine with Docker needs none of it):
#   - installs podman buildah runc netavark aardvark-dns podman-compose debootstrap iptables
#     (without iptables every bridge-network run fails with "netavark: No such file or directory");
#   - sets, idempotently, in /etc/containers/containers.conf:
#       [containers] default_ulimits = []   (else "error setting rlimit type 7: operation not permitted")
#       [engine]     runtime = "runc"        (crun refuses hybrid cgroups; crun is never installed)
# Safe to run again: installs only what is missing and rewrites only those two keys.
set -euo pipefail

PACKAGES=(podman buildah runc netavark aardvark-dns podman-compose debootstrap iptables)

log() { printf '\033[1m[container-host]\033[0m %s\n' "$*" >&2; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  local SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
}

# set_key FILE SECTION KEY VALUE: replaces KEY inside [SECTION] (or adds it, or the section).
set_key() {
  /usr/bin/python3 - "$@" <<'PY'
import re, sys
path, section, key, value = sys.argv[1:5]
try:
    lines = open(path).read().splitlines()
except FileNotFoundError:
    lines = []
out, in_section, done, seen_section = [], False, False, False
for line in lines:
    m = re.match(r"\s*\[([^\]]+)\]\s*$", line)
    if m:
        if in_section and not done:
            out.append(f"{key} = {value}")
            done = True
        in_section = m.group(1).strip() == section
        seen_section = seen_section or in_section
        out.append(line)
        continue
    if in_section and re.match(rf"\s*#?\s*{re.escape(key)}\s*=", line) and not done:
        out.append(f"{key} = {value}")
        done = True
        continue
    out.append(line)
if in_section and not done:
    out.append(f"{key} = {value}")
    done = True
if not seen_section:
    out += ["", f"[{section}]", f"{key} = {value}"]
new = "\n".join(out) + "\n"
old = "\n".join(lines) + "\n" if lines else ""
if new != old:
    open(path, "w").write(new)
PY
}

configure() {
  local conf=/etc/containers/containers.conf
  mkdir -p /etc/containers
  set_key "$conf" containers default_ulimits '[]'
  set_key "$conf" engine runtime '"runc"'
  command -v crun >/dev/null && log "warning: crun is installed; runtime = \"runc\" keeps it unused"
  return 0
}

install_packages
configure
log "podman $(podman --version | awk '{print $3}'), buildah $(buildah --version | awk '{print $3}'), runtime runc"
