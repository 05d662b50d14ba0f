"""Drift monitoring of field recordings: clips dropped in monitoring/inbox/ are validated (Great Expectations),
described by per-clip features (signal and recognition), compared with the reference distribution of simulated
query clips (Evidently) and archived; a drift verdict can trigger retraining (flows/monitor.py).

Modules: `inbox` (crash-safe folder moves), `features` (per-clip numbers), `checks` (probe + GE suite),
`reference` (cached reference features), `drift` (Evidently report and verdict), `stage` (one monitor run).
"""
