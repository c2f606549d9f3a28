#!/usr/bin/env bash
# Make sure Fashion-MNIST (IDX .gz files) is present; install Debian's package when apt is
# usable, otherwise say exactly what to do. Nothing is downloaded from anywhere else.
set -euo pipefail
dir=${1:-/usr/share/datasets/fashion-mnist}
if ls "$dir"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  exit 0
fi
echo "Fashion-MNIST not found in $dir; installing Debian's dataset-fashion-mnist ..."
sudo=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
  $sudo apt-get update -qq || true
  if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist; then
    ls "$dir"/train-images-idx3-ubyte* >/dev/null 2>&1 && exit 0
  fi
fi
cat >&2 <<MSG
Could not install Fashion-MNIST automatically.
  On Debian/Ubuntu:  sudo apt-get install dataset-fashion-mnist   (files go to $dir)
  Elsewhere: put train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (IDX format)
  in a folder and run:  make demo FMNIST_DIR=/that/folder
MSG
exit 1
