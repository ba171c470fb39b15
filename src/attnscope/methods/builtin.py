"""The catalogue entries of attnscope's own methods, and the small functions that run them.

Each ``_run_*`` adapts a computation (pure analysis in :mod:`attnscope.analysis`, model-running
attribution in :mod:`attnscope.attribution`) to :class:`attnscope.methods.run.MethodInput`.
"""

from __future__ import annotations

from attnscope.analysis.flow import MAX_FLOW_TOKENS
from attnscope.attribution import schedule
from attnscope.methods.spec import GRANULARITIES, OBJECTIVES, MethodInput, MethodOutput, MethodSpec, Option

RESIDUAL = Option(
    "residual", "float", 0.5, "weight of the residual connection, r in r·I + (1 − r)·A", minimum=0.0, maximum=1.0
)


def _run_attention(request: MethodInput) -> MethodOutput:
    from attnscope.analysis.aggregate import aggregate_attention

    options = request.options
    row = aggregate_attention(request.trace(), layers=options["layers"], head=options["heads"], rows=[request.query])
    return MethodOutput(token_scores=row[0])


def _run_rollout(request: MethodInput) -> MethodOutput:
    from attnscope.analysis.rollout import attention_rollout

    return MethodOutput(
        token_scores=attention_rollout(request.trace(), residual=request.options["residual"])[request.query]
    )


def _run_flow(request: MethodInput) -> MethodOutput:
    from attnscope.analysis.flow import attention_flow

    flows = attention_flow(
        request.trace(), query=request.query, residual=request.options["residual"], progress=request.progress
    )
    return MethodOutput(token_scores=flows)


def _run_gradient(request: MethodInput) -> MethodOutput:
    from attnscope.attribution.gradients import gradient_attribution

    assert request.model is not None and request.tokens is not None and request.target is not None
    options = request.options
    result = gradient_attribution(
        request.model,
        request.tokens,
        request.target,
        request.spec.name,
        steps=options.get("steps", "auto"),
        baseline=options.get("baseline", "mean"),
        progress=request.progress,
    )
    return MethodOutput(token_scores=result.scores, details={"f": result.objective_value, **result.details})


def _run_occlusion(request: MethodInput) -> MethodOutput:
    from attnscope.attribution.occlusion import occlusion

    assert request.target is not None
    result = occlusion(
        request.text,
        request.units,
        request.target,
        tokens=request.tokens,
        scorer=request.scorer,
        model=request.model,
        prompt_end=request.prompt_end,
        mode=request.options["mode"],
        progress=request.progress,
    )
    details = {"base_logprob": result.base_logprob, **result.details}
    if result.kl is not None:
        details["kl"] = result.kl
    return MethodOutput(unit_scores=result.scores, details=details)


SELF_ATTENTION = ("causal", "masked")  # token attributions explain one input sequence
CAUSAL = ("causal",)

BUILTIN: tuple[MethodSpec, ...] = (
    MethodSpec(
        "attention",
        "attention",
        "attention",
        "the query's attention weights: a layer or the mean over layers, heads combined",
        needs=("trace",),
        options=(
            Option("layers", "layers", "all", "a layer, a range such as 4-7, or all (mean over them)"),
            Option("heads", "heads", "mean", "a head, a list such as 1,3 (their mean), mean or max"),
        ),
        kinds=SELF_ATTENTION,
        run=_run_attention,
        explains_steps=True,
    ),
    MethodSpec(
        "rollout",
        "attention rollout",
        "propagation",
        "attention propagated through the residual stream, r·I + (1 − r)·A multiplied over layers",
        needs=("trace",),
        options=(RESIDUAL,),
        kinds=SELF_ATTENTION,
        reference="Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers",
        run=_run_rollout,
        explains_steps=True,
    ),
    MethodSpec(
        "flow",
        "attention flow",
        "propagation",
        "maximum flow from each input token to the query through the layer graph",
        needs=("trace",),
        options=(RESIDUAL,),
        kinds=SELF_ATTENTION,
        max_tokens=MAX_FLOW_TOKENS,
        slow=True,
        reference="Abnar & Zuidema 2020; scipy's Dinic max-flow solver",
        run=_run_flow,
    ),
    MethodSpec(
        "grad-norm",
        "gradient norm",
        "gradient",
        "L2 norm of the gradient of the target's log-probability with respect to each input embedding",
        needs=("model",),
        kinds=CAUSAL,
        explains_target=True,
        objectives=OBJECTIVES,
        run=_run_gradient,
        explains_steps=True,
    ),
    MethodSpec(
        "grad-x-input",
        "gradient × input",
        "gradient",
        "gradient · embedding: the signed first-order contribution of each input embedding",
        needs=("model",),
        kinds=CAUSAL,
        explains_target=True,
        objectives=OBJECTIVES,
        signed=True,
        run=_run_gradient,
        explains_steps=True,
    ),
    MethodSpec(
        "integrated-gradients",
        "integrated gradients",
        "gradient",
        "gradients integrated from a baseline embedding, with the completeness gap (delta) reported",
        needs=("model",),
        options=(
            Option(
                "steps",
                "int",
                "auto",
                schedule.describe(),
                minimum=1,
                maximum=schedule.MAX_STEPS,
                auto=True,
            ),
            Option(
                "baseline", "choice", "mean", "what every ordinary token starts from", choices=("mean", "pad", "zero")
            ),
        ),
        kinds=CAUSAL,
        explains_target=True,
        objectives=OBJECTIVES,
        signed=True,
        slow=True,
        reference="Sundararajan, Taly & Yan 2017, Axiomatic Attribution for Deep Networks",
        run=_run_gradient,
        explains_steps=True,
    ),
    MethodSpec(
        "occlusion",
        "occlusion",
        "perturbation",
        "log-probability drop of the target when each unit is removed (or masked), and the KL divergence",
        needs=("scorer",),
        options=(
            Option(
                "mode",
                "choice",
                "remove",
                "remove the unit's characters, or mask its tokens",
                choices=("remove", "mask"),
            ),
        ),
        kinds=CAUSAL,
        explains_target=True,
        objectives=("next-token", "continuation"),
        signed=True,
        slow=True,
        reference="Zeiler & Fergus 2014 (occlusion); any OpenAI-compatible endpoint can score",
        run=_run_occlusion,
        explains_steps=True,
    ),
    MethodSpec(
        "head-metrics",
        "head metrics",
        "heads",
        "entropy, sparsity, locality, sink mass, previous-token score and focus consistency of every head",
        needs=("trace",),
        options=(
            Option(
                "threshold",
                "float",
                0.01,
                "sparsity: the weight below which a key counts as ignored",
                minimum=0.0,
                maximum=1.0,
            ),
        ),
        units=("token",),
        scores_tokens=False,
        slow=True,
    ),
    MethodSpec(
        "induction",
        "induction score",
        "heads",
        "attention from a repeated token to the one after its first occurrence (a random word sequence written twice)",
        needs=("model",),
        units=("token",),
        kinds=CAUSAL,
        scores_tokens=False,
        reference="Olsson et al. 2022, In-context Learning and Induction Heads",
    ),
    MethodSpec(
        "parts",
        "prompt parts",
        "parts",
        "attention mass from a query token or part to each named part of the prompt, per layer and head",
        needs=("trace",),
        units=("token",),
        scores_tokens=False,
    ),
    MethodSpec(
        "agreement",
        "method agreement",
        "faithfulness",
        "Spearman and Kendall rank agreement between the token attribution methods' scores",
        needs=("model",),
        units=GRANULARITIES,
        scores_tokens=False,
        slow=True,
    ),
)
