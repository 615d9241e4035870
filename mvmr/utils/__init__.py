"""Small helpers every layer may use: atomic writes, the process group."""
