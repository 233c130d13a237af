#!/usr/bin/env bash
# Creates the repo-local, git-ignored virtualenv .venv/ with the pinned tools of
# tools/requirements.txt, at the versions of tools/constraints.txt, and .venv/checkov/ with
# checkov at the versions of tools/checkov/ (its pins and SAM CLI's conflict). Re-runs are
# cheap: each reinstalls only when its files changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# setup <venv> <requirements> <constraints>
setup() {
  local venv="$1" req="$2" constraints="$3"
  local stamp="$venv/.requirements.sha256"
  local want
  want="$(cat "$req" "$constraints" | sha256sum | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "setting up $venv (pinned tools from ${req#"$root"/})..." >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" -c "$constraints"
  echo "$want" > "$stamp"
}

setup "$root/.venv" "$root/tools/requirements.txt" "$root/tools/constraints.txt"
setup "$root/.venv/checkov" "$root/tools/checkov/requirements.txt" "$root/tools/checkov/constraints.txt"
