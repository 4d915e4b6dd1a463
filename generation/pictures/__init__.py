"""Pictures in and out of the engine: uploads checked and opened, grids composed, provenance
written into (and read back from) result PNGs. No torch: the bot uses these too."""
