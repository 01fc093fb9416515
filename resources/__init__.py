"""Bundled resources (the demo pair) and the scripts that make them."""
