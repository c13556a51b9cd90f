"""Command-line interface: one thin module per verb, each with ``add_parser`` and ``run``."""
