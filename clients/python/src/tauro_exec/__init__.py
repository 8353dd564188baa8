"""tauro-exec: run tauro pipelines on Spark through the execd service."""
