"""The tools registry: every domain operation registered once, typed, with its risk.

API routers and agents call tools only through :func:`invoke`, which asks the policy engine
first. A tool is a plain function ``(ctx: ToolContext, params: In) -> Out``.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from tools.context import ToolContext
from tools.errors import ApprovalRequired, PolicyDenied, Unprocessable

Risk = Literal["read", "write", "destructive", "financial"]
RISKS: tuple[str, ...] = ("read", "write", "destructive", "financial")

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)

# Modules that register tools; imported lazily so ``levqor`` starts fast.
TOOL_MODULES: tuple[str, ...] = (
    "tools.identity.service",
    "tools.enterprise.audit_log",
    "tools.events.service",
    "tools.partner_api.registry",
    "tools.partner_api.hooks",
    "tools.partner_api.payouts",
    "tools.jobs.pipelines",
    "tools.jobs.queue",
    "tools.jobs.credits",
    "tools.jobs.workers",
    "tools.jobs.triggers",
    "tools.jobs.kpis",
    "tools.jobs.mailer",
    "tools.agents.service",
    "tools.pulse.store",
    "tools.pulse.costs",
    "tools.pulse.targets",
    "tools.pulse.report",
    "tools.decision_engine.metrics_feed",
    "tools.decision_engine.simulator",
    "tools.decision_engine.planner",
    "tools.decision_engine.advisor",
    "tools.auto_intel.signals",
    "tools.auto_intel.incidents",
    "tools.auto_intel.self_heal",
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


class ToolRegistry:
    """Holds every :class:`ToolSpec` by name."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}
        self._loaded = False

    def tool(self, name: str, *, risk: Risk) -> Callable[[Callable[[ToolContext, In], Out]],
                                                           Callable[[ToolContext, In], Out]]:
        """Register ``func`` as tool ``name`` (``area.verb``) with ``risk``."""
        if risk not in RISKS:
            raise ValueError(f"tool {name}: risk must be one of {RISKS}")
        if "." not in name:
            raise ValueError(f"tool {name}: name must be area.verb")

        def decorator(func: Callable[[ToolContext, In], Out]) -> Callable[[ToolContext, In], Out]:
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
            self._tools[name] = ToolSpec(name, func, input_model, output_model, risk, doc[0])
            return func

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

    def invoke(self, name: str, ctx: ToolContext, params: BaseModel | dict[str, Any]) -> BaseModel:
        """Validate ``params``, ask the policy engine, then run tool ``name``."""
        from policies.engine import get_engine as get_policy

        spec = self.get(name)
        if isinstance(params, dict):
            try:
                params = spec.input_model.model_validate(params)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise Unprocessable(f"{loc}: {err['msg']}", field=loc) from None
        elif not isinstance(params, spec.input_model):
            raise TypeError(f"tool {name} takes {spec.input_model.__name__}")
        decision = get_policy().decide(ctx, spec, params)
        if decision.outcome == "deny":
            raise PolicyDenied(decision.reason, extra={"tool": name})
        if decision.outcome == "needs_approval":
            raise ApprovalRequired(decision.reason, extra={"tool": name})
        started = time.perf_counter()
        result = spec.func(ctx, params)
        _observe(name, time.perf_counter() - started)
        return result


def _observe(name: str, seconds: float) -> None:
    from levqor.metrics import TOOL_CALLS

    TOOL_CALLS.labels(tool=name).inc()


registry = ToolRegistry()
tool = registry.tool
