"""What a movie's latent space is good for besides compression: similar frames, one feature
swept at a time, and seek thumbnails. Each reads the stored latents; pixels are decoded only
for the few frames a picture shows, with the viewer's runtime (no torch)."""
