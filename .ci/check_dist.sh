#!/usr/bin/env bash
# Release hygiene: build the sdist and the wheel as a release would, then install each into a
# fresh venv and use it from outside the source tree.
#
#   bash .ci/check_dist.sh [PYTHON]      (PYTHON defaults to `python`)
#
# Checks: `python -m build` makes exactly one wheel and one sdist; the wheel holds every
# asgi_sansio/**/*.py of the source tree (a subpackage missing from pyproject's `packages` is
# caught here), py.typed, and nothing outside asgi_sansio/ and its dist-info; installed from
# either artefact (the wheel with the trio extra), asgi_sansio and asgi_sansio.asyncio import
# from the venv (not the tree), every other module imports unless it needs an optional extra, the installed version is
# asgi_sansio.__version__, and `python -m asgi_sansio --help` and `asgi-sansio --help` work.
#
# Everything is built in a temporary directory from a copy of the tree (the files git tracks or
# would track), so no build/, dist/ or *.egg-info is left behind.  Exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${1:-python}
command -v "$PYTHON" >/dev/null 2>&1 || { echo "check_dist: no Python '$PYTHON'" >&2; exit 2; }

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off
TMP=$(mktemp -d "${TMPDIR:-/tmp}/asgi-sansio-dist.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

STEP_START=$SECONDS
step() {
    printf '\n--- %s\n' "$*"
    STEP_START=$SECONDS
}
took() { printf '(%ss)\n' "$((SECONDS - STEP_START))"; }
die() { printf 'check_dist: FAILED: %s\n' "$*" >&2; exit 1; }

# --- a copy of the source tree -----------------------------------------------------------------
step "copy the source tree ($("$PYTHON" -VV | head -n 1))"
SRC=$TMP/src
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files and untracked ones not ignored: what the next commit could hold.
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
        xargs -0 cp --parents -t "$SRC")
else
    (cd "$ROOT" && tar --exclude=.git --exclude=build --exclude=dist --exclude='*.egg-info' \
        --exclude=__pycache__ -cf - .) | tar -xf - -C "$SRC"
fi
# The modules the wheel must hold, as paths relative to the tree ("asgi_sansio/x.py").
mapfile -t MODULES < <(cd "$SRC" && find asgi_sansio -name '*.py' -not -path '*/__pycache__/*' |
                       LC_ALL=C sort)
((${#MODULES[@]})) || die "no asgi_sansio/**/*.py in $ROOT"
echo "${#MODULES[@]} modules under asgi_sansio/"
took

# --- build -------------------------------------------------------------------------------------
step "python -m build"
"$PYTHON" -m venv "$TMP/build-env"
"$TMP/build-env/bin/python" -m pip install -q build
"$TMP/build-env/bin/python" -m build --outdir "$TMP/dist" "$SRC" >"$TMP/build.log" 2>&1 ||
    { tail -n 40 "$TMP/build.log" >&2; die "python -m build"; }
shopt -s nullglob
wheels=("$TMP"/dist/*.whl)
sdists=("$TMP"/dist/*.tar.gz)
shopt -u nullglob
((${#wheels[@]} == 1)) || die "expected one wheel, got: ${wheels[*]:-none}"
((${#sdists[@]} == 1)) || die "expected one sdist, got: ${sdists[*]:-none}"
WHEEL=${wheels[0]}
SDIST=${sdists[0]}
ls -l "$TMP/dist"
took

# --- what the artefacts hold -------------------------------------------------------------------
step "contents of the wheel and the sdist"
"$TMP/build-env/bin/python" - "$WHEEL" "$SDIST" "${MODULES[@]}" <<'EOF' || die "the artefacts (above)"
import sys
import tarfile
import zipfile

wheel, sdist, *modules = sys.argv[1:]
problems = []
names = set(zipfile.ZipFile(wheel).namelist())
for module in modules:
    if module not in names:
        problems.append(f"the wheel lacks {module}")
if "asgi_sansio/py.typed" not in names:
    problems.append("the wheel lacks asgi_sansio/py.typed")
stray = sorted(
    n for n in names
    if not n.startswith("asgi_sansio/") and not n.split("/")[0].endswith(".dist-info")
)
if stray:
    problems.append(f"the wheel holds files outside the package: {stray}")
if any("__pycache__" in n or n.endswith(".pyc") for n in names):
    problems.append("the wheel holds bytecode")
with tarfile.open(sdist) as tar:
    # "asgi_sansio-0.1.0.dev0/asgi_sansio/x.py" -> "asgi_sansio/x.py"
    in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
for needed in [*modules, "asgi_sansio/py.typed", "pyproject.toml", "README.md", "LICENSE"]:
    if needed not in in_sdist:
        problems.append(f"the sdist lacks {needed}")
for problem in problems:
    print("check_dist:", problem, file=sys.stderr)
print(f"wheel: {len(names)} files; sdist: {len(in_sdist)} files")
sys.exit(1 if problems else 0)
EOF
took

# --- install each artefact into a fresh venv and use it ----------------------------------------
check_install() {
    local name=$1 requirement=$2 venv=$TMP/venv-$1
    step "install the $name into a fresh venv: pip install $(basename "$requirement")"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "$requirement" || die "pip install the $name"
    took
    step "use the installed $name"
    # From an empty directory, so the source tree cannot shadow the installed package.
    mkdir -p "$TMP/elsewhere"
    (cd "$TMP/elsewhere" && "$venv/bin/python" - "$venv" "${MODULES[@]}" <<'EOF'
import importlib
import importlib.metadata
import importlib.resources
import os
import sys

venv, *modules = sys.argv[1:]
import asgi_sansio
import asgi_sansio.asyncio

problems = []
where = os.path.realpath(asgi_sansio.__file__)
if not where.startswith(os.path.realpath(venv) + os.sep):
    problems.append(f"asgi_sansio imported from {where}, not from the venv")
installed = importlib.metadata.version("asgi-sansio")
if installed != asgi_sansio.__version__:
    problems.append(f"installed {installed} but asgi_sansio.__version__ is "
                    f"{asgi_sansio.__version__}")
if not importlib.resources.files("asgi_sansio").joinpath("py.typed").is_file():
    problems.append("py.typed is not installed")


def missing_dependency(exc: BaseException | None) -> str | None:
    """The third-party module whose absence caused ``exc``, if any: an optional extra (a
    module may re-raise it as a friendlier ImportError, hence the walk down the causes)."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            top = exc.name.split(".")[0]
            return None if top == "asgi_sansio" else exc.name
        exc = exc.__cause__ or exc.__context__
    return None


skipped = []
for path in modules:
    name = path[: -len(".py")].replace("/", ".").removesuffix(".__init__")
    if name == "asgi_sansio.__main__":
        continue  # runs the CLI: checked with --help below
    try:
        importlib.import_module(name)
    except Exception as exc:
        dependency = missing_dependency(exc)
        if dependency:
            skipped.append(f"{name} (needs {dependency})")
        else:
            problems.append(f"import {name}: {exc!r}")
for problem in problems:
    print("check_dist:", problem, file=sys.stderr)
print(f"asgi-sansio {installed} from {where}")
if skipped:
    print("not imported, optional dependency missing:", ", ".join(skipped))
sys.exit(1 if problems else 0)
EOF
    ) || die "the installed $name"
    (cd "$TMP/elsewhere" && "$venv/bin/python" -m asgi_sansio --help >"$TMP/help.txt") ||
        die "python -m asgi_sansio --help (from the $name)"
    grep -q -- "--driver" "$TMP/help.txt" || die "--help from the $name does not show --driver"
    (cd "$TMP/elsewhere" && "$venv/bin/asgi-sansio" --help >/dev/null) ||
        die "asgi-sansio --help (the console script, from the $name)"
    echo "python -m asgi_sansio --help and asgi-sansio --help: OK"
    took
}

# The wheel with the trio extra, so asgi_sansio.trio is imported too; the sdist bare, so the
# core and the asyncio driver are shown to need no extra.
check_install wheel "$WHEEL[trio]"
check_install sdist "$SDIST"

printf '\ncheck_dist: OK in %ss: %s, %s\n' "$SECONDS" "$(basename "$WHEEL")" "$(basename "$SDIST")"
