#!/bin/sh
# pbirefresh after removal, purge or upgrade (deb: remove, purge, upgrade, ...;
# rpm: $1 = 0 or 1): systemd rereads its units, forgetting a removed one.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
