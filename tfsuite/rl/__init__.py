"""Reinforcement learning: DQN for Gymnasium environments (in progress, issue 6)."""
