"""Edge-preserving filters: the guided filter (pure functions and thin modules)."""

from core.filters.box import box_filter
from core.filters.guided import FastGuidedFilter, GuidedFilter, fast_guided_filter, guided_filter

__all__ = ["FastGuidedFilter", "GuidedFilter", "box_filter", "fast_guided_filter", "guided_filter"]
