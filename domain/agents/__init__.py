"""Multi-agent AI core: indicators, agents, consensus, learning, backtests (numpy only)."""
