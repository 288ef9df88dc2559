"""What the tests share, one module a concept (tests import from here, never from a conftest):

- `paths`: the project's root, the test fixtures, the shipped models (`SHIPPED_MODELS`).
- `processes`: free ports, `wait_until`, a real redis-server and a real `vae serve` process of
  the test's own (integration tests only: unit tests start no process).
- `repositories`: model repositories of a test's own (a copy of the shipped mnist model) and a
  version published by copying another.
- `seaweedfs`: a real S3 server (SeaweedFS's `weed mini`) on loopback, for the object-store tests.
- `jobs`: the admin token, `vae worker` processes, and jobs submitted and followed over HTTP.
- `load`: steady client load on a running service from background threads (`BackgroundLoad`),
  and `Load` over /decode, /encode and /sample, counted by model and status.
- `in_process`: the service in the test's own process (`create_app` over `httpx.ASGITransport`).
- `dataset_builders`: dataset files built in memory (IDX, gzip, zips, .npy/.npz, hostile zips) and
  an image as the base64 PNG a client sends.
- `synthetic`: small MNIST-like digits made on the spot, written as .npz or an MNIST-style zip.
- `autoencoders`: tiny random-weight diffusers autoencoders and their import as model versions.
- `deployment`: the deployment files read as compose reads them (variables, environments,
  healthchecks, dashboard queries, the settings the app knows).
"""
