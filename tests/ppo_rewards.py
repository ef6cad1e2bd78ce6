"""A known, rule-based reward for the PPO test (imported as 'ppo_rewards:lowercase_share')."""


def lowercase_share(prompt, reply: str) -> float:
    """The share of the reply's characters that are lowercase letters."""
    return sum(c.islower() for c in reply) / max(len(reply), 1)
