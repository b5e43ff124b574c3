"""The control plane: the `waflow` command, status, replay, reconcile, the demo load. Imports
the stages and the foundation; nothing imports it."""
