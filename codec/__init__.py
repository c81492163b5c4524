"""The latentcast codec, in layers by who needs them (imports flow one way, down this list):

- ``train/``  fitting a codec to a video (the trainer only)
- ``eval/``   the rate-distortion benchmark (``bench`` only)
- ``nn/``     the model, its config, weight codes and files, encode and decode (torch)
- ``video``, ``quality``, ``progress``  PyAV I/O, numpy PSNR, progress bars
- ``format/`` the bytes: container, chunks, quantizer, decoder file (no torch; the server's all)

Nothing in this package knows about gRPC or the store; the server and client call it.
"""
