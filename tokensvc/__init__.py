"""tokensvc: console connection tokens for a cloud's virtual machines."""

__version__ = "0.1.0"
