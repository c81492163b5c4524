"""codec.runtime.onnx_proto writes the ONNX messages the decoder graph uses as the onnx package
serializes them: each one built both ways and compared byte for byte, after onnx parses ours."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from latentcast.codec.runtime import onnx_proto as pb


def _same(ours: bytes, proto_type, theirs) -> None:
    parsed = proto_type.FromString(ours)
    assert parsed == theirs
    assert parsed.SerializeToString() == theirs.SerializeToString()


@pytest.mark.parametrize("attrs", [
    {}, {"to": TensorProto.UINT8}, {"axis": 0}, {"axis": -1}, {"blocksize": np.int64(2), "mode": "CRD"},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "group": 24, "perm": [0, 2, 3, 1]}, {"alpha": 0.25},
])
def test_nodes_and_their_attributes(attrs):
    ours = pb.node("Conv", ["x", "w", "b"], ["y"], name="y", **attrs)
    _same(ours, onnx.NodeProto, helper.make_node("Conv", ["x", "w", "b"], ["y"], name="y", **attrs))


def test_an_attribute_of_another_kind_is_refused():
    with pytest.raises(TypeError, match="not a kind"):
        pb.node("Identity", ["x"], ["y"], flag=True)


@pytest.mark.parametrize("array", [
    np.array(0.5, np.float32), np.arange(-3, 5, dtype=np.int64), np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    np.array([-128, 0, 127], np.int8), np.array([1.5, -2], np.float16), np.zeros((2, 0), np.float32),
])
def test_tensors_with_their_values(array):
    _same(pb.tensor("t", array), onnx.TensorProto, numpy_helper.from_array(array, "t"))


def test_a_tensor_read_from_another_file():
    theirs = TensorProto(name="file:w", data_type=TensorProto.INT8, dims=[4, 2, 3, 3],
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "decoder.safetensors"), ("offset", 4096), ("length", 72)):
        theirs.external_data.add(key=key, value=str(value))
    _same(pb.external_tensor("file:w", pb.INT8, (4, 2, 3, 3), "decoder.safetensors", 4096, 72), onnx.TensorProto,
          theirs)


def test_a_model_with_its_graph_inputs_and_outputs():
    nodes = [("Mul", ["x", "two"], ["y"]), ("Cast", ["y"], ["z"])]
    inputs, outputs = [("x", TensorProto.FLOAT, ["n", 3])], [("z", TensorProto.UINT8, ["n", 3])]
    two = np.array(2.0, np.float32)
    theirs = helper.make_model(helper.make_graph(
        [helper.make_node(op, i, o, name=o[0], **({"to": TensorProto.UINT8} if op == "Cast" else {}))
         for op, i, o in nodes], "g",
        [helper.make_tensor_value_info(*v) for v in inputs], [helper.make_tensor_value_info(*v) for v in outputs],
        initializer=[numpy_helper.from_array(two, "two")]),
        opset_imports=[helper.make_opsetid("", 20)], producer_name="latentcast")
    theirs.ir_version = 9
    ours = pb.model([pb.node(op, i, o, name=o[0], **({"to": pb.UINT8} if op == "Cast" else {})) for op, i, o in nodes],
                    "g", [pb.value_info(*v) for v in inputs], [pb.value_info(*v) for v in outputs],
                    [pb.tensor("two", two)], opset=20, ir_version=9, producer="latentcast")
    _same(ours, onnx.ModelProto, theirs)
    onnx.checker.check_model(onnx.ModelProto.FromString(ours), full_check=True)
