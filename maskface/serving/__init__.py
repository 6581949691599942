"""Web app and REST API (``tools/serve.py``).

``app`` (Flask routes, error mapping) -> ``service`` (upload checks, temp files, one predictor)
-> ``worker`` (the single inference thread) and ``uploads`` (content sniffing); ``openapi`` is the
hand-written API description; ``browser`` / ``screenshot`` drive the page in headless Chromium.
Flask is imported only by ``app``: ``import maskface.serving`` stays cheap.
"""
