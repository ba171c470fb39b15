"""Render: traces and analysis results to JSON, terminal text, figures and HTML."""
