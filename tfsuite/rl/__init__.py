"""Reinforcement learning: DQN for Gymnasium environments with discrete actions."""
