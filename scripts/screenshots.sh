#!/usr/bin/env bash
# Screenshots for the README: the Dagster asset graph after a full materialization and the MLflow
# run page of the model in Production. Everything runs in a temp dir (storage, MLflow database,
# DAGSTER_HOME); only docs/images/*.png are written in the repo.
#
#   make screenshots            # or: bash scripts/screenshots.sh
#
# Needs Debian's chromium (apt-get install chromium) or CHROMIUM=/path/to/chrome.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
export PATH="$REPO/.venv/bin:$PATH"
export NML_DISABLE_USAGE_LOGGING=1 GIT_PYTHON_REFRESH=quiet
OUT="${OUT:-$REPO/docs/images}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
WAIT_MS="${WAIT_MS:-20000}"   # virtual time budget per page: both UIs are JavaScript apps
[ -n "$CHROMIUM" ] || { echo "chromium not found: apt-get install -y chromium (or set CHROMIUM=)" >&2; exit 2; }

WORK="$(mktemp -d -t ticket-urgency-screens.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

export TICKET_URGENCY_STORAGE="$WORK/data"
export MLFLOW_TRACKING_URI="sqlite:///$WORK/mlflow.db"
export DAGSTER_HOME="$WORK/dagster_home"
export TICKET_URGENCY_DRIFT_MIN_ROWS=100
mkdir -p "$DAGSTER_HOME" "$OUT"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
free_port() { python -c 'from ticket_urgency.testing import free_port; print(free_port())'; }
wait_http() {  # url, seconds
  for _ in $(seq 1 "$2"); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 1; done
  echo "timed out waiting for $1" >&2; return 1
}
shoot() {  # url, png, [window size]
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-background-networking --disable-component-update --disable-sync --no-first-run \
    --hide-scrollbars --user-data-dir="$WORK/chromium" --window-size="${3:-1600,1000}" \
    --virtual-time-budget="$WAIT_MS" --screenshot="$2" "$1" >"$WORK/chromium.log" 2>&1
  echo "wrote $2"
}

step "small synthetic data in $WORK"
ticket-urgency generate --out "$WORK/gen" --rows 1200 --new-rows 600 --drift all --seed 1
ticket-urgency upload --reference "$WORK/gen/tickets.csv" --new "$WORK/gen/new_tickets.csv"

step "materialize the whole asset graph (DAGSTER_HOME=$DAGSTER_HOME)"
dagster asset materialize -m dagster_project --select '*' >"$WORK/materialize.log" 2>&1 \
  || { tail -40 "$WORK/materialize.log" >&2; exit 1; }
grep -E "RUN_SUCCESS|Finished execution" "$WORK/materialize.log" | tail -1 || true

step "start dagster-webserver and mlflow server"
DPORT="$(free_port)"
MPORT="$(free_port)"
dagster-webserver -m dagster_project -h 127.0.0.1 -p "$DPORT" >"$WORK/dagster.log" 2>&1 &
PIDS+=($!)
# MLflow on 127.0.0.2 (still loopback): its UI opens the assistant side panel for a server it
# sees as local, which would hide half of the run page.
MHOST=127.0.0.2
mlflow server --backend-store-uri "$MLFLOW_TRACKING_URI" --host "$MHOST" --port "$MPORT" \
  --allowed-hosts "$MHOST:$MPORT,$MHOST" --workers 1 >"$WORK/mlflow.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$DPORT/server_info" 180
wait_http "http://$MHOST:$MPORT/health" 180
# Dagster shows a one-time "join the community" dialog on localhost: mark it as seen.
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$DPORT/graphql" -H 'Content-Type: application/json' \
  -d '{"query":"mutation SetNuxSeen { setNuxSeen }"}'

# The training run behind the model version in Production.
read -r EXP_ID RUN_ID < <(python - <<'PY'
from ticket_urgency.mlflow_utils import client
from ticket_urgency.registry import production_version
from ticket_urgency.settings import get_settings

s = get_settings()
mv = production_version(s)
run = client(s).get_run(mv.run_id)
print(run.info.experiment_id, run.info.run_id)
PY
)
echo "Production run: experiment $EXP_ID, run $RUN_ID"

step "screenshots"
# Global asset lineage with every group expanded (the ids are global@global:<group>).
ASSET_GROUPS="$(python - 2>/dev/null <<'PY'
from urllib.parse import quote

from dagster_project import defs

graph = defs.resolve_asset_graph()
groups = sorted({graph.get(key).group_name for key in graph.get_all_asset_keys()})
print(quote(",".join(f"global@global:{g}" for g in groups if g), safe=""))
PY
)" || ASSET_GROUPS=""   # (GROUPS is a bash builtin variable: not that name)
shoot "http://127.0.0.1:$DPORT/asset-groups?expanded=$ASSET_GROUPS" "$OUT/dagster_asset_graph.png" 1600,1200
shoot "http://$MHOST:$MPORT/#/experiments/$EXP_ID/runs/$RUN_ID" "$OUT/mlflow_run.png"
