"""What every subcommand shares: argument parsing, logging, and turning errors into one line."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from typing import Callable

from latentcast.codec.format.errors import LatentcastError


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main(argv) can return the code."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageExit(f"{self.prog}: error: {message}")


class _UsageExit(Exception):
    pass


def parser(name: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    return _Parser(prog=f"latentcast {name}", description=description, epilog=epilog,
                   formatter_class=argparse.RawDescriptionHelpFormatter)


def command(name: str) -> Callable:
    """Wrap a subcommand body: configure logging, map expected errors to one stderr line."""

    def wrap(fn: Callable[[list[str]], int]) -> Callable[[list[str] | None], int]:
        @functools.wraps(fn)
        def main(argv: list[str] | None = None) -> int:
            argv = sys.argv[1:] if argv is None else list(argv)
            if not logging.getLogger().handlers:
                logging.basicConfig(level=logging.WARNING, format=f"latentcast {name}: %(message)s")
            try:
                return fn(argv) or 0
            except SystemExit as e:  # --help
                return int(e.code or 0)
            except _UsageExit as e:
                print(str(e), file=sys.stderr)
                return 2
            except LatentcastError as e:
                print(f"latentcast {name}: error: {e}", file=sys.stderr)
                return 1
            except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
                print(f"latentcast {name}: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
                return 1
            except OSError as e:
                print(f"latentcast {name}: error: {e.strerror or e}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print(f"latentcast {name}: interrupted", file=sys.stderr)
                return 130

        return main

    return wrap


def add_coding_args(p: argparse.ArgumentParser) -> None:
    """--bits and --chunk-seconds, shared by encode and ingest."""
    from latentcast.codec.format.container import DEFAULT_CHUNK_SECONDS
    from latentcast.codec.format.quantizer import DEFAULT_BITS

    p.add_argument("--bits", type=int,
                   help="bits per latent value, 1..8 (default: the width the model was trained for, which is "
                        f"`latentcast train --bits`, default {DEFAULT_BITS}). Fewer bits: fewer bytes, lower PSNR; more "
                        "than the model was trained for: more bytes for no gain (the decoder was fine-tuned "
                        "on codes of its width)")
    p.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                   help=f"seconds per independently decodable chunk (default {DEFAULT_CHUNK_SECONDS:g}); shorter "
                        "resumes and starts a little sooner, longer compresses better (1 s costs about 4%% more "
                        "bytes than 2 s at 4 bits)")


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """--server, --token and --tls-ca, shared by the client commands."""
    p.add_argument("--server", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    p.add_argument("--token", help="bearer token (default: the LATENTCAST_TOKEN variable)")
    p.add_argument("--tls-ca", metavar="PEM", help="connect with TLS, trusting this CA certificate")


def open_session(args: argparse.Namespace, **kwargs):
    """A client Session from the connection arguments."""
    import os
    from pathlib import Path

    from latentcast.client.session import Session

    token = args.token if args.token is not None else os.environ.get("LATENTCAST_TOKEN")
    ca = Path(args.tls_ca).read_bytes() if args.tls_ca else None
    return Session(args.server, token=token, root_certificates=ca, **kwargs)
