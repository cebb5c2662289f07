# Sourced by scripts/run and scripts/test: installs the system packages a command needs on
# Debian/Ubuntu, or says exactly what to install.
# Usage: need_packages <command-or-path>=<debian-package> ...

need_packages() {
  local missing=() pair probe package
  for pair in "$@"; do
    probe=${pair%%=*}
    package=${pair#*=}
    if [[ $probe == /* ]]; then
      [[ -x $probe ]] && continue
    else
      command -v "$probe" >/dev/null 2>&1 && continue
    fi
    missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) == 0 ]]; then
    echo "installing ${missing[*]} (apt-get)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    echo "installing ${missing[*]} (sudo apt-get)" >&2
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}

need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "missing: the Rust toolchain (cargo); install it with rustup, then rerun" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    return 1
  fi
}

# The store tests need a PostgreSQL server: WA_TEST_DATABASE_URL, or the local one at
# 127.0.0.1:5432 as user postgres. Starts the local cluster when it is installed but stopped;
# installs it (Debian's postgresql) when there is none.
need_postgres() {
  local url=${WA_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  if [[ -z ${WA_TEST_DATABASE_URL:-} ]]; then
    need_packages pg_isready=postgresql-client
    if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
      if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        need_packages pg_ctlcluster=postgresql
      fi
      local version
      version=$(ls /etc/postgresql | head -1)
      echo "starting PostgreSQL $version" >&2
      if [[ $(id -u) == 0 ]]; then
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      else
        sudo -n pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
      fi
      for _ in $(seq 1 50); do
        pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break
        sleep 0.2
      done
    fi
  fi
  if ! psql "$url" -qAtc 'select 1' >/dev/null 2>&1; then
    echo "missing: a PostgreSQL server that accepts $url" >&2
    echo "  the local server must trust 127.0.0.1 for user postgres (pg_hba.conf: host all all 127.0.0.1/32 trust)," >&2
    echo "  or point WA_TEST_DATABASE_URL at a server where the user may create databases" >&2
    return 1
  fi
}

# The mail tests run a real SMTP server: Python 3 with aiosmtpd.
need_aiosmtpd() {
  need_packages python3=python3
  python3 -c 'import aiosmtpd' 2>/dev/null && return 0
  echo "installing aiosmtpd (pip)" >&2
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd 2>/dev/null ||
    need_packages /usr/lib/python3/dist-packages/aiosmtpd=python3-aiosmtpd
  python3 -c 'import aiosmtpd' 2>/dev/null || {
    echo "missing: the Python package aiosmtpd for $(command -v python3); install it with: python3 -m pip install aiosmtpd" >&2
    return 1
  }
}
