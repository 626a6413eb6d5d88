"""Training loop, distribution strategies and callbacks for NRI models."""
