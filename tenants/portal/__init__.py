"""The web portal: people manage their own keys, see their usage, teams and models, and try /v1."""
