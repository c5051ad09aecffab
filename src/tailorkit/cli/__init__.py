"""The `tailorkit` command line: thin wrappers that parse arguments, build a config and call the public API."""
