"""Peer servers (Triton via PyTriton, BentoML, LitServe) serving the same decoder.onnx.

Each module here runs inside its own virtualenv under bench/.venvs/ and imports only numpy,
onnxruntime, Pillow, its own framework and the two torch-free helpers of the service it shares:
`app.runtime.sessions.load_graph` (identical ONNX Runtime session options) and
`app.serving.imaging.encode_png_base64` (identical PNG encoding).
"""
