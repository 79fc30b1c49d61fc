"""The result of attributing one ICL prediction to its prompt's segments.

Every quantity is kept per source token (``[layer, head, pos]``) and summed into the prompt's
groups (:mod:`mechsel.attribution.segments`) on request, so any other grouping (e.g. by token
role, to separate a demonstration's label tokens from its input words) needs no rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from jaxtyping import Float

from mechsel.errors import ConfigError
from mechsel.provenance import Provenance

__all__ = ["GroupBy", "DemoAttribution"]

GroupBy = Literal["segment", "segment_role"]
"""How frames group source tokens: by segment (BOS, each demo, separators, query), or by segment
and token role (``template``, ``text``, ``label``, ``sep``, ``bos``)."""


@dataclass(frozen=True)
class DemoAttribution:
    """Attention and direct logit attribution (DLA) of one prompt's answer position.

    Built by :func:`~mechsel.attribution.attribute_prompt` /
    :func:`~mechsel.attribution.attribute_demonstrations`; see their docstrings for the exact
    definitions.
    """

    tokens: tuple[int, ...]
    """The prompt's token ids (BOS included when present)."""
    token_strings: tuple[str, ...]
    """Each token decoded on its own (for display)."""
    segments: tuple[str, ...]
    """Group names in prompt order (``"bos"``, ``"demo 1"`` … ``"demo k"``, ``"sep"``, ``"query"``)."""
    token_segment: np.ndarray
    """``[pos]`` int64: each token's index into :attr:`segments`."""
    roles: tuple[str, ...]
    """Each token's role (``bos``, ``template``, ``text``, ``label``, ``sep``)."""
    demo_ids: tuple[Any, ...]
    """Example id of each demonstration (``"demo i"`` is ``demo_ids[i - 1]``)."""
    demo_answers: tuple[str, ...]
    """Each demonstration's answer as shown in the prompt (its label tokens decoded, stripped)."""
    attention: Float[np.ndarray, "layer head pos"]
    """Attention weight of the answer position on each source token (each ``[layer, head]`` row sums to 1)."""
    dla: Float[np.ndarray, "layer head pos"]
    """Direct logit attribution of each head's output through each source token (see ``attribute_prompt``)."""
    other_terms: pd.DataFrame
    """The remaining DLA terms: columns ``term`` (``embeddings``, ``attn_bias``, ``mlp``,
    ``final_norm_bias``, ``unembed_bias``), ``layer`` (-1 for non-layer terms) and ``dla``."""
    logit_diff: float
    """The model's logit difference (gold minus the other labels' mean), before any logit soft-cap."""
    output_logit_diff: float
    """The same difference from the forward output (equal to ``logit_diff`` unless the model soft-caps logits)."""
    answer_position: int
    """Index of the token whose next-token logits are attributed (the query's last token)."""
    label_names: tuple[str, ...]
    """Name of each label."""
    label_tokens: tuple[int, ...]
    """The token id each label is scored by."""
    gold: int
    """Index of the gold label."""
    provenance: Provenance
    """Model, weights, dtype, BOS policy and the prompt's hash."""

    # ----- sums and identity -----------------------------------------------------------------
    @property
    def reconstructed_logit_diff(self) -> float:
        """``dla.sum()`` plus every :attr:`other_terms` entry: equals :attr:`logit_diff` (the identity)."""
        return float(self.dla.sum() + self.other_terms["dla"].sum())

    @property
    def identity_error(self) -> float:
        """``|reconstructed_logit_diff - logit_diff|``: float rounding only, when the decomposition is exact."""
        return abs(self.reconstructed_logit_diff - self.logit_diff)

    def _summed(self, per_token: np.ndarray) -> np.ndarray:
        out = np.zeros(per_token.shape[:2] + (len(self.segments),), dtype=np.float64)
        for i in range(len(self.segments)):
            out[:, :, i] = per_token[:, :, self.token_segment == i].sum(axis=-1)
        return out

    @property
    def attention_shares(self) -> Float[np.ndarray, "layer head segment"]:
        """Attention of the answer position summed over each segment's tokens; rows sum to 1."""
        return self._summed(self.attention)

    @property
    def segment_dla(self) -> Float[np.ndarray, "layer head segment"]:
        """Each head's DLA through each segment's tokens."""
        return self._summed(self.dla)

    def dla_by_segment(self) -> pd.Series:
        """Total DLA of each segment (summed over layers and heads), in prompt order."""
        return pd.Series(self.segment_dla.sum(axis=(0, 1)), index=pd.Index(self.segments, name="segment"), name="dla")

    def top_demo(self, quantity: Literal["attention", "dla"]) -> str:
        """The demonstration with the largest attention (mean over layers and heads) or total DLA."""
        if quantity not in ("attention", "dla"):
            raise ConfigError(f"quantity must be 'attention' or 'dla', got {quantity!r}.")
        demos = [i for i, s in enumerate(self.segments) if s.startswith("demo ")]
        values = self.attention_shares.mean(axis=(0, 1)) if quantity == "attention" else self.segment_dla.sum(axis=(0, 1))
        return self.segments[max(demos, key=lambda i: values[i])]

    # ----- tidy frames -----------------------------------------------------------------------
    def token_frame(self) -> pd.DataFrame:
        """One row per (layer, head, source token): ``position``, ``token``, ``segment``, ``role``,
        ``attention`` and ``dla``."""
        n_layers, n_heads, n_pos = self.attention.shape
        layer, head, pos = (a.ravel() for a in np.meshgrid(np.arange(n_layers), np.arange(n_heads), np.arange(n_pos), indexing="ij"))
        return pd.DataFrame(
            {
                "layer": layer,
                "head": head,
                "position": pos,
                "token": np.array(self.token_strings, dtype=object)[pos],
                "segment": pd.Categorical(np.array(self.segments, dtype=object)[self.token_segment[pos]], categories=list(self.segments)),
                "role": np.array(self.roles, dtype=object)[pos],
                "attention": self.attention.ravel(),
                "dla": self.dla.ravel(),
            }
        )

    def _frame(self, value: str, by: GroupBy) -> pd.DataFrame:
        if by not in ("segment", "segment_role"):
            raise ConfigError(f"by must be 'segment' or 'segment_role', got {by!r}.")
        keys = ["layer", "head", "segment"] + (["role"] if by == "segment_role" else [])
        frame = cast(pd.Series, self.token_frame().groupby(keys, observed=True, sort=True)[value].sum()).reset_index()
        return frame.rename(columns={"attention": "share"})

    def attention_frame(self, by: GroupBy = "segment") -> pd.DataFrame:
        """Columns ``layer``, ``head``, ``segment`` (``role``), ``share``: the answer position's
        attention summed over the group's tokens; for each (layer, head) the shares sum to 1."""
        return self._frame("attention", by)

    def dla_frame(self, by: GroupBy = "segment") -> pd.DataFrame:
        """Columns ``layer``, ``head``, ``segment`` (``role``), ``dla``: each head's direct logit
        attribution through the group's tokens."""
        return self._frame("dla", by)
