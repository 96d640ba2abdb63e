#!/bin/sh
# Entrypoint of both images: fills in per-container defaults, then replaces itself with cbn-train.
#
# A worker registers with the coordinator under its --advertise address, which must resolve from the
# coordinator's container. When CBN_ADVERTISE is unset, it becomes this container's hostname plus the
# port of CBN_LISTEN. Under Compose the default hostname is the container's short ID. Docker adds
# that ID as a network alias on user-defined networks, so its embedded DNS resolves it, and every
# replica of a scaled worker service gets an address of its own.
set -eu

if [ "${1:-}" = worker ] && [ -z "${CBN_ADVERTISE:-}" ] && [ -n "${CBN_LISTEN:-}" ]; then
  CBN_ADVERTISE="$(hostname):${CBN_LISTEN##*:}"
  export CBN_ADVERTISE
fi

# The script sits in deploy/ of the application directory (/app in the images).
exec node "$(dirname "$0")/../bin/cbn-train.js" "$@"
