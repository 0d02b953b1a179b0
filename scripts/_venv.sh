# Sourced by scripts/*.sh: create .venv with Python >= 3.11 if missing and install orchestrate into it.
# ORCHESTRATE_EXTRAS picks the extras (default `dev`; CI adds `ray` so the Ray tests run there);
# extras installed once stay installed.
VENV="${ORCHESTRATE_VENV:-$PWD/.venv}"
EXTRAS="$(printf '%s\n' $(cat "$VENV/.installed" 2>/dev/null) ${ORCHESTRATE_EXTRAS:-dev} \
  | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
if [ ! -x "$VENV/bin/orchestrate" ] || [ pyproject.toml -nt "$VENV/.installed" ] ||
   [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$EXTRAS" ]; then
  PY=""
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
  [ -n "$PY" ] || { echo "orchestrate needs Python >= 3.11 on PATH" >&2; exit 2; }
  echo "== installing orchestrate and its dependencies into $VENV (once; about a minute)" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
  echo "$EXTRAS" > "$VENV/.installed"
  echo "== installed" >&2
fi
export PATH="$VENV/bin:$PATH"
