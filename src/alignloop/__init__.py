"""alignloop: serve an open chat model, learn from its users, retrain, evaluate and redeploy."""

__version__ = "0.1.0"
