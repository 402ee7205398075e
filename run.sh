#!/usr/bin/env bash
# One entry point for humans and CI. On a fresh machine it installs everything it needs.
#   ./run.sh examples   the example suite (docs/examples): the plugin at work
#   ./run.sh tests      the full test suite (what CI runs)
#   ./run.sh stress     the full test suite while two busy loops hold two CPUs
#   ./run.sh lint       ruff + mypy --strict
#   ./run.sh tox        the full suite (not tests/fidelity) on Python 3.10-3.13, one after the other
#   ./run.sh bench      the benchmarks against the peers (prints figures)
#   ./run.sh docs       the documentation site into site/ (mkdocs build --strict)
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

debian_tools() {
  # Tools the tests drive as independent clients/servers; a test that needs one fails
  # (never skips) under CI when it is missing.
  local want=()
  command -v swaks >/dev/null 2>&1 || want+=(swaks)
  command -v dig >/dev/null 2>&1 || want+=(dnsutils)
  [ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null 2>&1 || want+=(dovecot-imapd dovecot-pop3d)
  # Postfix: private instances for MailNetwork.add_postfix and the fidelity differential
  # (tests/fidelity, in a network namespace: unshare from util-linux, ip from iproute2).
  [ -x /usr/sbin/postfix ] || command -v postfix >/dev/null 2>&1 || want+=(postfix)
  command -v ip >/dev/null 2>&1 || want+=(iproute2)
  command -v chromium >/dev/null 2>&1 || want+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
  if [ ${#want[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      # No system Postfix: "No configuration" (no main.cf) and no service started during the
      # install (policy-rc.d 101), so nothing takes port 25 from the tests.
      echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
      local policy=/usr/sbin/policy-rc.d made=""
      if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made=1
      fi
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
      if [ -n "$made" ]; then rm -f "$policy"; fi
    else
      echo "run.sh: please install ${want[*]} (Debian packages) for the external-tool tests" >&2
    fi
  fi
}

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  if ! "$PY" -c "import pytest_smtp, xdist, pytest_timeout, mypy, ruff" >/dev/null 2>&1 \
     || [ pyproject.toml -nt "$VENV/.installed" ]; then
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e '.[test,lint]'
    touch "$VENV/.installed"
  fi
  debian_tools
}

docs_setup() {
  # The docs need the package (the API pages read its docstrings; one is completed at import
  # time) and the docs extra only: no test tools, no Debian packages.
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  if ! "$PY" -c "import pytest_smtp, mkdocs, material, mkdocstrings_handlers.python" \
       >/dev/null 2>&1 || [ pyproject.toml -nt "$VENV/.installed-docs" ]; then
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e '.[docs]'
    touch "$VENV/.installed-docs"
  fi
}

cmd=${1:-tests}
shift || true
case "$cmd" in
  examples) setup; exec "$PY" -m pytest docs/examples -p no:cacheprovider "$@" ;;
  tests)    setup; exec "$PY" -m pytest -n 2 "$@" ;;
  stress)   setup
            # Two CPU burners for the duration of the suite: a timing bound that fails here
            # has less than the 10x margin docs/development.md asks for.
            burners=()
            trap 'kill "${burners[@]}" 2>/dev/null || true' EXIT
            for _ in 1 2; do
              "$PY" -c 'while True: pass' &
              burners+=($!)
            done
            started=$SECONDS
            status=0
            "$PY" -m pytest -n 2 "$@" || status=$?
            echo "run.sh stress: suite took $((SECONDS - started)) s under 2 busy loops (exit $status)"
            exit "$status" ;;
  lint)     setup
            "$VENV/bin/ruff" check .
            "$VENV/bin/ruff" format --check .
            "$VENV/bin/mypy" ;;
  tox)      setup
            "$PY" -m pip install -q tox
            # Make python3.10 ... python3.13 findable (pyenv keeps them under versions/).
            root=${PYENV_ROOT:-$HOME/.pyenv}
            for v in 3.13 3.12 3.11 3.10; do
              for d in "$root"/versions/$v.*/bin; do
                [ -x "$d/python$v" ] && PATH="$d:$PATH"
              done
            done
            export PATH
            # One version at a time: each run is already pytest -n 2 on the two cores.
            exec "$PY" -m tox "$@" ;;
  bench)    setup
            "$PY" -m pip install -q -e '.[bench]'
            exec "$PY" bench/run_all.py "$@" ;;
  docs)     docs_setup
            # Warnings are errors (mkdocs.yml: strict, validation): a broken link or anchor, a
            # page missing from the nav, a docstring reference griffe cannot read.
            export NO_MKDOCS_2_WARNING=1
            started=$SECONDS
            "$VENV/bin/mkdocs" build --strict --clean "$@"
            echo "run.sh docs: site/ built in $((SECONDS - started)) s" ;;
  *) echo "usage: ./run.sh examples|tests|stress|lint|tox|bench|docs" >&2; exit 2 ;;
esac
