"""The served deployment: OpenAI-compatible chat, feedback, compare, consent (FastAPI)."""
