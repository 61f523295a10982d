"""Shared test configuration.

Hypothesis runs derandomized (the same examples every run) so CI is reproducible; set
``HYPOTHESIS_PROFILE=thorough`` for a long randomized search.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
