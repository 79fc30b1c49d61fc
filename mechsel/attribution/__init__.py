"""Per-demonstration attribution of one ICL prediction: how much the answer position attends to
each demonstration, and each demonstration's direct logit attribution (DLA) to the gold-vs-other
label logit difference, per layer and head, with a notebook/HTML view.

::

    runner = mechsel.ICLRunner(model, "sst2")
    result = attribute_demonstrations(runner, demos, query)
    result.attention_frame()          # layer, head, segment, share (rows sum to 1)
    result.dla_frame()                # layer, head, segment, dla
    result.dla_by_segment()           # total DLA per segment
    attribution_view(result).write_html("attribution.html")

Definitions and the exactness of the decomposition: :mod:`mechsel.attribution.compute`. plotly and
circuitsvis are imported only when a view is built.
"""

from mechsel.attribution.compute import AttributionConfig, MultiTokenLabels, attribute_demonstrations, attribute_prompt
from mechsel.attribution.result import DemoAttribution, GroupBy
from mechsel.attribution.segments import PromptGroups, group_prompt
from mechsel.attribution.view import AttributionView, attribution_figure, attribution_view

__all__ = [
    "AttributionConfig",
    "MultiTokenLabels",
    "attribute_prompt",
    "attribute_demonstrations",
    "DemoAttribution",
    "GroupBy",
    "PromptGroups",
    "group_prompt",
    "AttributionView",
    "attribution_view",
    "attribution_figure",
]
