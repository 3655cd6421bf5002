#!/usr/bin/env bash
# Installs the Debian packages Loom needs (OpenBLAS, oneDNN, OpenMP, zlib, libpng, libjpeg-turbo, Open MPI, Fashion-MNIST).
set -euo pipefail
packages=(libopenblas-dev libdnnl-dev libomp-dev pkg-config zlib1g-dev libpng-dev libturbojpeg0-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
