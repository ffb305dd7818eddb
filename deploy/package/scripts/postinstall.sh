#!/bin/sh
# pbirefresh after install or upgrade (deb: configure; rpm: $1 = 1 or 2).
# systemd rereads its units so that it sees the packaged one. The service
# is left as the administrator set it: edit /etc/pbirefresh/pbirefresh.yaml,
# then turn it on as the README says. Nothing is done when systemd is not
# running, or when dpkg installs into another root (DPKG_ROOT).
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
