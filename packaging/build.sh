#!/usr/bin/env bash
# `make exe`: builds dist/lockr-local (PyInstaller) from a staged install of the project.
# Uses .venv (creating it if needed) with the project's `package` (PyInstaller), `postgres` and `s3` extras.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ -x "$VENV/Scripts/python.exe" ]; then VPY="$VENV/Scripts/python.exe"; else VPY="$VENV/bin/python"; fi

if [ ! -x "$VPY" ]; then
    "$PYTHON" -m venv "$VENV"
    if [ -x "$VENV/Scripts/python.exe" ]; then VPY="$VENV/Scripts/python.exe"; fi
    "$VPY" -m pip install --quiet --upgrade pip
fi
# The runtime dependencies, the PostgreSQL and S3 drivers (the executable runs a node as is) and PyInstaller,
# from pyproject.toml (editable, as `make test` installs it).
if ! "$VPY" -c "import PyInstaller, lockr_local, psycopg_binary, boto3" >/dev/null 2>&1 \
        || [ pyproject.toml -nt "$VENV/.package-installed" ]; then
    "$VPY" -m pip install --quiet -e '.[package,postgres,s3]'
    touch "$VENV/.package-installed"
fi

# A real (non-editable) install of our own code, so PyInstaller sees the layout a wheel has:
# lockr_local.server/.sync/.tray as plain subpackages, with their templates and static files.
STAGE=build/exe/stage
rm -rf "$STAGE" build/lib build/bdist.*  # a stale build/lib would smuggle deleted modules into the stage
mkdir -p build/exe
if ! "$VPY" -m pip install --no-deps --no-compile --target "$STAGE" . >build/exe/stage.log 2>&1; then
    cat build/exe/stage.log >&2
    exit 1
fi
rm -rf build/lib build/bdist.* ./*.egg-info  # what the wheel build leaves in the source tree

# The licenses of everything bundled, from the distributions installed in this environment (the ones
# PyInstaller collects): the spec puts the file inside the executable, and below it is copied next to it.
NOTICES=build/exe/THIRD-PARTY-NOTICES.txt
"$VPY" packaging/notices.py --output "$NOTICES"

start=$(date +%s)
# PyInstaller's pystray hook imports pystray, which would pick a real backend and open the display.
export PYSTRAY_BACKEND=dummy
LOCKR_STAGE="$STAGE" LOCKR_NOTICES="$NOTICES" "$VPY" -m PyInstaller --noconfirm --log-level WARN \
    --distpath dist --workpath build/exe/work packaging/lockr-local.spec
elapsed=$(( $(date +%s) - start ))
if [ -d dist/lockr-local ]; then cp "$NOTICES" dist/lockr-local/; else cp "$NOTICES" dist/; fi

for artifact in dist/lockr-local dist/lockr-local.exe dist/lockr-local/lockr-local dist/lockr-local/lockr-local.exe; do
    if [ -f "$artifact" ]; then
        size=$(du -sh "$(dirname "$artifact")/$(basename "$artifact")" | cut -f1)
        total=$(du -sh "$( [ -d dist/lockr-local ] && echo dist/lockr-local || echo "$artifact")" | cut -f1)
        echo "built $artifact in ${elapsed}s: executable $size, distribution $total"
        exit 0
    fi
done
echo "build.sh: PyInstaller produced no lockr-local executable in dist/" >&2
exit 1
