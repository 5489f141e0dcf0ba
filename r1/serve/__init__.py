"""The OpenAI-compatible server: `app.create_app(engine)`, `r1 serve` in `cli.py`."""
