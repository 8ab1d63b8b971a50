"""Governance (roadmap step 8): partner audits, the code of conduct in ``policy.json``, the review cycle."""
