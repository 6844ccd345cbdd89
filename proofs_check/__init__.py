"""Executable checks of the E²-CRF paper's appendix claims (one module per claim).

Not written yet: the checks are the subject of their own issue (proofs_check: decide every
appendix claim). The package exists so the repository layout is the one the user fixed."""
