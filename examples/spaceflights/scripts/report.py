"""Writes a short Markdown report of the model's metrics (a weft command node).

Usage: python3 scripts/report.py METRICS_JSON REPORT_MD
"""
import json
import sys

metrics_path, report_path = sys.argv[1], sys.argv[2]
with open(metrics_path) as f:
    metrics = json.load(f)

lines = ["# Spaceflights model report", ""]
lines += [f"| metric | value |", "|---|---|"]
for key in sorted(metrics):
    value = metrics[key]
    shown = f"{value:.4f}" if isinstance(value, float) else str(value)
    lines.append(f"| {key} | {shown} |")
with open(report_path, "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"report: r2_score={metrics.get('r2_score')} on {metrics.get('n_test')} test rows")
