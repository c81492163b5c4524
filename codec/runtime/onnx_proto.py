"""The few ONNX protobuf messages the decoder graph needs, written straight to bytes.

Why not the ``onnx`` package: importing it takes 1.4 to 1.8 s on a 2-core machine, all of it
before a viewer's first frame, for a graph of a few dozen nodes whose wire format is a handful
of fields. The field numbers and wire types are those of onnx.proto (proto2); each message is
checked against the onnx package's own serialization in tests/codec/test_onnx_proto.py, and
onnx's checker passes every decoder graph in tests/codec/test_runtime.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np

# TensorProto.DataType
FLOAT, UINT8, INT8, INT64, FLOAT16 = 1, 2, 3, 7, 10
_NUMPY_TYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int8): INT8,
                np.dtype(np.int64): INT64, np.dtype(np.float16): FLOAT16}
# AttributeProto.AttributeType
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_INTS = 1, 2, 3, 7
_EXTERNAL = 1  # TensorProto.DataLocation


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # an int64 below zero goes as its two's complement, ten bytes
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _float(field: int, x: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", x)


def _attribute(name: str, value) -> bytes:
    """AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, str, list, tuple)):
        raise TypeError(f"attribute {name}: {type(value).__name__} is not a kind the decoder graph uses")
    if isinstance(value, str):
        body, kind = _bytes(4, value), _ATTR_STRING
    elif isinstance(value, float):
        body, kind = _float(2, value), _ATTR_FLOAT
    elif isinstance(value, int):
        body, kind = _int(3, value), _ATTR_INT
    else:
        body, kind = b"".join(_int(8, int(v)) for v in value), _ATTR_INTS
    return _bytes(1, name) + body + _int(20, kind)


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str = "", **attrs) -> bytes:
    """NodeProto: input 1, output 2, name 3, op_type 4, attribute 5 (sorted by name, as onnx.helper does)."""
    out = [_bytes(1, x) for x in inputs] + [_bytes(2, y) for y in outputs]
    if name:
        out.append(_bytes(3, name))
    out.append(_bytes(4, op_type))
    out += [_bytes(5, _attribute(k, attrs[k])) for k in sorted(attrs)]
    return b"".join(out)


def _tensor_head(name: str, data_type: int, dims: Iterable[int]) -> bytes:
    """The fields every TensorProto starts with: dims 1, data_type 2, name 8."""
    return b"".join(_int(1, d) for d in dims) + _int(2, data_type) + _bytes(8, name)


def tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto with the values inline: raw_data 9, little-endian."""
    array = np.asarray(array)
    values = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return _tensor_head(name, _NUMPY_TYPES[array.dtype], array.shape) + _bytes(9, values)


def external_tensor(name: str, data_type: int, dims: Iterable[int], location: str, offset: int, length: int) -> bytes:
    """TensorProto whose values lie in another file: external_data 13 (key 1, value 2), data_location 14."""
    entries = b"".join(_bytes(13, _bytes(1, k) + _bytes(2, str(v)))
                       for k, v in (("location", location), ("offset", offset), ("length", length)))
    return _tensor_head(name, data_type, dims) + entries + _int(14, _EXTERNAL)


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    """ValueInfoProto of a tensor: a number is a fixed dim (dim_value 1), a string a named one (dim_param 2)."""
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(nodes: Sequence[bytes], name: str, inputs: Sequence[bytes], outputs: Sequence[bytes],
          initializers: Sequence[bytes], opset: int, ir_version: int, producer: str) -> bytes:
    """ModelProto (ir_version 1, producer_name 2, graph 7, opset_import 8) around a GraphProto
    (node 1, name 2, initializer 5, input 11, output 12), in the default domain at ``opset``."""
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name) + b"".join(_bytes(5, t) for t in initializers)
             + b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs))
    return _int(1, ir_version) + _bytes(2, producer) + _bytes(7, graph) + _bytes(8, _bytes(1, "") + _int(2, opset))
