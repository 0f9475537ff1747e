#!/usr/bin/env bash
# Installs what Sentio's tests need on a fresh Debian machine, idempotently. Nothing is started
# here yet: the tests start their own Sentio nodes on loopback port 0. (The scale-out issues add
# PostgreSQL and nats-server here; the broker benchmark adds mosquitto as the peer.)
set -euo pipefail

need=()
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)

if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "services.sh: installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "services.sh: $(mosquitto_pub --help 2>&1 | sed -n 2p)"
