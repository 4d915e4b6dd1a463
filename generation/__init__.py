"""Image generation on diffusers: specs, the prompt language, model loading and the jobs that run them.

This package never imports discord or SQLAlchemy: the CLI and the bot share it.
"""
