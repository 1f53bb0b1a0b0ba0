#!/usr/bin/env bash
# Create the throw-away virtual environments that hold the OFFICIAL jwst releases we compare
# against (jwst is never a dependency of coronalign). Idempotent: an environment whose jwst
# already imports at the right version is left alone.
#
#   VENV_ROOT=/some/dir bash benchmarks/official/make-venvs.sh [VERSION ...]
#
# Defaults: VERSION = 1.15.1 3.0.0; VENV_ROOT = /work/venvs if /work exists and is writable,
# else $HOME/.cache/coronalign-official. PYTHON (default python3) must be 3.11 or newer
# (jwst 3.0.0 needs >= 3.11). Each environment is $VENV_ROOT/jwst-<VERSION>.
#
# Measured on a 2-core machine with a warm pip cache absent: 1.15.1 about 26 s, 3.0.0 about 20 s
# (wheels only, nothing compiled). jwst 1.15.1 resolves to numpy 1.26.4 by itself (it declares
# numpy<2); 3.0.0 gets numpy 2.x. No extra pins were needed on 2026-11 package versions; pins
# can be added per version in PINS below if a later release of a dependency breaks an import.
set -euo pipefail

PYTHON="${PYTHON:-python3}"
if [[ -z "${VENV_ROOT:-}" ]]; then
    if [[ -d /work && -w /work ]]; then
        VENV_ROOT=/work/venvs
    else
        VENV_ROOT="$HOME/.cache/coronalign-official"
    fi
fi
VERSIONS=("$@")
if [[ ${#VERSIONS[@]} -eq 0 ]]; then
    VERSIONS=(1.15.1 3.0.0)
fi

# Extra requirements per jwst version (space separated pip specifiers), if ever needed.
# 1.16.0 and 1.16.1 (the first releases with the 3D CubeModel product) need none on Python 3.11.
declare -A PINS=(
    [1.15.1]="numpy<2"
    [3.0.0]=""
)

mkdir -p "$VENV_ROOT"
for v in "${VERSIONS[@]}"; do
    venv="$VENV_ROOT/jwst-$v"
    if [[ -x "$venv/bin/python" ]] &&
        "$venv/bin/python" -c "import jwst, sys; from jwst.coron import AlignRefsStep; sys.exit(jwst.__version__ != '$v')" 2>/dev/null; then
        echo "jwst $v: already installed in $venv"
        continue
    fi
    echo "jwst $v: creating $venv"
    start=$(date +%s)
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086  # PINS entries are word lists on purpose
    "$venv/bin/python" -m pip install --quiet "jwst==$v" ${PINS[$v]:-}
    "$venv/bin/python" -c "import jwst, numpy; from jwst.coron import AlignRefsStep; print('jwst', jwst.__version__, 'numpy', numpy.__version__)"
    echo "jwst $v: ready in $(($(date +%s) - start)) s"
done
