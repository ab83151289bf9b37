#!/bin/sh
# On removal (deb: "remove", rpm: 0), stop and disable the agent; an upgrade keeps it.
case "$1" in
remove | 0)
  if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now recontext-ffs.service >/dev/null 2>&1 || true
  fi
  ;;
esac
