"""The failover drill's shared parts: the paper's claims, expectations, and the run's verdicts."""
