"""Per-demonstration attribution of one ICL prediction: attention shares and direct logit attribution.

For one prompt ``[bos] demo 1 sep … demo k sep query`` the answer position ``a`` is the query's
last token (the model predicts the label after it). Two quantities, per layer ``l`` and head ``h``:

**Attention share** of group ``G`` (BOS, a demonstration, the separators, the query):
``share[l, h, G] = Σ_{s ∈ G} A[l, h, a, s]``, the answer position's attention weights summed over
the group's tokens. The groups tile the prompt, so each ``(l, h)`` row sums to 1.

**Direct logit attribution (DLA)** to the logit difference
``Δ = logit[gold] − mean_{o ≠ gold} logit[o]`` at ``a`` (for two labels, gold minus the other
label; for more, gold minus the mean of the others; each label is scored by the first token of
its verbaliser). The final residual stream is a sum of components: embeddings, each layer's
attention output and MLP output. ``ln_final`` is linearised by freezing its scale at the cached
value (:mod:`mechsel.attribution.frozen_norm`), which turns ``Δ`` into ``resid · g + const`` with
``g`` the pulled-back unembedding difference ``W_U[:, gold] − mean W_U[:, others]``. A head's
output at ``a`` is ``Σ_s A[l, h, a, s] · v[l, s, h] W_O[l, h]`` (``v`` includes the value bias),
and a post-attention norm (Gemma's ``ln1_post``) is frozen the same way, so

``dla[l, h, s] = A[l, h, a, s] · v[l, s, h] · (W_O[l, h] g_l)``

with ``g_l`` the direction pulled back through layer ``l``'s post-attention norm (``g`` when there
is none). ``dla[l, h, G]`` sums it over a group's tokens. The other terms are the embeddings
(``blocks.0.hook_resid_pre``) · ``g``, each MLP output · ``g``, each attention bias ``b_O`` (and a
post-norm's bias) read out the same way, ``ln_final``'s bias · the unembedding difference and the
unembedding bias difference.

**The identity is exact** for any weight processing (``none`` or TransformerLens's folding and
centring): Σ dla + Σ other terms equals the model's own ``Δ`` up to float rounding, because every
map on the way is linear once the norms' scales are frozen; the unit tests check it against the
model's forward output in both settings. Processing changes where some constants are booked, not
the sum: folding ``ln_final`` moves its bias into ``unembed_bias``, and folding value biases
(into which folding the pre-attention LayerNorm puts its bias, ``b W_V``) moves ``b_V W_O`` from the heads' per-source terms (where, unprocessed, it is spread over the
sources in proportion to attention) into ``attn_bias``. Centring the unembedding shifts every
logit of a position equally and centring writing weights is undone by the centring LayerNorm, so
neither changes a term. mechsel loads weights unprocessed by default. Models that soft-cap logits
(Gemma 2) are attributed before the cap (:attr:`DemoAttribution.logit_diff`); the capped
difference is :attr:`DemoAttribution.output_logit_diff`.

Frozen-scale DLA is a read-out of one forward pass, not a counterfactual: a component's DLA is
not what removing it would change (the norms' scales and later layers would respond).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer

from mechsel.attribution.capture import AnswerActivations, attn_out_norm, capture_answer
from mechsel.attribution.frozen_norm import pull_back
from mechsel.attribution.result import DemoAttribution
from mechsel.attribution.segments import group_prompt
from mechsel.errors import ConfigError, DataError
from mechsel.masks.segments import SegmentedPrompt
from mechsel.models import model_provenance
from mechsel.provenance import hash_json
from mechsel.tasks.base import Example

if TYPE_CHECKING:
    from mechsel.icl.runner import ICLRunner

__all__ = ["MultiTokenLabels", "AttributionConfig", "attribute_prompt", "attribute_demonstrations"]

logger = logging.getLogger(__name__)

MultiTokenLabels = Literal["raise", "first_token"]
"""What to do with a label word of several tokens: ``raise`` a :class:`ConfigError`, or score the
label by its ``first_token`` (the attribution is then about the first answer token only)."""
MULTI_TOKEN_LABELS: tuple[str, ...] = get_args(MultiTokenLabels)


@dataclass(frozen=True)
class AttributionConfig:
    """Settings of :func:`attribute_prompt` and :func:`attribute_demonstrations`."""

    multi_token_labels: MultiTokenLabels = "raise"
    """Label words of several tokens: ``raise`` (default) or ``first_token`` (score each label by
    its first token; two labels must then still start with different tokens)."""
    identity_rtol: float = 1e-3
    """Relative tolerance of the decomposition check: when Σ parts differs from the model's logit
    difference by more than ``identity_rtol × (1 + Σ |parts|)`` a warning is logged (it means an
    architecture the decomposition does not cover, or very low precision)."""

    def __post_init__(self) -> None:
        if self.multi_token_labels not in MULTI_TOKEN_LABELS:
            raise ConfigError(f"multi_token_labels must be one of {MULTI_TOKEN_LABELS}, got {self.multi_token_labels!r}.")
        if not self.identity_rtol > 0:
            raise ConfigError(f"identity_rtol must be positive, got {self.identity_rtol!r}.")


def _label_tokens(label_token_ids: Sequence[Sequence[int]], label_names: Sequence[str], policy: MultiTokenLabels) -> tuple[int, ...]:
    if len(label_token_ids) < 2:
        raise ConfigError(f"A logit difference needs at least two labels; got {len(label_token_ids)}.")
    for name, ids in zip(label_names, label_token_ids):
        if len(ids) == 0:
            raise ConfigError(f"Label {name!r} encodes to no tokens; give it a non-empty verbaliser.")
        if len(ids) > 1 and policy == "raise":
            raise ConfigError(
                f"Label {name!r} is {len(ids)} tokens ({list(ids)}); the logit difference is read at one position, so each label "
                "needs a single token. Choose one-token verbalisers (TaskConfig.verbalizers, e.g. with a leading space), or pass "
                "AttributionConfig(multi_token_labels='first_token') to score each label by its first token."
            )
    first = tuple(int(ids[0]) for ids in label_token_ids)
    if len(set(first)) != len(first):
        raise ConfigError(
            f"Labels {list(label_names)} do not all start with different tokens ({list(first)}), so their first-token logits "
            "cannot tell them apart. Choose verbalisers whose first tokens differ."
        )
    return first


def _decompose(
    model: HookedTransformer, acts: AnswerActivations, label_tokens: Sequence[int], gold: int
) -> tuple[np.ndarray, pd.DataFrame]:
    """Per-source DLA ``[layer, head, pos]`` and the other terms (module docstring)."""
    others = [i for i in range(len(label_tokens)) if i != gold]
    columns = [label_tokens[gold]] + [label_tokens[i] for i in others]
    W_U = model.W_U.detach()[:, columns].to("cpu", torch.float64)  # only the label columns: W_U can be ~1 GB
    b_U = model.b_U.detach()[columns].to("cpu", torch.float64)
    direction = W_U[:, 0] - W_U[:, 1:].mean(dim=1)
    unembed_bias = float(b_U[0] - b_U[1:].mean())
    final_norm = getattr(model, "ln_final", None)
    g, final_const = pull_back(final_norm if final_norm is not None else torch.nn.Identity(), acts.final_scale, direction)

    n_layers = model.cfg.n_layers
    dla = torch.zeros(acts.pattern.shape, dtype=torch.float64)
    rows: list[tuple[str, int, float]] = [("embeddings", -1, float(acts.embeddings @ g))]
    for layer in range(n_layers):
        attn: Any = model.blocks[layer].attn
        norm = attn_out_norm(model, layer)
        g_l, post_const = (g, 0.0) if norm is None else pull_back(norm, float(acts.attn_out_scale[layer]), g)
        head_dirs = attn.W_O.detach().to("cpu", torch.float64) @ g_l  # [head, d_head]
        per_value = torch.einsum("phd,hd->hp", acts.values[layer], head_dirs)  # [head, pos]
        dla[layer] = acts.pattern[layer] * per_value
        rows.append(("attn_bias", layer, float(attn.b_O.detach().to("cpu", torch.float64) @ g_l) + post_const))
        if not model.cfg.attn_only:
            rows.append(("mlp", layer, float(acts.mlp_out[layer] @ g)))
    rows.append(("final_norm_bias", -1, final_const))
    rows.append(("unembed_bias", -1, unembed_bias))
    return dla.numpy(), pd.DataFrame(rows, columns=["term", "layer", "dla"])


def attribute_prompt(
    model: HookedTransformer,
    prompt: SegmentedPrompt,
    *,
    label_token_ids: Sequence[Sequence[int]],
    gold: int,
    label_names: Sequence[str] | None = None,
    config: AttributionConfig | None = None,
    tokenizer: Any = None,
) -> DemoAttribution:
    """Attention shares and DLA of ``prompt``'s answer position over its segments (module docstring).

    Args:
        model: the ``HookedTransformer`` to read.
        prompt: an ICL prompt with at least one demonstration, ending with its query
            (:meth:`PromptEncoder.build`); it is run exactly as given, BOS included or not.
        label_token_ids: each label's verbaliser tokens (:attr:`PromptEncoder.label_token_ids`).
        gold: index of the gold label; the logit difference is gold minus the others' mean.
        label_names: label names for display (default ``"label 0"``, ...).
        config: see :class:`AttributionConfig`.
        tokenizer: decodes tokens for display (default ``model.tokenizer``).

    Returns:
        A :class:`DemoAttribution`.
    """
    config = config or AttributionConfig()
    groups = group_prompt(prompt)
    names = tuple(label_names) if label_names is not None else tuple(f"label {i}" for i in range(len(label_token_ids)))
    if len(names) != len(label_token_ids):
        raise ConfigError(f"{len(names)} label names for {len(label_token_ids)} labels; give one name per label.")
    label_tokens = _label_tokens(label_token_ids, names, config.multi_token_labels)
    if isinstance(gold, bool) or not isinstance(gold, (int, np.integer)) or not 0 <= gold < len(label_tokens):
        raise ConfigError(f"gold must be a label index in 0..{len(label_tokens) - 1} ({list(names)}), got {gold!r}.")
    if len(prompt) > model.cfg.n_ctx:
        raise DataError(f"The prompt has {len(prompt)} tokens, over the model's n_ctx={model.cfg.n_ctx}; use fewer demonstrations.")
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer
    if tokenizer is None:
        raise ConfigError("The model has no tokenizer; pass tokenizer=... (anything with decode(ids)) to label the tokens.")

    acts = capture_answer(model, prompt.tokens, label_tokens)
    dla, other_terms = _decompose(model, acts, label_tokens, int(gold))
    others = [i for i in range(len(label_tokens)) if i != gold]
    diff = lambda logits: float(logits[gold] - logits[others].mean())  # noqa: E731
    result = DemoAttribution(
        tokens=prompt.tokens,
        token_strings=tuple(tokenizer.decode([t]) for t in prompt.tokens),
        segments=groups.names,
        token_segment=groups.token_group,
        roles=groups.roles,
        demo_ids=groups.demo_ids,
        demo_answers=tuple(
            tokenizer.decode([prompt.tokens[i] for i in range(start, end) if prompt.roles[i] == "label"]).strip()
            for start, end in groups.demo_spans
        ),
        attention=acts.pattern.numpy(),
        dla=dla,
        other_terms=other_terms,
        logit_diff=diff(acts.label_logits),
        output_logit_diff=diff(acts.output_label_logits),
        answer_position=groups.answer_position,
        label_names=names,
        label_tokens=label_tokens,
        gold=int(gold),
        provenance=model_provenance(
            model,
            bos_policy="prepend BOS" if prompt.has_bos else "no BOS",
            padding_side="none (one prompt)",
            data_hash=hash_json(list(prompt.tokens)),
            extra={"analysis": "demonstration attribution", "gold": int(gold), "label_tokens": list(label_tokens)},
        ),
    )
    scale = float(np.abs(dla).sum() + other_terms["dla"].abs().sum())
    if result.identity_error > config.identity_rtol * (1.0 + scale):
        logger.warning(
            "The DLA parts sum to %.6g but the model's logit difference is %.6g (error %.3g): the decomposition does not cover "
            "this model exactly, so treat the per-segment numbers with care.",
            result.reconstructed_logit_diff,
            result.logit_diff,
            result.identity_error,
        )
    return result


def attribute_demonstrations(
    runner: ICLRunner,
    demos: Sequence[Example],
    query: Example,
    *,
    gold: int | None = None,
    config: AttributionConfig | None = None,
) -> DemoAttribution:
    """:func:`attribute_prompt` for ``query`` after ``demos``, with the prompt, BOS policy and label
    tokens of ``runner`` (an :class:`~mechsel.icl.ICLRunner` of a classification task).

    Args:
        runner: builds the prompt exactly as scoring does (template, BOS, ``max_tokens`` and
            its overflow rule: demonstrations dropped to fit are absent from the result).
        demos: the demonstrations, in prompt order.
        query: the example to answer.
        gold: the label to attribute; default the query's gold label.
        config: see :class:`AttributionConfig`.
    """
    task = runner.task
    if task.kind != "classification":
        raise ConfigError(f"Task {task.name!r} is a {task.kind} task; attribution explains a label's logit difference (classification).")
    if gold is None:
        if query.label is None:
            raise DataError(f"Query {query.id!r} has no gold label; pass gold=<label index> to choose the label to attribute.")
        gold = int(query.label)
    if not demos:
        raise ConfigError("No demonstrations given: per-demonstration attribution needs k ≥ 1 demonstrations.")
    prompt = runner.prompts([list(demos)], [query])[0]
    return attribute_prompt(
        runner.model,
        prompt,
        label_token_ids=runner.encoder.label_token_ids,
        gold=gold,
        label_names=task.label_names,
        config=config,
        tokenizer=runner.tokenizer,
    )
