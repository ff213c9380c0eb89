"""Database layer: schema models, engines per backend, schema revision checks."""
