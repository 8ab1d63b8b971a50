"""What every tool receives: the session, who is calling, for which organisation."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from tools.errors import BadRequest


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user (browser), an API key, an agent, or the system itself."""

    kind: str  # user | api_key | agent | system
    id: str
    org_id: int | None
    role: str
    name: str = ""
    user_id: int | None = None
    key_mode: str | None = None

    @property
    def actor(self) -> str:
        """The audit and policy name, e.g. ``user:3``, ``api_key:lvq_live_ab12cd34``, ``agent:janitor``."""
        return f"{self.kind}:{self.id}"

    @property
    def mode(self) -> str:
        """``test`` for a test-mode API key (``lvq_test_``), else ``live``: the data the caller sees."""
        return "test" if self.key_mode == "test" else "live"


SYSTEM = Principal(kind="system", id="levqor", org_id=None, role="admin", name="system")


@dataclass
class ToolContext:
    """Session, principal and request id for one tool call. Tools never commit."""

    session: Session
    principal: Principal
    request_id: str | None = None
    agent_run_id: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def org_id(self) -> int:
        if self.principal.org_id is None:
            raise BadRequest("this operation needs an organisation", field="org_id")
        return self.principal.org_id

    @property
    def mode(self) -> str:
        """``live`` or ``test``: every object a tool reads or writes belongs to the caller's mode."""
        return self.principal.mode
