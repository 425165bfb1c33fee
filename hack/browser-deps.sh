#!/usr/bin/env bash
# Browser of the HTML report's tests: Debian's Chromium (and ChromeDriver, its WebDriver), driven
# headless over the DevTools protocol. Installs the Debian packages that are missing (as root);
# does nothing when they are there. Without Chromium the browser tests fail and say so.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "browser-deps: missing ${missing[*]}; run as root (or apt-get install -y ${missing[*]})" >&2
  exit 1
fi
echo "browser-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
