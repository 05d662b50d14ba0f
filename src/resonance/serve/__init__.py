"""`resonance serve`: recognition over HTTP (FastAPI + uvicorn).

Modules: `app` (the FastAPI app: routes, API key, JSON errors), `upload` (request bodies: size limit, multipart,
decoding in memory with libsndfile or PyAV), `embeddings` (the on-device hand-off: validated window
embeddings -> a decision), `listen` (WS /listen: streaming decisions), `holder` (the loaded model, index and
calibration, and the watcher that hot-swaps them), `run` (bind-address checks and uvicorn). The protocol is
documented in docs/serve.md; the on-device client is clients/device_client.py (docs/device.md).
"""
