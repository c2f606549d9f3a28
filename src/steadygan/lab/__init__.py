"""The stability lab: many runs (variants x seeds), their report, and the Dirac-GAN."""
