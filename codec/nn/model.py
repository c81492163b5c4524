"""The convolutional autoencoder and its config.

The decoder follows NeRV/HNeRV: a small spatial latent grid is lifted by conv + PixelShuffle
stages until it covers the frame, then cropped back::

    latent (C x gh x gw)            e.g. 16 x 4 x 8 = 512 values for 320x180
        |  conv3x3 -> GELU          stem, at grid resolution
        v
    [conv3x3 -> PixelShuffle(s) -> GELU] x (len(strides) - 1)
        |                           e.g. strides 3,3,5: 4x8 -> 12x24 -> 36x72
        v
    conv3x3 to 3*s*s -> PixelShuffle(s) + 0.5     the "shuffle" head: 36x72 -> 180x360 RGB
        |
        v
    centre crop to H x W -> RGB, clamped to [0, 1] when turned into pixels

The shuffle head (ESPCN's sub-pixel output) keeps every wide convolution below full
resolution: the only full-resolution work is a 3-channel PixelShuffle. The first models ran one
more 16-channel stage at full resolution and a 3x3 conv head there (``head="conv"``, which still
loads). That stage and its shuffle were most of the decoder's time, and without them training
also runs 2.5 times the steps in the same minutes, which more than pays for the lost layer.

The encoder mirrors it: replicate-pad the frame to (gh*S, gw*S), patchify down by the same
strides, and a 1x1 conv to C channels. Any frame size works because the grid and strides are
planned from the size (``config.plan_architecture``) and the padding is cropped off.

Architectures are registered by name; the name is stored in ``config.json`` so a model dir
says what it is.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..format.errors import UsageError
from .config import CodecConfig
from .weight_codes import fake_quantize_weight

ARCHITECTURES: dict[str, Callable[[CodecConfig], "Autoencoder"]] = {}


def register_architecture(name: str):
    """Tie an architecture name (stored in configs) to a class."""

    def wrap(cls):
        ARCHITECTURES[name] = cls
        cls.architecture = name
        return cls

    return wrap


def _crop_offsets(canvas: tuple[int, int], height: int, width: int) -> tuple[int, int]:
    return (canvas[0] - height) // 2, (canvas[1] - width) // 2


def _frame_of(canvas: torch.Tensor, cfg: "CodecConfig") -> torch.Tensor:
    """The frame's region of a decoded canvas (..., canvas_h, canvas_w), as a view."""
    top, left = _crop_offsets(cfg.canvas, cfg.height, cfg.width)
    return canvas[..., top : top + cfg.height, left : left + cfg.width]


class Encoder(nn.Module):
    """Frame (B,3,H,W) in [0,1] -> latents (B, latent_dim)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 3
        # Downsample with the decoder's strides in reverse so the grid comes out exactly.
        for s, c_out in zip(reversed(cfg.strides), cfg.encoder_channels):
            layers += [nn.Conv2d(c_in, c_out, kernel_size=s, stride=s), nn.GELU(),
                       nn.Conv2d(c_out, c_out, 3, padding=1), nn.GELU()]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, cfg.latent_channels, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor, blocks: bool = False) -> torch.Tensor:
        if blocks:  # the padded canvas as s x s pixel blocks (Autoencoder.to_blocks)
            first = self.net[0]
            # The first conv's kernel is its stride, so on blocks it is a 1x1 conv: one GEMM
            # instead of a 3-channel strided conv, whose two passes took a tenth of a training step.
            x = F.conv2d(frames, first.weight.reshape(first.out_channels, -1, 1, 1), first.bias)
            return self.net[1:](x).flatten(1)
        ch, cw = self.cfg.canvas
        top, left = _crop_offsets((ch, cw), frames.shape[-2], frames.shape[-1])
        pad = (left, cw - frames.shape[-1] - left, top, ch - frames.shape[-2] - top)
        x = F.pad(frames, pad, mode="replicate")
        return self.net(x).flatten(1)


class QuantAwareConv2d(nn.Conv2d):
    """A Conv2d whose weight can be seen through fake quantization (``fake_quant_bits``), so
    training can fit the weights the shipped low-bit decoder will really have. Its state dict
    is a plain Conv2d's."""

    fake_quant_bits: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_bits is None:
            return super().forward(x)
        return self._conv_forward(x, fake_quantize_weight(self.weight, self.fake_quant_bits), self.bias)


def set_weight_fake_quant(module: nn.Module, bits: float | dict[str, float] | None) -> None:
    """Switch fake quantization of every QuantAwareConv2d in ``module`` on or off: ``bits`` is one
    width for all, a width per weight name ("stem.weight": 8; layers not named stay float), or None."""
    for name, m in module.named_modules():
        if isinstance(m, QuantAwareConv2d):
            m.fake_quant_bits = bits.get(f"{name}.weight") if isinstance(bits, dict) else bits


class Decoder(nn.Module):
    """Latents (B, latent_dim) -> frames (B,3,H,W), about [0,1] (clamp before use)."""

    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.stem = QuantAwareConv2d(cfg.latent_channels, cfg.stem_channels, 3, padding=1)
        stages = []
        c_in = cfg.stem_channels
        for s, c_out in zip(cfg.strides, cfg.decoder_channels):
            stages.append(nn.Sequential(QuantAwareConv2d(c_in, c_out * s * s, 3, padding=1), nn.PixelShuffle(s), nn.GELU()))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        if cfg.head == "shuffle":
            s = cfg.strides[-1]
            self.head = nn.Sequential(QuantAwareConv2d(c_in, 3 * s * s, 3, padding=1), nn.PixelShuffle(s))
        elif cfg.head == "dwshuffle":
            s = cfg.strides[-1]
            self.head = nn.Sequential(QuantAwareConv2d(c_in, c_in, 3, padding=1, groups=c_in),
                                      QuantAwareConv2d(c_in, 3 * s * s, 1), nn.PixelShuffle(s))
        else:
            self.head = QuantAwareConv2d(c_in, 3, 3, padding=1)

    def forward(self, latents: torch.Tensor, blocks: bool = False) -> torch.Tensor:
        """Frames, or with ``blocks`` (shuffle head only) the whole canvas as the head's s x s
        pixel blocks, before its PixelShuffle and the crop."""
        gh, gw = self.cfg.grid
        x = latents.reshape(latents.shape[0], self.cfg.latent_channels, gh, gw)
        x = F.gelu(self.stem(x))
        x = self.stages(x)
        # Linear output around mid-grey, no sigmoid: a saturated sigmoid stops the gradient and
        # can stall training on the mean image. Frames are clamped to [0, 1] when converted to pixels.
        if blocks:
            if not self.cfg.shuffles:
                raise ValueError("only a shuffle head decodes to blocks")
            return self.head[:-1](x) + 0.5
        return _frame_of(self.head(x) + 0.5, self.cfg)


@register_architecture("hnerv-lite")
class Autoencoder(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self._gather_index: dict[torch.device, torch.Tensor] = {}  # to_blocks' index, per device

    def forward(self, frames: torch.Tensor, blocks: bool = False) -> torch.Tensor:
        """Reconstruct frames; with ``blocks``, map to_blocks() input to output of the same layout."""
        return self.decoder(self.encoder(frames, blocks), blocks)

    # -- training in blocks --------------------------------------------------------------------
    # The shuffle head's last step is a PixelShuffle by the stride s, and the encoder's first is
    # a conv with kernel and stride s: both sides see the frame as s x s pixel blocks. Training
    # compares the head's output with the target in that layout, so neither the shuffle, the
    # crop, the encoder's padding nor their backward passes run at full resolution in a step.

    @property
    def trains_in_blocks(self) -> bool:
        return self.cfg.shuffles

    def to_blocks(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, H, W, 3) -> float (B, 3*s*s, canvas_h/s, canvas_w/s), channels-last
        in memory: the canvas edge-padded as the encoder pads it, channel c*s*s + i*s + j holding
        pixel (i, j) of each block in colour c, the order of PixelShuffle and PixelUnshuffle."""
        b = frames.shape[0]
        ch, cw = self.cfg.canvas
        s = self.cfg.strides[-1]
        # One gather through a precomputed index does the padding and the block reorder, where
        # two index_selects and a permuting copy took twice the time. It gathers floats: on uint8
        # the same gather ran three times slower than the conversion it would save.
        blocks = frames.reshape(b, -1).float().div_(255).index_select(1, self._block_gather(frames.device))
        return blocks.reshape(b, ch // s, cw // s, 3 * s * s).permute(0, 3, 1, 2)

    def from_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """Blocks (to_blocks' layout) -> frames (B, 3, H, W), cropped from the canvas."""
        return _frame_of(F.pixel_shuffle(blocks, self.cfg.strides[-1]), self.cfg)

    def block_mask(self, device: torch.device | None = None) -> torch.Tensor:
        """1 where a block value is a pixel of the frame, 0 where it is canvas padding."""
        mask = torch.zeros(1, 3, *self.cfg.canvas, device=device)
        _frame_of(mask, self.cfg).fill_(1)
        return F.pixel_unshuffle(mask, self.cfg.strides[-1])

    def _block_gather(self, device: torch.device) -> torch.Tensor:
        """For each value of to_blocks' layout (channels last), its offset in a flat (H, W, 3)
        frame; canvas padding repeats the nearest edge pixel. Built once per device."""
        cache = self._gather_index
        if device not in cache:
            ch, cw = self.cfg.canvas
            s = self.cfg.strides[-1]
            top, left = _crop_offsets((ch, cw), self.cfg.height, self.cfg.width)
            rows = (torch.arange(ch) - top).clamp_(0, self.cfg.height - 1)
            cols = (torch.arange(cw) - left).clamp_(0, self.cfg.width - 1)
            pixel = (rows[:, None] * self.cfg.width + cols[None, :]) * 3  # (ch, cw): offset of colour 0
            colour = torch.arange(3).reshape(1, 1, 1, 1, 3)
            flat = pixel.reshape(ch // s, s, cw // s, s).permute(0, 2, 1, 3)[..., None] + colour
            # (blocks_y, blocks_x, i, j, c) -> (blocks_y, blocks_x, c, i, j): channel c*s*s + i*s + j
            cache[device] = flat.permute(0, 1, 4, 2, 3).reshape(-1).to(device)
        return cache[device]


def init_weights(module: nn.Module) -> None:
    """He-normal init for every conv (followed by GELU), zero biases.

    PyTorch's default conv init shrinks the signal at every layer; through a dozen layers the
    latent's influence on the output vanishes and training stalls on the mean frame.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def build_model(cfg: CodecConfig) -> Autoencoder:
    """Instantiate the architecture a config names."""
    try:
        cls = ARCHITECTURES[cfg.architecture]
    except KeyError:
        raise UsageError(f"unknown architecture {cfg.architecture!r}; known: {sorted(ARCHITECTURES)}") from None
    model = cls(cfg)
    init_weights(model)
    return model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def macs_per_pixel(decoder: Decoder) -> float:
    """Multiply-accumulates per output pixel of one decoded frame, counted from the convs."""
    cfg = decoder.cfg
    total = 0
    h, w = cfg.grid

    def conv_macs(conv: nn.Conv2d, hh: int, ww: int) -> int:
        k = conv.kernel_size[0] * conv.kernel_size[1]
        return hh * ww * conv.out_channels * (conv.in_channels // conv.groups) * k

    total += conv_macs(decoder.stem, h, w)
    for s, stage in zip(cfg.strides, decoder.stages):
        total += conv_macs(stage[0], h, w)
        h, w = h * s, w * s
    heads = [m for m in decoder.head if isinstance(m, nn.Conv2d)] if isinstance(decoder.head, nn.Sequential) \
        else [decoder.head]
    total += sum(conv_macs(m, h, w) for m in heads)
    return total / (cfg.width * cfg.height)
