"""Shared tools of all four packages (private).

Each tool has one home here, in the lowest package, and is imported from
everywhere else: the package version, the root of the exception hierarchy,
YAML configuration loading with JSON-schema validation, progress bars, the
plot style, PDG masses and the default constants of the likelihood. Nothing
here imports numpy-heavy or plotting libraries at import time.
"""
