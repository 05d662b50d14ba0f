"""Benchmark harness: every recognition method (landmark, Chromaprint, later the embedding model and a hybrid)
behind one plug-in interface, run over a simulated query set, scored per query length x concert condition.

`methods` (the `Method` protocol and its adapters), `queries` (the query-set contract and its reader),
`stats` (Wilson intervals, open-set thresholds), `harness` (identify every query, compute the metrics),
`report` (metrics.json, report.md, figures, MLflow). Only `report` and `queries` touch files.
"""
