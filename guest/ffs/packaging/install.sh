#!/bin/sh
# Installs recontext-ffs into a Linux guest with systemd (Debian/Ubuntu and alike), from a checkout
# after `npm ci` at the repository root (which builds guest/ffs/dist):
#
#   sudo guest/ffs/packaging/install.sh            # install and start the service
#   guest/ffs/packaging/install.sh DESTDIR         # stage into DESTDIR (an image build), start nothing
#
# Needs: node 20 and npm (to fetch fuse-native's production dependencies), a C compiler (for the
# ffs-devd helper), and at run time libfuse2 + fuse (Debian: apt-get install libfuse2 fuse).
set -eu
DESTDIR="${1:-}"
ffs=$(cd "$(dirname "$0")/.." && pwd)
lib="$DESTDIR/usr/lib/recontext-ffs"
[ -f "$ffs/dist/cli.js" ] || { echo "install.sh: $ffs/dist is missing: run npm ci (or npm run build:ffs) at the repository root first" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
echo "recontext-ffs: packing and installing production dependencies into $lib"
(cd "$ffs" && npm pack --silent --pack-destination "$stage" >/dev/null)
mkdir -p "$lib"
npm install --omit=dev --no-audit --no-fund --no-package-lock --prefix "$lib" "$stage"/recontext-ffs-*.tgz >/dev/null

echo "recontext-ffs: building the device helper ffs-devd"
cc -static -O2 -o "$lib/ffs-devd" "$ffs/native/ffs-devd.c" 2>/dev/null || cc -O2 -o "$lib/ffs-devd" "$ffs/native/ffs-devd.c"

mkdir -p "$DESTDIR/usr/bin" "$DESTDIR/etc/systemd/system" "$DESTDIR/etc/udev/rules.d"
ln -sf /usr/lib/recontext-ffs/node_modules/@recontext/ffs/bin/recontext-ffs.js "$DESTDIR/usr/bin/recontext-ffs"
install -m 0644 "$ffs/packaging/recontext-ffs.service" "$DESTDIR/etc/systemd/system/recontext-ffs.service"
install -m 0644 "$ffs/packaging/60-recontext-ffs.rules" "$DESTDIR/etc/udev/rules.d/60-recontext-ffs.rules"

if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null 2>&1; then
  udevadm control --reload 2>/dev/null || true
  systemctl daemon-reload
  systemctl enable --now recontext-ffs.service
  echo "recontext-ffs: running; the context is at /run/recontext/context (recontext-ffs status /run/recontext/context)"
else
  echo "recontext-ffs: staged into ${DESTDIR:-/}; enable with: systemctl enable --now recontext-ffs.service"
fi
