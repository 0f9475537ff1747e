#!/usr/bin/env bash
# Installs what Sentio's tests and benchmarks need on a fresh Debian machine, idempotently.
# Nothing is left running here: the tests start their own Sentio nodes on loopback port 0, and
# `sentio bench broker` starts its own mosquitto (the peer it is measured against) on a free
# loopback port. (The scale-out issues add PostgreSQL and nats-server here.)
# The dashboard's browser tests use Debian's chromium driven by playwright-core, installed with
# npm into tests/browser/ at the version whose Chromium matches Debian's (no browser download).
set -euo pipefail

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The edge clock test runs an edge an hour ahead with libfaketime (package faketime).
command -v faketime >/dev/null 2>&1 || need+=(faketime)

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
if ((${#need[@]})); then
  echo "services.sh: installing ${need[*]}"
  $sudo apt-get update -qq
  # policy-rc.d 101: the package must not start its own mosquitto on 1883 (Sentio's port).
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ "$created_policy" = 1 ] && $sudo rm -f "$policy"
fi
# Whatever the package did: no system mosquitto service on 1883.
if command -v systemctl >/dev/null 2>&1 && systemctl list-unit-files mosquitto.service >/dev/null 2>&1; then
  $sudo systemctl disable --now mosquitto.service >/dev/null 2>&1 || true
fi
if command -v service >/dev/null 2>&1 && [ -e /etc/init.d/mosquitto ]; then
  $sudo service mosquitto stop >/dev/null 2>&1 || true
  command -v update-rc.d >/dev/null 2>&1 && { $sudo update-rc.d mosquitto disable >/dev/null 2>&1 || true; }
fi
# The paho-mqtt Python client (MQTT over WebSocket tests), from PyPI if missing.
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import paho.mqtt.client' >/dev/null 2>&1; then
  echo "services.sh: installing paho-mqtt (pip)"
  python3 -m pip install -q paho-mqtt >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages paho-mqtt >/dev/null 2>&1 \
    || echo "services.sh: could not install paho-mqtt; its tests will be skipped"
fi
# playwright-core and axe-core, pinned in tests/browser/package-lock.json (npm ci: exactly
# those versions).
browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if command -v npm >/dev/null 2>&1 && [ -f "$browser_dir/package-lock.json" ]; then
  for pkg in playwright-core axe-core; do
    pinned=$(node -p "require('$browser_dir/package-lock.json').packages['node_modules/$pkg'].version")
    installed=$(node -p "require('$browser_dir/node_modules/$pkg/package.json').version" 2>/dev/null || true)
    if [ "$pinned" != "$installed" ]; then
      echo "services.sh: installing playwright-core and axe-core (npm ci in tests/browser)"
      (cd "$browser_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
        || echo "services.sh: could not install them; the browser tests will fail under CI=true"
      break
    fi
  done
fi
echo "services.sh: $(mosquitto_pub --help 2>&1 | sed -n 2p)"
echo "services.sh: $( (mosquitto -h 2>&1 || /usr/sbin/mosquitto -h 2>&1 || true) | sed -n 1p)"
echo "services.sh: paho-mqtt $(python3 -c 'import paho.mqtt; print(paho.mqtt.__version__)' 2>/dev/null || echo missing)"
echo "services.sh: $( (/usr/bin/chromium --version 2>/dev/null || echo 'chromium missing') | head -n1), node $(node --version 2>/dev/null || echo missing), playwright-core $(cd "$browser_dir" && node -p 'require("./node_modules/playwright-core/package.json").version' 2>/dev/null || echo missing), axe-core $(cd "$browser_dir" && node -p 'require("./node_modules/axe-core/package.json").version' 2>/dev/null || echo missing)"
