"""The inference runtime: loading a graph file into an engine session (providers, threads,
warm-up). Used by serving, evaluation and the importers; it knows nothing of model kinds."""
