"""The one ``latentcast`` command. Each subcommand lives in ``latentcast.commands.<name>``
and exposes ``main(argv) -> int``, so tests call it directly."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from . import __version__

# name -> one-line help. Modules are imported only when run, so `latentcast --help` is instant.
COMMANDS = {
    "demo": "the whole scenario on the bundled sample: train, ingest, serve, play, compare",
    "train": "fit a codec (conv autoencoder) to one video",
    "parts": "fit a decoder part per scene onto a trained model (base + parts)",
    "encode": "encode a video into a .lcv container with a trained model",
    "decode": "decode a .lcv container back to frames (.mkv, .mp4, .y4m or -)",
    "info": "print a .lcv container's header and size breakdown",
    "scenes": "shot cuts and scenes from the latents, as text, JSON or chapter files",
    "similar": "the frames nearest to a frame in latent space, and a contact sheet",
    "inspect": "sweep one latent feature at a time and see what it changes, as a labelled grid",
    "ingest": "encode a movie and register it in a store (company side)",
    "rm": "remove a movie from a store",
    "store": "check a store's catalog, files and checksums (and --repair orphans)",
    "serve": "serve a store over gRPC (catalog, decoders, latent streams)",
    "list": "list the movies a server offers",
    "play": "stream a movie's latents and decode them locally (viewer side)",
    "bench": "rate-distortion benchmark against x264, x265 and AV1",
    "loadtest": "concurrent playback streams against a server, every frame accounted for",
}


# The company side's commands run on torch, which the player install (the base) leaves out.
# `scenes` needs it only for a video, and says so itself. Their options are torch's training
# options, so even --help answers with what to install.
NEEDS_TORCH = {"demo", "train", "parts", "encode", "ingest", "bench"}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: latentcast COMMAND [options]   (latentcast COMMAND --help for details)", "",
             "latentcast fits a small conv autoencoder to a video, stores each frame as 512 quantized",
             "latents, and turns them back into frames on the viewer's side.", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"latentcast {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"latentcast: unknown command {name!r}; run 'latentcast --help' for the list", file=sys.stderr)
        return 2
    if name in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
        print(f"latentcast {name}: error: {name} runs on torch, which this install leaves out (it is the "
              "player): pip install 'latentcast[train]'", file=sys.stderr)
        return 1
    module = importlib.import_module(f"latentcast.commands.{name}")
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
