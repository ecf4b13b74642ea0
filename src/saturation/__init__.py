"""saturation-lab: measuring small language model saturation through the softmax bottleneck."""

__version__ = "0.1.0"
