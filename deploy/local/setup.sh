#!/usr/bin/env bash
# Make this machine ready to run the hub: Debian packages for the servers and the JDK tools,
# the hub's Python packages, Kafka's jars (through `hub services up`), then start the servers.
# Safe to run again: each step is skipped when its work is already done.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || missing+=(postgresql)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v wrk >/dev/null || missing+=(wrk)  # the settle benchmark's load generator
command -v chromium >/dev/null || missing+=(chromium)  # headless checks of the status page and the portal
command -v chromedriver >/dev/null || missing+=(chromium-driver)  # drives it for the portal's browser tests (Selenium)
command -v npm >/dev/null || missing+=(nodejs npm)  # the deploy manifests' CRD check (deploy/check)
# Pool names are Chinese: without a CJK font the browser checks' screenshots show empty boxes.
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m pip --version >/dev/null 2>&1 || { echo "python3 with pip is required" >&2; exit 1; }
echo "installing the hub's Python packages (a no-op when they are current)"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
command -v pyenv >/dev/null && pyenv rehash || true
if [ ! -d deploy/check/node_modules ] || [ deploy/check/package-lock.json -nt deploy/check/node_modules ]; then
  echo "installing the deploy check's npm packages (the Strimzi and Prometheus-operator CRD schemas)"
  (cd deploy/check && npm ci --no-audit --no-fund --silent && touch node_modules)
fi
if [ ! -d deploy/portal-assets/node_modules ] || [ deploy/portal-assets/package-lock.json -nt deploy/portal-assets/node_modules ]; then
  echo "installing the bureau portal's npm packages (Apache ECharts)"
  (cd deploy/portal-assets && npm ci --no-audit --no-fund --silent && touch node_modules)
fi

python3 -m hub.cli services up
