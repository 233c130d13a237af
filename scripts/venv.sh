#!/usr/bin/env bash
# Creates the repo-local, git-ignored virtualenv .venv/ with the pinned tools of
# tools/requirements.txt, at the versions of tools/constraints.txt. Re-runs are cheap: it
# reinstalls only when either file changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
req="$root/tools/requirements.txt"
constraints="$root/tools/constraints.txt"
stamp="$venv/.requirements.sha256"
want="$(cat "$req" "$constraints" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "setting up $venv (pinned tools from tools/requirements.txt)..." >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" -c "$constraints"
echo "$want" > "$stamp"
