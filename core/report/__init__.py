"""Reports: the tables that the pages and the CLI render (recommendations, views, co-training, feature meaning)."""
