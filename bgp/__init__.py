"""BGP-4 speaker library (sans-I/O core, asyncio transport). Knows nothing of Kubernetes."""
