"""Finance domain, reporting project: figures built on other domains' data products."""
