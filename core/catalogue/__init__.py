"""The catalogue of public tasks: store, build, knowledge, map, validity, families and a synthetic catalogue."""
