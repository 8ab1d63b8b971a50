"""The tools registry: every domain operation registered once, typed, with its risk.

A tool is a plain function ``(ctx: ToolContext, params: In) -> Out``. Registering it with
``@tool("area.verb", risk=...)`` returns a typed handle, :class:`Tool` ``[In, Out]``: routers and the
CLI call the handle (``pipelines.create_pipeline(ctx, body)`` returns ``PipelineRead``) and agents look
tools up by name (:meth:`ToolRegistry.invoke`). Both paths go through :meth:`ToolRegistry.call`, which
asks the policy engine first, records agents' decisions (rate limits count them) and writes every
denial to the audit log.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ValidationError

from levqor.metrics import TOOL_CALLS
from memory.audit.chain import append_detached
from memory.policy.repository import PolicyDecisionRepository
from policies.engine import Decision, get_engine, matches
from tools.context import ToolContext
from tools.errors import ApprovalRequired, PolicyDenied, Unprocessable

Risk = Literal["read", "write", "destructive", "financial"]
RISKS: tuple[str, ...] = ("read", "write", "destructive", "financial")

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

# Modules that register tools; imported on first lookup by name so ``levqor`` starts fast.
TOOL_MODULES: tuple[str, ...] = (
    "tools.identity.service",
    "tools.dev_portal.accounts",
    "tools.dev_portal.keys",
    "tools.dev_portal.usage",
    "tools.enterprise.audit_tools",
    "tools.enterprise.sla",
    "tools.events.service",
    "tools.partner_api.partners",
    "tools.partner_api.catalog",
    "tools.partner_api.installs",
    "tools.partner_api.marketplace",
    "tools.partner_api.kpis",
    "tools.partner_api.webhooks",
    "tools.partner_api.revenue",
    "tools.partner_api.stripe_connect",
    "tools.partner_api.payouts",
    "tools.partner_api.statements",
    "tools.billing.ledger",
    "tools.billing.checkout",
    "tools.certification.scoring",
    "tools.certification.cert_issue",
    "tools.certification.review",
    "tools.jobs.pipelines",
    "tools.jobs.queue",
    "tools.jobs.credits",
    "tools.jobs.workers",
    "tools.jobs.triggers",
    "tools.jobs.kpis",
    "tools.jobs.endpoints",
    "tools.dev_portal.sandbox",
    "tools.agents.service",
    "tools.pulse.store",
    "tools.pulse.costs",
    "tools.pulse.targets",
    "tools.pulse.report",
    "tools.data_insights.aggregator",
    "tools.data_insights.report_builder",
    "tools.decision_engine.metrics_feed",
    "tools.decision_engine.simulator",
    "tools.decision_engine.planner",
    "tools.decision_engine.advisor",
    "tools.auto_intel.signals",
    "tools.auto_intel.incidents",
    "tools.governance.service",
    "tools.governance.policy_versions",
    "tools.governance.report",
    "tools.community.early_access",
    "tools.community.announcements",
    "tools.community.network",
    "tools.auto_intel.monitor",
    "tools.auto_intel.disk",
    "tools.certification.docs_watch",
)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    func: Callable[[ToolContext, Any], BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    risk: str
    description: str

    @property
    def area(self) -> str:
        return self.name.split(".", 1)[0]


class Tool(Generic[In, Out]):
    """A registered tool. Calling it runs it policy-checked: ``handle(ctx, params) -> Out``.

    ``run`` calls the function without asking the policy engine; only the domain's own composition
    (one tool's code building on another's) uses it, never an edge or an agent.
    """

    def __init__(self, spec: ToolSpec, func: Callable[[ToolContext, In], Out], registry: ToolRegistry):
        self.spec = spec
        self._func = func
        self._registry = registry
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__wrapped__ = func

    @property
    def name(self) -> str:
        return self.spec.name

    def __call__(self, ctx: ToolContext, params: In) -> Out:
        return cast(Out, self._registry.call(self.spec, ctx, params))

    def run(self, ctx: ToolContext, params: In) -> Out:
        return self._func(ctx, params)

    def __repr__(self) -> str:
        return f"<tool {self.spec.name} ({self.spec.risk})>"


class ToolRegistry:
    """Holds every :class:`ToolSpec` by name."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}
        self._loaded = False

    def tool(self, name: str, *, risk: Risk) -> Callable[[Callable[[ToolContext, In], Out]], Tool[In, Out]]:
        """Register ``func`` as tool ``name`` (``area.verb``) with ``risk``; return its typed handle."""
        if risk not in RISKS:
            raise ValueError(f"tool {name}: risk must be one of {RISKS}")
        if "." not in name:
            raise ValueError(f"tool {name}: name must be area.verb")

        def decorator(func: Callable[[ToolContext, In], Out]) -> Tool[In, Out]:
            sig = inspect.signature(func)
            params = list(sig.parameters.values())
            hints = inspect.get_annotations(func, eval_str=True)
            if len(params) != 2:
                raise TypeError(f"tool {name}: signature must be (ctx, params)")
            input_model = hints.get(params[1].name)
            output_model = hints.get("return")
            if not (isinstance(input_model, type) and issubclass(input_model, BaseModel)):
                raise TypeError(f"tool {name}: params must be a pydantic model")
            if not (isinstance(output_model, type) and issubclass(output_model, BaseModel)):
                raise TypeError(f"tool {name}: return type must be a pydantic model")
            doc = (func.__doc__ or "").strip().splitlines()
            if not doc:
                raise TypeError(f"tool {name}: a one-line docstring is required (it is the LLM's description)")
            if name in self._tools and self._tools[name].func is not func:
                raise ValueError(f"tool {name} registered twice")
            spec = ToolSpec(name, func, input_model, output_model, risk, doc[0])
            self._tools[name] = spec
            return Tool(spec, func, self)

        return decorator

    def load(self) -> None:
        if not self._loaded:
            for mod in TOOL_MODULES:
                importlib.import_module(mod)
            self._loaded = True

    def get(self, name: str) -> ToolSpec:
        self.load()
        try:
            return self._tools[name]
        except KeyError:
            raise PolicyDenied(f"unknown tool {name!r}", field="tool") from None

    def all(self) -> list[ToolSpec]:
        self.load()
        return sorted(self._tools.values(), key=lambda t: t.name)

    def names_matching(self, pattern: str) -> list[str] | None:
        """The registered tools a policy ``pattern`` names (None: every tool)."""
        if pattern == "*":
            return None
        if "*" not in pattern and not pattern.startswith("risk:"):
            return [pattern]
        return [t.name for t in self.all() if matches(pattern, t)]

    def invoke(self, name: str, ctx: ToolContext, params: BaseModel | dict[str, Any]) -> BaseModel:
        """Look tool ``name`` up, validate ``params`` (a model or, from an agent, a dict), then :meth:`call` it."""
        spec = self.get(name)
        if isinstance(params, dict):
            try:
                params = spec.input_model.model_validate(params)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise Unprocessable(f"{loc}: {err['msg']}", field=loc) from None
        return self.call(spec, ctx, params)

    def call(self, spec: ToolSpec, ctx: ToolContext, params: BaseModel) -> BaseModel:
        """Ask the policy engine, then run the tool; a denial or a needed approval raises."""
        if not isinstance(params, spec.input_model):
            raise TypeError(f"tool {spec.name} takes {spec.input_model.__name__}")
        decision = self.decide(ctx, spec, params)
        if decision.outcome == "deny":
            raise PolicyDenied(decision.reason, extra={"tool": spec.name})
        if decision.outcome == "needs_approval":
            raise ApprovalRequired(decision.reason, extra={"tool": spec.name})
        started = time.perf_counter()
        result = spec.func(ctx, params)
        TOOL_CALLS.labels(tool=spec.name).inc()
        _ = time.perf_counter() - started
        return result

    def decide(self, ctx: ToolContext, spec: ToolSpec, params: BaseModel) -> Decision:
        """The policy decision for this call; agents' decisions are recorded, every denial is audited."""
        principal = ctx.principal
        args = params.model_dump(mode="json")
        repo = PolicyDecisionRepository(ctx.session)

        def recent_count(pattern: str, window_s: int) -> int:
            return repo.count_allowed(principal.actor, self.names_matching(pattern), window_s)

        decision = get_engine().evaluate(principal.actor, principal.kind, spec, args, recent_count=recent_count)
        if principal.kind == "agent":
            repo.record(principal.actor, spec.name, decision.outcome, decision.reason, args)
        if decision.outcome == "deny":
            # After the caller's session closes: on SQLite a second writer would wait on its lock.
            append_detached(
                session=ctx.session,
                actor=principal.actor, action="policy.denied", target=spec.name, org_id=principal.org_id,
                request_id=ctx.request_id, outcome="denied",
                detail={"reason": decision.reason, "args": args, "risk": spec.risk},
            )
        return decision


registry = ToolRegistry()
tool = registry.tool
