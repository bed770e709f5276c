"""The flask-deploy server agent: one verb per deploy step, one state file per app (state.py)."""
