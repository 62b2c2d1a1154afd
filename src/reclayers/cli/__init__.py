"""The reclayers command line."""
