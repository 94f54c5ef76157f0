"""Serve an app factory with granian exactly as ``tokensvc serve`` does (the floors).

python -m bench.serve MODULE:FACTORY, with the TOKENSVC_* settings of ``serve``
(TOKENSVC_BIND, TOKENSVC_WORKERS, TOKENSVC_THREADS, ...) in the environment.
"""

from __future__ import annotations

import sys

from tokensvc.config import Settings
from tokensvc.server import wsgi_server

if __name__ == "__main__":
    wsgi_server(sys.argv[1], Settings.from_env()).serve()
