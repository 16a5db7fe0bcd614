#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo drive, when missing and we are root.
# Not root: print what is missing and how to install it, and stop.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# The browser tests drive Debian's Chromium (never a downloaded one); Chinese needs a CJK font.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
# The clustered-broker tests start their own nats-server nodes (MQTT on JetStream).
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
# `gridvend cloud backup`/`restore` on PostgreSQL run pg_dump/pg_restore (and their tests do).
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "gridvend: installing Debian packages: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  # Debian starts mosquitto as a service on install; the tests start their own brokers.
else
  echo "gridvend: these system packages are missing: ${need[*]}" >&2
  echo "install them, for example:  sudo apt-get install ${need[*]}" >&2
  exit 1
fi
