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
