"""Double Edge: the lab kit of a hands-on course on the risks of open-weight AI models."""

__version__ = "0.1.0"
