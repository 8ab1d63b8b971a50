"""Pieces several tool areas use and none owns: the SSRF-guarded HTTP client and the mail transport."""
