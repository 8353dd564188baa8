"""Node functions of the sales example."""
