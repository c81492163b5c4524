"""The byte format, with numpy and zstd alone (no torch): the container, the chunk coding, the
latent quantizer, the decoder file as stored and sent, compression, atomic writes and errors.
The server and the store import nothing else from the codec."""
