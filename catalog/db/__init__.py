"""Database layer: schema models and views, engines per backend, bulk SQL, schema revisions."""
