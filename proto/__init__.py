"""Generated gRPC code for proto/latentcast.proto (see generate.py)."""
