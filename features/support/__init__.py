"""behave's hooks for the deploy features (see environment.py)."""
