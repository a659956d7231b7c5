#!/usr/bin/env bash
# Installs everything meshpay-lab needs on a fresh Debian/Ubuntu machine, as root:
# the kernel-side tools, QEMU and a distro kernel for the VM route, and the Python package in .venv.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (it installs Debian packages; labs need CAP_NET_ADMIN)" >&2
  exit 1
fi

packages=(
  iw iproute2 iputils-ping wpasupplicant kmod   # the mesh inside each node
  qemu-system-x86 busybox-static                # the VM route (virtme-ng insists on a static busybox)
  linux-image-amd64                             # a kernel that has mac80211_hwsim, booted by the VM route
  docker.io debootstrap                         # the docker runtime; a node image base made with no registry
  tshark                                        # reads `capture` files in the e2e tests
  iperf3                                        # TCP/UDP throughput over the mesh (bench/bench_radio.py)
  chromium                                      # the live view's browser test (draw --live, headless)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install.sh: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test,vm,plots]'
echo "install.sh: done; the CLI is .venv/bin/meshpay-lab (try: .venv/bin/meshpay-lab doctor)"
