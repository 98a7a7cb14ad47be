"""Deploys as Gherkin features. A package only so the root environment.py can import the hooks
from features/support/."""
