"""The encoder server: the movie store (SQLite catalog + containers) and the gRPC service."""
