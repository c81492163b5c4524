"""latentcast: a learned video codec service.

The user-facing folders are mapped into this package: ``latentcast.codec`` (codec/),
``latentcast.server`` (server/), ``latentcast.client`` (client/), ``latentcast.proto`` (proto/).
"""

__version__ = "0.1.0"
