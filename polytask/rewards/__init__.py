"""Rewards computed from data rather than the environment: optimal transport to demonstrations (ROT)."""
