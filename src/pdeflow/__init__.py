"""pdeflow: image processing with evolution PDEs, classical and learned."""
__version__ = "0.1.0"

from .errors import UserInputError  # noqa: E402

__all__ = ["UserInputError", "__version__"]
