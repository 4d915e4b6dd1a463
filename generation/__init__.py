"""Image generation on diffusers: specs, the prompt language, model loading and the jobs that run them.

This package never imports discord or SQLAlchemy: the CLI and the bot share it.
"""

import logging


class _NoTorchvisionNotice(logging.Filter):
    """dreamcord deliberately runs without torchvision (PyPI's build needs CUDA torch); the PIL image
    processors transformers falls back to are the ones we want, so its notice is noise for users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())
