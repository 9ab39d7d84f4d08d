#!/usr/bin/env bash
# The main job: the whole loop on the embedded defaults (./data, sqlite:///mlflow.db).
# Every step is a plain `ticket-urgency` command or curl call, so you can repeat any of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export NML_DISABLE_USAGE_LOGGING=1
GEN_DIR="${DEMO_DIR:-demo}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "1. generate synthetic tickets (reference + drifted new data) into $GEN_DIR/"
ticket-urgency generate --out "$GEN_DIR" --rows 3000 --new-rows 1000 --drift all --seed 1

step "2. upload: validate, freeze the reference, append new data, rebuild combined"
ticket-urgency upload --reference "$GEN_DIR/tickets.csv" --new "$GEN_DIR/new_tickets.csv"

step "3. drift: NannyML univariate + multivariate drift of new vs reference (report under data/monitoring/)"
ticket-urgency drift || true   # exit code 0 (no --fail-on-drift): the verdict is printed

step "4. train on combined (reference + labelled new rows), log to MLflow, register a version"
ticket-urgency train

step "5. promote: champion/challenger gate -> stage Production + alias @production"
ticket-urgency promote

step "6. serve the Production model on port $PORT"
export TICKET_URGENCY_ADMIN_TOKEN="${TICKET_URGENCY_ADMIN_TOKEN:-demo-admin-token}"
ticket-urgency serve --port "$PORT" > "$GEN_DIR/serve.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fsS "localhost:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "localhost:$PORT/ready"; echo

step "7. predict with the original curl call"
curl -sS -X POST "localhost:$PORT/predict" -H "Content-Type: application/json" \
  -d '{"title": "Application running slow", "description": "Report export stuck at 80 percent for several minutes.", "source": "web", "customer_tier": "Gold"}'
echo

step "8. this week's tickets are served: 300 predictions through /predict/batch (logged to data/predictions/)"
ticket-urgency generate --out "$GEN_DIR/week2" --rows 10 --new-rows 1500 --drift topic --seed 2
python - "$GEN_DIR/week2" <<'PY'
import json, sys
import pandas as pd
d = pd.read_csv(f"{sys.argv[1]}/new_tickets.csv", dtype=str, keep_default_na=False)
served = d.head(300)
cols = ["ticket_id", "title", "description", "source", "customer_tier"]
with open(f"{sys.argv[1]}/batch.json", "w") as fh:
    json.dump({"tickets": served[cols].to_dict("records")}, fh)
served.to_csv(f"{sys.argv[1]}/late_labels.csv", index=False)   # the agents' verdicts, days later
d.iloc[300:].to_csv(f"{sys.argv[1]}/more_labelled.csv", index=False)
PY
curl -sS -o /dev/null -w "batch: HTTP %{http_code}\n" -X POST "localhost:$PORT/predict/batch" \
  -H "Content-Type: application/json" --data @"$GEN_DIR/week2/batch.json"
sleep 3   # the prediction log is flushed in batches, off the request path

step "9. served tickets become new data (unlabelled), then late labels arrive and more labelled data"
ticket-urgency ingest-predictions
ticket-urgency upload --new "$GEN_DIR/week2/late_labels.csv"
ticket-urgency upload --new "$GEN_DIR/week2/more_labelled.csv"

step "10. drift again: estimated (CBPE) and realized performance of the Production model"
ticket-urgency drift --json > "$GEN_DIR/drift.json" || true
python - "$GEN_DIR/drift.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r.get("model") or {}
print("drift_detected:", r.get("drift_detected"), "| status:", r.get("status"))
print("estimated performance:", json.dumps(m.get("estimated_performance"))[:300])
print("realized performance: ", json.dumps(m.get("realized_performance"))[:300])
PY

step "11. retrain on combined (reference + labelled new rows), then the promotion gate"
ticket-urgency train
if ! ticket-urgency promote --json | tee "$GEN_DIR/promote.json" | grep -q '"promoted": true'; then
  cat "$GEN_DIR/promote.json"
  echo "(the gate kept the champion; forcing the challenger so the demo can show a reload)"
  ticket-urgency promote --force
fi

step "12. reload the running API without a redeploy, then predict again: the version changed"
curl -sS -X POST "localhost:$PORT/reload-model" -H "Authorization: Bearer $TICKET_URGENCY_ADMIN_TOKEN"
echo
curl -sS -X POST "localhost:$PORT/predict" -H "Content-Type: application/json" \
  -d '{"title": "Application running slow", "description": "Report export stuck at 80 percent for several minutes.", "source": "web", "customer_tier": "Gold"}'
echo
curl -sS "localhost:$PORT/model"; echo

step "13. batch scoring of a file with the Production model"
ticket-urgency predict --in "$GEN_DIR/week2/more_labelled.csv" --out "$GEN_DIR/week2/scored.csv"

step "done: open the MLflow UI with '.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db' and Dagster with '.venv/bin/dagster dev -m dagster_project'"
