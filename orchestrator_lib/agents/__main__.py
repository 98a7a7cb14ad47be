"""`python -m orchestrator_lib.agents` (and the zipapp's root __main__) land here."""
import sys

from orchestrator_lib.agents.core import main

if __name__ == "__main__":
    sys.exit(main())
