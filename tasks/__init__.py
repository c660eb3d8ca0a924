"""The work itself: sources, captioners, teachers, verification, selection and arms.

Plain functions and small classes; no Prefect here (flows/ wraps these in tasks and flows).
"""
