#!/usr/bin/env bash
# Installs the Debian packages the project needs, where they are missing:
#   dataset-fashion-mnist  -- the default data (/usr/share/datasets/fashion-mnist)
#   chromium chromium-driver -- the headless browser for the book's page tests
#   poppler-utils          -- pdfunite, pdfinfo and pdftotext: the book's PDF is merged from the
#                             pages Chromium prints, and checked (rmqm.study.pdf)
# Needs root and apt-get; elsewhere it says what to install and carries on
# (the tests then fall back to scikit-learn's digits and skip the browser checks and the PDF).
set -u
want=()
[ -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || want+=(dataset-fashion-mnist)
if [ "${RMQM_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
  command -v pdfunite >/dev/null 2>&1 || want+=(poppler-utils)
fi
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null \
    || echo "warning: apt-get could not install ${want[*]}" >&2
else
  echo "note: missing Debian packages ${want[*]}; install them with" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${want[*]}" >&2
fi
exit 0
