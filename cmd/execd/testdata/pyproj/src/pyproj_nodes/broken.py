import pyproj_nodes.no_such_module  # noqa: F401
