"""Statistics, hypothesis tables, plots and report files."""
