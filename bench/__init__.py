"""Benchmarks: the fake vLLM upstream measured directly and through Kodify (``make bench``).

See bench/README.md.  Nothing here is imported by the server.
"""
