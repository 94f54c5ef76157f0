"""Serve an app factory with granian exactly as ``tokensvc serve`` does (the floors).

python -m bench.serve MODULE:FACTORY HOST:PORT WORKERS THREADS
"""

from __future__ import annotations

import sys

from tokensvc.server import wsgi_server

if __name__ == "__main__":
    target, bind, workers, threads = sys.argv[1:]
    wsgi_server(target, bind=bind, workers=int(workers), threads=int(threads)).serve()
