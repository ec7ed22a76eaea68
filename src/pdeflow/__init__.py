"""pdeflow: image processing with evolution PDEs, classical and learned."""
__version__ = "0.1.0"
