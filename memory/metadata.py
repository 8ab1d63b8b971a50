"""Import every model module so ``Base.metadata`` is complete (Alembic, tests)."""

from memory.agents import models as agents  # noqa: F401
from memory.audit import models as audit  # noqa: F401
from memory.billing import models as billing  # noqa: F401
from memory.certification import models as certification  # noqa: F401
from memory.community import models as community  # noqa: F401
from memory.db import Base
from memory.dev_portal import models as dev_portal  # noqa: F401
from memory.events import models as events  # noqa: F401
from memory.governance import models as governance  # noqa: F401
from memory.identity import models as identity  # noqa: F401
from memory.insights import models as insights  # noqa: F401
from memory.jobs import models as jobs  # noqa: F401
from memory.leases import models as leases  # noqa: F401
from memory.ops import models as ops  # noqa: F401
from memory.partner import models as partner  # noqa: F401
from memory.policy import models as policy  # noqa: F401
from memory.pulse import models as pulse  # noqa: F401
from memory.ratelimit import models as ratelimit  # noqa: F401
from memory.scheduler import models as scheduler  # noqa: F401
from memory.sla import models as sla  # noqa: F401
from memory.sso import models as sso  # noqa: F401
from memory.usage import models as usage  # noqa: F401

metadata = Base.metadata
