"""Load generator and peer servers for measuring vae-service (GitHub issue 3).

Run `python -m bench.run --help`. Nothing here is imported by the service.
"""
