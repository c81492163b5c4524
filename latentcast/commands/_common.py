"""What every subcommand shares: argument parsing, logging, and turning errors into one line."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
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
            except BrokenPipeError:
                # The reader stopped (`| head`): what it wanted it has. Point stdout at nothing so
                # the interpreter's own flush at exit does not complain again.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
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


def add_dataclass_options(p: argparse.ArgumentParser, cls: type) -> None:
    """A flag for every field of ``cls`` whose metadata offers one (see codec.train.options.option),
    with the field's default and help. Flags only appear in the namespace when given."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", False):
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        parse = meta["parse"] or type(f.default)
        default = "" if f.default is None else f" (default {f.default:g})" if isinstance(f.default, float) \
            else f" (default {f.default})"
        target = p
        if meta["group"]:
            if meta["group"] not in groups:
                groups[meta["group"]] = p.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        target.add_argument(flag, dest=f.name, type=parse, choices=meta["choices"], metavar=meta["metavar"],
                            default=argparse.SUPPRESS, help=meta["help"].replace("%", "%%") + default)


def dataclass_options(cls: type, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` given on the command line, as keyword arguments; a given flag whose
    field ``clears`` another sets that one to None (--epochs replaces the default --minutes)."""
    from latentcast.codec.train.options import with_cleared

    return with_cleared(cls, {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def audio_kbps(args: argparse.Namespace) -> float | str | None:
    """The --audio-kbps given, AUDIO_COPY with --audio copy, or None with --no-audio (checked)."""
    from latentcast.codec.audio import check_kbps
    from latentcast.codec.format.audio_info import AUDIO_COPY

    if args.no_audio:
        return None
    return AUDIO_COPY if args.audio == "copy" else check_kbps(args.audio_kbps)


def add_refine_arg(p: argparse.ArgumentParser) -> None:
    """--refine-steps, shared by encode, ingest and bench."""
    from latentcast.codec.format.quantizer import DEFAULT_REFINE_STEPS

    p.add_argument("--refine-steps", type=int, default=DEFAULT_REFINE_STEPS, metavar="N",
                   help=f"gradient steps fitting each frame's codes to the decoder the viewer gets (default "
                        f"{DEFAULT_REFINE_STEPS}; 0: the encoder's codes as they are). More steps: higher PSNR for "
                        "more streaming bytes, and a longer encode "
                        "(each step is a decoder pass forward and back per frame)")


def add_coding_args(p: argparse.ArgumentParser) -> None:
    """--bits, --refine-steps, --chunk-seconds and the sound's options, shared by encode and ingest."""
    from latentcast.codec.format.audio_info import DEFAULT_AUDIO_KBPS

    sound = p.add_mutually_exclusive_group()
    p.add_argument("--audio", choices=("opus", "copy"), default="opus",
                       help="opus (default): re-code the sound to Opus at --audio-kbps; copy: keep an Opus or AAC "
                            "track's own packets, no loss and no re-coding, at whatever rate the source spent")
    sound.add_argument("--audio-kbps", type=float, default=DEFAULT_AUDIO_KBPS, metavar="KBPS",
                       help=f"the sound's Opus rate (default {DEFAULT_AUDIO_KBPS:g}); more keeps more of the "
                            "signal, and the sound can cost more than the picture: its rate is reported apart")
    sound.add_argument("--no-audio", action="store_true", help="leave the sound out: a silent movie")
    from latentcast.codec.format.container import DEFAULT_CHUNK_SECONDS
    from latentcast.codec.format.quantizer import DEFAULT_BITS

    p.add_argument("--bits", type=int,
                   help="bits per latent value, 1..8 (default: the width the model was trained for, which is "
                        f"`latentcast train --bits`, default {DEFAULT_BITS}). Fewer bits: fewer bytes, lower PSNR; more "
                        "than the model was trained for: many more bytes for little gain (the decoder was "
                        "fine-tuned on codes of its width)")
    add_refine_arg(p)
    p.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                   help=f"seconds per independently decodable chunk (default {DEFAULT_CHUNK_SECONDS:g}); shorter "
                        "seeks and resumes at finer steps and starts a little sooner, longer compresses better")


def add_format_arg(p: argparse.ArgumentParser) -> None:
    """--format, for what -o - writes to stdout."""
    p.add_argument("--format", choices=("mkv", "y4m"), default="mkv",
                   help="what -o - writes: mkv, Matroska with raw video and the sound (default), or y4m, "
                        "YUV4MPEG2, the picture alone (the format has no sound)")


def stdout_output(args: argparse.Namespace) -> str | None:
    """The -o to write, with --format applied to -."""
    from latentcast.codec.video import STDOUT_Y4M

    return STDOUT_Y4M if args.output == "-" and args.format == "y4m" else args.output


def add_runtime_arg(p: argparse.ArgumentParser) -> None:
    """--runtime, shared by the commands that decode."""
    from latentcast.codec.runtime.backends import DEFAULT_RUNTIME, RUNTIMES

    p.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                   help="what runs the decoder: onnx (ONNX Runtime, in every install), torch (needs "
                        "latentcast[train]; within a level of onnx's pixels), torch-bf16 (torch in bfloat16: "
                        "several times faster at 720p and up on CPUs with AMX or AVX512-BF16, slower elsewhere, "
                        "for a small PSNR loss the trainer measures per model), or auto: the fastest installed "
                        "path that loses at most 0.01 dB by that measure (default auto)")


def add_connection_args(p: argparse.ArgumentParser) -> None:
    """--server, the token options, --tls-ca and --insecure, shared by the client commands."""
    p.add_argument("--server", default="127.0.0.1:50051",
                   help="gRPC address host:port, or the URL of a server's HTTP side (http://host:port or "
                        "https://...; chunks then come through any HTTP cache in between); default 127.0.0.1:50051")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", help="bearer token (default: --token-file, else the LATENTCAST_TOKEN variable); "
                                       "other users can read it in the process list, so prefer those")
    token.add_argument("--token-file", metavar="PATH",
                       help="read the bearer token from this file, which must not be readable by other users")
    p.add_argument("--tls-ca", metavar="PEM", help="connect with TLS, trusting this CA certificate")
    p.add_argument("--tls-cert", metavar="PEM", help="this client's certificate, for a server that asks for one "
                                                     "(mutual TLS; needs --tls-key and --tls-ca)")
    p.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--insecure", action="store_true",
                   help="send the token over plaintext to an address off loopback (otherwise refused): only on a "
                        "trusted network")


def read_token_file(path: str) -> str:
    """The token in ``path``; UsageError when other users may read it or it is empty."""
    import os
    import stat

    from latentcast.codec.format.errors import UsageError

    mode = os.stat(path).st_mode
    if mode & stat.S_IROTH:
        raise UsageError(f"{path} is readable by every user: chmod o-r it (or 600) before it holds a token")
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise UsageError(f"{path} holds no token")
    return token


def open_client(args: argparse.Namespace, **kwargs):
    """A latentcast.Client from the connection arguments."""
    import os

    import latentcast

    token = args.token
    if token is None and args.token_file:
        token = read_token_file(args.token_file)
    if token is None:
        token = os.environ.get("LATENTCAST_TOKEN")
    return latentcast.Client(args.server, token=token, tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
                             insecure=args.insecure, **kwargs)
