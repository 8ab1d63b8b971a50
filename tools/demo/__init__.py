"""The demo organisation that ``make run`` seeds: identity, pipelines and jobs, Pulse history."""
