"""Gunicorn entry point: `gunicorn wsgi:app` (run from this directory)."""
from notes import create_app

app = create_app()
