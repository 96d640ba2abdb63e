#!/bin/sh
# Installs @tensorflow/tfjs-node-gpu into /app/node_modules during the GPU image build.
#
# The package's install script downloads libtensorflow 2.9.1 (GPU, CUDA 11.2 and cuDNN 8.1) and a
# prebuilt addon. Three ways to supply libtensorflow, in this order:
#   1. LIBTENSORFLOW_ARCHIVE names a file in deploy/vendor/ (copied to /tmp/vendor). The install script
#      fetches `tf-lib` from scripts/custom-binary.json over http(s) only, so the archive is served on
#      loopback for the length of the install. With a custom tf-lib and no custom addon, the script
#      compiles the addon with node-gyp, so the build stage has python3, make and g++.
#   2. TFJS_NODE_BASE_URI or TFJS_NODE_CDN_STORAGE point the install script at a mirror.
#   3. Neither set: the script downloads from its default Google Cloud Storage host.
set -eu

TFJS_NODE_GPU_VERSION="${TFJS_NODE_GPU_VERSION:-4.22.0}"
VENDOR_DIR=/tmp/vendor
VENDOR_PORT=8719
package_dir=node_modules/@tensorflow/tfjs-node-gpu

# --ignore-scripts: the install script runs below, once custom-binary.json is in place.
npm install --no-save --omit=dev --ignore-scripts --no-audit --no-fund \
  "@tensorflow/tfjs-node-gpu@${TFJS_NODE_GPU_VERSION}"

if [ -n "${LIBTENSORFLOW_ARCHIVE:-}" ]; then
  if [ ! -f "${VENDOR_DIR}/${LIBTENSORFLOW_ARCHIVE}" ]; then
    echo "install-tfjs-node-gpu: LIBTENSORFLOW_ARCHIVE=${LIBTENSORFLOW_ARCHIVE} not found in deploy/vendor/;" \
      "put the libtensorflow-gpu-linux-x86_64-2.9.1.tar.gz archive there or unset the build argument" >&2
    exit 1
  fi

  python3 -m http.server "$VENDOR_PORT" --bind 127.0.0.1 --directory "$VENDOR_DIR" >/dev/null 2>&1 &
  server_pid=$!
  trap 'kill "$server_pid"' EXIT

  attempts=0
  until curl -fsS -o /dev/null "http://127.0.0.1:${VENDOR_PORT}/"; do
    attempts=$((attempts + 1))
    if [ "$attempts" -ge 50 ]; then
      echo "install-tfjs-node-gpu: the loopback file server did not start within 10 s" >&2
      exit 1
    fi
    sleep 0.2
  done

  printf '{ "tf-lib": "http://127.0.0.1:%s/%s" }\n' "$VENDOR_PORT" "$LIBTENSORFLOW_ARCHIVE" \
    >"${package_dir}/scripts/custom-binary.json"
  echo "install-tfjs-node-gpu: using libtensorflow from deploy/vendor/${LIBTENSORFLOW_ARCHIVE}"
fi

# Runs the package's install script (node scripts/install.js gpu download). It reads
# TFJS_NODE_CDN_STORAGE and TFJS_NODE_BASE_URI from the environment, where empty means unset.
npm rebuild @tensorflow/tfjs-node-gpu

if ! ls "${package_dir}"/lib/napi-v*/tfjs_binding.node >/dev/null 2>&1; then
  echo "install-tfjs-node-gpu: no tfjs_binding.node under ${package_dir}/lib after the install script" >&2
  exit 1
fi
