"""The OpenAI-compatible server: `app.create_app(engine)`, `r1 serve` in `cli.py`."""

DEFAULT_MAX_BODY = 1 << 20  # bytes of a request body; larger ones get 413
DEFAULT_BODY_TIMEOUT = 60.0  # seconds to receive a whole request body (nginx's client_body_timeout default), else 408
