#!/bin/sh
# Validates the shipped monitoring files: alert rules (syntax + promtool unit
# tests), the example Prometheus config, and the Grafana dashboard JSON.
# Usage: scripts/monitoring/check_rules.sh   (needs promtool and python3)
set -eu
cd "$(dirname "$0")"
PROMTOOL=${PROMTOOL:-promtool}
"$PROMTOOL" check rules alerts.yml
"$PROMTOOL" test rules alerts_test.yml
"$PROMTOOL" check config prometheus.yml
python3 - <<'PY'
import json, re
with open("grafana-dashboard.json") as f:
    dashboard = json.load(f)
readme = open("../../README.md").read()
section = readme[readme.index("## Metrics and health"):readme.index("\n## ", readme.index("## Metrics and health") + 1)]
documented = set(re.findall(r"`((?:releasectl|process)_[a-z_]+)", section))
used = set()
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        used |= set(re.findall(r"\b(releasectl_[a-z_]+?)(?:_bucket|_sum|_count)?\b", target["expr"]))
for text in [open("alerts.yml").read()]:
    used |= set(re.findall(r"\b(releasectl_[a-z_]+?)(?:_bucket|_sum|_count)?\b", text))
missing = sorted(used - documented)
if missing:
    raise SystemExit(f"series used by the dashboard/alerts but not documented in README.md's 'Metrics and health': {missing}")
print(f"dashboard: {len(dashboard['panels'])} panels; {len(used)} series used, all documented")
PY
