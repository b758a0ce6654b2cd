#!/usr/bin/env bash
# Mutation testing (mutmut) of one module against a narrow, fast test selection. Slow: not run by CI.
#
#   scripts/mutation.sh MODULE TEST [TEST...]
#   scripts/mutation.sh stemfill/generate/controls.py tests/test_controls.py
#
# Works on a temporary copy of the tracked files (mutmut writes a mutants/ folder beside the code), runs
# `mutmut run` there under `nice -n 10` with one worker per CPU, and prints the counts (killed, survived,
# no tests, timeout) and the score = killed / (mutants that some test runs). The survivors are listed with
# `mutmut results` and shown with `mutmut show NAME` in the copy (its path is printed; it is kept for
# that, delete it after). Needs the `dev` extra: pip install -e ".[dev]". The score table is in
# docs/benchmarks.md, "Mutation testing".
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
module=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -f "$root/$module" ] || { echo "error: $module: no such file" >&2; exit 2; }
for t in "$@"; do [ -e "$root/${t%%::*}" ] || { echo "error: $t: no such test file" >&2; exit 2; }; done
"$py" -c "import mutmut" 2>/dev/null || { echo "error: mutmut is not installed: pip install -e '.[dev]'" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/stemfill-mutation.XXXXXX")
(cd "$root" && git ls-files -z stemfill tests pyproject.toml | xargs -0 cp --parents -t "$work")
tests=$(printf '    %s\n' "$@")
cat > "$work/setup.cfg" <<CFG
[mutmut]
source_paths = stemfill
only_mutate = $module
pytest_add_cli_args_test_selection =
$tests
pytest_add_cli_args =
    -p
    no:cacheprovider
    -o
    addopts=
    --timeout=300
CFG
echo "mutation: $module against $* (copy: $work)" >&2
cd "$work"
start=$(date +%s)
OMP_NUM_THREADS=1 nice -n 10 "$py" -m mutmut run --max-children "$(nproc)" >mutmut-run.log 2>&1 || {
  tail -20 mutmut-run.log >&2; echo "error: mutmut run failed (log: $work/mutmut-run.log)" >&2; exit 1; }
"$py" -m mutmut export-cicd-stats >/dev/null
"$py" - "$module" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
s = json.load(open("mutants/mutmut-cicd-stats.json"))
tested = s["killed"] + s["survived"] + s.get("timeout", 0) + s.get("suspicious", 0)
score = (s["killed"] + s.get("timeout", 0)) / tested if tested else float("nan")
print(f"| {sys.argv[1]} | {s['total']} | {s['killed']} | {s['survived']} | {s.get('no_tests', 0)} | "
      f"{s.get('timeout', 0)} | {score:.0%} | {sys.argv[2]} s |")
PY
