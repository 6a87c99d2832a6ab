"""Grading: the labs' checks, the authoritative re-run of learners' code, the nbgrader pipeline."""
