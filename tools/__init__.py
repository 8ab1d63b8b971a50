"""The domain: typed tools, one package per roadmap area, registered once in ``tools.registry``."""
