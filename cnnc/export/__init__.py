"""Compiled models out to other runtimes: ONNX."""
