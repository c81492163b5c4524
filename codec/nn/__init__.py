"""The network side: the model's config (torch-free), the autoencoder, its weight codes and
files, and encoding and decoding with it."""
