"""Prefect flows: one per stage plus `factory`, thin wrappers over tasks/, students/, reports/."""
