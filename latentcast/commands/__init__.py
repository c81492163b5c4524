"""Subcommands of ``latentcast``; each module has ``main(argv) -> int``."""
