"""Hydra configuration groups, shipped with the package (``pkg://genre.conf``)."""
