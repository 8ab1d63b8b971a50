"""Standard Webhooks signing for partner hooks: the shared functions (:mod:`tools.shared.signing`) and the
secrets of an install.
"""

from __future__ import annotations

import datetime as dt

from memory.db import utcnow
from memory.partner.models import PluginInstall
from tools.shared.signing import TOLERANCE_S, new_secret, sign, signature_header, verify, webhook_headers

__all__ = ["TOLERANCE_S", "new_secret", "sign", "signature_header", "verify", "valid_secrets", "webhook_headers"]


def valid_secrets(inst: PluginInstall, now: dt.datetime | None = None) -> list[str]:
    """The install's signing secrets: the current one, and the previous one during its grace period."""
    now = now or utcnow()
    out = [inst.secret]
    if inst.previous_secret and inst.previous_expires_at and inst.previous_expires_at > now:
        out.append(inst.previous_secret)
    return out
