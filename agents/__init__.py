"""Agents: LangGraph graphs over the tools registry (monitor, healer, planner, advisor, auditor, examiner)."""
