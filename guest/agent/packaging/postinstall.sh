#!/bin/sh
# Enable the agent (also in an image being built, where systemd is not running: enable only
# writes links) and start it when systemd runs.
set -e
command -v systemctl >/dev/null 2>&1 || exit 0
systemctl enable recontext-ffs.service >/dev/null 2>&1 || true
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  udevadm control --reload-rules >/dev/null 2>&1 || true
  systemctl restart recontext-ffs.service
fi
