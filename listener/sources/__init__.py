"""Where mentions come from: one module per platform, the shared HTTP politeness, the poll schedule."""
