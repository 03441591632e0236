#!/usr/bin/env bash
# Print the path of a Python interpreter of the wanted version: `find-python.sh 3.10` for
# exactly 3.10 (the Rasa engine), `find-python.sh 3.11+` for 3.11 or newer (the app).
set -euo pipefail
want=${1:?usage: find-python.sh 3.10|3.11+}

version_ok() {  # $1 = interpreter
  "$1" - "$want" <<'PY' 2>/dev/null
import sys
want = sys.argv[1]
have = sys.version_info[:2]
if want.endswith("+"):
    major, minor = map(int, want[:-1].split("."))
    sys.exit(0 if have >= (major, minor) else 1)
major, minor = map(int, want.split("."))
sys.exit(0 if have == (major, minor) else 1)
PY
}

candidates=()
if [[ $want == *+ ]]; then
  candidates+=(python3.11 python3.12 python3.13 python3)
else
  candidates+=("python$want")
fi
for name in "${candidates[@]}"; do
  path=$(command -v "$name" 2>/dev/null) || continue
  if version_ok "$path"; then echo "$path"; exit 0; fi
done
# pyenv installs that its shims do not expose in this folder
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
base=${want%+}
for path in "$root"/versions/"$base"*/bin/python"$base" "$root"/versions/3.1[1-9]*/bin/python3; do
  [[ -x $path ]] || continue
  if version_ok "$path"; then echo "$path"; exit 0; fi
done
if [[ $want == *+ ]]; then
  echo "No Python $want found. Install Python 3.11 or newer (e.g. apt-get install python3.11, or pyenv install 3.11)." >&2
else
  echo "No Python $want found: the Rasa 3.6 engine needs exactly Python $want. Install it (e.g. pyenv install $want.13, or apt-get install python$want python$want-venv)." >&2
fi
exit 1
