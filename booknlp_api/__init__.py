"""booknlp-api: BookNLP served over HTTP, with models loaded once per process."""

__version__ = "0.1.0"
