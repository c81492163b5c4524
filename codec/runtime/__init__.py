"""Decoding on the viewer's side: a movie's decoders (its base and scene parts), built for a
runtime (ONNX Runtime, or torch where it is installed), and latents turned into frames with
them. torch is imported only when the torch runtime is chosen."""
