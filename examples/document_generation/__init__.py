"""The seed's DocumentGeneration process, the main job of `make demo`."""
