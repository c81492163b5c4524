"""The latentcast codec: video I/O, the autoencoder, latent coding and the .lcv container.

Nothing in this package knows about gRPC or the store; the server and client call it.
"""
