"""Integrations with console proxies: websockify's token plugin and `tokensvc proxy`."""
