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
