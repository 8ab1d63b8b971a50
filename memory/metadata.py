"""Import every model module so ``Base.metadata`` is complete (Alembic, tests)."""

from memory.audit import models as audit  # noqa: F401
from memory.events import models as events  # noqa: F401
from memory.identity import models as identity  # noqa: F401
from memory.leases import models as leases  # noqa: F401
from memory.policy import models as policy  # noqa: F401


from memory.db import Base

metadata = Base.metadata
