"""The MLflow Model Registry side of the pipeline: lineage and a readable description for every trained model
version (`versions`), the champion/challenger promotion gate and the manual override (`gate`), re-evaluation of
a model on the current data (`evaluation`) and the champion's release for the service (`deploy`).

Aliases, not stages: `challenger` is the newest trained version, `champion` the one the service runs.
"""
