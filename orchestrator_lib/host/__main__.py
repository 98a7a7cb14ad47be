"""`python -m orchestrator_lib.host.agents` (and the zipapp's root __main__) land here: one JSON
request on stdin and one reply on stdout, or with `--serve` one request per line until EOF (the
resident agent rpc keeps open for a run; see core.serve)."""
import sys

from orchestrator_lib.host.core import main

if __name__ == "__main__":
    sys.exit(main())
