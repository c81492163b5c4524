"""The playback client: a gRPC session with a verified decoder cache, and the player."""
