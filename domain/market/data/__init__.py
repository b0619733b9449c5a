"""Package data of the market domain: real price history the simulator replays."""
