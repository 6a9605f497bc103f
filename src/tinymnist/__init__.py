"""tinymnist: very small convolutional networks trained on MNIST, fast and honestly measured."""

__version__ = "0.1.0"
