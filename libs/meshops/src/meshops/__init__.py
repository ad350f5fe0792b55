"""meshops: names, validates, plans, runs and deploys the flows of a data-mesh monorepo."""

__version__ = "0.1.0"
