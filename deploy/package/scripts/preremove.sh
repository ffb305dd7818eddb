#!/bin/sh
# pbirefresh before removal. Stop the service when the package goes away
# (deb: "remove"; rpm: $1 = 0), not when it is upgraded (deb: "upgrade";
# rpm: $1 = 1): an upgrade leaves the running daemon alone.
set -e
case "$1" in
remove | 0)
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl stop pbirefresh.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
