"""The ONNX artifact: the graph written as an ONNX model (float, int-in-float or int32 arithmetic)
and the checks that an ONNX file is one of ours."""
