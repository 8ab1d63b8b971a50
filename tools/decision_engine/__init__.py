"""Decision engine: the metrics feed, the what-if simulator, the planner and the advisor."""
