"""The daemon: watch, ledger, worker, metrics, stop signal, http."""
