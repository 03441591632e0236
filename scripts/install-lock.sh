#!/usr/bin/env bash
# Install exact pinned packages into a virtualenv: `install-lock.sh VENV -r LOCK [pkg==x ...]`
# (the virtualenv may be made --without-pip: the lists install pip).
#
# With uv (pinned below, installed once under build/tools from the same indexes as pip) when it
# can be had: it installs the engine's lock in about half pip's time. uv does not read pip's
# configuration, so the indexes, find-links and constraints pip is configured with (pip.conf
# and PIP_* variables) are handed to it, and it is told to pick the same way pip does (the best
# match across all indexes). If uv cannot be had or fails, pip installs the same list.
# BARRI_NO_UV=1 forces pip.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$1
shift
UV_VERSION=0.13.10
tools=build/tools
uv=$tools/bin/uv

pip_install() {
  # a virtualenv made --without-pip (uv needs none) gets pip first
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip --upgrade --default-pip >/dev/null
  "$venv/bin/python" -m pip install --quiet --no-deps "$@"
}

have_uv() {
  [[ ${BARRI_NO_UV:-} != 1 ]] || return 1
  [[ -x $uv ]] && "$uv" --version 2>/dev/null | grep -q " $UV_VERSION\b" && return 0
  rm -rf "$tools"
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools" "uv==$UV_VERSION" \
    >/dev/null 2>&1 && [[ -x $uv ]]
}

# pip's own settings, as uv flags (pip config prints global/user/site values and PIP_* variables).
uv_flags_from_pip() {
  local key value
  while IFS='=' read -r key value; do
    value=${value#\'} value=${value%\'}
    case ${key##*.} in
      index-url) echo "--index-url=$value" ;;
      extra-index-url) for url in $value; do echo "--extra-index-url=$url"; done ;;
      find-links) for dir in $value; do echo "--find-links=$dir"; done ;;
      constraint) for file in $value; do [[ -f $file ]] && echo "--constraint=$file"; done ;;
    esac
  done < <(python3 -m pip config list 2>/dev/null)
}

if have_uv; then
  mapfile -t flags < <(uv_flags_from_pip | sort -u)
  if "$uv" pip install --quiet --no-deps --python "$venv/bin/python" --index-strategy unsafe-best-match \
       "${flags[@]}" "$@"; then
    exit 0
  fi
  echo "uv could not install $*: falling back to pip" >&2
fi
pip_install "$@"
