"""Disease relevance on the server: results, confirmed diagnoses, the model registry."""
