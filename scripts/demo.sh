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

step "8. more labelled data arrives: upload it, retrain, promote"
ticket-urgency generate --out "$GEN_DIR/week2" --rows 10 --new-rows 1500 --drift topic --seed 2
ticket-urgency upload --new "$GEN_DIR/week2/new_tickets.csv"
ticket-urgency train
if ! ticket-urgency promote --json | tee "$GEN_DIR/promote.json" | grep -q '"promoted": true'; then
  echo "(the gate kept the champion; forcing the challenger so the demo can show a reload)"
  ticket-urgency promote --force
fi

step "9. reload the running API without a redeploy, then predict again: the version changed"
curl -sS -X POST "localhost:$PORT/reload-model" -H "Authorization: Bearer $TICKET_URGENCY_ADMIN_TOKEN"
echo
curl -sS -X POST "localhost:$PORT/predict" -H "Content-Type: application/json" \
  -d '{"title": "Application running slow", "description": "Report export stuck at 80 percent for several minutes.", "source": "web", "customer_tier": "Gold"}'
echo
curl -sS "localhost:$PORT/model"; echo

step "done: open the MLflow UI with '.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db' and Dagster with '.venv/bin/dagster dev -m dagster_project'"
