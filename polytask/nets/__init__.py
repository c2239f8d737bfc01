"""Network building blocks: encoders, MLPs, actors."""
